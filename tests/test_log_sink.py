"""LogSink: lines, rotation, and a disk that fills up for real.

The disk-full paths use a real limit, never a mock of write(): RLIMIT_FSIZE in
a child process (SIGXFSZ ignored, so write() fails with EFBIG), and a 64 KiB
tmpfs where mounting is permitted (ENOSPC).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from edge.config import LogSinkConfig
from edge.engine import Scored
from edge.sinks import SinkRunner
from edge.sinks.base import Prediction, SinkContext
from edge.sinks.log import LogSink
from edge.smoothing import Event

REPO = Path(__file__).resolve().parent.parent


def ctx() -> SinkContext:
    return SinkContext(labels=["cook", "wash"], rules=["cook"])


def pred(i: int, event: str | None = None) -> tuple[Prediction, list[Event]]:
    """Prediction number i at t = i / 5 s; ``event`` "start"/"end" adds a cook event (with the number in reason)."""
    t = i / 5
    events = [Event(rule="cook", phase=event, t=t, score=0.9, start=t, peak=0.9, duration=0.0, reason=f"n{i}")] \
        if event else []
    top = [Scored("cook", 0.9), Scored("wash", 0.1)]
    return Prediction(t=t, wall=1_700_000_000.0 + t, seq=i, probs=np.zeros(2), top=top, smoothed=np.zeros(2),
                      smoothed_top=top), events


def send(sink, sent: tuple[Prediction, list[Event]]) -> None:
    """Deliver as the sink runner does: the frame's events, then its prediction."""
    p, evs = sent
    for ev in evs:
        sink.event(ev, p)
    sink.emit(p)


def make(path: Path, **kw) -> LogSink:
    sink = LogSink(LogSinkConfig(path=str(path), **kw), ctx())
    sink.start()
    return sink


def read_lines(path: Path) -> list[dict]:
    """Every line of the file, parsed; fails on a partial or broken line."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path} ends in a partial line: {data[-80:]!r}"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def event_numbers(lines: list[dict]) -> list[int]:
    return [int(line["reason"][1:]) for line in lines if line["kind"] == "event"]


# --------------------------------------------------------------------------- lines


def test_events_status_and_predictions_at_prediction_every(tmp_path):
    path = tmp_path / "edge.jsonl"
    sink = make(path, prediction_every=1.0)
    for i in range(11):  # 0 .. 2 s at 5 fps
        send(sink, pred(i, "start" if i == 3 else None))
    sink.close()
    sink.close()  # idempotent
    lines = read_lines(path)
    assert [line["kind"] for line in lines] == ["status", "prediction", "event", "prediction", "prediction", "status"]
    assert [line["t"] for line in lines if line["kind"] == "prediction"] == [0.0, 1.0, 2.0]
    assert lines[2]["label"] == "cook" and lines[2]["phase"] == "start"
    assert lines[1]["top"] == [{"label": "cook", "score": 0.9}, {"label": "wash", "score": 0.1}]
    assert [lines[0]["status"], lines[-1]["status"]] == ["started", "stopped"]
    assert sink.status()["lines"] == 6 and sink.status()["unwritten"] == 0 and sink.status()["writable"]


def test_appends_and_repairs_a_partial_last_line_left_by_a_crash(tmp_path):
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b'{"kind":"status","status":"started"}\n{"kind":"event","t":1.')  # power cut mid-line
    sink = make(path)
    send(sink, pred(1, "start"))
    sink.close()
    lines = read_lines(path)
    assert [line["kind"] for line in lines] == ["status", "status", "event", "prediction", "status"]


# --------------------------------------------------------------------------- rotation


def test_rotation_keeps_n_files_of_whole_lines(tmp_path):
    path = tmp_path / "edge.jsonl"
    sink = make(path, max_mb=0.001, keep=3, prediction_every=0)  # rotate at 1000 bytes
    for i in range(200):
        send(sink, pred(i, "start" if i % 10 == 0 else None))
    sink.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["edge.jsonl", "edge.jsonl.1", "edge.jsonl.2", "edge.jsonl.3"]
    assert sink.rotations > 3
    seqs = []
    for name in ["edge.jsonl.3", "edge.jsonl.2", "edge.jsonl.1", "edge.jsonl"]:  # oldest first
        f = tmp_path / name
        assert f.stat().st_size <= 1000
        lines = read_lines(f)
        assert lines
        seqs += [line["seq"] for line in lines if line["kind"] == "prediction"]
    assert seqs == list(range(seqs[0], 200))  # contiguous, newest kept, the oldest rotated away
    assert seqs[0] > 0


def test_rotation_with_keep_0_keeps_only_the_current_file(tmp_path):
    path = tmp_path / "edge.jsonl"
    sink = make(path, max_mb=0.001, keep=0, prediction_every=0)
    for i in range(50):
        send(sink, pred(i))
    sink.close()
    assert [p.name for p in tmp_path.iterdir()] == ["edge.jsonl"]
    assert path.stat().st_size <= 1000
    read_lines(path)


def test_rotation_drops_files_beyond_a_lowered_keep(tmp_path):
    path = tmp_path / "edge.jsonl"
    for n in range(1, 6):
        (tmp_path / f"edge.jsonl.{n}").write_text('{"kind":"status"}\n')
    path.write_text('{"kind":"status"}\n' * 60)  # > 1000 bytes: the first line rotates
    sink = make(path, max_mb=0.001, keep=2)
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.jsonl", "edge.jsonl.1", "edge.jsonl.2"]


# --------------------------------------------------------------------------- unwritable at start


def test_unwritable_at_start_keeps_events_and_writes_them_when_it_can(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log folder should be")
    path = blocker / "edge.jsonl"
    sink = make(path, retry_seconds=0)  # does not raise
    send(sink, pred(1, "start"))
    st = sink.status()
    assert st["writable"] is False and st["ok"] is False
    assert st["backlog"] == 2 and st["unwritten_events"] == 2 and st["unwritten_predictions"] == 1
    blocker.unlink()  # the folder can be created now
    send(sink, pred(6, "end"))
    sink.close()
    lines = read_lines(path)
    assert [(line["kind"], line.get("phase")) for line in lines] == [
        ("status", None), ("event", "start"), ("event", "end"), ("prediction", None), ("status", None)]
    st = sink.status()
    assert st["writable"] and "ok" not in st and st["backlog"] == 0 and st["lost_events"] == 0


# --------------------------------------------------------------------------- disk full, for real

CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from tests.test_log_sink import make, pred, send
    from pathlib import Path

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
    path = Path(sys.argv[1])
    sink = make(path, prediction_every=0, retry_seconds=0)
    for i in range(10):
        send(sink, pred(i, "start" if i % 2 == 0 else None))
    before = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (before + 300, hard))  # room for about 2 more lines
    for i in range(10, 40):
        send(sink, pred(i, "start" if i % 2 == 0 else None))
    full = sink.status()
    size_full = path.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space returns
    for i in range(40, 44):
        send(sink, pred(i, "start" if i % 2 == 0 else None))
    after = sink.status()
    sink.close()
    print(json.dumps({"before": before, "limit": before + 300, "size_full": size_full,
                      "full": full, "after": after}))
""")


