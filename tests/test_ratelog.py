"""RateLimitedLog: one line per key per interval, with the count of the lines held back."""

from __future__ import annotations

import logging

from edge.ratelog import RateLimitedLog


def test_one_line_per_key_per_interval_with_the_count(caplog):
    caplog.set_level(logging.ERROR, logger="test.ratelog")
    log = RateLimitedLog(logging.getLogger("test.ratelog"), interval=3600.0)
    written = [log.log("disk", "disk full: %s", n) for n in range(3)] + [log.log("camera", "camera gone")]
    assert written == [True, False, False, True]  # another key is not held back by the first
    log.interval = 0.0  # the interval has passed
    assert log.log("disk", "disk full: %s", 9)
    assert [r.getMessage() for r in caplog.records] == [
        "disk full: 0", "camera gone", "disk full: 9 (2 more since the last report)"]


def test_a_line_may_set_its_level_and_a_problem_that_ended_is_forgotten(caplog):
    caplog.set_level(logging.WARNING, logger="test.ratelog")
    log = RateLimitedLog(logging.getLogger("test.ratelog"), interval=3600.0, level=logging.WARNING)
    assert log.log("write", "cannot write", level=logging.ERROR)
    assert not log.log("write", "still cannot write")  # a reminder within the interval is held back
    log.forget("write")  # it recovered: the next failure is a new problem, logged at once
    assert log.log("write", "cannot write again", level=logging.ERROR)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "cannot write"), (logging.ERROR, "cannot write again")]
