"""StreamModel on the tiny fixture models: the state loop, reset, loading errors, labels (top_k, softmax: test_prediction.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.model import HEAD_POOL_COUNT, HEAD_POOL_SUM, StreamModel, load_labels

BUF = "state_block0_layer0_stream_buffer"
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def model(tiny_model_path, tiny_labels_path):
    m = StreamModel(tiny_model_path, tiny_labels_path)
    yield m
    m.close()


# --------------------------------------------------------------------------- facts read from the file


def test_facts_are_read_from_the_model(model):
    assert model.input_size == (8, 8)
    assert model.num_classes == 5
    assert model.is_split is True and model.feature_size == 4 and model.split_reason is None
    assert model.labels == ["red", "green", "blue", "previous", "none"]
    assert sorted(s.name for s in model.states) == sorted([BUF, HEAD_POOL_SUM, HEAD_POOL_COUNT])
    assert model.image.quantized is False


# --------------------------------------------------------------------------- the state loop


def test_state_loop_matches_numpy_reference(model, solid, reference):
    ref = reference()
    for rgb in [RED, GREEN, RED, BLUE, (10, 200, 30), GREEN]:
        frame = solid(rgb)
        got = model.step(frame)
        want = ref.step(frame)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(model.get_state(BUF), ref.buf)
        np.testing.assert_allclose(model.get_state(HEAD_POOL_SUM), ref.sum, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(model.get_state(HEAD_POOL_COUNT), ref.count)
    assert model.frames == 6


def test_running_mean_literal_logits(model, solid):
    # the fixture README's worked example: red, green, red
    expected = [
        [10.0, 0.0, 0.0, 0.0, 0.0],
        [5.0, 5.0, 0.0, 10 / 6, 0.0],
        [20 / 3, 10 / 3, 0.0, 20 / 9, 0.0],
    ]
    for rgb, want in zip([RED, GREEN, RED], expected):
        np.testing.assert_allclose(model.step(solid(rgb)), want, atol=1e-5, rtol=0)


def test_reset_zeroes_every_state_and_matches_a_fresh_model(model, solid, tiny_model_path, tiny_labels_path):
    for rgb in [RED, GREEN, BLUE]:
        model.step(solid(rgb))
    assert model.get_state(HEAD_POOL_COUNT)[0] == 3
    model.reset()
    assert model.frames == 0
    for s in model.states:
        assert not model.get_state(s.name).any(), s.name
    fresh = StreamModel(tiny_model_path, tiny_labels_path)
    for rgb in [GREEN, BLUE]:
        np.testing.assert_array_equal(model.step(solid(rgb)), fresh.step(solid(rgb)))


@pytest.mark.parametrize("height, width", [(8, 8), (30, 40), (480, 640), (5, 3)])
@pytest.mark.parametrize("preprocess", ["resize", "center-crop"])
def test_frames_of_any_size(tiny_model_path, solid, reference, height, width, preprocess):
    model = StreamModel(tiny_model_path, preprocess=preprocess)
    ref = reference()
    for rgb in [BLUE, RED, GREEN]:
        got = model.step(solid(rgb, height, width))
        np.testing.assert_allclose(got, ref.step(solid(rgb)), atol=1e-5, rtol=0)


def test_logits_are_a_new_array_each_step(model, solid):
    first = model.step(solid(RED))
    snapshot = first.copy()
    model.step(solid(GREEN))
    np.testing.assert_array_equal(first, snapshot)


def test_features_of_a_clip_leave_the_model_reset(model, solid):
    model.step(solid(GREEN))
    got = model.features([solid(RED), solid(BLUE)])
    np.testing.assert_allclose(got, [[1, 0, 0, 0], [0, 0, 1, 1 / 3]], atol=1e-6)  # from a reset: no green
    assert model.get_state(HEAD_POOL_COUNT)[0] == 0 and model.frames == 0
    assert model.loop_head_pool is True  # the looping choice is given back


def test_head_scores_any_pooled_feature(model):
    np.testing.assert_allclose(model.head(np.array([0.1, 0.2, 0.3, 0.4], np.float32)), [1, 2, 3, 4, 0], atol=1e-6)


def test_uint8_model_matches_float_model(fixtures_dir, tiny_model_path):
    qmodel = StreamModel(fixtures_dir / "tiny_stream_uint8.tflite")
    fmodel = StreamModel(tiny_model_path)
    assert qmodel.image.quantized is True
    assert qmodel.image.dtype == np.uint8
    assert qmodel.image.zero_point == 0
    assert qmodel.image.scale == pytest.approx(1 / 255)
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)]
    frames.append(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    for frame in frames:
        np.testing.assert_allclose(qmodel.step(frame), fmodel.step(frame), atol=1e-5, rtol=0)


def test_get_state_unknown_name(model):
    with pytest.raises(KeyError):
        model.get_state("state_nope")


# --------------------------------------------------------------------------- labels


def test_label_file_with_wrong_line_count(tmp_path, tiny_model_path):
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\nc\nd\n")
    with pytest.raises(EdgeError) as err:
        StreamModel(tiny_model_path, path)
    msg = str(err.value)
    assert "4 labels" in msg and "5 outputs" in msg
    assert "\n" not in msg


def test_label_file_trailing_blank_lines_tolerated(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("red\ngreen\nblue\nprevious\nnone\n\n\n")
    assert load_labels(path, 5) == ["red", "green", "blue", "previous", "none"]


def test_label_file_inner_blank_line_counts(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("red\n\nblue\nprevious\nnone\n")
    assert load_labels(path, 5)[1] == ""
    with pytest.raises(EdgeError, match="has 5 labels but model .* has 4 outputs"):
        load_labels(path, 4)


def test_missing_label_file(tmp_path, tiny_model_path):
    with pytest.raises(EdgeError, match="does not exist"):
        StreamModel(tiny_model_path, tmp_path / "nope.txt")


def test_no_label_file_gives_class_names(tiny_model_path):
    assert StreamModel(tiny_model_path).labels == [f"class_{i}" for i in range(5)]


# --------------------------------------------------------------------------- bad model files


def test_missing_model_file(tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        StreamModel(tmp_path / "missing.tflite")


def test_folder_instead_of_model(tmp_path):
    with pytest.raises(EdgeError, match="folder"):
        StreamModel(tmp_path)


def test_text_file_renamed_tflite(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_text("<html>404 not found</html>\n")
    with pytest.raises(EdgeError, match="not a TFLite model"):
        StreamModel(path)


def test_empty_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"")
    with pytest.raises(EdgeError, match="not a TFLite model"):
        StreamModel(path)


def test_truncated_model(tmp_path, tiny_model_path):
    data = tiny_model_path.read_bytes()
    path = tmp_path / "half.tflite"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgeError, match="truncated or (corrupt|damaged)"):
        StreamModel(path)


def test_model_without_signature(fixtures_dir):
    with pytest.raises(EdgeError, match="no signature"):
        StreamModel(fixtures_dir / "tiny_nosig.tflite")


def test_model_without_image_input(fixtures_dir):
    with pytest.raises(EdgeError, match="no image input"):
        StreamModel(fixtures_dir / "tiny_noimage.tflite")


# --------------------------------------------------------------------------- the real A0 model


@pytest.mark.realmodel
def test_real_a0_model_loads_and_steps(real_model, solid):
    model_path, labels_path = real_model
    model = StreamModel(model_path, labels_path)
    assert model.num_classes == 600 == len(model.labels)
    assert model.input_size == (172, 172)
    assert len(model.states) > 10
    first = model.step(solid((120, 90, 60), 480, 640))
    second = model.step(solid((120, 90, 60), 480, 640))
    assert first.shape == (600,) and np.isfinite(first).all()
    assert not np.array_equal(first, second)  # the states are looped: the same frame twice differs
    model.reset()
    np.testing.assert_allclose(model.step(solid((120, 90, 60), 480, 640)), first, atol=1e-5)
