"""StreamModel: one MoViNet-style stream .tflite, its state loop and its labels.

Everything about the model is read from the file through its signature: the
image input (name, shape, dtype, quantization), every state tensor (an input
with an output of the same name), and the logits size. The state loop works on
the interpreter's own buffers: after ``invoke()`` each state output is copied
into its input (states the converter already placed in one tensor need no copy
at all), so a frame costs one ``invoke()`` plus a few memcpys, not 44
``set_tensor``/``get_tensor`` round trips through Python.

At load the model is split at its head pool (:mod:`edge.split`): a backbone
that outputs each frame's head feature and a small classifier head, so the
state policies (:mod:`edge.states`) can pool exact float features instead of
the export's int8 running sum. A model that cannot be split runs whole.

Never hold a numpy view of an interpreter buffer across ``invoke()``: the
interpreter refuses to run while one exists. Views are taken, used and dropped
inside one method. Every state input is written by ``reset()`` before the
first invoke (a fresh interpreter's buffers start as garbage).
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
from edge import split as split_model
from edge import tflite_file
from edge.errors import EdgeError
from edge.labels import read_labels
from edge.prediction import softmax, top_k  # noqa: F401  (kept importable from here)
from edge.preprocess import InputSpec, Preprocessor

logger = logging.getLogger(__name__)

HEAD_POOL_SUM = split_model.HEAD_POOL_SUM
HEAD_POOL_COUNT = split_model.HEAD_POOL_COUNT
SIGNATURE = "serving_default"


@dataclass(frozen=True)
class StateSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    zero_point: int
    input_index: int
    output_index: int
    scale: float = 0.0  # quantized states (a split int8 backbone loops its int8 tensors): real = (q - zp) * scale

    @property
    def in_place(self) -> bool:
        """The converter made input and output one tensor: invoke() already updates it."""
        return self.input_index == self.output_index


@dataclass
class StageTimes:
    """Seconds spent in each stage of the last step."""

    preprocess: float = 0.0
    invoke: float = 0.0  # the backbone (the whole model when not split)
    state_copy: float = 0.0
    head: float = 0.0  # the classifier head invoke(s)


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


def _signature_indices(interp, key: str) -> tuple[dict[str, int], dict[str, int]]:
    """A signature's inputs and outputs as name -> tensor index, in the signature's order, through the public
    SignatureRunner API (the same in ai-edge-litert and tflite-runtime 2.14; it allocates nothing)."""
    runner = interp.get_signature_runner(key)
    return ({name: d["index"] for name, d in runner.get_input_details().items()},
            {name: d["index"] for name, d in runner.get_output_details().items()})


class StreamModel:
    """A stream model: its interpreter(s), created once, and its recurrent state.

    Split (the normal case, see :mod:`edge.split`): ``advance(frame)`` runs the
    backbone and returns the frame's head feature; ``head(pooled)`` turns a
    pooled feature into logits. Whether the backbone's own head pool is looped
    (``loop_head_pool``: the original's int8 running sum, for ``cumulative``) or
    held at zero (the window/EMA policies pool the exact features themselves) is
    the policy's choice. Not split: ``advance`` returns the original logits.
    """

    def __init__(self, path: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None,
                 threads: int = 1, preprocess: str = "resize", split: bool = True) -> None:
        self.path = Path(path)
        self.threads = threads
        self.preprocess_mode = preprocess
        self.backend = runtime.backend()
        data = self._read(self.path)
        self.split_reason = "the original model was asked for" if not split else None
        halves = self._split(data) if split else None
        self._head_interp = None
        if halves:
            try:
                self._interp = self._open(halves.backbone, threads)
                self._head_interp = self._open(halves.head, threads)
            except EdgeError as err:  # our surgery made something this runtime refuses: run the original
                self.split_reason = f"the split halves did not load: {err}"
                logger.warning("model %s: %s; running it whole with the cumulative policy", self.name, self.split_reason)
                halves = None
        if not halves:
            self._data = data  # the interpreter reads these bytes: keep them alive
            self._interp = self._open(data, threads)
        self.image, self.states, out_index = self._read_signature()
        if halves:
            self._feature_index = out_index
            self._pooled_index, self._logits_index, self.num_classes = self._read_head()
            self._pooled_in = self._head_interp.tensor(self._pooled_index)  # a callable, not a view: invoke() runs
            self._pooled_shape = self._pooled_in().shape
            self.feature = np.zeros(halves.feature_size, np.float32)  # the last frame's head feature
        else:
            self._feature_index = self._pooled_index = -1
            self._logits_index = out_index
            self.num_classes = int(np.prod(self._interp.tensor(out_index)().shape))
            self.feature = None
        self.labels = load_labels(labels, self.num_classes, self.path)
        self.labels_path = Path(labels) if labels else None
        self.preprocessor = Preprocessor(self.image, preprocess)
        self._two_phase = self._outputs_alias_inputs()
        by_name = {s.name: s for s in self.states}
        self._pool = (by_name[HEAD_POOL_SUM], by_name[HEAD_POOL_COUNT]) if halves else None
        self.loop_head_pool = True
        self.times = StageTimes()
        self.frames = 0  # frames since the last reset
        self.reset()

    # ------------------------------------------------------------------ loading

    @staticmethod
    def _read(path: Path) -> bytes:
        if not path.exists():
            raise EdgeError(f"model file {path} does not exist: run `edge models fetch a0`, or check the path")
        if path.is_dir():
            raise EdgeError(f"model path {path} is a folder, not a .tflite file")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise EdgeError(f"cannot read model file {path}: {err.strerror}") from None
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise EdgeError(f"model file {path} is not a TFLite model (no TFL3 header): re-download it with `edge models fetch`")
        tflite_file.check(path, data)  # tflite-runtime segfaults on a truncated file: never let it see one
        return data

    def _split(self, data: bytes) -> split_model.SplitModel | None:
        try:
            halves = split_model.split(data)
        except split_model.NotSplittable as err:
            self.split_reason = str(err)
            logger.warning("model %s cannot be split at its head pool (%s): it runs the cumulative policy "
                           "(averages every frame since the last reset, so it follows a new scene slowly)",
                           self.name, err)
            return None
        self._halves = halves  # the interpreters read these bytes: keep them alive
        return halves

    def _open(self, data: bytes, threads: int) -> Any:
        try:
            with _quiet_stderr():  # the C++ runtime prints "Created TensorFlow Lite XNNPACK delegate" there
                interp = self.backend.interpreter(model_content=data, num_threads=threads)
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdgeError(f"model file {self.path} could not be loaded ({first}): it may be truncated or corrupt, "
                            "re-download it with `edge models fetch`") from None
        return interp

    def _read_signature(self) -> tuple[InputSpec, list[StateSpec], int]:
        """Image input, states, and the one other output (logits; head_feature for a backbone)."""
        interp = self._interp
        sigs = interp.get_signature_list()
        if not sigs:
            raise EdgeError(f"model file {self.path} has no signature: export the stream model with a serving signature "
                            "(image + states in, logits + states out)")
        key = SIGNATURE if SIGNATURE in sigs else next(iter(sigs))
        inputs, outputs = _signature_indices(interp, key)  # name -> tensor index, both directions
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

        out_name = next((n for n in (split_model.FEATURE, "logits") if n in outputs), None)
        if out_name is None:
            extra = [n for n in outputs if n not in inputs]
            if len(extra) == 1:
                out_name = extra[0]
        if out_name is None:
            raise EdgeError(f"model file {self.path} has no logits output (outputs: {', '.join(sorted(outputs))})")

        states = []
        for name, idx in inputs.items():
            if name == image_name:
                continue
            if name not in outputs:
                raise EdgeError(f"model file {self.path}: input {name} has no output of the same name, "
                                "so it cannot be looped as a stream state")
            sd = details[idx]
            scale, zero_point = sd["quantization"]
            states.append(StateSpec(name, tuple(int(x) for x in sd["shape"]), np.dtype(sd["dtype"]),
                                    int(zero_point), idx, outputs[name], float(scale)))
        return image, states, outputs[out_name]

    def _read_head(self) -> tuple[int, int, int]:
        sigs = self._head_interp.get_signature_list()
        inputs, outputs = _signature_indices(self._head_interp, SIGNATURE if SIGNATURE in sigs else next(iter(sigs)))
        pooled, logits = inputs[split_model.POOLED], outputs[split_model.LOGITS]
        return pooled, logits, int(np.prod(self._head_interp.tensor(logits)().shape))

    def _outputs_alias_inputs(self) -> bool:
        """Does any state output share memory with another state's input?

        Then copying one output into its input could clobber an output not yet
        copied, so the loop snapshots all outputs first (two copies instead of one).
        """
        interp = self._interp
        for s in self.states:
            if s.in_place:
                continue
            for other in self.states:
                if other is not s and np.shares_memory(interp.tensor(s.output_index)(),
                                                       interp.tensor(other.input_index)()):
                    return True
        return False

    # ------------------------------------------------------------------ facts

    @property
    def input_size(self) -> tuple[int, int]:
        return self.image.height, self.image.width

    @property
    def is_split(self) -> bool:
        """Backbone + head: the exact-feature policies (window, ema) can run on it."""
        return self._head_interp is not None

    @property
    def feature_size(self) -> int:
        return 0 if self.feature is None else int(self.feature.size)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def image_index(self) -> int:
        return self._image_index

    # ------------------------------------------------------------------ the state loop

    @property
    def loop_head_pool(self) -> bool:
        """Split models: True loops the backbone's head pool (the original's running sum, ``cumulative``);
        False holds it at zero every frame (the window/EMA policies pool the exact features)."""
        return self._loop_pool

    @loop_head_pool.setter
    def loop_head_pool(self, value: bool) -> None:
        self._loop_pool = bool(value) or self._pool is None
        skip = set() if self._loop_pool else {s.name for s in self._pool}
        self._copy = [s for s in self.states if not s.in_place and s.name not in skip]
        self._zero = [s for s in self.states if s.in_place and s.name in skip]

    def reset(self) -> None:
        """Forget the past: every state back to its zero point."""
        interp = self._interp
        for s in self.states:
            interp.tensor(s.input_index)()[...] = s.zero_point
        self.frames = 0

    def advance(self, frame: np.ndarray) -> np.ndarray:
        """Feed one RGB uint8 frame (any size) through the backbone and loop the states.

        Split: returns the frame's head feature (``self.feature``, float32, overwritten
        by the next call). Not split: returns the logits (a new float32 array).
        """
        interp = self._interp
        t0 = time.perf_counter()
        self.preprocessor(frame, interp.tensor(self._image_index)())
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
        for s in self._zero:
            interp.tensor(s.input_index)()[...] = s.zero_point
        if self.feature is not None:
            out = self.feature
            out[...] = interp.tensor(self._feature_index)().reshape(-1)
        else:
            out = interp.get_tensor(self._logits_index).reshape(-1).astype(np.float32)
        t3 = time.perf_counter()
        self.times.preprocess, self.times.invoke, self.times.state_copy = t1 - t0, t2 - t1, t3 - t2
        self.times.head = 0.0
        self.frames += 1
        return out

    def head(self, pooled: np.ndarray) -> np.ndarray:
        """Logits (a new float32 array) for a pooled feature (float32, ``feature_size`` values)."""
        if self._head_interp is None:
            raise EdgeError(f"model {self.name} is not split ({self.split_reason}): it has no separate head")
        t0 = time.perf_counter()
        interp = self._head_interp
        self._pooled_in()[...] = pooled.reshape(self._pooled_shape)
        interp.invoke()
        logits = interp.get_tensor(self._logits_index).reshape(-1).astype(np.float32, copy=False)
        self.times.head += time.perf_counter() - t0
        return logits

    def pool_mean(self, out: np.ndarray) -> np.ndarray:
        """The backbone's own pooled mean, SUM / count, into ``out`` (what the original model's DIV computes)."""
        pool, count = self._pool
        interp = self._interp
        n = interp.tensor(count.input_index)().reshape(-1)[0]
        np.divide(interp.tensor(pool.input_index)().reshape(-1), np.float32(n), out=out)
        return out

    def step(self, frame: np.ndarray) -> np.ndarray:
        """The original model's answer for one frame: its logits, pooling every frame since the reset."""
        if self.feature is None:
            return self.advance(frame)
        self.loop_head_pool = True
        self.advance(frame)
        return self.head(self.pool_mean(self.feature))

    def features(self, frames) -> np.ndarray:
        """Per-frame head features of ``frames`` (RGB uint8) from a reset: float32 [n, feature_size].

        The exact inputs of the window/EMA policies (``edge learn`` builds its classes
        on their window means, see :func:`edge.states.window_means`). Resets before and after.
        """
        if self.feature is None:
            raise EdgeError(f"model {self.name} is not split ({self.split_reason}): it has no per-frame feature")
        keep = self.loop_head_pool
        self.loop_head_pool = False
        self.reset()
        try:
            rows = [self.advance(f).copy() for f in frames]
        finally:
            self.reset()
            self.loop_head_pool = keep
        return np.stack(rows) if rows else np.zeros((0, self.feature_size), np.float32)

    def invoke_only(self) -> None:
        """A bare backbone ``invoke()`` on whatever is in the buffers."""
        self._interp.invoke()

    def get_state(self, name: str) -> np.ndarray:
        """A state's value as the model means it (a quantized state dequantized to float32)."""
        spec = next((s for s in self.states if s.name == name), None)
        if spec is None:
            raise KeyError(name)
        value = self._interp.tensor(spec.input_index)().copy()
        if spec.scale and np.issubdtype(spec.dtype, np.integer):
            return (value.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)
        return value

    def close(self) -> None:
        self._interp = self._head_interp = self._pooled_in = None
