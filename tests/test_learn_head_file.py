"""The learned head file (model.head) as the service and `edge learn` share it: written atomically and durably,
changed by one `edge learn` at a time (a flock beside it, edge/pidlock.py), and a configured head file that
vanished does not stop the service starting (the model's own classes, a warning; check-config warns, exit 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REPO

from edge import cli, learn
from edge.capture.fake import FakeSource
from edge.daemon import Daemon
from edge.errors import EdgeError
from edge.learn import Example, Head
from edge.service import Notifier


def small_head(path):
    """Two classes on a made-up 4-d model; an empty config beside it (c.yaml: every default)."""
    path.with_name("c.yaml").write_text("{}\n")
    head = Head(4, "tiny", "0" * 64)
    for name, vec in (("a", [1.0, 0, 0, 0]), ("b", [0, 1.0, 0, 0])):
        for rec in ("r1", "r2"):
            head.add(name, [Example(name, f"{name}-{rec}", f"/{name}/{rec}.mp4", 0.0, 5.0)], np.array([vec]))
    return head.save(path)


@pytest.fixture
def holder(tmp_path):
    """``holder(head_path)``: another process inside learn.head_lock on that head until the test ends."""
    procs = []

    def hold(head):
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; from edge import learn\n"
                f"with learn.head_lock(Path({str(head)!r})):\n    print('locked', flush=True); sys.stdin.read()")
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait(10)


# --------------------------------------------------------------------------- written atomically and durably


def test_save_is_fsynced_and_a_failed_write_leaves_the_old_head(tmp_path, monkeypatch):
    from edge import atomic

    path = small_head(tmp_path / "my.head")
    before = path.read_bytes()
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    head = Head.load(path)
    head.remove("b")
    head.save(path)
    assert len(synced) >= 2  # the new file, then its folder (the rename)
    assert Head.load(path).classes == ["a"]

    def no_room(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", no_room)
    saved = path.read_bytes()
    with pytest.raises(EdgeError, match="cannot write head file .*No space left"):
        small_head(path)
    assert path.read_bytes() == saved != before  # the last good head, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "my.head"]  # no temp file left


# --------------------------------------------------------------------------- one `edge learn` at a time


@pytest.mark.parametrize("argv", [
    ["learn", "remove", "a"],
    ["learn", "eval", "--save"],
    ["learn", "add", "c", "clip.mp4"],
])
def test_a_second_learn_that_changes_the_head_exits_2_naming_the_holder(tmp_path, holder, capsys, argv,
                                                                        tiny_model_path):
    path = small_head(tmp_path / "my.head")
    before = path.read_bytes()
    proc = holder(path)
    extra = ["--model", str(tiny_model_path)] if argv[1] == "add" else []
    code = cli.main([*argv, "--head", str(path), "-c", str(tmp_path / "c.yaml"), *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == (f"edge: error: head file {path} is being changed by another `edge learn` (pid {proc.pid}): "
                        "let it finish, then run this again")
    assert path.read_bytes() == before


def test_reading_the_head_needs_no_lock(tmp_path, holder, capsys):
    path = small_head(tmp_path / "my.head")
    holder(path)
    assert cli.main(["learn", "list", "--head", str(path), "-c", str(tmp_path / "c.yaml")]) == 0
    assert "a: 2 examples" in capsys.readouterr().out


def test_the_lock_is_let_go_after_a_run_and_taken_by_the_next(tmp_path, capsys):
    path = small_head(tmp_path / "my.head")
    for name in ("a", "b"):  # two runs in a row in one process: the first let its lock go
        assert cli.main(["learn", "remove", name, "--head", str(path), "-c", str(tmp_path / "c.yaml")]) == 0
    assert Head.load(path).classes == []
    assert path.with_name("my.head.lock").read_text() == f"{os.getpid()}\n"


def test_a_run_that_may_wait_gets_the_lock_when_the_holder_lets_go(tmp_path, holder):
    """`edge learn record` waits for the head (its clips are recorded); the other run ends: it goes on."""
    path = tmp_path / "my.head"
    proc = holder(path)
    with pytest.raises(EdgeError, match=f"pid {proc.pid}"):
        with learn.head_lock(path):
            pass
    got = threading.Event()

    def waiter():
        with learn.head_lock(path, wait=30):
            got.set()

    th = threading.Thread(target=waiter)
    th.start()
    proc.stdin.close()  # the holder's run ends
    th.join(30)
    assert got.is_set()


# --------------------------------------------------------------------------- a configured head file that vanished


def test_the_daemon_starts_on_the_models_classes_when_the_head_file_is_gone(tmp_path, tiny_config, recorder, on_log):
    warned = on_log("does not exist: running with the model's own classes only")
    cfg = tiny_config(model={"head": str(tmp_path / "gone.head")})
    source = FakeSource([(k / 5, (255, 0, 0)) for k in range(100)], realtime=False, at_end="block")
    daemon = Daemon(cfg, notifier=Notifier(address=""), source_factory=lambda _cfg: source)
    daemon.start()
    try:
        assert recorder.sink.wait_for(lambda preds: len(preds) >= 3)
        assert warned.event.is_set()
        assert daemon.pipeline.labels == ["red", "green", "blue", "previous", "none"]
        assert recorder.sink.predictions[-1].top[0].label == "red"
    finally:
        source.abort()
        daemon.shutdown()


def test_check_config_warns_about_a_missing_head_and_exits_0(tmp_path, tiny_model_path, tiny_labels_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path),
                                          "head": str(tmp_path / "gone.head")},
                                "sinks": [{"type": "log", "path": str(tmp_path / "edge.jsonl")}]}))
    assert cli.main(["check-config", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok")
    assert f"warning: model.head: head file {tmp_path / 'gone.head'} does not exist" in err


def test_a_mistyped_head_flag_is_still_an_error(tmp_path, tiny_model_path, tiny_labels_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                               "status": {"path": str(tmp_path / "status.json")}}))
    assert cli.main(["run", "-c", str(cfg), "--head", str(tmp_path / "typo.head")]) == 2
    err = capsys.readouterr().err
    assert f"edge: error: --head: head file {tmp_path / 'typo.head'} does not exist" in err
    assert not (tmp_path / "status.json").exists()  # refused before starting anything
