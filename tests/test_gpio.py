"""GpioSink on gpiozero's own MockFactory: the pin's state history for each mode.

Waiting is on a condition the mock pin signals at each change (a MockPin
subclass), or by joining gpiozero's blink thread; never on sleep().
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

pytest.importorskip("gpiozero")

from gpiozero.pins.mock import MockFactory, MockPin  # noqa: E402

from edge.config import GpioSinkConfig  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.sinks import SinkRunner, sink_class  # noqa: E402
from edge.sinks.base import Prediction, SinkContext  # noqa: E402
from edge.sinks.gpio import GpioSink  # noqa: E402
from edge.smoothing import Event  # noqa: E402

PIN = 17
WAIT = 5.0  # upper bound for anything the tests wait on; normally milliseconds


class SignalPin(MockPin):
    """A MockPin that notifies a condition on every state change, so tests can wait without sleeping."""

    def __init__(self, factory, info):
        self.changed = threading.Condition()
        super().__init__(factory, info)

    def _change_state(self, value):
        with self.changed:
            result = super()._change_state(value)
            self.changed.notify_all()
        return result

    def wait_for(self, predicate, timeout: float = WAIT) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def levels(self) -> list[bool]:
        return [s.state for s in self.states]


@pytest.fixture
def factory():
    f = MockFactory(pin_class=SignalPin)
    yield f
    f.reset()
    f.close()


def ctx() -> SinkContext:
    return SinkContext(labels=["a", "b"], rules=["cook", "wash"])


def event(rule: str, phase: str, t: float) -> Event:
    return Event(rule=rule, phase=phase, t=t, score=0.8, start=t if phase == "start" else 0.0, peak=0.8,
                 duration=0.0 if phase == "start" else t, reason="" if phase == "start" else "score")


def pred(t: float, events: list[Event] = (), active: tuple[str, ...] = ()) -> tuple[Prediction, list[Event]]:
    """A prediction at t and the events that happened at its frame."""
    return Prediction(t=t, wall=1_700_000_000.0 + t, seq=int(t * 5), probs=np.zeros(2), top=[],
                      smoothed=np.zeros(2), smoothed_top=[],
                      active={r: event(r, "start", t) for r in active}), list(events)


def send(sink, sent: tuple[Prediction, list[Event]]) -> None:
    """Deliver as the sink runner does: the frame's events, then its prediction."""
    p, evs = sent
    for ev in evs:
        sink.event(ev, p)
    sink.emit(p)


def make(factory, **kw) -> GpioSink:
    cfg = GpioSinkConfig(pin=kw.pop("pin", PIN), rule=kw.pop("rule", "cook"), **kw)
    sink = GpioSink(cfg, ctx(), pin_factory=factory)
    sink.start()
    return sink


def start(rule: str = "cook", t: float = 1.0) -> tuple[Prediction, list[Event]]:
    return pred(t, [event(rule, "start", t)], active=(rule,))


def end(rule: str = "cook", t: float = 3.0) -> tuple[Prediction, list[Event]]:
    return pred(t, [event(rule, "end", t)])


def test_registry_names_the_gpio_sink():
    assert sink_class("gpio") is GpioSink


def test_on_mode_follows_the_event(factory):
    sink = make(factory, mode="on")
    pin = factory.pin(PIN)
    send(sink, pred(0.8))
    send(sink, start())
    assert pin.state is True
    send(sink, pred(1.2, active=("cook",)))  # still active: no new transition
    send(sink, end())
    assert pin.state is False
    send(sink, pred(3.2))
    sink.close()
    assert pin.levels() == [False, True, False]
    assert sink.switches == 1


def test_on_mode_follows_active_when_the_start_was_dropped(factory):
    sink = make(factory, mode="on")
    pin = factory.pin(PIN)
    send(sink, pred(1.2, active=("cook",)))  # the start prediction was dropped by a busy runner
    assert pin.state is True
    send(sink, pred(4.0))  # and so was the end
    assert pin.state is False
    sink.close()


def test_pulse_mode_is_on_for_pulse_seconds_then_off(factory):
    sink = make(factory, mode="pulse", pulse_seconds=0.05)
    pin = factory.pin(PIN)
    send(sink, start())
    assert pin.state is True
    sink.device._blink_thread.join(WAIT)  # gpiozero's pulse thread finishes after pulse_seconds
    assert pin.levels() == [False, True, False]
    high = pin.states[2].timestamp  # seconds spent high before the fall
    assert high >= 0.05
    sink.close()


def test_pulse_is_not_cut_short_by_the_event_end(factory):
    sink = make(factory, mode="pulse", pulse_seconds=0.2)
    pin = factory.pin(PIN)
    send(sink, start())
    send(sink, end(t=1.2))
    assert pin.state is True  # the end does not stop the pulse
    sink.device._blink_thread.join(WAIT)
    assert pin.levels() == [False, True, False]
    assert pin.states[2].timestamp >= 0.2
    sink.close()


def test_close_in_the_middle_of_a_pulse_turns_the_pin_off_at_once(factory):
    sink = make(factory, mode="pulse", pulse_seconds=60)
    pin = factory.pin(PIN)
    send(sink, start())
    assert pin.state is True
    sink.close()
    assert pin.state is False
    assert pin.levels() == [False, True, False]
    assert pin.states[2].timestamp < 5  # not after the 60 s pulse
    sink.close()  # idempotent
    assert pin.levels() == [False, True, False]


