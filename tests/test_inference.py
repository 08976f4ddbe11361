"""InferenceLoop (edge/inference.py): the inference thread on its own, fed through a FrameRing, no daemon around it."""

from __future__ import annotations

import threading

import pytest

from edge.capture.base import Frame
from edge.capture.fake import solid_frame
from edge.config import ModelConfig, WatchRule
from edge.inference import InferenceLoop
from edge.pipeline import Pipeline
from edge.ring import FrameRing
from edge.smoothing import RuleTracker
from edge.status import Stats


class RecordingRunner:
    """What the loop hands a SinkRunner: predictions and events, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def submit(self, pred) -> None:
        self.seen.append(("prediction", pred.seq))

    def submit_event(self, event, latest) -> None:
        self.seen.append((f"event {event.phase} {event.reason or ''}".strip(), event.rule))


@pytest.fixture
def pipeline(tiny_model_path, tiny_labels_path):
    return Pipeline.for_model(ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path)))


def run_to_end(pipeline: Pipeline, times: list[float], realtime: bool = False, gap: float = 2.0):
    ring = FrameRing(64)
    for i, t in enumerate(times, start=1):
        ring.put(Frame(solid_frame((200, 30, 30)), t, i))
    ring.close()
    runner, stats = RecordingRunner(), Stats()
    loop = InferenceLoop(pipeline, ring, stats, threading.Event(), sinks=lambda: [runner],
                         realtime=lambda: realtime, gap_reset_seconds=gap)
    loop.start()
    assert loop.finished.wait(30), "the loop did not finish a closed ring"
    loop.join(5)
    return loop, runner, stats


def test_every_sampled_frame_is_predicted_in_order_and_the_end_of_the_ring_finishes(pipeline):
    times = [i * 0.1 for i in range(20)]  # 10 fps: the 5 fps sampler keeps every other frame
    loop, runner, stats = run_to_end(pipeline, times)
    preds = [seq for kind, seq in runner.seen if kind == "prediction"]
    assert len(preds) == 10 and preds == sorted(preds)
    assert stats.inferences == 10 and stats.sampled_out == 10 and stats.resets == 0
    assert loop.ready.is_set() and loop.last is not None and loop.last.seq == preds[-1]
    assert all(len(stats.latency[stage]) == 10 for stage in ("preprocess", "invoke", "total"))


def test_a_gap_in_time_resets_the_model_state(pipeline):
    times = [0.0, 0.2, 0.4, 10.0, 10.2]  # 9.6 s without a frame: more than gap_reset_seconds
    _, _, stats = run_to_end(pipeline, times, gap=2.0)
    assert stats.resets == 1 and stats.inferences == 5


def test_a_swap_ends_the_old_rules_events_with_reason_reload(pipeline, tiny_labels_path):
    label = tiny_labels_path.read_text().split("\n")[0].strip()
    pipeline.tracker = RuleTracker([WatchRule(name="any", labels=[label], enter=0.0001, exit=0.0)], pipeline.labels)
    ring = FrameRing(64)
    runner, stop = RecordingRunner(), threading.Event()
    loop = InferenceLoop(pipeline, ring, Stats(), stop, sinks=lambda: [runner], realtime=lambda: False,
                         gap_reset_seconds=2.0)
    loop.start()
    ring.put(Frame(solid_frame((200, 30, 30)), 0.0, 1))
    assert loop.ready.wait(30)
    assert ("event start", "any") in runner.seen
    new = Pipeline(engine=pipeline.engine, smoother=pipeline.smoother, tracker=RuleTracker([], pipeline.labels),
                   sampler=pipeline.sampler, top=pipeline.top)
    loop.swap(new)
    ring.put(Frame(solid_frame((200, 30, 30)), 0.2, 2))
    ring.close()
    assert loop.finished.wait(30)
    loop.join(5)
    assert loop.pipeline is new
    assert ("event end reload", "any") in runner.seen
    stop.set()
