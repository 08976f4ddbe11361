"""Temporal ensemble: members take turns on the frames, their latest logits are averaged."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from edge import cli
from edge.config import ModelConfig
from edge.engine import Engine, check_members
from edge.errors import EdgeError
from edge.model import StreamModel
from edge.states import CumulativePolicy, EnsemblePolicy, window_policy

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
BUFFER = "state_block0_layer0_stream_buffer"  # the tiny model's last two frames, as it saw them
COLOUR = {RED: "R", GREEN: "G", BLUE: "B", (0, 0, 0): "-"}


@pytest.fixture
def pair(tiny_model_path, tiny_labels_path):
    return [StreamModel(tiny_model_path, tiny_labels_path) for _ in range(2)]


def last_seen(model: StreamModel) -> str:
    """The colour of the newest frame in the model's stream buffer ("-" before its first frame)."""
    pixel = model.get_state(BUFFER)[0, -1, 0, 0, :]
    return COLOUR[tuple(int(round(v * 255)) for v in pixel)]


def random_frames(n: int, seed: int = 5) -> list[np.ndarray]:
    colours = np.random.default_rng(seed).integers(0, 256, (n, 3), dtype=np.uint8)
    return [np.broadcast_to(c, (8, 8, 3)).copy() for c in colours]


# --------------------------------------------------------------------------- which frames each member sees


def test_members_take_turns_literal(pair, solid):
    policy = EnsemblePolicy([CumulativePolicy(m) for m in pair])
    frames = [RED, GREEN, BLUE, RED, GREEN, BLUE]
    seen = []
    for colour in frames:
        policy.step(solid(colour))
        seen.append((last_seen(pair[0]), last_seen(pair[1]), pair[0].frames, pair[1].frames))
    assert seen == [
        # member 0, member 1, frames each has seen
        ("R", "-", 1, 0),
        ("R", "G", 1, 1),
        ("B", "G", 2, 1),
        ("B", "R", 2, 2),
        ("G", "R", 3, 2),
        ("G", "B", 3, 3),
    ]
    # so member 0 saw R, B, G and member 1 saw G, R, B


def test_three_members_each_see_every_third_frame(tiny_model_path, tiny_labels_path, solid):
    models = [StreamModel(tiny_model_path, tiny_labels_path) for _ in range(3)]
    policy = EnsemblePolicy([CumulativePolicy(m) for m in models])
    for colour in [RED, GREEN, BLUE, GREEN, BLUE, RED]:
        policy.step(solid(colour))
    assert [last_seen(m) for m in models] == ["G", "B", "R"]
    assert [m.frames for m in models] == [2, 2, 2]


def test_reset_starts_again_with_member_0(pair, solid):
    policy = EnsemblePolicy([CumulativePolicy(m) for m in pair])
    for colour in [RED, GREEN, BLUE]:
        policy.step(solid(colour))
    policy.reset()
    assert [m.frames for m in pair] == [0, 0]
    policy.step(solid(GREEN))
    assert (last_seen(pair[0]), pair[0].frames, pair[1].frames) == ("G", 1, 0)


# --------------------------------------------------------------------------- averaging


def test_logits_are_the_mean_of_independent_streams_on_their_frame_subsets(pair, reference):
    policy = EnsemblePolicy([CumulativePolicy(m) for m in pair])
    refs = [reference(), reference()]
    latest = [None, None]
    for j, frame in enumerate(random_frames(11)):
        latest[j % 2] = refs[j % 2].step(frame)
        want = latest[0] if latest[1] is None else (latest[0] + latest[1]) / 2
        np.testing.assert_allclose(policy.step(frame), want, atol=1e-5, rtol=0)


def test_first_frame_is_member_0_alone(pair, solid, reference):
    """A member that has not seen a frame is left out of the mean (not averaged in as zeros)."""
    policy = EnsemblePolicy([CumulativePolicy(m) for m in pair])
    np.testing.assert_allclose(policy.step(solid(RED)), reference().step(solid(RED)), atol=1e-5, rtol=0)


def test_members_keep_their_own_window(pair, tiny_model_path, tiny_labels_path):
    policy = EnsemblePolicy([window_policy(m, 2) for m in pair])
    alone = [window_policy(StreamModel(tiny_model_path, tiny_labels_path), 2) for _ in range(2)]
    latest, features = [None, None], [None, None]
    for j, frame in enumerate(random_frames(14, seed=9)):
        latest[j % 2] = alone[j % 2].step(frame)
        features[j % 2] = alone[j % 2].feature.copy()
        got = policy.step(frame)
        if latest[1] is not None:
            np.testing.assert_allclose(got, (latest[0] + latest[1]) / 2, atol=1e-5, rtol=0)
            np.testing.assert_allclose(policy.feature, (features[0] + features[1]) / 2, atol=1e-6, rtol=0)
    assert [m.pool.count for m in policy.members] == [2, 2]


def test_needs_two_members(pair):
    with pytest.raises(ValueError):
        EnsemblePolicy([CumulativePolicy(pair[0])])


# --------------------------------------------------------------------------- Engine


def ensemble_cfg(paths, labels=None, **kw) -> ModelConfig:
    return ModelConfig(ensemble=[str(p) for p in paths], labels=str(labels) if labels else None, **kw)


