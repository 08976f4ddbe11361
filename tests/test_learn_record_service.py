"""`edge learn record` through a running service: the real daemon (`edge run`, a looping real clip) records
from its ring into its own state directory; the command line only writes a request and waits on files.

Waiting here is polling files another process writes, with a deadline (tests/helpers.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import edge_env, edge_run, sigterm, wait_for_file

from edge import cli, learn, learn_requests
from edge.learn import Head


@pytest.fixture(scope="module")
def service(tmp_path_factory, request):
    """A real daemon on the tiny model and a looping shared clip, with a state directory of its own.

    Yields (process, config path, status path, the daemon's state dir, tmp folder)."""
    from conftest import FIXTURES, REPO

    clip = REPO.parent / "shared" / "videos" / "cleaning_pool.mp4"
    if not clip.is_file():
        pytest.skip(f"shared clip {clip} not found")
    tmp = tmp_path_factory.mktemp("service")
    status = tmp / "run" / "status.json"
    cfg = tmp / "config.yaml"
    cfg.write_text(json.dumps({
        "model": {"name": str(FIXTURES / "tiny_stream.tflite"), "labels": str(FIXTURES / "tiny_labels.txt")},
        "source": {"kind": "file", "spec": str(clip), "loop": True},
        "status": {"path": str(status), "interval": 0.2}}), encoding="utf-8")
    state = tmp / "svc-state"
    env = {**edge_env(), "STATE_DIRECTORY": str(state)}  # the service's, not the command line's
    stderr = tmp / "stderr.txt"
    with edge_run(cfg, stderr, cwd=tmp, env=env) as proc:
        try:
            wait_for_file(proc, stderr, "ready:", timeout=30)
            assert learn_requests.folder_for(status).is_dir()
            yield proc, cfg, status, state, tmp
        finally:
            if proc.poll() is None:
                sigterm(proc, timeout=10)
    assert "Traceback" not in stderr.read_text()


def record(cfg: Path, head: Path, *extra: str) -> int:
    from conftest import FIXTURES

    return cli.main(["learn", "record", "pool", "-c", str(cfg), "--head", str(head),
                     "--model", str(FIXTURES / "tiny_stream.tflite"), *extra])


def test_record_through_the_running_service_saves_its_clips_in_its_state_dir_and_adds_them(service, capsys,
                                                                                           monkeypatch):
    proc, cfg, status, state, tmp = service
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    head = tmp / "my.head"
    assert record(cfg, head, "--seconds", "1", "--count", "2", "--countdown", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"recording through the running service (pid {proc.pid})"
    assert out[1:3] == ["clip 1/2 in 1...", "clip 1/2: recording 1 s"]
    saved = [line for line in out if ": saved " in line]
    assert len(saved) == 2 and all(str(state / "learn" / "pool") in line for line in saved)
    # the clip is the next second of the 30 fps clip, not the ring's past: about 31 frames
    frames = [int(line.split("(")[1].split()[0]) for line in saved]
    assert all(25 <= n <= 40 for n in frames), frames
    files = sorted(p.suffix for p in (state / "learn" / "pool").iterdir())
    assert files == [".jpg", ".jpg", ".mp4", ".mp4"]
    loaded = Head.load(head)
    assert loaded.classes == ["pool"] and len(loaded.examples) == 2
    assert {e.recording for e in loaded.examples} == {loaded.examples[0].recording}  # one session, one recording
    assert all(Path(e.source).parent == state / "learn" / "pool" for e in loaded.examples)
    assert list(learn_requests.folder_for(status).iterdir()) == []  # nothing left behind
    assert proc.poll() is None  # the service runs on


def test_a_second_request_while_one_records_is_refused_in_one_line(service, capsys):
    proc, cfg, status, state, tmp = service
    folder = learn_requests.folder_for(status)
    first = folder / "0000.request"  # sorts before the command line's own
    first.write_text(json.dumps({"name": "wave", "seconds": 3, "count": 1, "countdown": 1, "stem": "0000"}))
    wait_for_file(proc, folder / "0000.log", "clip 1/1 in 1...", timeout=10)
    head = tmp / "busy.head"
    assert record(cfg, head, "--seconds", "1", "--count", "1", "--countdown", "0") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["edge: error: the edge service could not record: it is recording for "
                                        "another `edge learn record` now: try again when that is done"]
    assert not head.exists()
    assert [p.name for p in folder.glob("*.taken")] == ["0000.taken"]  # the refused one leaves nothing behind
    answer = json.loads(wait_for_file(proc, folder / "0000.done", "clips", timeout=30))
    assert answer["error"] is None and Path(answer["clips"][0]).name == "0000-1.mp4"


def test_a_bad_request_file_is_answered_and_the_service_runs_on(service):
    proc, cfg, status, state, tmp = service
    folder = learn_requests.folder_for(status)
    (folder / "bad.request").write_text(json.dumps({"name": "unknown", "seconds": 1, "count": 1, "countdown": 0,
                                                    "stem": "bad"}))
    (folder / "big.request").write_text(json.dumps({"name": "x", "seconds": 1, "count": 10**6, "countdown": 0,
                                                    "stem": "big"}))
    (folder / "path.request").write_text(json.dumps({"name": "x", "seconds": 1, "count": 1, "countdown": 0,
                                                     "stem": "../../escape"}))
    assert "'unknown' is the answer" in wait_for_file(proc, folder / "bad.done", "error", timeout=10)
    assert "is not a plain file name" in wait_for_file(proc, folder / "path.done", "error", timeout=10)
    assert "count 1000000 is out of range" in wait_for_file(proc, folder / "big.done", "error", timeout=10)
    assert proc.poll() is None


def test_ctrl_c_on_the_command_line_cancels_the_recording_and_leaves_no_files(service):
    proc, cfg, status, state, tmp = service
    folder = learn_requests.folder_for(status)
    (folder / "ctrlc.request").write_text(json.dumps({"name": "x", "seconds": 60, "count": 3, "countdown": 0,
                                                      "stem": "ctrlc"}))
    wait_for_file(proc, folder / "ctrlc.log", "clip 1/3: recording 60 s", timeout=10)
    (folder / "ctrlc.cancel").touch()  # what record_through does on KeyboardInterrupt once the service took it
    for _ in range(200):  # the worker stops within a frame or two and clears its files
        if not list(folder.glob("ctrlc.*")):
            break
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
    assert list(folder.glob("ctrlc.*")) == []  # (earlier tests' answers stay: nobody collected them)
    assert not (state / "learn" / "x").exists() or not list((state / "learn" / "x").glob("ctrlc-*.mp4"))


def test_not_permitted_to_write_the_request_folder_is_one_line(service, capsys, monkeypatch):
    proc, cfg, status, state, tmp = service
    monkeypatch.setattr(learn_requests.os, "access", lambda *_a: False)  # as a user other than the service's
    assert record(cfg, tmp / "np.head") == 2
    err = capsys.readouterr().err
    assert err == (f"edge: error: not permitted to ask the edge service (pid {proc.pid}) to record "
                   f"({learn_requests.folder_for(status)} belongs to its user): run it with sudo\n")
    assert not (tmp / "np.head").exists()


def test_the_service_stopping_during_a_recording_keeps_nothing_and_says_so(service, capsys):
    """Last in this module: it stops the service."""
    proc, cfg, status, state, tmp = service
    head = tmp / "stopped.head"
    rc: list[int] = []
    worker = threading.Thread(target=lambda: rc.append(record(cfg, head, "--seconds", "60", "--count", "1",
                                                              "--countdown", "0")))
    worker.start()
    folder = learn_requests.folder_for(status)
    wait_for_file(proc, tmp / "stderr.txt", "learn record: 1 x 60 s", timeout=10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    worker.join(15)
    assert not worker.is_alive() and rc == [0]
    out = capsys.readouterr().out
    assert "the edge service is stopping after 0 of 1 clips: keeping those" in out
    assert not Head.load(head).examples
    assert not list(folder.glob("*.request"))


# --------------------------------------------------------------------------- without a daemon polling


def _fake_service(tmp_path: Path, folder: bool = True) -> tuple[Path, Path]:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"pid": 1}), encoding="utf-8")  # pid 1 is always alive: "a service"
    if folder:
        learn_requests.folder_for(status).mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"source": {"kind": "v4l2", "spec": "0"}, "status": {"path": str(status)}}))
    return status, cfg


def test_a_service_that_never_takes_the_request_times_out_in_one_line(tmp_path, capsys, monkeypatch):
    status, cfg = _fake_service(tmp_path)
    monkeypatch.setattr(learn_requests, "PICKUP_SECONDS", 0.3)
    assert record(cfg, tmp_path / "my.head", "--count", "1") == 2
    err = capsys.readouterr().err
    assert err.startswith("edge: error: timed out: the edge service did not take the request within 0.3 s")
    assert err.count("\n") == 1
    assert list(learn_requests.folder_for(status).iterdir()) == []  # the request is taken back
    assert not (tmp_path / "my.head").exists()


def test_a_service_without_a_request_folder_is_one_line_naming_the_way_out(tmp_path, capsys):
    status, cfg = _fake_service(tmp_path, folder=False)
    assert record(cfg, tmp_path / "my.head") == 2
    err = capsys.readouterr().err
    assert "the edge service (pid 1) takes no recording requests" in err and "--source" in err
    assert learn.service_pid(status) == 1
