"""Smoother and RuleTracker: literal tables of inputs and expected outputs."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from edge.config import SmoothingConfig, WatchRule
from edge.errors import EdgeError
from edge.smoothing import Event, RuleTracker, Smoother

LABELS = ["a", "b", "c"]


def smooth_all(smoother: Smoother, inputs: list[list[float]]) -> np.ndarray:
    return np.array([smoother.update(np.array(p)) for p in inputs])


# --------------------------------------------------------------------------- Smoother


@pytest.mark.parametrize(("smoother", "inputs", "expected"), [
    (Smoother("ema", alpha=0.5),
     [[1, 0], [0, 1], [0, 1]],
     [[1, 0], [0.5, 0.5], [0.25, 0.75]]),
    (Smoother("ema", alpha=0.4),
     [[1, 0], [0, 1], [1, 0]],
     [[1, 0], [0.6, 0.4], [0.76, 0.24]]),
    (Smoother("ema", alpha=1.0),
     [[1, 0], [0, 1], [0.3, 0.7]],
     [[1, 0], [0, 1], [0.3, 0.7]]),
    (Smoother("window", window=2),
     [[1, 0], [0, 1], [0, 1], [1, 0], [0.5, 0.5]],
     [[1, 0], [0.5, 0.5], [0, 1], [0.5, 0.5], [0.75, 0.25]]),
    (Smoother("window", window=3),
     [[0.9, 0.1], [0.6, 0.4], [0, 1], [0, 1], [0, 1]],
     [[0.9, 0.1], [0.75, 0.25], [0.5, 0.5], [0.2, 0.8], [0, 1]]),
    (Smoother("window", window=1),
     [[1, 0], [0, 1]],
     [[1, 0], [0, 1]]),
    (Smoother("none"),
     [[1, 0], [0, 1], [0.2, 0.8]],
     [[1, 0], [0, 1], [0.2, 0.8]]),
], ids=["ema-0.5", "ema-0.4", "ema-1", "window-2", "window-3", "window-1", "none"])
def test_smoother_table(smoother, inputs, expected):
    assert smooth_all(smoother, inputs) == pytest.approx(np.array(expected))


@pytest.mark.parametrize(("smoother", "inputs", "expected"), [
    (Smoother("ema", alpha=0.5),
     [[1, 0], [0, 1], "reset", [0, 1], [1, 0]],
     [[1, 0], [0.5, 0.5], [0, 1], [0.5, 0.5]]),
    (Smoother("window", window=3),
     [[1, 0], [0, 1], "reset", [0, 1], [1, 0]],
     [[1, 0], [0.5, 0.5], [0, 1], [0.5, 0.5]]),
    (Smoother("none"),
     [[1, 0], "reset", [0, 1]],
     [[1, 0], [0, 1]]),
], ids=["ema", "window", "none"])
def test_smoother_reset_starts_fresh(smoother, inputs, expected):
    out = []
    for p in inputs:
        if p == "reset":
            smoother.reset()
        else:
            out.append(smoother.update(np.array(p)))
    assert np.array(out) == pytest.approx(np.array(expected))


@pytest.mark.parametrize("method", ["ema", "window", "none"])
def test_smoother_returns_a_new_array(method):
    smoother = Smoother(method, alpha=0.5, window=2)
    p = np.array([1.0, 0.0], np.float32)
    first = smoother.update(p)
    assert first is not p
    first[:] = 99.0  # the caller scribbling on the result
    p[:] = 99.0  # or reusing its input buffer
    second = smoother.update(np.array([0.0, 1.0], np.float32))
    assert second.dtype == np.float64
    expected = {"ema": [0.5, 0.5], "window": [0.5, 0.5], "none": [0.0, 1.0]}[method]
    assert second.tolist() == pytest.approx(expected)


def test_smoother_window_does_not_drift():
    rng = np.random.default_rng(0)
    window = 7
    smoother = Smoother("window", window=window)
    recent: deque[np.ndarray] = deque(maxlen=window)
    worst = 0.0
    for _ in range(10_000):
        p = rng.dirichlet(np.ones(50)).astype(np.float32)
        recent.append(p.astype(np.float64))
        got = smoother.update(p)
        exact = np.mean(np.stack(recent), axis=0)
        worst = max(worst, float(np.max(np.abs(got - exact))))
    assert worst < 1e-6


def test_smoother_window_recomputes_its_sum():
    # 1.0 + 1e-20 == 1.0, so once the 1.0 leaves the window the running sum is
    # short by 1e-20 for good; the exact recompute every window * 50 = 100
    # updates puts it right.
    smoother = Smoother("window", window=2)
    outputs = [smoother.update(np.array([1.0]))] + [smoother.update(np.array([1e-20])) for _ in range(99)]
    assert outputs[98][0] != 1e-20  # update 99: the running sum has drifted
    assert outputs[99][0] == 1e-20  # update 100: recomputed exactly


@pytest.mark.parametrize("method", ["ema", "window"])
def test_smoother_shape_change_needs_reset(method):
    smoother = Smoother(method)
    smoother.update(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"shape changed from \(2,\) to \(3,\)"):
        smoother.update(np.array([1.0, 0.0, 0.0]))
    smoother.reset()
    assert smoother.update(np.array([1.0, 0.0, 0.0])).tolist() == [1.0, 0.0, 0.0]


def test_smoother_from_config():
    smoother = Smoother.from_config(SmoothingConfig(method="window", window=4, alpha=0.9))
    assert (smoother.method, smoother.window, smoother.alpha) == ("window", 4, 0.9)
    assert Smoother.from_config(SmoothingConfig()).method == "none"  # the state policy already averages

# Bad smoothing settings (method, alpha, window) are refused once, at the config boundary:
# tests/test_config.py BROKEN names each key.


# --------------------------------------------------------------------------- RuleTracker: labels and scores


def rule(name: str = "r", labels: list[str] | None = None, **kw) -> WatchRule:
    return WatchRule(name=name, labels=labels or ["a"], **kw)


@pytest.mark.parametrize(("labels", "vector", "expected"), [
    (["a"], [0.3, 0.5, 0.2], 0.3),
    (["a", "c"], [0.3, 0.5, 0.2], 0.5),
    (["b", "c"], [0.1, 0.45, 0.45], 0.9),
    (["a", "b", "c"], [0.6, 0.3, 0.3], 1.0),  # clipped
    (["a", "A"], [0.3, 0.5, 0.2], 0.3),  # the same label twice counts once
])
def test_rule_score_sums_its_labels(labels, vector, expected):
    tracker = RuleTracker([rule(labels=labels)], LABELS)
    assert tracker.scores(np.array(vector)) == {"r": pytest.approx(expected)}


def test_label_group_starts_an_event_no_single_label_would():
    tracker = RuleTracker([rule("cook", ["a", "c"], enter=0.5), rule("just_a", ["a"], enter=0.5)], LABELS)
    assert tracker.update(0.0, np.array([0.3, 0.4, 0.3])) == [
        Event("cook", "start", t=0.0, score=pytest.approx(0.6), start=0.0, peak=pytest.approx(0.6), duration=0.0)]


def test_unknown_label_suggests_the_close_one():
    labels = ["flipping pancake", "making tea", "surfing water"]
    with pytest.raises(EdgeError) as err:
        RuleTracker([WatchRule(name="cook", labels=["making tea", "flipping pancakes"])], labels)
    assert str(err.value) == ("watch rule 'cook': label 'flipping pancakes' is not a label of this model "
                              "(did you mean 'flipping pancake'?)")


def test_unknown_label_without_a_close_one():
    with pytest.raises(EdgeError) as err:
        RuleTracker([WatchRule(name="x", labels=["zzzz"])], ["flipping pancake", "making tea"])
    assert str(err.value) == ("watch rule 'x': label 'zzzz' is not a label of this model "
                              "(check the spelling against the model's label file)")


def test_label_match_is_case_insensitive():
    labels = ["flipping pancake", "making tea", "surfing water"]
    tracker = RuleTracker([WatchRule(name="cook", labels=["Flipping Pancake", "MAKING TEA"])], labels)
    assert tracker.scores(np.array([0.25, 0.5, 0.25])) == {"cook": pytest.approx(0.75)}


def test_duplicate_rule_names_are_an_error():
    with pytest.raises(EdgeError, match="repeated: r"):
        RuleTracker([rule("r"), rule("r")], LABELS)


def test_wrong_vector_length_is_an_error():
    tracker = RuleTracker([rule()], LABELS)
    with pytest.raises(ValueError, match="expected 3 class probabilities"):
        tracker.update(0.0, np.array([1.0, 0.0]))


# --------------------------------------------------------------------------- RuleTracker: hysteresis tables
#
# Each row is (t, score of rule "r", phases emitted by that update). The vector
# fed is [score, 1 - score, 0] so the rule on label "a" scores exactly `score`.


def run_table(tracker: RuleTracker, rows: list[tuple[float, float, str]]) -> None:
    got, want = [], []
    for t, score, expected in rows:
        events = tracker.update(t, np.array([score, 1.0 - score, 0.0]))
        got.append((t, score, " ".join(f"{e.rule}:{e.phase}" for e in events)))
        want.append((t, score, " ".join(f"r:{phase}" for phase in expected.split())))
        for e in events:
            assert e.t == t
    assert got == want


def test_flicker_around_enter_starts_once():
    run_table(RuleTracker([rule(enter=0.5, exit=0.3)], LABELS), [
        (0.0, 0.40, ""),
        (0.2, 0.50, "start"),  # >= enter, min_duration 0: starts at once
        (0.4, 0.49, ""),
        (0.6, 0.51, ""),  # flicker back above enter: still the same event
        (0.8, 0.45, ""),
        (1.0, 0.55, ""),
        (1.2, 0.29, "end"),  # < exit
        (1.4, 0.31, ""),  # between exit and enter: idle stays idle
        (1.6, 0.50, "start"),  # cooldown 0: may start again
    ])


def test_score_between_exit_and_enter_keeps_the_event():
    run_table(RuleTracker([rule(enter=0.6, exit=0.3)], LABELS), [
        (0.0, 0.70, "start"),
        (1.0, 0.40, ""),
        (2.0, 0.35, ""),
        (3.0, 0.30, ""),  # exactly exit is not below it
        (4.0, 0.59, ""),
        (5.0, 0.29, "end"),
    ])


def test_exit_equal_to_enter():
    run_table(RuleTracker([rule(enter=0.5, exit=0.5)], LABELS), [
        (0.0, 0.50, "start"),
        (0.1, 0.50, ""),
        (0.2, 0.49, "end"),
        (0.3, 0.50, "start"),
    ])


def test_min_duration_with_5fps_float_clock():
    # Frame times accumulated the way a 5 fps clock produces them:
    # 0.6000000000000001 ... 1.5999999999999999; 1.6 - 0.6 must count as 1.0.
    tracker = RuleTracker([rule(enter=0.5, exit=0.3, min_duration=1.0)], LABELS)
    rows = [  # (nominal t, score, expected)
        (0.0, 0.1, ""),
        (0.2, 0.1, ""),
        (0.4, 0.1, ""),
        (0.6, 0.6, ""),  # pending since 0.6
        (0.8, 0.6, ""),
        (1.0, 0.7, ""),
        (1.2, 0.6, ""),
        (1.4, 0.6, ""),
        (1.6, 0.6, "start"),  # 1.0 s after pending began
        (1.8, 0.6, ""),
    ]
    t, got = 0.0, []
    for nominal, score, _ in rows:
        assert t == pytest.approx(nominal)
        events = tracker.update(t, np.array([score, 1 - score, 0.0]))
        got.append((nominal, score, " ".join(e.phase for e in events)))
        t += 0.2
    assert got == rows
    (start,) = tracker.active().values()
    assert start.start == pytest.approx(1.6)
    assert start.score == pytest.approx(0.6)


def test_min_duration_zero_one_and_exact_steps():
    run_table(RuleTracker([rule(enter=0.5, exit=0.3, min_duration=0.5)], LABELS), [
        (0.0, 0.6, ""),
        (0.25, 0.6, ""),
        (0.5, 0.6, "start"),  # exactly min_duration later
    ])


def test_dip_below_enter_while_pending_restarts_the_timer():
    run_table(RuleTracker([rule(enter=0.5, exit=0.3, min_duration=0.5)], LABELS), [
        (0.0, 0.6, ""),  # pending since 0.0
        (0.2, 0.6, ""),
        (0.4, 0.45, ""),  # below enter (though above exit): back to idle
        (0.6, 0.6, ""),  # would have started here without the dip; pending since 0.6
        (0.8, 0.6, ""),
        (1.0, 0.6, ""),  # 0.4 s since the dip
        (1.1, 0.6, "start"),  # 0.5 s since the dip
    ])


def test_cooldown_blocks_a_restart_until_its_end():
    run_table(RuleTracker([rule(enter=0.5, exit=0.3, cooldown=2.0)], LABELS), [
        (0.0, 0.9, "start"),
        (1.0, 0.1, "end"),  # cooldown until 3.0
        (1.5, 0.9, ""),
        (2.0, 0.9, ""),
        (2.9, 0.9, ""),
        (3.0, 0.9, "start"),  # end + cooldown: allowed
        (3.5, 0.1, "end"),  # cooldown until 5.5
        (5.6, 0.9, "start"),  # after it
    ])


def test_updates_during_cooldown_do_not_make_the_rule_pending():
    run_table(RuleTracker([rule(enter=0.5, exit=0.3, cooldown=1.0, min_duration=0.5)], LABELS), [
        (0.0, 0.9, ""),
        (0.5, 0.9, "start"),
        (1.0, 0.1, "end"),  # cooldown until 2.0
        (1.5, 0.9, ""),  # blocked: not pending
        (2.0, 0.9, ""),  # pending since 2.0 (from 1.5 it would start here)
        (2.4, 0.9, ""),
        (2.5, 0.9, "start"),
    ])


def test_end_carries_peak_and_duration():
    tracker = RuleTracker([rule(enter=0.5, exit=0.3)], LABELS)
    rows = [(1.0, 0.6), (1.5, 0.8), (2.0, 0.95), (2.5, 0.7), (3.25, 0.2)]
    events = []
    for t, score in rows[:-1]:
        events += tracker.update(t, np.array([score, 1 - score, 0.0]))
    assert tracker.active() == {"r": Event("r", "start", t=1.0, score=pytest.approx(0.6), start=1.0,
                                           peak=pytest.approx(0.95), duration=0.0)}
    t, score = rows[-1]
    events += tracker.update(t, np.array([score, 1 - score, 0.0]))
    assert events == [
        Event("r", "start", t=1.0, score=pytest.approx(0.6), start=1.0, peak=pytest.approx(0.6), duration=0.0),
        Event("r", "end", t=3.25, score=pytest.approx(0.2), start=1.0, peak=pytest.approx(0.95),
              duration=2.25, reason="score"),
    ]
    assert tracker.active() == {}


def test_emitted_start_is_not_changed_afterwards():
    tracker = RuleTracker([rule()], LABELS)
    (start,) = tracker.update(0.0, np.array([0.6, 0.4, 0.0]))
    tracker.update(1.0, np.array([0.9, 0.1, 0.0]))
    assert start.peak == pytest.approx(0.6)  # a sink may still hold it
    assert tracker.active()["r"].peak == pytest.approx(0.9)


def test_end_all():
    tracker = RuleTracker([rule("x", ["a"]), rule("y", ["b"]), rule("z", ["c"])], LABELS)
    assert [(e.rule, e.phase) for e in tracker.update(0.0, np.array([0.7, 0.6, 0.0]))] == [
        ("x", "start"), ("y", "start")]
    tracker.update(1.0, np.array([0.9, 0.4, 0.0]))
    assert tracker.end_all(2.0, "stopped") == [
        Event("x", "end", t=2.0, score=pytest.approx(0.9), start=0.0, peak=pytest.approx(0.9), duration=2.0,
              reason="stopped"),
        Event("y", "end", t=2.0, score=pytest.approx(0.4), start=0.0, peak=pytest.approx(0.6), duration=2.0,
              reason="stopped"),
    ]
    assert tracker.active() == {}
    assert tracker.end_all(2.0, "stopped") == []


def test_end_all_clears_pending_and_starts_cooldown():
    tracker = RuleTracker([rule("slow", ["a"], min_duration=1.0), rule("cool", ["b"], cooldown=1.0)], LABELS)
    rows = [  # (t, vector, events)
        (0.0, [0.9, 0.9, 0.0], ["cool:start"]),  # slow pending since 0.0
        (0.5, [0.9, 0.9, 0.0], []),
        ("end_all", 0.5, ["cool:end:reset"]),
        (1.0, [0.9, 0.9, 0.0], []),  # slow: pending again since 1.0, not started; cool: cooling until 1.5
        (1.5, [0.9, 0.9, 0.0], ["cool:start"]),
        (2.0, [0.9, 0.9, 0.0], ["slow:start"]),
    ]
    for row in rows:
        if row[0] == "end_all":
            events = tracker.end_all(row[1], "reset")
            assert [f"{e.rule}:{e.phase}:{e.reason}" for e in events] == row[2]
        else:
            t, vector, expected = row
            assert [f"{e.rule}:{e.phase}" for e in tracker.update(t, np.array(vector))] == expected


def test_reset_forgets_everything_without_events():
    tracker = RuleTracker([rule("x", ["a"], cooldown=10.0), rule("y", ["b"], min_duration=1.0)], LABELS)
    assert [e.phase for e in tracker.update(0.0, np.array([0.9, 0.0, 0.0]))] == ["start"]
    assert [e.phase for e in tracker.update(1.0, np.array([0.1, 0.9, 0.0]))] == ["end"]  # x cooling until 11
    tracker.update(1.5, np.array([0.1, 0.9, 0.0]))  # y pending since 1.0
    tracker.reset()
    assert tracker.active() == {}
    assert tracker.update(2.0, np.array([0.9, 0.9, 0.0])) == [  # x: no cooldown; y: pending only since 2.0
        Event("x", "start", t=2.0, score=pytest.approx(0.9), start=2.0, peak=pytest.approx(0.9), duration=0.0)]
    tracker.reset()
    assert tracker.end_all(3.0, "stopped") == []


def test_event_as_dict_rounds():
    e = Event("cook", "end", t=12.3456789, score=0.123456789, start=10.0001, peak=0.987654321,
              duration=2.3455789, reason="score")
    assert e.as_dict() == {"rule": "cook", "phase": "end", "t": 12.346, "score": 0.1235, "start": 10.0,
                           "peak": 0.9877, "duration": 2.346, "reason": "score"}
    start = Event("cook", "start", t=np.float64(1.0), score=np.float32(0.5), start=1.0, peak=0.5, duration=0.0)
    d = start.as_dict()
    assert d["reason"] == "" and type(d["score"]) is float and type(d["t"]) is float
