"""Is a .tflite file a complete TFLite flatbuffer? Checked before any interpreter sees it.

tflite-runtime 2.14 builds its model from the file without verifying it, so a truncated
or damaged file crashes the whole process (a segfault in ``Interpreter.__init__``),
where ai-edge-litert raises. :func:`check` walks the parts of the TFLite schema an
interpreter reads: the root table, every operator code, subgraph, tensor, operator,
signature and metadata entry, and every buffer. Each table, vector and string must lie
inside the file, every index must point at something that exists, and every constant
tensor's data must be inside the file and as long as its shape and type say. A damaged
file is then the usual one-line error on both runtimes.

A small walk with :mod:`struct` rather than the generated schema module: that module
ships with ai-edge-litert only (``ai_edge_litert.schema_py_generated``), and the
``flatbuffers`` package is not there on the tflite-runtime fallback. Field numbers are
those of tensorflow/lite/schema/schema.fbs (the "id" order of each table).
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from edge.errors import EdgeError

logger = logging.getLogger(__name__)

# bytes per element of TensorType; STRING, RESOURCE, VARIANT and packed INT4 have no fixed size
ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}

# field numbers (schema.fbs)
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_BUFFERS, MODEL_METADATA, MODEL_SIGNATURES = 1, 2, 4, 6, 7
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANT, TENSOR_SPARSITY = 0, 1, 2, 3, 4, 6
QUANT_VECTORS = ((0, 4), (1, 4), (2, 4), (3, 8))  # min, max, scale (float), zero_point (long)
OP_OPCODE, OP_INPUTS, OP_OUTPUTS, OP_OPTIONS, OP_CUSTOM, OP_INTERMEDIATES, OP_OPTIONS_2 = 0, 1, 2, 4, 5, 8, 12
OP_LARGE_CUSTOM_OFFSET, OP_LARGE_CUSTOM_SIZE = 9, 10
SIG_INPUTS, SIG_OUTPUTS, SIG_KEY, SIG_SUBGRAPH = 0, 1, 2, 4
MAP_NAME, MAP_TENSOR = 0, 1
META_NAME, META_BUFFER = 0, 1


class Damaged(Exception):
    """What is wrong with the file, in words (turned into an EdgeError by :func:`check`)."""


class _Table:
    """One flatbuffer table: its position and its vtable, both checked to lie inside the file."""

    def __init__(self, data: memoryview, pos: int, what: str) -> None:
        self.data, self.pos, self.what = data, pos, what
        end = len(data)
        if pos < 0 or pos + 4 > end:
            raise Damaged(f"{what} starts past the end of the file")
        vt = pos - struct.unpack_from("<i", data, pos)[0]
        if vt < 0 or vt + 4 > end:
            raise Damaged(f"{what} has its field table outside the file")
        self.vt_size, obj_size = struct.unpack_from("<HH", data, vt)
        if self.vt_size < 4 or self.vt_size % 2 or vt + self.vt_size > end or pos + obj_size > end:
            raise Damaged(f"{what} runs past the end of the file")
        self.vt, self.obj_size = vt, obj_size

    def _field(self, n: int, size: int) -> int | None:
        slot = 4 + 2 * n
        if slot + 2 > self.vt_size:
            return None
        rel = struct.unpack_from("<H", self.data, self.vt + slot)[0]
        if rel == 0:
            return None
        if rel + size > self.obj_size:
            raise Damaged(f"{self.what} has field {n} outside the table")
        return self.pos + rel

    def scalar(self, n: int, fmt: str, default: int = 0) -> int:
        at = self._field(n, struct.calcsize(fmt))
        return default if at is None else struct.unpack_from("<" + fmt, self.data, at)[0]

    def _target(self, n: int) -> int | None:
        at = self._field(n, 4)
        if at is None:
            return None
        target = at + struct.unpack_from("<I", self.data, at)[0]
        if target + 4 > len(self.data):
            raise Damaged(f"{self.what} points past the end of the file (field {n})")
        return target

    def vector(self, n: int, item: int, what: str) -> tuple[int, int]:
        """(start, length) of vector field n with items of ``item`` bytes; (0, 0) when absent."""
        at = self._target(n)
        if at is None:
            return 0, 0
        length = struct.unpack_from("<I", self.data, at)[0]
        if at + 4 + length * item > len(self.data):
            raise Damaged(f"{what} ({length} x {item} bytes) runs past the end of the file")
        return at + 4, length

    def ints(self, n: int, what: str, fmt: str = "i") -> tuple[int, ...]:
        start, length = self.vector(n, struct.calcsize(fmt), what)
        return struct.unpack_from(f"<{length}{fmt}", self.data, start) if length else ()

    def string(self, n: int, what: str) -> str:
        start, length = self.vector(n, 1, what)
        return bytes(self.data[start:start + length]).decode("utf-8", "replace")

    def table(self, n: int, what: str) -> _Table | None:
        at = self._target(n)
        return None if at is None else _Table(self.data, at, what)

    def tables(self, n: int, what: str) -> list[_Table]:
        start, length = self.vector(n, 4, what)
        out = []
        for i in range(length):
            at = start + 4 * i
            out.append(_Table(self.data, at + struct.unpack_from("<I", self.data, at)[0], f"{what}[{i}]"))
        return out


def _index(value: int, count: int, what: str, optional: bool = False) -> None:
    if optional and value == -1:
        return
    if not 0 <= value < count:
        raise Damaged(f"{what} is {value}, but there are only {count}")


def _buffers(model: _Table, size: int) -> list[int | None]:
    """Each buffer's data length in bytes (None for an empty buffer), every range checked."""
    lengths: list[int | None] = []
    for buf in model.tables(MODEL_BUFFERS, "buffer"):
        _, length = buf.vector(BUFFER_DATA, 1, f"{buf.what} data")
        offset, extent = buf.scalar(BUFFER_OFFSET, "Q"), buf.scalar(BUFFER_SIZE, "Q")
        if offset > 1:  # data stored after the flatbuffer (models over 2 GB): offset from the file start
            if offset + extent > size:
                raise Damaged(f"{buf.what} data ({extent} bytes at {offset}) runs past the end of the file")
            length = extent
        lengths.append(length or None)
    return lengths


