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
