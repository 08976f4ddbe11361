"""The split int8 backbone on tflite-runtime 2.14, the runtime 32-bit Arm (armhf) loads it with.

edge/split.py hands the backbone its int8 states and its int8 image as graph inputs (no QUANTIZE /
DEQUANTIZE at its edges). ai-edge-litert runs that in the other tests; here the same surgery output
runs on tflite-runtime 2.14 (the venv test_tflite_file builds, or this interpreter on armhf) and must
answer exactly as the whole model does on that runtime. tflite-runtime has no schema module, so the
one split uses is put beside it as edge_tflite_schema, as install.sh does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from test_tflite_file import fallback_python  # noqa: F401 - the tflite-runtime 2.14 venv fixture

from edge import split

CHECK = r"""
import json, sys
import numpy as np
from edge import runtime
from edge.model import StreamModel

cut, whole = StreamModel(sys.argv[1]), StreamModel(sys.argv[1], split=False)
rng = np.random.default_rng(7)
same_logits = []
for _ in range(5):
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    same_logits.append(bool(np.array_equal(cut.step(frame), whole.step(frame))))
streams = [s for s in cut.states if s.name.endswith("_stream_buffer")]
print(json.dumps({
    "runtime": runtime.backend().package,
    "split": cut.is_split,
    "image": str(cut.image.dtype),
    "int8_streams": sum(s.dtype == np.int8 for s in streams),
    "streams": len(streams),
    "same_logits": same_logits,
    "same_states": [s.name for s in streams if np.array_equal(cut.get_state(s.name), whole.get_state(s.name))],
    "moving_states": [s.name for s in streams if cut.get_state(s.name).any()],
}))
"""


@pytest.fixture
def schema_beside(tmp_path) -> Path:
    """A folder holding edge_tflite_schema.py (the schema module split uses here) and flatbuffers."""
    try:
        schema = split._schema()
    except split.NotSplittable as err:
        pytest.skip(str(err))
    import flatbuffers

    folder = tmp_path / "schema"
    folder.mkdir()
    (folder / "edge_tflite_schema.py").write_bytes(Path(schema.__file__).read_bytes())
    (folder / "flatbuffers").symlink_to(Path(flatbuffers.__file__).parent, target_is_directory=True)
    return folder


def test_the_int8_backbone_is_bit_exact_on_tflite_runtime(fallback_python, schema_beside, real_model):  # noqa: F811
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "EDGE_CONFIG")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(schema_beside)])
    done = subprocess.run([str(fallback_python), "-c", CHECK, str(real_model[0])], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["runtime"] == "tflite-runtime" and got["split"], got
    assert got["image"] == "int8" and got["streams"] > 0 and got["int8_streams"] == got["streams"], got
    assert all(got["same_logits"]) and len(got["same_logits"]) == 5, got
    assert len(got["same_states"]) == got["streams"] and len(got["moving_states"]) == got["streams"], got
