"""The 32-bit Arm and ARMv6 paths of install.sh, and doctor's reason for the runtime.

install.sh is run for real with `uname`, `dpkg-query`, `apt-get` and the Python it
builds with replaced by small stubs on PATH, so a 32-bit board (or an ARMv6 one) is
faked on this machine; the whole 32-bit install is proven under emulation by
scripts/platform-check armhf (docs/platforms.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edge import doctor
from edge.doctor import OK, WARN

pytestmark = pytest.mark.skipif(sys.platform != "linux" or shutil.which("bash") is None,
                                reason="install.sh is a bash script for Linux")

FAKE_PYTHON = """#!/bin/bash
# answers install.sh's one-line probes as a Python $FAKE_PY with $FAKE_BITS-bit pointers would
case "$2" in
    *calcsize*) echo "$FAKE_BITS" ;;
    *'version_info[:2]'*) echo "$FAKE_PY" ;;
    *numpy*) echo "$FAKE_NUMPY" ;;
    *) exit 0 ;;
esac
"""
FAKE_UNAME = """#!/bin/sh
if [ "$1" = -m ]; then echo "$FAKE_MACHINE"; else exec /bin/uname "$@"; fi
"""
FAKE_DPKG_QUERY = """#!/bin/sh
# every package is missing unless listed in $FAKE_INSTALLED
for p in $FAKE_INSTALLED; do [ "$p" = "$3" ] && { printf installed; exit 0; }; done
exit 1
"""
FAKE_APT_GET = """#!/bin/sh
echo "$@" >> "$FAKE_APT_LOG"
exit "$FAKE_APT_EXIT"
"""


@pytest.fixture
def board(tmp_path):
    """run(machine, ...) -> (exit status, output, apt-get calls) of install.sh on a faked board."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("install.sh", "pyproject.toml"):
        shutil.copy2(REPO / name, checkout / name)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    tools = {"uname": FAKE_UNAME, "dpkg-query": FAKE_DPKG_QUERY, "apt-get": FAKE_APT_GET, "python": FAKE_PYTHON}
    for name, text in tools.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    # only what install.sh needs before it builds the venv: no real apt-get, dpkg-query or uname
    for tool in ("dirname", "tail", "head", "cat", "rm", "mktemp"):
        os.symlink(shutil.which(tool), stubs / tool)
    apt_log = tmp_path / "apt.log"

    def run(machine: str, *args: str, py: str = "3.11", bits: int = 32, numpy: str = "1.24.2",
            installed: str = "", apt: bool = True, apt_exit: int = 0) -> tuple[int, str, list[str]]:
        if not apt:
            (stubs / "apt-get").unlink(missing_ok=True)
        env = {"PATH": str(stubs), "HOME": str(tmp_path), "PYTHON": str(stubs / "python"), "FAKE_MACHINE": machine,
               "FAKE_PY": py, "FAKE_BITS": str(bits), "FAKE_NUMPY": numpy, "FAKE_INSTALLED": installed,
               "FAKE_APT_LOG": str(apt_log), "FAKE_APT_EXIT": str(apt_exit)}
        done = subprocess.run([shutil.which("bash"), str(checkout / "install.sh"), "--no-models", *args],
                              capture_output=True, text=True, env=env, timeout=60)
        calls = apt_log.read_text().splitlines() if apt_log.exists() else []
        return done.returncode, done.stdout + done.stderr, calls

    run.venv = checkout / ".venv"
    return run


def test_armv6_is_refused_before_anything_is_built(board):
    status, out, apt = board("armv6l")
    assert status == 1 and "ARMv6" in out and "Pi Zero 2 W, 3, 4 or 5" in out
    assert apt == [] and not board.venv.exists()


@pytest.mark.parametrize("machine,bits", [("armv7l", 32), ("aarch64", 32)])
def test_32_bit_arm_needs_python_3_11(board, machine, bits):
    status, out, apt = board(machine, py="3.12", bits=bits)
    assert status == 1 and "Python 3.11 only" in out and "Python 3.12" in out
    assert apt == [] and not board.venv.exists()


def test_32_bit_arm_installs_the_apt_packages(board):
    status, out, apt = board("armv7l", apt_exit=100)
    wanted = "install -y --no-install-recommends python3-numpy python3-opencv python3-yaml python3-av"
    assert apt == [wanted, "update"]  # a failed install is tried once more after `apt-get update`
    assert status == 1 and "apt-get install python3-numpy python3-opencv python3-yaml python3-av failed" in out


def test_dev_install_also_takes_pillow_from_apt(board):
    _, _, apt = board("armv7l", "--dev", installed="python3-numpy python3-opencv python3-yaml python3-av",
                      apt_exit=100)
    assert apt[0] == "install -y --no-install-recommends python3-pil"


def test_without_apt_it_prints_the_one_command_to_run(board):
    status, out, _ = board("armv7l", installed="python3-yaml", apt=False)
    assert status == 1
    assert "sudo apt-get install -y python3-numpy python3-opencv python3-av" in out


def test_numpy_2_seen_system_wide_is_refused(board):
    status, out, apt = board("armv7l", installed="python3-numpy python3-opencv python3-yaml python3-av",
                             numpy="2.1.0")
    assert apt == [] and status == 1 and "numpy 1.x" in out and "numpy 2.1.0" in out


def test_a_64_bit_board_is_left_to_the_usual_path(board):
    _, out, apt = board("aarch64", bits=64)
    assert "32-bit Arm" not in out and "ARMv6" not in out and apt == []


def test_the_32_bit_path_leaves_numpy_opencv_pyyaml_to_apt(tmp_path):
    """requirements_without drops every name it is given (the list pip installs next to tflite-runtime)."""
    script = (REPO / "install.sh").read_text()
    start = script.index("requirements_without() {")
    body = script[start:script.index("\n}\n", start) + 3]
    (tmp_path / "f.sh").write_text(f"VENV={Path(sys.executable).parent.parent}\nROOT={REPO}\nDEV=1\n{body}\n"
                                   "requirements_without ai-edge-litert numpy opencv-python-headless pyyaml av pillow\n")
    done = subprocess.run(["bash", str(tmp_path / "f.sh")], capture_output=True, text=True, timeout=60)
    names = [line.split(">")[0].split("=")[0].split(";")[0].split("<")[0].strip().lower()
             for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert "pydantic" in names and "pytest" in names
    assert not {"ai-edge-litert", "numpy", "opencv-python-headless", "pyyaml", "pillow"} & set(names)


# --------------------------------------------------------------------------- doctor: which runtime, and why


@pytest.mark.parametrize("facts,status,words", [
    ({"package": "ai-edge-litert"}, OK, "used whenever it imports"),
    ({"package": "tflite-runtime", "machine": "armv7l", "bits": 32}, OK, "only TFLite runtime for 32-bit Arm"),
    ({"package": "tflite-runtime", "machine": "aarch64", "bits": 32}, OK, "only TFLite runtime for 32-bit Arm"),
    ({"package": "tflite-runtime", "machine": "aarch64", "bits": 64, "litert": "2.3.0"}, WARN,
     "ai-edge-litert 2.3.0 is installed but does not import"),
    ({"package": "tflite-runtime", "machine": "x86_64", "bits": 64, "litert": ""}, WARN,
     "ai-edge-litert is not installed"),
])
def test_doctor_says_why_this_runtime(facts, status, words):
    check = doctor.check_runtime_choice(**facts)
    assert check.status == status and words in check.detail


def test_doctor_has_no_runtime_reason_without_a_runtime():
    assert doctor.check_runtime_choice(package="") is None
