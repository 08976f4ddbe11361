"""Shared fixtures: the tiny models in tests/fixtures, solid frames, the real A0 model, shared videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

REAL_MODEL = "movinet_a0_stream_int8.tflite"
REAL_LABELS = "kinetics600_label_map.txt"


def solid_frame(rgb: tuple[int, int, int], height: int = 8, width: int = 8) -> np.ndarray:
    """A contiguous uint8 RGB frame of one colour."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = np.asarray(rgb, np.uint8)
    return frame


class ReferenceStream:
    """numpy port of ``reference_step`` in fixtures/make_tiny_model.py, fed uint8 RGB 8x8 frames."""

    def __init__(self) -> None:
        self.buf = np.zeros((1, 2, 8, 8, 3), np.float32)
        self.sum = np.zeros((1, 1, 1, 1, 4), np.float32)
        self.count = np.zeros((1,), np.int32)

    def step(self, frame: np.ndarray) -> np.ndarray:
        image = (frame.astype(np.float32) * np.float32(1.0 / 255.0)).reshape(1, 1, 8, 8, 3)
        f = np.array([image[..., 0].mean(), image[..., 1].mean(), image[..., 2].mean(),
                      self.buf[:, -1].mean()], np.float32).reshape(1, 1, 1, 1, 4)
        self.buf = np.concatenate([self.buf[:, 1:], image], axis=1)
        self.sum = (self.sum + f).astype(np.float32)
        self.count = self.count + np.int32(1)
        pooled = self.sum.reshape(4) / np.float32(self.count[0])
        return np.concatenate([np.float32(10.0) * pooled, [np.float32(0.0)]]).astype(np.float32)

    def cap(self, n: int) -> None:
        """What StreamModel.cap_head does: rescale the sum to n frames' worth."""
        c = int(self.count[0])
        if c > n:
            self.sum *= np.float32(n / c)
            self.count[...] = n


@pytest.fixture
def reference():
    """The numpy reference stream class: ``reference().step(frame)`` -> logits."""
    return ReferenceStream


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def tiny_model_path(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny_stream.tflite"


@pytest.fixture
def tiny_labels_path(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny_labels.txt"


@pytest.fixture
def solid():
    """``solid((255, 0, 0), h, w)``: a frame of one colour, any size."""
    return solid_frame


@pytest.fixture
def real_model() -> tuple[Path, Path]:
    """(model, labels) of the real MoViNet A0 stream model, or skip."""
    dirs = [Path(os.environ["EDGE_MODEL_DIR"])] if os.environ.get("EDGE_MODEL_DIR") else []
    dirs.append(REPO / "models")
    for d in dirs:
        model, labels = d / REAL_MODEL, d / REAL_LABELS
        if model.is_file() and labels.is_file():
            return model, labels
    pytest.skip("real MoViNet A0 model not installed: run ./install.sh (or set EDGE_MODEL_DIR)")


@pytest.fixture
def shared_videos() -> Path:
    """The shared test clips (../shared/videos next to the repo), or skip."""
    path = REPO.parent / "shared" / "videos"
    if not path.is_dir():
        pytest.skip(f"shared test videos not found at {path}")
    return path