def test_blink_mode_blinks_while_active_and_is_off_after_the_end(factory):
    sink = make(factory, mode="blink", blink_on=0.01, blink_off=0.01)
    pin = factory.pin(PIN)
    send(sink, start())
    assert pin.wait_for(lambda: len(pin.states) >= 7), pin.levels()
    send(sink, end())
    assert pin.state is False
    levels = pin.levels()
    assert levels[:7] == [False, True, False, True, False, True, False]
    sink.close()
    assert pin.levels()[-1] is False
    assert len(pin.levels()) == len(levels)  # nothing after the end


def test_active_low_inverts_the_levels(factory):
    sink = make(factory, mode="on", active_high=False)
    pin = factory.pin(PIN)
    assert pin.state is True  # off = high
    send(sink, start())
    assert pin.state is False
    send(sink, end())
    assert pin.state is True
    send(sink, start(t=5.0))
    sink.close()  # safe state of an active-low load is high
    assert pin.state is True
    assert pin.levels() == [False, True, False, True, False, True]


def test_active_low_pulse(factory):
    sink = make(factory, mode="pulse", pulse_seconds=0.02, active_high=False)
    pin = factory.pin(PIN)
    send(sink, start())
    sink.device._blink_thread.join(WAIT)
    sink.close()
    assert pin.levels() == [False, True, False, True]


def test_events_of_other_rules_are_ignored(factory):
    sink = make(factory, mode="on", rule="cook")
    pin = factory.pin(PIN)
    send(sink, start("wash"))
    send(sink, pred(1.2, active=("wash",)))
    send(sink, end("wash"))
    assert pin.levels() == [False]
    send(sink, pred(4.0, [event("wash", "start", 4.0), event("cook", "start", 4.0)], active=("wash", "cook")))
    assert pin.state is True
    send(sink, pred(5.0, [event("wash", "end", 5.0)], active=("cook",)))
    assert pin.state is True
    sink.close()


def test_reload_closes_the_old_sink_and_a_new_one_takes_the_same_pin(factory):
    old = make(factory, mode="blink", blink_on=0.01, blink_off=0.01)
    pin = factory.pin(PIN)
    send(old, start())
    assert pin.wait_for(lambda: len(pin.states) >= 3)
    # daemon.reload: the new runners are built first, then the old ones closed, then the new ones started
    new = GpioSink(GpioSinkConfig(pin=PIN, rule="cook", mode="on"), ctx(), pin_factory=factory)
    old.close()
    assert pin.state is False
    new.start()
    send(new, start(t=9.0))
    assert pin.state is True
    new.close()
    assert pin.state is False


def test_two_sinks_on_one_pin_is_an_error_that_says_so(factory):
    first = make(factory)
    second = GpioSink(GpioSinkConfig(pin=PIN, rule="wash"), ctx(), pin_factory=factory)
    with pytest.raises(EdgeError, match="BCM pin 17 is already in use"):
        second.start()
    second.close()
    first.close()


def test_no_permission_names_the_gpio_group(factory):
    class NoAccess(MockFactory):
        def pin(self, name, pin_class=None, **kwargs):
            raise PermissionError(13, "Permission denied", "/dev/gpiochip0")

    denied = NoAccess()
    sink = GpioSink(GpioSinkConfig(pin=PIN, rule="cook"), ctx(), pin_factory=denied)
    with pytest.raises(EdgeError, match="gpio group"):
        sink.start()
    sink.close()
    denied.close()


def test_missing_gpiozero_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # import gpiozero -> ImportError
    with pytest.raises(EdgeError, match=r"pip install gpiozero \(or apt install python3-gpiozero\)"):
        GpioSink(GpioSinkConfig(pin=PIN, rule="cook"), ctx())


def test_module_import_does_not_import_gpiozero():
    import subprocess

    code = "import sys, edge.sinks.gpio; assert 'gpiozero' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_close_unregisters_the_atexit_hook(factory, monkeypatch):
    hooks = []
    monkeypatch.setattr("atexit.register", hooks.append)
    monkeypatch.setattr("atexit.unregister", lambda fn: hooks.remove(fn) if fn in hooks else None)
    sink = make(factory, mode="on")
    assert hooks == [sink.close]  # interpreter exit turns the pin off
    send(sink, start())
    hooks[0]()  # what atexit would run
    assert factory.pin(PIN).state is False
    assert hooks == []
    sink.close()


def test_through_the_runner_stop_turns_the_pin_off(factory):
    runner = SinkRunner(GpioSink(GpioSinkConfig(pin=PIN, rule="cook", mode="on"), ctx(), pin_factory=factory))
    runner.start()
    pin = factory.pin(PIN)
    p, (ev,) = start()
    runner.submit_event(ev, p)
    runner.submit(p)
    assert runner.drain(WAIT)
    assert pin.state is True
    assert runner.health()["output"] == "on"
    runner.close()
    assert pin.state is False
    assert runner.health()["output"] == "closed"
    assert runner.errors == 0



def test_yaml_bare_on_is_the_on_mode():
    import yaml

    from edge.config import parse

    cfg = parse(yaml.safe_load("watch: [{name: cook, labels: [a]}]\n"
                               "sinks: [{type: gpio, pin: 17, rule: cook, mode: on}]\n"))
    assert cfg.sinks[0].mode == "on"
