"""SinkRunner isolation (slow, full, failing sinks) and the sink registry (built-ins, plug-ins, unknown names)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from edge import config
from edge import sinks as registry
from edge.errors import EdgeError
from edge.sinks.base import Prediction, Sink, SinkContext, SinkRunner
from edge.smoothing import Event


def pred(seq: int) -> Prediction:
    return Prediction(t=float(seq), wall=0.0, seq=seq, probs=np.zeros(3), top=[], smoothed=np.zeros(3),
                      smoothed_top=[])


def ev(seq: int) -> Event:
    return Event(rule="r", phase="start", t=seq, score=0.9, start=seq, peak=0.9, duration=0.0)


class GatedSink(Sink):
    """Blocks in emit until ``gate`` is set; ``entered`` is set when the first emit starts."""

    type = "gated"

    def __init__(self) -> None:
        super().__init__(None, SinkContext(labels=[]))
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen: list[int] = []
        self.closed = 0

    def emit(self, p: Prediction) -> None:
        self.entered.set()
        assert self.gate.wait(30), "test never opened the gate"
        self.seen.append(p.seq)

    def event(self, event: Event, latest: Prediction | None) -> None:
        assert self.gate.wait(30), "test never opened the gate"
        self.seen.append(f"{event.t:g}e")

    def close(self) -> None:
        self.closed += 1


class ListSink(Sink):
    type = "list"

    def __init__(self) -> None:
        super().__init__(None, SinkContext(labels=[]))
        self.seen: list[int] = []

    def emit(self, p: Prediction) -> None:
        self.seen.append(p.seq)


class FailingSink(Sink):
    type = "failing"

    def __init__(self) -> None:
        super().__init__(None, SinkContext(labels=[]))
        self.calls = 0

    def emit(self, p: Prediction) -> None:
        self.calls += 1
        raise OSError(f"cannot write {p.seq}")


@pytest.fixture
def runners():
    """Runners made by a test are closed at its end, whatever happens."""
    made: list[tuple[SinkRunner, Sink]] = []

    def make(sink: Sink, queue_size: int = 64) -> SinkRunner:
        runner = SinkRunner(sink, queue_size=queue_size)
        made.append((runner, sink))
        runner.start()
        return runner

    yield make
    for runner, sink in made:
        if isinstance(sink, GatedSink):
            sink.gate.set()
        runner.close(timeout=5)


# --------------------------------------------------------------------------- never blocking the inference thread


def test_a_slow_sink_does_not_block_submit(runners):
    sink = GatedSink()
    runner = runners(sink, queue_size=8)
    runner.submit(pred(0))
    assert sink.entered.wait(5)
    done = threading.Event()

    def inference_thread():
        for seq in range(1, 1001):
            runner.submit(pred(seq))
        done.set()

    th = threading.Thread(target=inference_thread)
    th.start()
    th.join(5)
    assert done.is_set(), "submit blocked on a slow sink"
    assert runner.health()["queued"] == 8
    assert runner.dropped == 1000 - 8
    sink.gate.set()
    assert runner.drain(5)
    assert sink.seen == [0] + list(range(993, 1001))


@pytest.mark.parametrize("submitted, emitted, dropped", [
    # queue of 3; seq 0 is in emit (blocked) when the rest arrive; "e" = an event (its own envelope)
    ([1, 2, 3], [0, 1, 2, 3], 0),
    ([1, "2e", 3, 4], [0, "2e", 3, 4], 1),  # the oldest prediction (1) goes, the event stays
    ([1, "2e", 3, 4, "5e", 6], [0, "2e", "5e", 6], 3),
    (["1e", "2e", "3e", 4], [0, "1e", "2e", "3e"], 1),  # only events queued: the new prediction goes
    (["1e", "2e", "3e", "4e", "5e"], [0, "1e", "2e", "3e", "4e", "5e"], 0),  # events are never dropped
    ([1, 2, 3, "4e", "5e", "6e", "7e"], [0, "4e", "5e", "6e", "7e"], 3),
    (["1e", 2, 3, 4, "5e", 6], [0, "1e", "5e", 6], 3),  # an event makes room by dropping a prediction too
])
def test_queue_overflow_drops_the_oldest_prediction_and_never_an_event(runners, submitted, emitted, dropped):
    sink = GatedSink()
    runner = runners(sink, queue_size=3)
    runner.submit(pred(0))
    assert sink.entered.wait(5)
    for item in submitted:
        if str(item).endswith("e"):
            runner.submit_event(ev(int(item[:-1])), None)
        else:
            runner.submit(pred(item))
    sink.gate.set()
    assert runner.drain(5)
    assert sink.seen == emitted
    assert runner.dropped == dropped
    assert runner.emitted == len(emitted)


def test_events_reach_the_sink_in_order_with_the_latest_prediction(runners):
    got = []

    class EventSink(Sink):
        def event(self, event, latest):
            got.append((event.t, latest.seq if latest is not None else None))

    runner = runners(EventSink(None, SinkContext(labels=[])))
    runner.submit_event(ev(1), pred(1))
    runner.submit(pred(2))
    runner.submit_event(ev(2), None)  # an end at stop before any prediction
    assert runner.drain(5)
    assert got == [(1, 1), (2, None)]
    assert runner.emitted == 3 and runner.errors == 0


def test_a_failing_event_is_counted_as_an_event_error(runners):
    class BadEvents(Sink):
        def event(self, event, latest):
            raise OSError("no disk")

    runner = runners(BadEvents(None, SinkContext(labels=[])))
    runner.submit_event(ev(1), None)
    assert runner.drain(5)
    assert runner.errors == 1 and runner.last_error == "event: OSError: no disk"


# --------------------------------------------------------------------------- failing sinks


def test_a_failing_sink_is_counted_and_the_others_still_get_everything(runners, caplog):
    bad, good = FailingSink(), ListSink()
    bad_runner, good_runner = runners(bad), runners(good)
    for seq in range(50):
        for r in (bad_runner, good_runner):
            r.submit(pred(seq))
    assert bad_runner.drain(5) and good_runner.drain(5)
    assert good.seen == list(range(50))
    assert bad.calls == 50
    assert bad_runner.errors == 50 and bad_runner.emitted == 0
    assert bad_runner.last_error == "emit: OSError: cannot write 49"
    health = bad_runner.health()
    assert health["ok"] is False and health["errors"] == 50
    assert good_runner.health()["ok"] is True


def test_errors_are_logged_once_per_interval(runners, caplog):
    caplog.set_level(logging.ERROR, logger="edge.sinks.base")
    bad = FailingSink()
    runner = runners(bad)
    runner.error_log.interval = 3600.0
    for seq in range(20):
        runner.submit(pred(seq))
    assert runner.drain(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.sinks.base"]
    assert lines == ["sink failing failed in emit: cannot write 0"]
    runner.error_log.interval = 0.0  # the interval has passed: the next error is reported with the count
    runner.submit(pred(20))
    assert runner.drain(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.sinks.base"]
    assert lines[1:] == ["sink failing failed in emit: cannot write 20 (19 more since the last report)"]
    assert runner.errors == 21


def test_a_sink_that_fails_to_start_still_runs_and_is_reported(runners):
    class NoStart(ListSink):
        def start(self):
            raise PermissionError("no /dev/fb0")

    sink = NoStart()
    runner = runners(sink)
    runner.submit(pred(1))
    assert runner.drain(5)
    assert sink.seen == [1]
    h = runner.health()
    assert h["ok"] is False and h["errors"] == 1 and "no /dev/fb0" in h["last_error"]


# --------------------------------------------------------------------------- closing


def test_close_flushes_the_queue_then_closes_the_sink_once():
    sink = GatedSink()
    runner = SinkRunner(sink, queue_size=64)
    runner.start()
    for seq in range(10):
        runner.submit(pred(seq))
    assert sink.entered.wait(5)
    sink.gate.set()
    runner.close(timeout=5)
    assert sink.seen == list(range(10))
    assert sink.closed == 1
    runner.close(timeout=5)  # idempotent
    assert sink.closed == 1
    assert runner.health()["queued"] == 0


def test_close_gives_up_on_a_stuck_sink_after_the_timeout(caplog):
    sink = GatedSink()
    runner = SinkRunner(sink, queue_size=64)
    runner.start()
    for seq in range(3):
        runner.submit(pred(seq))
    assert sink.entered.wait(5)
    runner.close(timeout=0.05)
    assert "did not finish within 0.1 s; 2 predictions not written" in caplog.text
    assert sink.closed == 1
    sink.gate.set()  # let the thread end


def test_a_sink_close_that_raises_is_counted():
    class BadClose(ListSink):
        def close(self):
            raise OSError("flush failed")

    runner = SinkRunner(BadClose())
    runner.start()
    runner.close(timeout=5)
    assert runner.errors == 1 and runner.last_error == "close: OSError: flush failed"


# --------------------------------------------------------------------------- the registry


def test_unknown_sink_type_lists_the_known_ones(plugin_sinks):
    plugin_sinks()
    with pytest.raises(EdgeError) as err:
        registry.sink_class("mqtt")
    assert str(err.value) == "unknown sink type 'mqtt' (known: clip, gpio, log, notify, overlay)"


def test_builtin_sinks_are_imported_by_name():
    from edge.sinks.log import LogSink

    assert registry.sink_class("log") is LogSink
    assert set(registry.REGISTRY) == set(config.BUILTIN_SINKS)


def test_an_entry_point_plugin_is_found_by_name(plugin_sinks, tmp_path):
    class WebhookSink(ListSink):
        type = "webhook"

        def __init__(self, cfg, ctx):
            Sink.__init__(self, cfg, ctx)
            self.seen = []

    eps = plugin_sinks(webhook=WebhookSink)
    assert registry.sink_class("webhook") is WebhookSink
    assert "webhook" in registry.known()
    with pytest.raises(EdgeError, match=r"known: clip, gpio, log, notify, overlay, webhook"):
        registry.sink_class("webhok")
    cfg = config.parse({"sinks": [{"type": "webhook", "url": "http://example.invalid", "queue": 5}]})
    runner = registry.build(cfg.sinks[0], SinkContext(labels=["a"]))
    assert isinstance(runner.sink, WebhookSink)
    assert runner.queue_size == 5
    assert runner.sink.cfg.url == "http://example.invalid"  # its own options reach it
    assert eps["webhook"].value.endswith("WebhookSink")


def test_a_plugin_that_fails_to_load_is_named(plugin_sinks):
    plugin_sinks(broken=ImportError("No module named 'paho'"))
    with pytest.raises(EdgeError) as err:
        registry.sink_class("broken")
    assert "sink plug-in 'broken'" in str(err.value) and "No module named 'paho'" in str(err.value)


def test_a_plugin_validates_its_own_options_with_the_key_path(plugin_sinks):
    from pydantic import BaseModel, ConfigDict

    class StrictSink(ListSink):
        class Config(BaseModel):
            model_config = ConfigDict(extra="forbid")
            type: str
            queue: int = 64
            url: str

        def __init__(self, cfg, ctx):
            Sink.__init__(self, cfg, ctx)

    plugin_sinks(strict=StrictSink)
    cfg = config.parse({"sinks": [{"type": "strict", "ur": "typo"}]})
    with pytest.raises(EdgeError) as err:
        registry.build(cfg.sinks[0], SinkContext(labels=[]))
    assert "sink strict:" in str(err.value)
    assert "url: Field required" in str(err.value) and "ur: unknown key" in str(err.value)
