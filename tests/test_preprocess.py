"""crop_box and Preprocessor: geometry and value mapping into a model's image input."""

from __future__ import annotations

import numpy as np
import pytest

from edge.preprocess import InputSpec, Preprocessor, crop_box

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)

FLOAT_8 = InputSpec("image", 8, 8, np.dtype(np.float32))
UINT8_8 = InputSpec("image", 8, 8, np.dtype(np.uint8), scale=1 / 255, zero_point=0)


def out_buffer(spec: InputSpec) -> np.ndarray:
    return np.zeros((1, 1, spec.height, spec.width, 3), spec.dtype)


@pytest.mark.parametrize("h, w, out_h, out_w, expected", [
    (480, 640, 172, 172, (0, 480, 80, 560)),  # wide frame, square input: trim the sides
    (640, 480, 172, 172, (80, 560, 0, 480)),  # tall frame: trim top and bottom
    (100, 100, 8, 8, (0, 100, 0, 100)),  # same aspect: the whole frame
    (5, 10, 8, 8, (0, 5, 2, 7)),  # odd margin: the extra column goes right
    (480, 640, 8, 16, (80, 400, 0, 640)),  # 2:1 input, 4:3 frame: trim top and bottom
    (100, 400, 10, 20, (0, 100, 100, 300)),  # 2:1 input, 4:1 frame: trim the sides
    (480, 640, 480, 640, (0, 480, 0, 640)),  # input the frame's size
    (1, 1000, 8, 8, (0, 1, 499, 500)),  # extreme aspect: still at least a pixel
])
def test_crop_box(h, w, out_h, out_w, expected):
    assert crop_box(h, w, out_h, out_w) == expected


def half_red_half_blue(h: int, w: int) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2] = RED
    frame[:, w // 2:] = BLUE
    return frame


@pytest.mark.parametrize("h, w", [(30, 40), (480, 640), (8, 8)])
def test_resize_keeps_left_and_right(h, w):
    small = Preprocessor(FLOAT_8, "resize").fit(half_red_half_blue(h, w))
    assert small.shape == (8, 8, 3) and small.dtype == np.uint8
    assert (small[:, :4] == RED).all()
    assert (small[:, 4:] == BLUE).all()


def test_resize_keeps_top_and_bottom_of_a_non_square_input():
    spec = InputSpec("image", 4, 6, np.dtype(np.float32))
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:20] = GREEN
    frame[20:] = RED
    small = Preprocessor(spec, "resize").fit(frame)
    assert small.shape == (4, 6, 3)
    assert (small[:2] == GREEN).all() and (small[2:] == RED).all()


def bars_frame() -> np.ndarray:
    """480x640: red bars 80 px wide left and right, green 480x480 centre."""
    frame = np.empty((480, 640, 3), np.uint8)
    frame[...] = RED
    frame[:, 80:560] = GREEN
    return frame


def test_center_crop_drops_the_side_bars():
    out = out_buffer(FLOAT_8)
    Preprocessor(FLOAT_8, "center-crop")(bars_frame(), out)
    assert (out[..., 0] == 0).all() and (out[..., 1] == 1).all() and (out[..., 2] == 0).all()


def test_resize_keeps_the_side_bars():
    small = Preprocessor(FLOAT_8, "resize").fit(bars_frame())
    assert (small[:, 0] == RED).all() and (small[:, -1] == RED).all()
    assert (small[:, 3:5] == GREEN).all()


def test_frame_of_the_input_size_is_not_resized():
    frame = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for mode in ("resize", "center-crop"):
        np.testing.assert_array_equal(Preprocessor(FLOAT_8, mode).fit(frame), frame)


def every_value_frame() -> np.ndarray:
    """16x16 RGB holding every uint8 value (0..255) at least once."""
    values = np.arange(16 * 16 * 3) % 256
    return values.astype(np.uint8).reshape(16, 16, 3)


def test_float_output_is_pixel_over_255():
    spec = InputSpec("image", 16, 16, np.dtype(np.float32))
    frame = every_value_frame()
    out = out_buffer(spec)
    Preprocessor(spec)(frame, out)
    np.testing.assert_allclose(out.reshape(16, 16, 3), frame.astype(np.float64) / 255.0, rtol=1e-6, atol=0)
    assert out.min() == 0.0
    assert out.max() == pytest.approx(1.0, abs=1e-7)
    assert out.reshape(-1)[255] == pytest.approx(1.0, abs=1e-7) and frame.reshape(-1)[255] == 255


def test_quantized_uint8_scale_1_over_255_returns_the_pixels():
    spec = InputSpec("image", 16, 16, np.dtype(np.uint8), scale=1 / 255, zero_point=0)
    assert spec.quantized
    frame = every_value_frame()
    out = out_buffer(spec)
    Preprocessor(spec)(frame, out)
    np.testing.assert_array_equal(out.reshape(16, 16, 3), frame)


def test_quantized_int8_zero_point_shifts_the_pixels():
    spec = InputSpec("image", 16, 16, np.dtype(np.int8), scale=1 / 255, zero_point=-128)
    frame = every_value_frame()
    out = out_buffer(spec)
    Preprocessor(spec)(frame, out)
    np.testing.assert_array_equal(out.reshape(16, 16, 3), frame.astype(np.int16) - 128)


def test_quantized_values_saturate_instead_of_wrapping():
    # scale 1/510: pixel p (real value p/255) -> q = 2p, which leaves uint8 above 127
    spec = InputSpec("image", 1, 4, np.dtype(np.uint8), scale=1 / 510, zero_point=0)
    frame = np.array([[[0, 1, 2], [63, 64, 100], [127, 128, 200], [250, 254, 255]]], np.uint8)
    out = out_buffer(spec)
    Preprocessor(spec)(frame, out)
    assert out.reshape(-1).tolist() == [0, 2, 4, 126, 128, 200, 254, 255, 255, 255, 255, 255]


@pytest.mark.parametrize("spec, quantized", [
    (FLOAT_8, False),
    (UINT8_8, True),
    (InputSpec("image", 8, 8, np.dtype(np.uint8)), False),  # no scale: not quantized
])
def test_input_spec_quantized(spec, quantized):
    assert spec.quantized is quantized


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 4), (8, 8, 1), (1, 8, 8, 3)])
def test_non_rgb_frame_is_rejected(shape):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        Preprocessor(FLOAT_8)(np.zeros(shape, np.uint8), out_buffer(FLOAT_8))


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown preprocess mode 'crop'"):
        Preprocessor(FLOAT_8, "crop")