def test_file_size_limit_efbig_counts_keeps_events_and_resumes(tmp_path):
    path = tmp_path / "edge.jsonl"
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(REPO)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    full, after = r["full"], r["after"]
    assert "EFBIG" in full["write_error"] and full["writable"] is False and full["ok"] is False
    assert full["unwritten_predictions"] > 0 and full["unwritten_events"] > 0 and full["backlog"] > 0
    assert r["size_full"] <= r["limit"]
    assert after["writable"] and after["backlog"] == 0 and after["lost_events"] == 0

    lines = read_lines(path)  # no partial line anywhere
    # every event (starts at even i) is in the file, in order: the backlog went first
    assert event_numbers(lines) == list(range(0, 44, 2))
    # the lines before the limit are intact and the predictions written are in order
    seqs = [line["seq"] for line in lines if line["kind"] == "prediction"]
    assert seqs[:10] == list(range(10)) and seqs[-4:] == [40, 41, 42, 43] and seqs == sorted(seqs)
    assert len(seqs) == 44 - full["unwritten_predictions"]
    assert [line["status"] for line in lines if line["kind"] == "status"] == ["started", "stopped"]


def fill(disk: Path) -> Path:
    """Fill the disk up completely with one file; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                if f.write(b"x" * 4096) == 0:
                    break
            except OSError:
                break
    return filler


def test_disk_full_enospc_on_a_real_tmpfs(tiny_disk):
    path = tiny_disk / "edge.jsonl"
    sink = make(path, prediction_every=0, retry_seconds=0)
    runner = SinkRunner(sink)  # only to read health() the way status.json does
    send(sink, pred(0, "start"))
    filler = fill(tiny_disk)
    i = 1
    while sink.status()["writable"] and i < 2000:  # the log's last page fills up, then ENOSPC
        send(sink, pred(i, "start" if i % 3 == 0 else None))
        i += 1
    assert not sink.status()["writable"], "the tmpfs never filled up"
    for j in range(i, i + 20):
        send(sink, pred(j, "start" if j % 3 == 0 else None))
    st = sink.status()
    assert "ENOSPC" in st["write_error"]
    assert st["unwritten_predictions"] > 0 and st["backlog"] > 0
    health = runner.health()
    assert health["ok"] is False and health["errors"] == 0  # degraded, but nothing raised
    read_lines(path)  # no partial line while full

    filler.unlink()  # space returns
    n = i + 20
    send(sink, pred(n, "start"))
    sink.close()
    lines = read_lines(path)
    assert event_numbers(lines) == [k for k in range(n + 1) if k == 0 or k % 3 == 0 or k == n]
    st = sink.status()
    assert st["writable"] and st["backlog"] == 0 and st["lost_events"] == 0


def test_backlog_is_bounded_and_counts_what_falls_out(tiny_disk):
    path = tiny_disk / "edge.jsonl"
    sink = make(path, prediction_every=3600, retry_seconds=0, backlog=5)
    filler = fill(tiny_disk)
    i = 0
    while sink.status()["writable"] and i < 2000:
        send(sink, pred(i, "start"))
        i += 1
    first_unwritten = i - 1
    for j in range(i, i + 10):
        send(sink, pred(j, "start"))
    st = sink.status()
    assert st["backlog"] == 5 and st["lost_events"] == st["unwritten_events"] - 5
    filler.unlink()
    sink.close()
    numbers = event_numbers(read_lines(path))
    # the events written before the disk filled, then the newest 5 kept in memory
    assert numbers == list(range(first_unwritten)) + list(range(i + 5, i + 10))