def test_engine_matches_two_independent_engines(tiny_model_path, tiny_labels_path):
    engine = Engine(ensemble_cfg([tiny_model_path] * 2, tiny_labels_path, state_policy="window", window_seconds=1.2))
    # each member sees half the frames, so its window is halved: the same seconds of history
    assert [p.pool.size for p in engine.policy.members] == [3, 3]
    single = ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path), window_seconds=0.6)
    alone = [Engine(single), Engine(single)]
    latest = [None, None]
    for j, frame in enumerate(random_frames(16, seed=2)):
        latest[j % 2] = alone[j % 2].step(frame)
        got = engine.step(frame)
        if j:
            np.testing.assert_allclose(got, (latest[0] + latest[1]) / 2, atol=1e-5, rtol=0)
    assert engine.labels == ["red", "green", "blue", "previous", "none"]


def test_engine_ema_members_scale_the_half_life(tiny_model_path, tiny_labels_path):
    cfg = ensemble_cfg([tiny_model_path] * 2, tiny_labels_path, state_policy="ema", half_life_seconds=4.0)
    engine = Engine(cfg)
    assert [p.pool.half_life for p in engine.policy.members] == [10, 10]  # 4 s at 5 fps = 20 frames; 10 each


def test_engine_describe_names_the_members(tiny_model_path, tiny_labels_path):
    engine = Engine(ensemble_cfg([tiny_model_path] * 2, tiny_labels_path, state_policy="cumulative"))
    assert engine.describe() == ("ensemble of tiny_stream.tflite + tiny_stream.tflite "
                                 "[each sees 1 frame in 2, logits averaged; cumulative per member]")


def test_engine_times_follow_the_member_that_stepped(tiny_model_path, tiny_labels_path, solid):
    engine = Engine(ensemble_cfg([tiny_model_path] * 2, tiny_labels_path))
    engine.step(solid(RED))
    assert engine.times is engine.members[0].times
    engine.step(solid(RED))
    assert engine.times is engine.members[1].times


def test_members_with_different_class_counts_are_an_error():
    a = SimpleNamespace(name="a.tflite", num_classes=600, labels=[f"c{i}" for i in range(600)])
    b = SimpleNamespace(name="b.tflite", num_classes=5, labels=["red", "green", "blue", "previous", "none"])
    with pytest.raises(EdgeError, match=r"same classes: a0 \(a.tflite\) has 600, b \(b.tflite\) has 5"):
        check_members([a, b], ["a0", "b"])


@pytest.mark.realmodel
def test_real_and_tiny_model_are_an_error(real_model, tiny_model_path, tiny_labels_path, tmp_path):
    tiny = tmp_path / "tiny.tflite"
    shutil.copy(tiny_model_path, tiny)
    shutil.copy(tiny_labels_path, tmp_path / "tiny.txt")
    real = tmp_path / "a0.tflite"
    shutil.copy(real_model[0], real)
    shutil.copy(real_model[1], tmp_path / "a0.txt")
    with pytest.raises(EdgeError, match="same classes"):
        Engine(ensemble_cfg([real, tiny]))


def test_members_with_different_labels_are_an_error(tiny_model_path, tmp_path):
    for name, labels in (("a", "red green blue previous none"), ("b", "red green blue before nothing")):
        shutil.copy(tiny_model_path, tmp_path / f"{name}.tflite")
        (tmp_path / f"{name}.txt").write_text("\n".join(labels.split()) + "\n")
    with pytest.raises(EdgeError, match="class 3 is 'previous' in .*a.tflite but 'before' in .*b.tflite"):
        Engine(ensemble_cfg([tmp_path / "a.tflite", tmp_path / "b.tflite"]))


def test_one_label_file_for_all_members_makes_them_agree(tiny_model_path, tiny_labels_path, tmp_path):
    for name, labels in (("a", "red green blue previous none"), ("b", "x y z w v")):
        shutil.copy(tiny_model_path, tmp_path / f"{name}.tflite")
        (tmp_path / f"{name}.txt").write_text("\n".join(labels.split()) + "\n")
    engine = Engine(ensemble_cfg([tmp_path / "a.tflite", tmp_path / "b.tflite"], tiny_labels_path))
    assert engine.labels[0] == "red"


def test_a_bad_member_is_named(tiny_model_path, tiny_labels_path, tmp_path):
    with pytest.raises(EdgeError, match="ensemble member .*missing.tflite"):
        Engine(ensemble_cfg([tiny_model_path, tmp_path / "missing.tflite"], tiny_labels_path))


# --------------------------------------------------------------------------- command line and config


def test_classify_with_ensemble_flag(tiny_model_path, tiny_labels_path, tmp_path, make_video, capsys):
    video = make_video(tmp_path / "red.mp4", RED, seconds=2.0)
    code = cli.main(["classify", str(video), "--ensemble", f"{tiny_model_path},{tiny_model_path}",
                     "--labels", str(tiny_labels_path), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"].startswith("ensemble of tiny_stream.tflite + tiny_stream.tflite")
    assert result["frames"] == 10
    assert result["top"][0]["label"] == "red"


def test_ensemble_flag_needs_two_models(tiny_model_path, tmp_path, make_video, capsys):
    video = make_video(tmp_path / "red.mp4", RED, seconds=1.0)
    assert cli.main(["classify", str(video), "--ensemble", str(tiny_model_path)]) == 2
    assert "--ensemble: needs at least two models" in capsys.readouterr().err


def test_config_ensemble_builds_an_ensemble_engine(tiny_model_path, tiny_labels_path):
    from edge import config

    cfg = config.parse({"model": {"ensemble": [str(tiny_model_path)] * 2, "labels": str(tiny_labels_path)}})
    assert Engine(cfg.model).ensemble is not None
