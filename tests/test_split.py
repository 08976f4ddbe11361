"""The split at the head pool (edge/split.py): backbone + head reproduce the original exactly."""

from __future__ import annotations

import numpy as np
import pytest

from edge import runtime, split
from edge.model import StreamModel
from edge.states import make_policy

try:  # ai-edge-litert's, or the copy install.sh puts beside tflite-runtime (32-bit Arm)
    schema = split._schema()
except split.NotSplittable as err:
    pytest.skip(str(err), allow_module_level=True)


def frames(n: int, size: tuple[int, int] = (8, 8), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def signature(data: bytes) -> tuple[list[str], list[str]]:
    sig = runtime.backend().interpreter(model_content=data).get_signature_list()["serving_default"]
    return sig["inputs"], sig["outputs"]


def renamed(data: bytes, old: str, new: str) -> bytes:
    """The model with one signature name changed (a model 'without' that state)."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    for sig in model.signatureDefs:
        for m in list(sig.inputs) + list(sig.outputs):
            if m.name.decode() == old:
                m.name = new.encode()
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("fixture", ["tiny_stream.tflite", "tiny_stream_uint8.tflite"])
def test_halves_have_the_cut_signatures(fixtures_dir, fixture):
    halves = split.split((fixtures_dir / fixture).read_bytes())
    inputs, outputs = signature(halves.backbone)
    assert "image" in inputs and split.HEAD_POOL_SUM in inputs
    assert split.FEATURE in outputs and "logits" not in outputs
    assert signature(halves.head) == ([split.POOLED], ["logits"])
    assert halves.feature_size == 4


@pytest.mark.parametrize("fixture", ["tiny_stream.tflite", "tiny_stream_uint8.tflite"])
def test_cumulative_backbone_plus_head_is_bit_exact(fixtures_dir, fixture):
    whole = StreamModel(fixtures_dir / fixture, split=False)
    cut = StreamModel(fixtures_dir / fixture)
    assert not whole.is_split and cut.is_split
    for frame in frames(12):
        np.testing.assert_array_equal(cut.step(frame), whole.step(frame))


def test_tiny_feature_is_the_frame_mean_and_the_previous_frame(tiny_model_path, solid):
    model = StreamModel(tiny_model_path)
    got = model.features([solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255))])
    np.testing.assert_allclose(got, [[1, 0, 0, 0], [0, 1, 0, 1 / 3], [0, 0, 1, 1 / 3]], atol=1e-6)


def test_feature_does_not_depend_on_the_head_pool(tiny_model_path):
    looped, zeroed = StreamModel(tiny_model_path), StreamModel(tiny_model_path)
    looped.loop_head_pool, zeroed.loop_head_pool = True, False
    for frame in frames(10):
        np.testing.assert_array_equal(looped.advance(frame), zeroed.advance(frame))
    assert looped.get_state(split.HEAD_POOL_COUNT)[0] == 10
    assert zeroed.get_state(split.HEAD_POOL_COUNT)[0] == 0  # held at zero: it can never saturate
    assert not zeroed.get_state(split.HEAD_POOL_SUM).any()


def test_a_model_without_head_pool_is_not_split_and_says_why(tiny_model_path, tmp_path, caplog):
    path = tmp_path / "nopool.tflite"
    path.write_bytes(renamed(tiny_model_path.read_bytes(), split.HEAD_POOL_SUM, "state_other_buffer"))
    assert "state_head_pool_buffer" in split.check(path.read_bytes())
    with caplog.at_level("WARNING"):
        model = StreamModel(path)
    assert not model.is_split and "state_head_pool_buffer" in model.split_reason
    assert any("cumulative" in r.getMessage() and "nopool.tflite" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        policy = make_policy("window", model, window_frames=25, half_life_frames=10)
    assert policy.name == "cumulative" and policy.feature is None
    assert "needs the model split" in caplog.text and "state_head_pool_buffer" in caplog.text
    whole = StreamModel(tiny_model_path, split=False)
    for frame in frames(4):
        np.testing.assert_array_equal(policy.step(frame), whole.step(frame))  # still usable, whole


def test_a_model_without_logits_is_not_split(fixtures_dir):
    data = renamed((fixtures_dir / "tiny_stream.tflite").read_bytes(), "logits", "scores")
    assert split.check(data) == "no logits output in its signature"


def test_check_names_the_problem(fixtures_dir):
    assert split.check((fixtures_dir / "tiny_stream.tflite").read_bytes()) is None
    assert "state_head_pool_buffer" in split.check((fixtures_dir / "tiny_noimage.tflite").read_bytes())
    assert split.check((fixtures_dir / "tiny_nosig.tflite").read_bytes()) == "the model has no signature"
    truncated = (fixtures_dir / "tiny_stream.tflite").read_bytes()[:200]
    assert "could not be read" in split.check(truncated)


# --------------------------------------------------------------------------- the real A0 int8 model


@pytest.fixture
def a0_pair(real_model):
    return StreamModel(*real_model, split=False), StreamModel(*real_model)


def test_a0_splits_and_drops_the_classifier_from_the_backbone(real_model):
    data = real_model[0].read_bytes()
    halves = split.split(data)
    assert halves.feature_size == 480
    assert halves.classifier_ops >= 4  # QUANTIZE, RESHAPE, CONV, CONV, RESHAPE, DEQUANTIZE
    # the classifier's weights (2048x480 + 600x2048 int8) live in the head only
    assert len(halves.backbone) + 1_000_000 < len(data) and len(halves.head) > 1_000_000


def test_a0_cumulative_is_bit_exact(a0_pair):
    whole, cut = a0_pair
    for frame in frames(25, (120, 160), seed=1):
        np.testing.assert_array_equal(cut.step(frame), whole.step(frame))


def test_a0_feature_is_identical_whatever_the_head_pool(real_model):
    looped, zeroed = StreamModel(*real_model), StreamModel(*real_model)
    looped.loop_head_pool, zeroed.loop_head_pool = True, False
    for frame in frames(25, (120, 160), seed=2):
        a, b = looped.advance(frame), zeroed.advance(frame)
        np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (480,) and a.any()


# --------------------------------------------------------------------------- edge doctor and edge models list say which split


def model_row(name: str, path):
    from edge.models import Row

    return Row(name, "model", path.name, str(path), (8, 8), True, "ok", None, None, "tiny")


def test_doctor_and_models_list_say_which_models_split(fixtures_dir):
    from edge import doctor, models

    rows = [model_row("t0", fixtures_dir / "tiny_stream.tflite"), model_row("t1", fixtures_dir / "tiny_noimage.tflite")]
    found = {c.what: c for c in doctor.check_models(rows=rows, directory=str(fixtures_dir))}
    assert found["model t0"].status == "ok" and "splits at its head pool" in found["model t0"].detail
    assert found["model t1"].status == "warn"
    assert "does not split (no state_head_pool_buffer" in found["model t1"].detail
    assert "cumulative" in found["model t1"].detail and found["model t1"].fix
    table = models.format_rows(rows, fixtures_dir).splitlines()
    assert "splits at its head pool" in table[1] and "does not split" in table[2]


def test_a0_backbone_loops_int8_states_and_takes_int8_pixels(a0_pair):
    """The int8 export's float edges are gone from the backbone: a quarter of the bytes to loop, the same numbers."""
    whole, cut = a0_pair
    streams = [s for s in cut.states if s.name.endswith("_stream_buffer")]
    assert streams and all(s.dtype == np.int8 and s.scale > 0 for s in streams)
    assert all(whole_s.dtype == np.float32 for whole_s in whole.states if whole_s.name.endswith("_stream_buffer"))
    assert cut.image.dtype == np.int8 and cut.image.zero_point == -128 and whole.image.dtype == np.float32
    for s in streams:  # reset means the real value zero, whatever the storage
        assert not cut.get_state(s.name).any(), s.name
    for frame in frames(6, (120, 160), seed=3):
        cut.step(frame), whole.step(frame)
    for s in streams:
        got, want = cut.get_state(s.name), whole.get_state(s.name)
        assert got.dtype == np.float32 and got.any(), s.name
        np.testing.assert_array_equal(got, want)


def test_exact_pixel_grid_preprocessing_equals_the_float_path():
    """An int8 image on the 1/255 grid is filled with p - 128 directly; quantizing p / 255 gives the same."""
    from edge.preprocess import InputSpec, Preprocessor

    frame = frames(1, (50, 70), seed=4)[0]
    exact = Preprocessor(InputSpec("image", 20, 30, np.dtype(np.int8), float(np.float32(1 / 255)), -128))
    as_float = Preprocessor(InputSpec("image", 20, 30, np.dtype(np.float32)))
    q, x = np.zeros((1, 1, 20, 30, 3), np.int8), np.zeros((1, 1, 20, 30, 3), np.float32)
    exact(frame, q)
    as_float(frame, x)
    np.testing.assert_array_equal(q.astype(np.int16), np.rint(x / np.float32(1 / 255)).astype(np.int16) - 128)
    assert q.min() < 0 < q.max()


# --------------------------------------------------------------------------- the int8 edges, on a tiny model


def with_int8_edges(data: bytes, state: str, out_scale: float = 1 / 255) -> bytes:
    """The tiny float model as an int8 exporter would wrap it: ``state`` and the image pass through QUANTIZE ->
    DEQUANTIZE at the inputs, the state's output through QUANTIZE -> DEQUANTIZE (scale ``out_scale``) at the end."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    g = split._Graph(model, schema)
    sg = g.sg

    def tensor(like: int, name: str, int8: bool, scale: float | None = None) -> int:
        t = schema.TensorT()
        t.shape = np.array(split._ints(sg.tensors[like].shape), np.int32)
        t.type, t.name, t.buffer = (split.INT8 if int8 else split.FLOAT32), name.encode(), 0
        if int8:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [float(np.float32(scale))], [-128]
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    def op(builtin: int, src: int, dst: int):
        o = schema.OperatorT()
        o.opcodeIndex = split._opcode(model, schema, builtin)
        o.inputs, o.outputs = np.array([src], np.int32), np.array([dst], np.int32)
        return o

    quantize, dequantize = schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE
    first, last = [], []
    for name in ("image", state):  # input -> QUANTIZE -> DEQUANTIZE -> what read the input
        t_in = g.inputs[name]
        q, f = tensor(t_in, f"{name}/q", True, 1 / 255), tensor(t_in, f"{name}/f", False)
        for o in sg.operators:
            o.inputs = np.array([f if t == t_in else t for t in split._ints(o.inputs)], np.int32)
        first += [op(quantize, t_in, q), op(dequantize, q, f)]
    t_out = g.outputs[state]  # what made the output -> QUANTIZE -> DEQUANTIZE -> the output
    raw, q = tensor(t_out, f"{state}/raw", False), tensor(t_out, f"{state}/q_out", True, out_scale)
    for o in sg.operators:
        o.outputs = np.array([raw if t == t_out else t for t in split._ints(o.outputs)], np.int32)
        o.inputs = np.array([raw if t == t_out else t for t in split._ints(o.inputs)], np.int32)
    last += [op(quantize, raw, q), op(dequantize, q, t_out)]
    sg.operators = first + list(sg.operators) + last
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


STATE = "state_block0_layer0_stream_buffer"


def test_int8_edges_are_dropped_from_the_backbone_and_it_stays_exact(tiny_model_path, tmp_path):
    path = tmp_path / "int8_edges.tflite"
    path.write_bytes(with_int8_edges(tiny_model_path.read_bytes(), STATE))
    whole, cut = StreamModel(path, split=False), StreamModel(path)
    state = {s.name: s for s in cut.states}[STATE]
    assert state.dtype == np.int8 and state.zero_point == -128  # the backbone loops the int8 tensor itself
    assert {s.name: s for s in whole.states}[STATE].dtype == np.float32
    assert cut.image.dtype == np.int8 and whole.image.dtype == np.float32
    for frame in frames(8, seed=5):
        np.testing.assert_array_equal(cut.step(frame), whole.step(frame))
        np.testing.assert_array_equal(cut.get_state(STATE), whole.get_state(STATE))
    assert cut.get_state(STATE).any()


def test_int8_edges_with_two_scales_are_kept_float(tiny_model_path, tmp_path):
    """Dropping QUANTIZE/DEQUANTIZE is only the identity when both ends share one scale: else leave them."""
    path = tmp_path / "two_scales.tflite"
    path.write_bytes(with_int8_edges(tiny_model_path.read_bytes(), STATE, out_scale=2 / 255))
    whole, cut = StreamModel(path, split=False), StreamModel(path)
    assert {s.name: s for s in cut.states}[STATE].dtype == np.float32
    assert cut.image.dtype == np.int8  # the image edge is still exact
    for frame in frames(8, seed=6):
        np.testing.assert_array_equal(cut.step(frame), whole.step(frame))
