"""Running the real daemon in a subprocess (``python -m edge run``) for the tests that need a real process:
signals, reload, the clip in progress at SIGTERM, `edge learn record` through the service.

Waiting here is polling a file the other process writes, with a deadline (the one place a short wait loop is
used); the process is always gone when :func:`edge_run` exits, whatever the test did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import REPO


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def edge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", *args]


def edge_env() -> dict[str, str]:
    """This environment, importing edge from the checkout, with no systemd variables (not a service)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.pop("JOURNAL_STREAM", None)
    return env


@contextmanager
def edge_run(cfg: Path, stderr: Path, cwd: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """``edge run -c cfg`` in a subprocess, its stderr written to ``stderr``; killed at the end if still running."""
    with open(stderr, "w") as err:
        proc = subprocess.Popen(edge_cmd("run", "-c", str(cfg)), cwd=cwd, env=edge_env() if env is None else env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def sigterm(proc: subprocess.Popen, timeout: float) -> int:
    """Stop it as systemd does (SIGTERM); its exit code (TimeoutExpired if it does not end in ``timeout`` s)."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def wait_for_file(proc: subprocess.Popen, path: Path, needle: str, timeout: float) -> str:
    """Poll a file another process writes until it contains ``needle``; fails if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        if needle in text:
            return text
        try:
            proc.wait(timeout=0.05)  # the small wait; returns at once if the daemon died
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the daemon exited ({proc.returncode}) before {needle!r} appeared in {path.name}")
    pytest.fail(f"{needle!r} did not appear in {path} within {timeout} s")


def parse_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
