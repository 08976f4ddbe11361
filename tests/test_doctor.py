"""`edge doctor`: each check fed made-up facts, the runner, the output, the exit code."""

from __future__ import annotations

import json

import pytest

from edge import doctor
from edge.cli import main
from edge.doctor import FAIL, OK, WARN, Check
from edge.models import Row


def statuses(found) -> list[str]:
    if found is None:
        return []
    return [c.status for c in ([found] if isinstance(found, Check) else found)]


# --------------------------------------------------------------------------- known traps


@pytest.mark.parametrize("package, numpy, expected", [
    ("tflite-runtime", "2.0.1", [FAIL]),  # imports, but every Interpreter() raises: nothing can run
    ("tflite-runtime", "2.2.0", [FAIL]),
    ("tflite-runtime", "1.26.4", []),
    ("ai-edge-litert", "2.2.0", []),
    ("", "2.2.0", []),
])
def test_tflite_runtime_with_numpy_2(package, numpy, expected):
    found = doctor.check_tflite_runtime_numpy(package=package, numpy=numpy)
    assert statuses(found) == expected
    if found:
        assert "_ARRAY_API not found" in found.detail
        assert "numpy<2" in found.fix and "ai-edge-litert" in found.fix


@pytest.mark.parametrize("package, python, expected", [
    ("tflite-runtime", (3, 12, 3), [WARN]),
    ("tflite-runtime", (3, 13, 0), [WARN]),
    ("tflite-runtime", (3, 11, 2), []),
    ("ai-edge-litert", (3, 12, 3), []),
])
def test_tflite_runtime_on_new_python(package, python, expected):
    found = doctor.check_tflite_runtime_python(package=package, python=python)
    assert statuses(found) == expected
    if found:
        assert found.what == f"tflite-runtime on Python {python[0]}.{python[1]}"
        assert "no wheels" in found.detail


def test_tflite_runtime_is_slow():
    found = doctor.check_tflite_runtime_speed(package="tflite-runtime")
    assert found.status == WARN
    assert "10x slower" in found.detail
    assert "pip install ai-edge-litert" in found.fix
    assert doctor.check_tflite_runtime_speed(package="ai-edge-litert") is None


# --------------------------------------------------------------------------- basics


def test_python_version():
    assert doctor.check_python((3, 11, 2), "/usr/bin/python3") == Check(OK, "python", "3.11.2 (/usr/bin/python3)")
    old = doctor.check_python((3, 9, 2), "/usr/bin/python3")
    assert old.status == FAIL and "Bookworm" in old.fix


def test_platform():
    pi = doctor.check_platform("Linux", "aarch64", "Raspberry Pi 5 Model B Rev 1.0", "Debian GNU/Linux 12 (bookworm)")
    assert pi == Check(OK, "platform", "Linux aarch64, Raspberry Pi 5 Model B Rev 1.0, Debian GNU/Linux 12 (bookworm)")
    laptop = doctor.check_platform("Linux", "x86_64", "", "")
    assert laptop.status == OK and "not a Raspberry Pi" in laptop.detail
    pi32 = doctor.check_platform("Linux", "armv7l", "Raspberry Pi Zero 2 W Rev 1.0", "")
    assert pi32.status == WARN and "64-bit" in pi32.fix


def test_board_model_reads_device_tree(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\0")
    assert doctor.board_model(str(model)) == "Raspberry Pi Zero 2 W Rev 1.0"
    assert doctor.board_model(str(tmp_path / "missing")) == ""


def test_interpreter():
    assert doctor.check_interpreter("ai-edge-litert", "1.4.0", "") == Check(OK, "interpreter", "ai-edge-litert 1.4.0")
    broken = doctor.check_interpreter("tflite-runtime", "2.14.0", "numpy.core.multiarray failed to import")
    assert broken.status == FAIL and "does not import" in broken.detail
    none = doctor.check_interpreter("", "", "no module named ai_edge_litert")
    assert none.status == FAIL and "./install.sh" in none.fix


def test_numpy_and_opencv():
    assert doctor.check_numpy("2.1.3") == Check(OK, "numpy", "2.1.3")
    assert doctor.check_numpy("").status == FAIL
    assert doctor.check_opencv("4.10.0").status == OK
    assert "opencv-python-headless" in doctor.check_opencv("").fix


# --------------------------------------------------------------------------- models


def row(name, status, kind="model", labels="kinetics600"):
    return Row(name, kind, f"{name}.tflite", f"/m/{name}.tflite", (172, 172) if kind == "model" else None,
               status != "missing", status, None, None, labels if kind == "model" else None)


def test_models_statuses():
    rows = [row("a0", "ok"), row("a1", "mismatch"), row("a2", "recorded"),
            row("kinetics600", "ok", kind="labels")]
    found = doctor.check_models(rows=rows, directory="/m")
    assert [(c.what, c.status) for c in found] == [
        ("model a0", OK), ("model a1", FAIL), ("model a2", OK), ("labels kinetics600", OK)]
    assert found[1].fix == "edge models fetch a1 --force"


def test_models_none_installed_and_missing_labels():
    found = doctor.check_models(rows=[row("a0", "missing"), row("kinetics600", "missing", kind="labels")],
                                directory="/m")
    assert [(c.what, c.status, c.fix) for c in found] == [("models", WARN, "edge models fetch a0")]
    found = doctor.check_models(rows=[row("a0", "unknown"), row("kinetics600", "missing", kind="labels")],
                                directory="/m")
    assert [(c.what, c.status) for c in found] == [("model a0", WARN), ("labels kinetics600", WARN)]


def test_models_reads_the_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path))
    (tmp_path / "movinet_a0_stream_int8.tflite").write_bytes(b"not the real model")
    found = doctor.check_models()
    assert ("model a0", FAIL) in [(c.what, c.status) for c in found]


# --------------------------------------------------------------------------- runner and output


def test_run_collects_and_survives_a_crashing_check():
    def check_fine():
        return Check(OK, "fine", "yes")

    def check_quiet():
        return None

    def check_many():
        return [Check(WARN, "w", "x", "do y"), Check(OK, "o", "z")]

    def check_broken():
        raise RuntimeError("boom")

    results = doctor.run([check_fine, check_quiet, check_many, check_broken])
    assert [(c.what, c.status) for c in results] == [("fine", OK), ("w", WARN), ("o", OK), ("broken", FAIL)]
    assert "RuntimeError: boom" in results[-1].detail
    assert doctor.exit_code(results) == 1
    assert doctor.exit_code(results[:3]) == 0


def test_format_lines():
    text = doctor.format_checks([Check(OK, "numpy", "2.1.3", "unused"), Check(WARN, "tflite-runtime in use",
                                                                              "slow", "pip install ai-edge-litert")])
    assert text.splitlines() == [
        "ok    numpy: 2.1.3",
        "warn  tflite-runtime in use: slow",
        "      fix: pip install ai-edge-litert",
    ]


def test_cli_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path))
    code = main(["doctor", "--json"])
    checks = json.loads(capsys.readouterr().out)
    assert {"status", "what", "detail", "fix"} <= set(checks[0])
    assert [c["what"] for c in checks[:5]] == ["python", "platform", "interpreter", "numpy", "opencv"]
    assert code == (1 if any(c["status"] == FAIL for c in checks) else 0)
