"""Fit an RGB uint8 frame of any size to a model's image input, in place.

``resize`` squashes the whole frame to the input size (what the official
examples do); ``center-crop`` first crops the largest centred region with the
input's aspect ratio. Values go to [0, 1] floats, or to the input's quantized
dtype through its scale and zero point. The result is written straight into the
interpreter's input buffer: no per-frame allocation beyond the resized frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.choices import PreprocessMode, values

MODES = values(PreprocessMode)


@dataclass(frozen=True)
class InputSpec:
    """What a model's image input wants, read from the .tflite file."""

    name: str
    height: int
    width: int
    dtype: np.dtype
    scale: float = 0.0  # quantization; 0 means a float input
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


def crop_box(h: int, w: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the largest centred region of an h x w frame with aspect out_w/out_h."""
    target = out_w / out_h
    if w / h > target:  # too wide: trim the sides
        cw = max(1, round(h * target))
        x0 = (w - cw) // 2
        return 0, h, x0, x0 + cw
    ch = max(1, round(w / target))
    y0 = (h - ch) // 2
    return y0, y0 + ch, 0, w


class Preprocessor:
    """Callable that writes one frame into a (1, 1, H, W, 3) input array."""

    def __init__(self, spec: InputSpec, mode: str = "resize") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown preprocess mode {mode!r} (known: {', '.join(MODES)})")
        self.spec = spec
        self.mode = mode
        # the exact grid (a split int8 backbone's image, see edge.split): q = p + zero point, no float at all
        self._exact = spec.quantized and np.float32(spec.scale) == np.float32(1 / 255) and (
            (spec.dtype == np.int8 and spec.zero_point == -128) or (spec.dtype == np.uint8 and spec.zero_point == 0))
        if spec.quantized:
            # x = p / 255 in real values; q = x / scale + zp
            self._mul = 1.0 / (255.0 * spec.scale)
            info = np.iinfo(spec.dtype)
            self._lo, self._hi = info.min, info.max
        else:
            self._mul = 1.0 / 255.0

    def fit(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The frame cropped (if asked) and resized to the input size, still uint8 RGB (into ``out`` if given)."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
        spec = self.spec
        if self.mode == "center-crop":
            y0, y1, x0, x1 = crop_box(frame.shape[0], frame.shape[1], spec.height, spec.width)
            frame = frame[y0:y1, x0:x1]
        if frame.shape[0] == spec.height and frame.shape[1] == spec.width:
            if out is None:
                return frame
            np.copyto(out, frame)
            return out
        # bilinear, as the reference examples; INTER_AREA costs ~9x more here for no measured gain
        if out is None:
            return cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        resized = cv2.resize(frame, (spec.width, spec.height), dst=out, interpolation=cv2.INTER_LINEAR)
        if resized is not out:  # OpenCV made a new array (it never should for a matching C-contiguous one)
            np.copyto(out, resized)
        return out

    def __call__(self, frame: np.ndarray, out: np.ndarray) -> None:
        target = out.reshape(self.spec.height, self.spec.width, 3)
        if self._exact:  # resized straight into the input; int8: p - 128 is p with its top bit flipped
            pixels = target.view(np.uint8)
            self.fit(frame, pixels)
            if self.spec.dtype == np.int8:
                np.bitwise_xor(pixels, 0x80, out=pixels)
            return
        small = self.fit(frame)
        if self.spec.quantized:
            q = small.astype(np.float32) * np.float32(self._mul) + np.float32(self.spec.zero_point)
            np.rint(q, out=q)
            np.clip(q, self._lo, self._hi, out=q)
            target[...] = q
        else:
            np.multiply(small, np.float32(self._mul), out=target, casting="unsafe")
