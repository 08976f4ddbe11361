"""`edge classify` on the real A0 model and the shared labelled clips (skips without them)."""

import json

import pytest

from edge import cli
from edge.classify import classify_file
from edge.config import ModelConfig

pytestmark = pytest.mark.realmodel


@pytest.fixture
def model_cfg(real_model):
    model, labels = real_model
    return lambda **kw: ModelConfig(name=str(model), labels=str(labels), **kw)


def classify_json(capsys, *argv) -> dict:
    assert cli.main(["classify", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_carving_ice_top1_with_the_official_threshold(real_model, shared_videos, capsys):
    model, labels = real_model
    out = classify_json(capsys, str(shared_videos / "carving_ice.mp4"), "--model", str(model), "--labels", str(labels))
    assert out["top"][0]["label"] == "carving ice"
    assert out["top"][0]["score"] >= 0.5
    assert set(out) == {"video", "model", "frames", "top", "timeline", "warnings"}
    assert len(out["top"]) == 5


def test_pancake_top1_and_a_timeline(real_model, shared_videos, capsys):
    model, labels = real_model
    out = classify_json(capsys, str(shared_videos / "flipping_a_pancake.mkv"), "--model", str(model),
                        "--labels", str(labels), "--every", "2")
    assert out["top"][0]["label"] == "flipping pancake"
    # a 10.4 s clip: a point every 2 s of video, each a running top-1
    assert [p["t"] for p in out["timeline"]] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert all(p["label"] == "flipping pancake" for p in out["timeline"][1:])


def test_frames_are_sampled_at_5_fps_by_timestamp(model_cfg, shared_videos):
    # 10.4 s of 30 fps video: 52 model frames, not 312
    result = classify_file(str(shared_videos / "flipping_a_pancake.mkv"), model_cfg())
    assert result["frames"] == 52


@pytest.mark.parametrize("policy", ["window", "ema", "cumulative"])
def test_every_policy_gets_both_clips_right(model_cfg, shared_videos, policy):
    for clip, label in (("carving_ice.mp4", "carving ice"), ("flipping_a_pancake.mkv", "flipping pancake")):
        result = classify_file(str(shared_videos / clip), model_cfg(state_policy=policy))
        assert result["top"][0]["label"] == label, (policy, clip, result["top"][:2])
