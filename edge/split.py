"""Flatbuffer surgery: split a MoViNet-style stream model at its head pool.

A stream model pools its head features over every frame since the last reset::

    image + states ──> backbone ops ──> head conv ──> spatial mean            (per-frame FEATURE, [.., D])
                                                           │
    state_head_pool_buffer ──[QUANTIZE]──────────────────> ADD ──[DEQUANTIZE]──> state_head_pool_buffer (SUM out)
                                                                                   │
    state_head_pool_frame_count ──> ADD 1 ──> state_head_pool_frame_count ──> CAST ─> DIV  (pooled MEAN = SUM / count)
                                                                                   │
                              [QUANTIZE] ──> CONV D->2048 (relu6) ──> CONV 2048->classes ──> RESHAPE ──[DEQUANTIZE]──> logits

In the int8 export the SUM is an int8 tensor on a coarse grid (0.587 for A0) while
each feature lives on a fine one (0.0235): a new frame's feature mostly rounds
away, so the SUM can neither follow nor forget the scene. The split cuts the
graph in two, in memory, at load:

- **backbone** = the model minus the classifier (the DIV and every op only the
  logits need), plus one float output ``head_feature``: the per-frame feature
  (through a DEQUANTIZE appended as the last op when it is quantized). Its head
  pool is fed zero every frame, so it cannot saturate; the feature does not
  depend on it. The SUM output is kept (``cumulative`` loops it as the original).
- **head** = only the classifier ops, input ``pooled_feature`` (the float
  pooled mean the DIV produced), output ``logits``. Fed the original SUM/count it
  reproduces the original logits bit for bit; fed an exact window mean of the
  features it answers for the last W frames.

The backbone also drops the float edges an int8 export puts around its stream
states and image (:func:`_quantized_boundaries`): it loops the int8 state tensors
themselves, a quarter of the bytes, with the same numbers.

Everything is found from the signature names (``state_head_pool_buffer``,
``state_head_pool_frame_count``, ``logits``) by walking the graph (RESHAPE,
QUANTIZE and DEQUANTIZE are hops), never by tensor index. A model that does not
have this shape raises :class:`NotSplittable` with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

HEAD_POOL_SUM = "state_head_pool_buffer"
HEAD_POOL_COUNT = "state_head_pool_frame_count"
LOGITS = "logits"
FEATURE = "head_feature"
POOLED = "pooled_feature"
SIGNATURE = "serving_default"
HOPS = ("RESHAPE", "QUANTIZE", "DEQUANTIZE")
FLOAT32, UINT8, INT8 = 0, 3, 9  # schema TensorType


class NotSplittable(Exception):
    """The model has no head pool this module can cut at; ``str()`` says why."""


@dataclass(frozen=True)
class SplitModel:
    """The two halves, as .tflite bytes, and the facts the engine needs."""

    backbone: bytes
    head: bytes
    feature_size: int  # D: floats in one per-frame feature
    classifier_ops: int  # ops moved to the head (and dropped from the backbone)


def _schema():
    """The generated TFLite schema module: ai-edge-litert's, else the copy install.sh puts beside
    tflite-runtime (edge_tflite_schema, taken from ai-edge-litert's wheel: 32-bit Arm has no other)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            import edge_tflite_schema as schema
        except ImportError:
            raise NotSplittable("the TFLite schema module is not installed (ai_edge_litert.schema_py_generated, "
                                "or edge_tflite_schema beside tflite-runtime): run ./install.sh again") from None
    return schema


class _Graph:
    """One signature's subgraph with producer/consumer maps and op names."""

    def __init__(self, model, schema) -> None:
        if not model.signatureDefs:
            raise NotSplittable("the model has no signature")
        sigs = {s.signatureKey.decode(): s for s in model.signatureDefs}
        self.sig = sigs.get(SIGNATURE) or model.signatureDefs[0]
        self.sg = model.subgraphs[self.sig.subgraphIndex]
        self.inputs = {t.name.decode(): int(t.tensorIndex) for t in self.sig.inputs}
        self.outputs = {t.name.decode(): int(t.tensorIndex) for t in self.sig.outputs}
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.kind = []
        for op in self.sg.operators:
            code = model.operatorCodes[op.opcodeIndex]
            self.kind.append(names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"))
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for k, op in enumerate(self.sg.operators):
            for t in _ints(op.outputs):
                self.producer[t] = k
            for t in _ints(op.inputs):
                if t >= 0:
                    self.consumers.setdefault(t, []).append(k)

    def tensor(self, index: int):
        return self.sg.tensors[index]

    def name(self, index: int) -> str:
        return self.tensor(index).name.decode(errors="replace")

    def forward(self, start: int) -> set[int]:
        """``start`` and every tensor reached from it through hop ops."""
        seen, todo = {start}, [start]
        while todo:
            t = todo.pop()
            for k in self.consumers.get(t, []):
                if self.kind[k] in HOPS:
                    for out in _ints(self.sg.operators[k].outputs):
                        if out not in seen:
                            seen.add(out)
                            todo.append(out)
        return seen

    def cone(self, targets: list[int], stop: set[int] = frozenset()) -> set[int]:
        """Indices of the ops that ``targets`` depend on, not walking past tensors in ``stop``."""
        ops: set[int] = set()
        todo = [t for t in targets if t not in stop]
        seen = set(todo)
        while todo:
            k = self.producer.get(todo.pop())
            if k is None or k in ops:
                continue
            ops.add(k)
            for t in _ints(self.sg.operators[k].inputs):
                if t >= 0 and t not in seen and t not in stop:
                    seen.add(t)
                    todo.append(t)
        return ops


def _ints(array) -> list[int]:
    return [] if array is None else [int(x) for x in array]


@dataclass(frozen=True)
class _Cut:
    feature: int  # the per-frame feature tensor (the ADD's other input)
    pooled: int  # the DIV's output: the pooled mean
    head_ops: list[int]  # the classifier: ops between the pooled mean and the logits, in graph order


def _find_cut(g: _Graph) -> _Cut:
    for name in (HEAD_POOL_SUM, HEAD_POOL_COUNT):
        if name not in g.inputs or name not in g.outputs:
            raise NotSplittable(f"no {name} state (input and output) in its signature")
    if LOGITS not in g.outputs:
        raise NotSplittable(f"no {LOGITS} output in its signature")
    pool_in, pool_out, count_in = g.inputs[HEAD_POOL_SUM], g.outputs[HEAD_POOL_SUM], g.inputs[HEAD_POOL_COUNT]
    logits = g.outputs[LOGITS]

    # state_head_pool_buffer -> [hops] -> ADD(sum, feature)
    reach = g.forward(pool_in)
    adds = [k for t in reach for k in g.consumers.get(t, []) if g.kind[k] == "ADD"]
    if len(adds) != 1:
        raise NotSplittable(f"{HEAD_POOL_SUM} feeds {len(adds)} ADD ops, expected exactly one (sum + feature)")
    add = g.sg.operators[adds[0]]
    others = [t for t in _ints(add.inputs) if t not in reach]
    if len(others) != 1:
        raise NotSplittable("the head pool ADD does not add one per-frame feature to the sum")
    feature = others[0]
    summed = g.forward(_ints(add.outputs)[0])
    if pool_out not in summed:
        raise NotSplittable(f"the head pool ADD does not produce the {HEAD_POOL_SUM} output")

    # the sum -> [hops] -> DIV(sum, count): the pooled mean
    divs = sorted({k for t in summed for k in g.consumers.get(t, []) if g.kind[k] == "DIV"})
    divs = [k for k in divs if _ints(g.sg.operators[k].inputs)[0] in summed]
    if len(divs) != 1:
        raise NotSplittable(f"found {len(divs)} DIV ops dividing the head pool sum, expected one")
    div = g.sg.operators[divs[0]]
    if count_in not in {t for k in g.cone([_ints(div.inputs)[1]]) for t in _ints(g.sg.operators[k].inputs)}:
        raise NotSplittable(f"the head pool DIV does not divide by {HEAD_POOL_COUNT}")
    pooled = _ints(div.outputs)[0]
    if g.tensor(pooled).type != FLOAT32:
        raise NotSplittable("the pooled mean is not a float tensor")

    # the classifier: what the logits need beyond the pooled mean, and nothing else may read it
    head = g.cone([logits], stop={pooled})
    if not head:
        raise NotSplittable("the logits do not depend on the pooled mean")
    made_in_head = {t for k in head for t in _ints(g.sg.operators[k].outputs)}
    for k in head:
        for t in _ints(g.sg.operators[k].inputs):
            if t < 0 or t == pooled or t in made_in_head:
                continue
            if t in g.producer or t in g.inputs.values() or _is_variable(g, t):
                raise NotSplittable(f"the classifier op {g.kind[k]} reads {g.name(t)} besides the pooled mean")
    readers = set(g.consumers.get(pooled, []))
    if not readers <= head:
        raise NotSplittable("an op outside the classifier reads the pooled mean")
    for k in head:
        for t in _ints(g.sg.operators[k].outputs):
            if t != logits and not set(g.consumers.get(t, [])) <= head:
                raise NotSplittable(f"an op outside the classifier reads {g.name(t)}")
            if t in g.outputs.values() and t != logits:
                raise NotSplittable(f"the classifier produces another output ({g.name(t)})")
    return _Cut(feature, pooled, sorted(head))


def _is_variable(g: _Graph, t: int) -> bool:
    return bool(getattr(g.tensor(t), "isVariable", False))


def _tensor_map(schema, name: str, index: int):
    m = schema.TensorMapT()
    m.name = name.encode()
    m.tensorIndex = index
    return m


def _compact(model, g: _Graph) -> None:
    """Drop the signature subgraph's tensors no op or graph input/output uses; empty the buffers nobody uses.

    Keeps the classifier's weights out of the backbone and the backbone's out of the head.
    """
    sg = g.sg
    used = set(_ints(sg.inputs)) | set(_ints(sg.outputs))
    for op in sg.operators:
        used.update(t for t in _ints(op.inputs) + _ints(op.outputs) + _ints(op.intermediates) if t >= 0)
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    sg.tensors = [sg.tensors[t] for t in order]

    def fix(array):
        return None if array is None else np.array([remap[t] if t >= 0 else t for t in _ints(array)], np.int32)

    for op in sg.operators:
        op.inputs, op.outputs = fix(op.inputs), fix(op.outputs)
        if op.intermediates is not None and len(op.intermediates):
            op.intermediates = fix(op.intermediates)
    sg.inputs, sg.outputs = fix(sg.inputs), fix(sg.outputs)
    for sig in model.signatureDefs:
        if sig is g.sig:
            for m in list(sig.inputs) + list(sig.outputs):
                m.tensorIndex = remap[int(m.tensorIndex)]
    live = {t.buffer for s in model.subgraphs for t in s.tensors}
    for b, buf in enumerate(model.buffers):
        if b not in live and b != 0:
            buf.data, buf.offset, buf.size = None, 0, 0


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _make_head(data: bytes, schema, cut: _Cut) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    g = _Graph(model, schema)
    logits = g.outputs[LOGITS]
    g.sg.operators = [g.sg.operators[k] for k in cut.head_ops]
    g.sg.inputs = np.array([cut.pooled], np.int32)
    g.sg.outputs = np.array([logits], np.int32)
    g.sig.inputs = [_tensor_map(schema, POOLED, cut.pooled)]
    g.sig.outputs = [_tensor_map(schema, LOGITS, logits)]
    model.signatureDefs = [g.sig]
    model.subgraphs = [g.sg]
    g.sig.subgraphIndex = 0
    model.metadata = None
    model.metadataBuffer = None
    _compact(model, g)
    return _pack(model)


def _make_backbone(data: bytes, schema, cut: _Cut) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    g = _Graph(model, schema)
    sg = g.sg
    logits = g.outputs[LOGITS]
    feature = cut.feature
    src = sg.tensors[feature]
    if src.type == FLOAT32:
        out = feature
    else:  # a DEQUANTIZE into a new float tensor, appended as the last op
        t = schema.TensorT()
        t.shape = np.array(_ints(src.shape), np.int32)
        t.type = FLOAT32
        t.name = FEATURE.encode()
        t.buffer = 0
        sg.tensors.append(t)
        out = len(sg.tensors) - 1
        op = schema.OperatorT()
        op.opcodeIndex = _opcode(model, schema, schema.BuiltinOperator.DEQUANTIZE)
        op.inputs = np.array([feature], np.int32)
        op.outputs = np.array([out], np.int32)
        op.builtinOptionsType = schema.BuiltinOptions.DequantizeOptions
        op.builtinOptions = schema.DequantizeOptionsT()
        sg.operators.append(op)
    sg.outputs = np.array([t for t in _ints(sg.outputs) if t != logits] + [out], np.int32)
    g.sig.outputs = [m for m in g.sig.outputs if int(m.tensorIndex) != logits] + [_tensor_map(schema, FEATURE, out)]
    g = _Graph(model, schema)  # producers now include the new op
    keep = g.cone(_ints(sg.outputs))  # dead code elimination: the classifier and the DIV go
    sg.operators = [op for k, op in enumerate(sg.operators) if k in keep]
    g = _Graph(model, schema)
    _quantized_boundaries(g, keep_float={HEAD_POOL_SUM, HEAD_POOL_COUNT})
    _compact(model, g)
    return _pack(model)


def _same_quantization(a, b) -> bool:
    qa, qb = a.quantization, b.quantization
    if qa is None or qb is None or qa.scale is None or qb.scale is None or a.type != b.type:
        return False
    return (np.array_equal(np.asarray(qa.scale, np.float32), np.asarray(qb.scale, np.float32))
            and np.array_equal(np.asarray(qa.zeroPoint), np.asarray(qb.zeroPoint))
            and qa.quantizedDimension == qb.quantizedDimension)


def _exact_image_quantization(t) -> bool:
    """A float image in [0, 1] quantized so that pixel p becomes exactly p + zero point: scale 1/255 and the
    zero point that keeps 0..255 in range (int8: -128, uint8: 0). The preprocessor can then write it directly."""
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) != 1 or q.zeroPoint is None or len(q.zeroPoint) != 1:
        return False
    if np.float32(q.scale[0]) != np.float32(1 / 255):
        return False
    return (t.type, int(q.zeroPoint[0])) in ((INT8, -128), (UINT8, 0))


def _quantized_boundaries(g: _Graph, keep_float: set[str]) -> tuple[int, bool]:
    """Let the backbone take and give its quantized tensors as they are: no float at its edges.

    An int8 export wraps every stream state in float: ``state (float) -> QUANTIZE -> int8 ... int8 ->
    DEQUANTIZE -> state (float)``, with the same scale and zero point at both ends. Looping the int8
    tensors instead is the same numbers (dequantize then quantize with one scale is the identity), a
    quarter of the bytes to copy each frame, and two ops less per state. Likewise an image input
    quantized on the exact 1/255 grid becomes an integer input the preprocessor fills with the pixels.
    States named in ``keep_float`` (the head pool: cumulative reads its SUM as float) and any tensor
    that does not have exactly this shape are left as they are. Returns (states changed, image changed).
    """
    sg = g.sg
    drop: set[int] = set()
    inputs, outputs = _ints(sg.inputs), _ints(sg.outputs)
    sig_in = {int(m.tensorIndex): m for m in g.sig.inputs}
    sig_out = {int(m.tensorIndex): m for m in g.sig.outputs}
    states, image = 0, False
    for name, t_in in g.inputs.items():
        readers = g.consumers.get(t_in, [])
        if name in keep_float or len(readers) != 1 or g.kind[readers[0]] != "QUANTIZE":
            continue
        quantized = _ints(sg.operators[readers[0]].outputs)[0]
        if name in g.outputs:  # a state: its output must be a DEQUANTIZE of the same quantization
            t_out = g.outputs[name]
            k = g.producer.get(t_out)
            if k is None or g.kind[k] != "DEQUANTIZE" or g.consumers.get(t_out) or t_out in g.inputs.values():
                continue
            source = _ints(sg.operators[k].inputs)[0]
            if source in outputs or not _same_quantization(g.tensor(quantized), g.tensor(source)):
                continue
            outputs[outputs.index(t_out)] = source
            sig_out[t_out].tensorIndex = source
            drop.add(k)
            states += 1
        elif not _exact_image_quantization(g.tensor(quantized)):
            continue
        else:
            image = True
        inputs[inputs.index(t_in)] = quantized
        sig_in[t_in].tensorIndex = quantized
        drop.add(readers[0])
    sg.inputs, sg.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
    sg.operators = [op for k, op in enumerate(sg.operators) if k not in drop]
    return states, image


def _opcode(model, schema, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def split(data: bytes) -> SplitModel:
    """Backbone and head of a stream model's bytes; raises NotSplittable with the reason."""
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as err:  # noqa: BLE001 - a corrupt flatbuffer raises anything
        raise NotSplittable(f"its flatbuffer could not be read ({type(err).__name__})") from None
    g = _Graph(model, schema)
    cut = _find_cut(g)
    size = int(np.prod(_ints(g.tensor(cut.feature).shape)))
    return SplitModel(_make_backbone(data, schema, cut), _make_head(data, schema, cut), size, len(cut.head_ops))


def check(data: bytes) -> str | None:
    """None when the model splits, else the reason it does not (for doctor and ``models list``)."""
    try:
        schema = _schema()
        _find_cut(_Graph(schema.ModelT.InitFromPackedBuf(data, 0), schema))
    except NotSplittable as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - a corrupt flatbuffer raises anything
        return f"its flatbuffer could not be read ({type(err).__name__})"
    return None


def describe_file(path) -> tuple[bool, str] | None:
    """(splits, one phrase) for ``edge doctor`` and ``edge models list``; None when the file cannot be read."""
    from pathlib import Path

    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    reason = check(data)
    if reason is None:
        return True, "splits at its head pool (window/ema policies)"
    return False, f"does not split ({reason}): runs the cumulative policy only"
