"""classify and eval say when an answer rests on almost nothing: a clip shorter than the state
window, or one that ends before the length its container declares (tiny fixture model, generated clips)."""

from __future__ import annotations

import pytest
from conftest import write_noise_video

from edge import cli
from edge.classify import classify_file, clip_warnings
from edge.config import ModelConfig


@pytest.fixture
def tiny_cfg(tiny_model_path, tiny_labels_path):
    return ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path))


@pytest.mark.parametrize("frames, last_t, declared, expected", [
    (25, 4.8, 5.0, []),  # a full 5 s window, whole file
    (1, 0.0, 0.1, ["only 1 frame(s) at 5 fps: the answer rests on 0.2 s of video, fewer than the 25 of the 5 s window"]),
    (30, 2.0, 6.0, ["ends at 2.0 s but declares 6.0 s"]),
    (30, 5.6, 6.0, []),  # within the tolerance of the last frame period
    (30, 5.8, 0.0, []),  # no declared length (a stream dump): nothing to compare
])
def test_clip_warnings_table(frames, last_t, declared, expected):
    got = clip_warnings(frames, last_t, declared, fps=5.0, policy="window", window_seconds=5.0)
    assert len(got) == len(expected)
    for line, needle in zip(got, expected):
        assert needle in line


def test_a_one_frame_video_is_classified_with_a_warning(tmp_path, tiny_cfg, make_video):
    video = make_video(tmp_path / "one.mp4", (255, 0, 0), seconds=0.1, fps=10)
    result = classify_file(str(video), tiny_cfg)
    assert result["frames"] == 1
    assert len(result["warnings"]) == 1 and "only 1 frame(s)" in result["warnings"][0]


def test_a_truncated_video_is_classified_with_a_warning(tmp_path, tiny_cfg):
    video = write_noise_video(tmp_path / "cut.avi", frames=80)  # 8 s declared
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 3])  # the header still says 80 frames
    result = classify_file(str(video), tiny_cfg)
    assert any("declares 8.0 s" in w for w in result["warnings"]), result["warnings"]


def test_a_whole_long_video_has_no_warning(tmp_path, tiny_cfg):
    result = classify_file(str(write_noise_video(tmp_path / "long.avi", frames=60)), tiny_cfg)
    assert result["warnings"] == []


def test_the_cli_prints_the_warning_on_stderr(tmp_path, tiny_model_path, tiny_labels_path, make_video, capsys):
    video = make_video(tmp_path / "one.mp4", (0, 255, 0), seconds=0.1, fps=10)
    assert cli.main(["classify", str(video), "--model", str(tiny_model_path), "--labels", str(tiny_labels_path)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out
    assert err.splitlines()[0].startswith("warning: one.mp4: only 1 frame(s)")


def test_eval_lists_the_warnings_and_still_counts_the_video(tmp_path, tiny_cfg, make_video):
    from edge import evaluate
    from edge.engine import Engine

    make_video(tmp_path / "red" / "short.mp4", (255, 0, 0), seconds=0.1, fps=10)
    samples = evaluate.load_dataset(tmp_path)
    engine = Engine(tiny_cfg)
    report = evaluate.evaluate(samples, engine, evaluate.match_labels(["red"], engine.labels), dataset=str(tmp_path))
    assert report["n"] == 1
    assert [w["file"] for w in report["warnings"]] == ["red/short.mp4"]
    assert "warnings (1)" in evaluate.format_report(report)
