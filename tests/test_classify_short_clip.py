"""`edge classify` on a clip shorter than the forgetting policy weighs: the warning names the policy that runs
(window, ema or cumulative, which has no window) and goes to stderr, so `--json` output stays one JSON object."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge import cli
from edge.classify import clip_warnings


@pytest.fixture
def short_clip(tmp_path):
    """1 s of changing colours at 10 fps (5 model frames), written here with cv2.VideoWriter."""
    path = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for k in range(10):
        writer.write(np.full((48, 64, 3), (20 * k, 255 - 20 * k, 90), np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("policy, says, never", [
    ("window", "fewer than the 25 of the 5 s window", "cumulative"),
    ("ema", "less than two 2 s half-lives of the ema (20 frames)", "window"),
    ("cumulative", "the cumulative policy averages every frame from the start", "window"),
])
def test_a_short_clip_warns_for_its_policy_on_stderr_and_json_stays_clean(short_clip, tiny_model_path,
                                                                          tiny_labels_path, capsys, policy, says,
                                                                          never):
    code = cli.main(["classify", str(short_clip), "--json", "--state-policy", policy,
                     "--model", str(tiny_model_path), "--labels", str(tiny_labels_path)])
    out, err = capsys.readouterr()
    assert code == 0
    result = json.loads(out)  # the whole of stdout is the one object
    assert result["frames"] == 5 and f"[{policy}" in result["model"]  # the tiny model is split: it runs the policy
    (line,) = [w for w in err.splitlines() if w.startswith("warning: ")]
    assert line.startswith("warning: short.avi: only 5 frame(s) at 5 fps: the answer rests on 1.0 s of video")
    assert says in line and never not in line
    assert result["warnings"] == [line.removeprefix("warning: short.avi: ")]


def test_the_text_output_keeps_the_warning_off_stdout(short_clip, tiny_model_path, tiny_labels_path, capsys):
    assert cli.main(["classify", str(short_clip), "--model", str(tiny_model_path),
                     "--labels", str(tiny_labels_path)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out and out.startswith("short.avi: 5 frames at 5 fps")
    assert "warning: short.avi: only 5 frame(s)" in err


@pytest.mark.parametrize("policy, frames, warned", [
    ("window", 24, True), ("window", 25, False),  # 5 s at 5 fps
    ("ema", 19, True), ("ema", 20, False),  # two 2 s half-lives
    ("cumulative", 24, True), ("cumulative", 25, False),  # 5 s: the steady span, no window
])
def test_the_threshold_is_the_policys(policy, frames, warned):
    got = clip_warnings(frames, (frames - 1) / 5, 0.0, fps=5.0, policy=policy, window_seconds=5.0,
                        half_life_seconds=2.0)
    assert bool(got) == warned, got