def _tensor(t: _Table, buffers: list[int | None]) -> None:
    shape = t.ints(TENSOR_SHAPE, f"{t.what} shape")
    t.string(TENSOR_NAME, f"{t.what} name")
    buffer = t.scalar(TENSOR_BUFFER, "I")
    _index(buffer, len(buffers), f"{t.what} buffer index")
    quant = t.table(TENSOR_QUANT, f"{t.what} quantization")
    if quant is not None:
        for n, item in QUANT_VECTORS:
            quant.vector(n, item, f"{quant.what} field {n}")
    data = buffers[buffer]
    item = ELEMENT_BYTES.get(t.scalar(TENSOR_TYPE, "b"))
    if data is None or item is None or t.table(TENSOR_SPARSITY, f"{t.what} sparsity") is not None:
        return
    want = item
    for dim in shape:
        want *= max(dim, 0)
    if data != want:
        raise Damaged(f"{t.what} has {data} bytes of data, but its shape {list(shape)} needs {want}")


def _operator(op: _Table, opcodes: int, tensors: int, size: int) -> None:
    _index(op.scalar(OP_OPCODE, "I"), opcodes, f"{op.what} operator code")
    for n, what in ((OP_INPUTS, "input"), (OP_OUTPUTS, "output"), (OP_INTERMEDIATES, "intermediate")):
        for i in op.ints(n, f"{op.what} {what}s"):
            _index(i, tensors, f"{op.what} {what} tensor", optional=True)
    op.table(OP_OPTIONS, f"{op.what} options")
    op.table(OP_OPTIONS_2, f"{op.what} options")
    op.vector(OP_CUSTOM, 1, f"{op.what} custom options")
    offset, extent = op.scalar(OP_LARGE_CUSTOM_OFFSET, "Q"), op.scalar(OP_LARGE_CUSTOM_SIZE, "Q")
    if offset > 1 and offset + extent > size:
        raise Damaged(f"{op.what} custom options run past the end of the file")


