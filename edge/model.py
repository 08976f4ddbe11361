"""StreamModel: one MoViNet-style stream .tflite, its state loop and its labels.

Everything about the model is read from the file through its signature: the
image input (name, shape, dtype, quantization), every state tensor (an input
with an output of the same name), and the logits size. The state loop works on
the interpreter's own buffers: after ``invoke()`` each state output is copied
into its input (states the converter already placed in one tensor need no copy
at all), so a frame costs one ``invoke()`` plus a few memcpys, not 44
``set_tensor``/``get_tensor`` round trips through Python.

Never hold a numpy view of an interpreter buffer across ``invoke()``: the
interpreter refuses to run while one exists. Views are taken, used and dropped
inside one method.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge import runtime
from edge.errors import EdgeError
from edge.labels import read_labels
from edge.prediction import softmax, top_k  # noqa: F401  (kept importable from here)
from edge.preprocess import InputSpec, Preprocessor

logger = logging.getLogger(__name__)

HEAD_POOL_SUM = "state_head_pool_buffer"
HEAD_POOL_COUNT = "state_head_pool_frame_count"
SIGNATURE = "serving_default"


@dataclass(frozen=True)
class StateSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    zero_point: int
    input_index: int
    output_index: int

    @property
    def in_place(self) -> bool:
        """The converter made input and output one tensor: invoke() already updates it."""
        return self.input_index == self.output_index


@dataclass
class StageTimes:
    """Seconds spent in each stage of the last step."""

    preprocess: float = 0.0
    invoke: float = 0.0
    state_copy: float = 0.0


def load_labels(path: str | os.PathLike[str] | None, count: int, model_path: str | os.PathLike[str] = "model") -> list[str]:
    """The label file's lines; it must have exactly one line per logit."""
    if path is None:
        return [f"class_{i}" for i in range(count)]
    labels = read_labels(path)
    if len(labels) != count:
        raise EdgeError(
            f"label file {path} has {len(labels)} labels but model {Path(model_path).name} has {count} outputs: "
            "use the label file made for this model (one class a line, in logit order)")
    return labels


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 for a moment (native libraries write there, not to Python logging)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class StreamModel:
    """A stream model with its interpreter, created once, and its recurrent state."""

    def __init__(self, path: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None,
                 threads: int = 1, preprocess: str = "resize") -> None:
        self.path = Path(path)
        self.threads = threads
        self.preprocess_mode = preprocess
        self.backend = runtime.backend()
        self._interp = self._open(self.path, threads)
        self.image, self.states, self._logits_index, self.num_classes = self._read_signature()
        self.labels = load_labels(labels, self.num_classes, self.path)
        self.labels_path = Path(labels) if labels else None
        self.preprocessor = Preprocessor(self.image, preprocess)
        self._copy = [s for s in self.states if not s.in_place]
        self._two_phase = self._outputs_alias_inputs()
        self._head = self._find_head()
        self.times = StageTimes()
        self.frames = 0  # frames since the last reset
        self.reset()

    # ------------------------------------------------------------------ loading

    def _open(self, path: Path, threads: int) -> Any:
        if not path.exists():
            raise EdgeError(f"model file {path} does not exist: run `edge models fetch a0`, or check the path")
        if path.is_dir():
            raise EdgeError(f"model path {path} is a folder, not a .tflite file")
        try:
            with path.open("rb") as f:
                head = f.read(8)
        except OSError as err:
            raise EdgeError(f"cannot read model file {path}: {err.strerror}") from None
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise EdgeError(f"model file {path} is not a TFLite model (no TFL3 header): re-download it with `edge models fetch`")
        try:
            with _quiet_stderr():  # the C++ runtime prints "Created TensorFlow Lite XNNPACK delegate" there
                interp = self.backend.interpreter(model_path=str(path), num_threads=threads)
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdgeError(f"model file {path} could not be loaded ({first}): it may be truncated or corrupt, "
                            "re-download it with `edge models fetch`") from None
        return interp

    def _read_signature(self) -> tuple[InputSpec, list[StateSpec], int, int]:
        interp = self._interp
        sigs = interp.get_signature_list()
        if not sigs:
            raise EdgeError(f"model file {self.path} has no signature: export the stream model with a serving signature "
                            "(image + states in, logits + states out)")
        key = SIGNATURE if SIGNATURE in sigs else next(iter(sigs))
        full = interp._get_full_signature_list()[key]  # name -> tensor index, both directions
        inputs: dict[str, int] = full["inputs"]
        outputs: dict[str, int] = full["outputs"]
        details = {d["index"]: d for d in interp.get_tensor_details()}

        image_name = "image" if "image" in inputs else None
        if image_name is None:  # any 5-D input that is not a state
            for name, idx in inputs.items():
                if name not in outputs and len(details[idx]["shape"]) == 5:
                    image_name = name
                    break
        if image_name is None:
            raise EdgeError(f"model file {self.path} has no image input (inputs: {', '.join(sorted(inputs))}): "
                            "it is not a MoViNet-style stream model")
        d = details[inputs[image_name]]
        shape = tuple(int(x) for x in d["shape"])
        if len(shape) != 5 or shape[:2] != (1, 1) or shape[4] != 3:
            raise EdgeError(f"model file {self.path}: image input {image_name} has shape {list(shape)}, "
                            "expected [1, 1, height, width, 3] (a stream model sees one frame at a time)")
        scale, zp = d["quantization"]
        image = InputSpec(image_name, shape[2], shape[3], np.dtype(d["dtype"]), float(scale), int(zp))
        self._image_index = inputs[image_name]

        logits_name = "logits" if "logits" in outputs else None
        if logits_name is None:
            extra = [n for n in outputs if n not in inputs]
            if len(extra) == 1:
                logits_name = extra[0]
        if logits_name is None:
            raise EdgeError(f"model file {self.path} has no logits output (outputs: {', '.join(sorted(outputs))})")
        ld = details[outputs[logits_name]]
        num_classes = int(np.prod(ld["shape"]))

        states = []
        for name, idx in inputs.items():
            if name == image_name:
                continue
            if name not in outputs:
                raise EdgeError(f"model file {self.path}: input {name} has no output of the same name, "
                                "so it cannot be looped as a stream state")
            sd = details[idx]
            states.append(StateSpec(name, tuple(int(x) for x in sd["shape"]), np.dtype(sd["dtype"]),
                                    int(sd["quantization"][1]), idx, outputs[name]))
        return image, states, outputs[logits_name], num_classes

    def _outputs_alias_inputs(self) -> bool:
        """Does any state output share memory with another state's input?

        Then copying one output into its input could clobber an output not yet
        copied, so the loop snapshots all outputs first (two copies instead of one).
        """
        interp = self._interp
        for s in self._copy:
            for other in self.states:
                if other is not s and np.shares_memory(interp.tensor(s.output_index)(),
                                                       interp.tensor(other.input_index)()):
                    return True
        return False

    def _find_head(self) -> tuple[StateSpec, StateSpec] | None:
        by_name = {s.name: s for s in self.states}
        if HEAD_POOL_SUM in by_name and HEAD_POOL_COUNT in by_name:
            if not np.issubdtype(by_name[HEAD_POOL_SUM].dtype, np.floating):
                logger.warning("model %s: head pool %s is quantized; the capped policy cannot rescale it",
                               self.name, HEAD_POOL_SUM)
                return None
            return by_name[HEAD_POOL_SUM], by_name[HEAD_POOL_COUNT]
        return None

    # ------------------------------------------------------------------ facts

    @property
    def input_size(self) -> tuple[int, int]:
        return self.image.height, self.image.width

    @property
    def has_head_pool(self) -> bool:
        return self._head is not None

    @property
    def name(self) -> str:
        return self.path.name

    def clone(self) -> StreamModel:
        """Another interpreter on the same file, with its own state (for windowed/ensemble)."""
        return StreamModel(self.path, self.labels_path, self.threads, self.preprocess_mode)

    # ------------------------------------------------------------------ the state loop

    def reset(self) -> None:
        """Forget the past: every state back to its zero point."""
        interp = self._interp
        for s in self.states:
            interp.tensor(s.input_index)()[...] = s.zero_point
        self.frames = 0

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Feed one RGB uint8 frame (any size); returns the logits (a new float32 array)."""
        interp = self._interp
        t0 = time.perf_counter()
        self.preprocessor(frame, interp.tensor(self.image_index)())
        t1 = time.perf_counter()
        interp.invoke()
        t2 = time.perf_counter()
        if self._two_phase:
            saved = [interp.get_tensor(s.output_index) for s in self._copy]
            for s, value in zip(self._copy, saved):
                interp.tensor(s.input_index)()[...] = value
        else:
            for s in self._copy:
                interp.tensor(s.input_index)()[...] = interp.tensor(s.output_index)()
        logits = interp.get_tensor(self._logits_index).reshape(-1).astype(np.float32)
        t3 = time.perf_counter()
        self.times.preprocess, self.times.invoke, self.times.state_copy = t1 - t0, t2 - t1, t3 - t2
        self.frames += 1
        return logits

    @property
    def image_index(self) -> int:
        return self._image_index

    def invoke_only(self) -> None:
        """A bare ``invoke()`` on whatever is in the buffers (the benchmark's yardstick)."""
        self._interp.invoke()

    # ------------------------------------------------------------------ the head pool (capped policy)

    def head_frame_count(self) -> int:
        if self._head is None:
            raise EdgeError(f"model {self.name} has no head pool state ({HEAD_POOL_SUM}, {HEAD_POOL_COUNT})")
        return int(self._interp.tensor(self._head[1].input_index)().reshape(-1)[0])

    def cap_head(self, n: int) -> bool:
        """If the head pools more than n frames, rescale its sum to n frames' worth. True if it did."""
        if self._head is None:
            raise EdgeError(f"model {self.name} has no head pool state ({HEAD_POOL_SUM}, {HEAD_POOL_COUNT})")
        pool, count = self._head
        interp = self._interp
        c = int(interp.tensor(count.input_index)().reshape(-1)[0])
        if c <= n:
            return False
        buf = interp.tensor(pool.input_index)()
        buf *= np.float32(n / c)
        interp.tensor(count.input_index)()[...] = n
        return True

    def get_state(self, name: str) -> np.ndarray:
        spec = next((s for s in self.states if s.name == name), None)
        if spec is None:
            raise KeyError(name)
        return self._interp.tensor(spec.input_index)().copy()

    def close(self) -> None:
        self._interp = None
