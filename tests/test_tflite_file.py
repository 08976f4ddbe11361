"""A truncated or damaged .tflite is one line and exit 2, on ai-edge-litert and on tflite-runtime.

tflite-runtime 2.14 segfaults in ``Interpreter.__init__`` on a truncated file, so the
file is checked (edge.tflite_file) before any interpreter sees it. The tflite-runtime
half runs edge in a venv of its own (tflite-runtime 2.14 + numpy<2 + edge's other
requirements, edge itself from this checkout on PYTHONPATH), built once under
$EDGE_TEST_CACHE (default ~/.cache/edge-tests) and skipped with the reason when it
cannot be built.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from edge import tflite_file
from edge.errors import EdgeError
from edge.model import StreamModel

TFLITE_RUNTIME = "tflite-runtime==2.14.0"


def cut(src: Path, dest: Path, keep: int) -> Path:
    dest.write_bytes(src.read_bytes()[:keep])
    return dest


def patched(src: Path, dest: Path, at: int, value: bytes) -> Path:
    data = bytearray(src.read_bytes())
    data[at:at + len(value)] = value
    dest.write_bytes(bytes(data))
    return dest


def root(data: bytes) -> tflite_file._Table:
    view = memoryview(data)
    return tflite_file._Table(view, struct.unpack_from("<I", view, 0)[0], "model")


def field_at(table: tflite_file._Table, n: int) -> int:
    at = table._field(n, 4)
    assert at is not None, f"{table.what} has no field {n}"
    return at


# --------------------------------------------------------------------------- the walk itself


@pytest.mark.parametrize("name", ["tiny_stream.tflite", "tiny_stream_uint8.tflite", "tiny_nosig.tflite",
                                  "tiny_noimage.tflite"])
def test_complete_models_pass(fixtures_dir, name):
    counts = tflite_file.walk((fixtures_dir / name).read_bytes())
    assert counts["subgraphs"] == 1 and counts["tensors"] > 0 and counts["operators"] > 0
    tflite_file.check(fixtures_dir / name)


def test_the_real_model_passes(real_model):
    counts = tflite_file.walk(real_model[0].read_bytes())
    assert counts["tensors"] > 400 and counts["operators"] > 200


def test_every_truncation_is_caught(tiny_model_path):
    data = tiny_model_path.read_bytes()
    missed = []
    for keep in range(len(data)):
        try:
            tflite_file.walk(data[:keep])
            missed.append(keep)
        except tflite_file.Damaged:
            pass
    assert missed == []


def test_the_error_is_one_line_naming_the_file_and_the_fix(tiny_model_path, tmp_path):
    bad = cut(tiny_model_path, tmp_path / "model.tflite", tiny_model_path.stat().st_size - 100)
    with pytest.raises(EdgeError) as err:
        tflite_file.check(bad)
    text = str(err.value)
    assert "\n" not in text
    assert str(bad) in text and "truncated or damaged" in text and "edge models fetch" in text


def test_a_tensor_pointing_at_a_missing_buffer(tiny_model_path, tmp_path):
    data = tiny_model_path.read_bytes()
    tensor = root(data).tables(tflite_file.MODEL_SUBGRAPHS, "subgraph")[0].tables(tflite_file.SUBGRAPH_TENSORS, "t")[0]
    bad = patched(tiny_model_path, tmp_path / "m.tflite", field_at(tensor, tflite_file.TENSOR_BUFFER),
                  struct.pack("<I", 9999))
    with pytest.raises(EdgeError, match="buffer index is 9999, but there are only"):
        tflite_file.check(bad)


def test_buffer_data_longer_than_the_file(tiny_model_path, tmp_path):
    data = tiny_model_path.read_bytes()
    buffers = root(data).tables(tflite_file.MODEL_BUFFERS, "buffer")
    with_data = next(b for b in buffers if b.vector(tflite_file.BUFFER_DATA, 1, "")[1] > 0)
    start, _ = with_data.vector(tflite_file.BUFFER_DATA, 1, "")
    bad = patched(tiny_model_path, tmp_path / "m.tflite", start - 4, struct.pack("<I", 10**6))
    with pytest.raises(EdgeError, match="runs past the end of the file"):
        tflite_file.check(bad)


def test_an_operator_input_that_does_not_exist(tiny_model_path, tmp_path):
    data = tiny_model_path.read_bytes()
    op = root(data).tables(tflite_file.MODEL_SUBGRAPHS, "subgraph")[0].tables(tflite_file.SUBGRAPH_OPERATORS, "op")[0]
    start, length = op.vector(tflite_file.OP_INPUTS, 4, "")
    assert length > 0
    bad = patched(tiny_model_path, tmp_path / "m.tflite", start, struct.pack("<i", 5000))
    with pytest.raises(EdgeError, match="input tensor is 5000"):
        tflite_file.check(bad)


def test_constant_data_shorter_than_its_shape(tiny_model_path, tmp_path):
    data = tiny_model_path.read_bytes()
    model = root(data)
    buffers = model.tables(tflite_file.MODEL_BUFFERS, "buffer")
    tensors = model.tables(tflite_file.MODEL_SUBGRAPHS, "subgraph")[0].tables(tflite_file.SUBGRAPH_TENSORS, "t")
    const = next(t for t in tensors
                 if buffers[t.scalar(tflite_file.TENSOR_BUFFER, "I")].vector(tflite_file.BUFFER_DATA, 1, "")[1] >= 8)
    start, length = buffers[const.scalar(tflite_file.TENSOR_BUFFER, "I")].vector(tflite_file.BUFFER_DATA, 1, "")
    bad = patched(tiny_model_path, tmp_path / "m.tflite", start - 4, struct.pack("<I", length - 4))
    with pytest.raises(EdgeError, match=f"has {length - 4} bytes of data, but its shape"):
        tflite_file.check(bad)


def test_random_damage_never_escapes_as_another_exception(tiny_model_path):
    data = tiny_model_path.read_bytes()
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(2000):
        damaged = bytearray(data)
        for at in rng.integers(0, len(data), size=3):
            damaged[at] = int(rng.integers(0, 256))
        try:
            tflite_file.walk(damaged)
        except (tflite_file.Damaged, struct.error):
            caught += 1
    assert caught > 1000  # most random damage lands in offsets, lengths or indices


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        tflite_file.check(tmp_path / "nope.tflite")
    with pytest.raises(EdgeError, match="is a folder"):
        tflite_file.check(tmp_path)


def test_stream_model_refuses_a_truncated_model(tiny_model_path, tiny_labels_path, tmp_path):
    bad = cut(tiny_model_path, tmp_path / "model.tflite", tiny_model_path.stat().st_size // 2)
    with pytest.raises(EdgeError, match="truncated or damaged"):
        StreamModel(bad, tiny_labels_path)


# --------------------------------------------------------------------------- the tflite-runtime fallback, for real


@pytest.fixture(scope="module")
def fallback_python() -> Path:
    """python of a venv with tflite-runtime 2.14 and numpy<2 and no ai-edge-litert, or skip.

    This interpreter itself when it already runs tflite-runtime (32-bit Arm)."""
    from edge import runtime

    if runtime.backend().package == "tflite-runtime":
        return Path(sys.executable)
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"no tflite-runtime venv is built on {platform.machine()} (its wheels are x86_64/aarch64/armv7l)")
    base = Path(getattr(sys, "_base_executable", sys.executable))
    if sys.version_info[:2] != (3, 11):
        pytest.skip("tflite-runtime 2.14 has wheels for Python <= 3.11 only; this is "
                    f"{sys.version_info.major}.{sys.version_info.minor}")
    cache = Path(os.environ.get("EDGE_TEST_CACHE") or Path.home() / ".cache" / "edge-tests")
    venv = cache / "tflite-runtime-2.14-py311"
    python = venv / "bin" / "python"
    ready = venv / "ready"
    if not ready.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        steps = [[str(base), "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", TFLITE_RUNTIME,
                  "numpy<2", "opencv-python-headless>=4.8", "pyyaml>=6", "pydantic>=2.5"]]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            except subprocess.TimeoutExpired:
                pytest.skip(f"building the tflite-runtime venv timed out: {' '.join(step[:4])}")
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                pytest.skip(f"{TFLITE_RUNTIME} with numpy<2 could not be installed in {venv}: {tail[0]}")
        ready.write_text("ok\n")
    return python


def run_edge(python: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "EDGE_CONFIG")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([str(python), "-m", "edge", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def clip(tmp_path) -> Path:
    """A 2-s 32x32 clip of changing colours (OpenCV's own mp4v writer)."""
    import cv2

    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
    for i in range(20):
        writer.write(np.full((32, 32, 3), (i * 12) % 256, dtype=np.uint8))
    writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        pytest.skip("this OpenCV cannot write mp4v")
    return path


def test_the_fallback_venv_runs_tflite_runtime(fallback_python):
    done = run_edge(fallback_python, "doctor", "--json")
    versions = subprocess.run([str(fallback_python), "-c", "from edge import runtime; print(runtime.backend())"],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert versions.stdout.strip() == "tflite-runtime 2.14.0", versions.stderr
    assert done.returncode in (0, 1), done.stderr  # doctor itself ran (fails are this machine's, not the runtime's)


def test_the_fallback_classifies_a_complete_model(fallback_python, tiny_model_path, tiny_labels_path, clip):
    done = run_edge(fallback_python, "classify", "--json", "--model", str(tiny_model_path),
                    "--labels", str(tiny_labels_path), str(clip))
    assert done.returncode == 0, done.stderr
    assert '"top"' in done.stdout


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_the_fallback_gives_one_line_on_a_truncated_model(fallback_python, tiny_model_path, tiny_labels_path, clip,
                                                          tmp_path, keep):
    bad = cut(tiny_model_path, tmp_path / "model.tflite", int(tiny_model_path.stat().st_size * keep))
    done = run_edge(fallback_python, "classify", "--model", str(bad), "--labels", str(tiny_labels_path), str(clip))
    assert done.returncode == 2, f"exit {done.returncode} (-11 is the segfault this check prevents): {done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "truncated or damaged" in lines[0] and str(bad) in lines[0], done.stderr


def test_the_fallback_refuses_the_truncated_real_model(fallback_python, real_model, clip, tmp_path):
    bad = cut(real_model[0], tmp_path / "a0.tflite", real_model[0].stat().st_size - 4096)
    done = run_edge(fallback_python, "classify", "--model", str(bad), "--labels", str(real_model[1]), str(clip))
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr}"
    assert done.stderr.count("\n") <= 1 and "truncated or damaged" in done.stderr