def walk(data: bytes | bytearray | memoryview) -> dict[str, int]:
    """Check a whole TFLite flatbuffer; counts of what was checked, or :class:`Damaged`."""
    view = memoryview(data)
    size = len(view)
    if size < 8 or bytes(view[4:8]) != b"TFL3":
        raise Damaged("no TFL3 header: not a TFLite model")
    model = _Table(view, struct.unpack_from("<I", view, 0)[0], "model")
    buffers = _buffers(model, size)
    opcodes = model.tables(MODEL_OPERATOR_CODES, "operator code")
    for code in opcodes:
        code.string(1, f"{code.what} custom name")
    subgraphs = model.tables(MODEL_SUBGRAPHS, "subgraph")
    if not subgraphs:
        raise Damaged("the model has no subgraph")
    counts = {"buffers": len(buffers), "subgraphs": len(subgraphs), "tensors": 0, "operators": 0}
    for g, sub in enumerate(subgraphs):
        tensors = sub.tables(SUBGRAPH_TENSORS, f"subgraph {g} tensor")
        for t in tensors:
            _tensor(t, buffers)
        for n, what in ((SUBGRAPH_INPUTS, "input"), (SUBGRAPH_OUTPUTS, "output")):
            for i in sub.ints(n, f"subgraph {g} {what}s"):
                _index(i, len(tensors), f"subgraph {g} {what} tensor")
        operators = sub.tables(SUBGRAPH_OPERATORS, f"subgraph {g} operator")
        for op in operators:
            _operator(op, len(opcodes), len(tensors), size)
        counts["tensors"] += len(tensors)
        counts["operators"] += len(operators)
    for sig in model.tables(MODEL_SIGNATURES, "signature"):
        sig.string(SIG_KEY, f"{sig.what} key")
        sub_index = sig.scalar(SIG_SUBGRAPH, "I")
        _index(sub_index, len(subgraphs), f"{sig.what} subgraph")
        count = len(subgraphs[sub_index].tables(SUBGRAPH_TENSORS, f"subgraph {sub_index} tensor"))
        for n in (SIG_INPUTS, SIG_OUTPUTS):
            for entry in sig.tables(n, f"{sig.what} tensor map"):
                entry.string(MAP_NAME, f"{entry.what} name")
                _index(entry.scalar(MAP_TENSOR, "I"), count, f"{entry.what} tensor")
    for meta in model.tables(MODEL_METADATA, "metadata"):
        meta.string(META_NAME, f"{meta.what} name")
        _index(meta.scalar(META_BUFFER, "I"), len(buffers), f"{meta.what} buffer")
    return counts


def check(path: str | Path, data: bytes | None = None) -> None:
    """Raise EdgeError (one line, with the fix) unless ``path`` (or its ``data``, already read) is a complete
    TFLite model."""
    path = Path(path)
    try:
        data = path.read_bytes() if data is None else data
    except IsADirectoryError:
        raise EdgeError(f"model path {path} is a folder, not a .tflite file") from None
    except FileNotFoundError:
        raise EdgeError(f"model file {path} does not exist: run `edge models fetch a0`, or check the path") from None
    except OSError as err:
        raise EdgeError(f"cannot read model file {path}: {err.strerror}") from None
    try:
        counts = walk(data)
    except (Damaged, struct.error) as err:  # struct.error: a read the checks above missed, same one line
        raise EdgeError(f"model file {path} is truncated or damaged ({err}): re-download it with "
                        "`edge models fetch` (or `edge models fetch NAME --force`)") from None
    logger.debug("model file %s: %s", path, counts)
