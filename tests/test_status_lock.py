"""One daemon per status path: the flock beside status.json (a unit; two real daemons: test_robustness.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge.errors import EdgeError
from edge.service import StatusLock


def test_the_lock_holds_the_pid_and_refuses_a_second_holder(tmp_path):
    first = StatusLock(tmp_path / "run" / "status.json")
    first.acquire()
    assert first.path == tmp_path / "run" / "status.json.lock"
    assert first.path.read_text() == f"{os.getpid()}\n"
    with pytest.raises(EdgeError) as err:
        StatusLock(tmp_path / "run" / "status.json").acquire()
    assert f"pid {os.getpid()}" in str(err.value) and "--status PATH" in str(err.value)
    first.release()
    first.release()  # idempotent
    again = StatusLock(tmp_path / "run" / "status.json")
    again.acquire()
    again.release()


def test_the_lock_goes_with_a_killed_process(tmp_path):
    status = tmp_path / "status.json"
    code = (f"import sys; sys.path.insert(0, {str(os.getcwd())!r}); from pathlib import Path; "
            f"from edge.service import StatusLock; StatusLock(Path({str(status)!r})).acquire(); "
            "print('locked', flush=True); sys.stdin.read()")  # holds the lock until killed (or stdin closes)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(EdgeError, match=f"pid {holder.pid}"):
            StatusLock(status).acquire()
    finally:
        holder.kill()  # SIGKILL: no chance to release
        holder.wait(10)
    after = StatusLock(status)
    after.acquire()  # the kernel let the lock go with the process
    assert status.with_name("status.json.lock").read_text() == f"{os.getpid()}\n"
    after.release()


def test_a_lock_that_cannot_be_created_names_the_way_out(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(EdgeError, match="set status.path"):
        StatusLock(tmp_path / "file" / "status.json").acquire()
