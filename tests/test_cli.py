"""The command line: check-config, config schema, status, tail, and one-line errors for classify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from edge import cli
from edge.capture.fake import FakeSource

RED = (255, 0, 0)


def edge(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("edge: error: "), err
    return lines[0]


# --------------------------------------------------------------------------- check-config and schema


def test_check_config_accepts_the_repo_config(capsys):
    path = REPO / "config.yaml"
    if not path.is_file():
        pytest.skip("no config.yaml in the repo")
    code, out, err = edge(capsys, "check-config", "-c", str(path))
    assert code == 0, err
    assert out.startswith(f"{path}: ok (model ")


def test_check_config_names_the_broken_key_in_one_line(capsys, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"sinks": [{"type": "log", "prediction_every": -1}]}))
    code, out, err = edge(capsys, "check-config", "-c", str(path))
    assert code == 2 and out == ""
    line = error_line(err)
    assert "sinks[0].prediction_every: must be greater than or equal to 0" in line
    assert str(path) in line


@pytest.mark.parametrize("text, needle", [
    ("model: {nme: a0}\n", "model.nme: unknown key"),
    ("source: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "the top level must be a mapping"),
])
def test_check_config_other_mistakes_are_one_line_too(capsys, tmp_path, text, needle):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    code, _, err = edge(capsys, "check-config", "-c", str(path))
    assert code == 2
    assert needle in error_line(err)


def test_check_config_on_a_missing_file(capsys, tmp_path):
    code, _, err = edge(capsys, "check-config", "-c", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "does not exist" in error_line(err)


def test_config_schema_is_json_schema_of_every_section(capsys):
    code, out, _ = edge(capsys, "config", "schema")
    assert code == 0
    schema = json.loads(out)
    assert {"model", "source", "smoothing", "watch", "sinks", "status"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = edge(capsys)
    assert code == 2 and "usage: edge" in out


# --------------------------------------------------------------------------- status


@pytest.fixture
def status_file(tiny_config, recorder, tmp_path) -> Path:
    """status.json as a real (in-process) daemon leaves it after a short fake file."""
    from edge.daemon import Daemon
    from edge.service import Notifier

    cfg = tiny_config(watch=[{"name": "redness", "labels": ["red"], "enter": 0.5, "exit": 0.3}])
    src = FakeSource(((k * 0.2, RED) for k in range(10)), realtime=False, name="file:clip.mp4")
    daemon = Daemon(cfg, notifier=Notifier(address=""), source_factory=lambda _cfg: src)
    th = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    th.start()
    th.join(30)
    assert not th.is_alive()
    return Path(cfg.status.path)


def test_status_formats_a_daemons_status_file(capsys, status_file):
    code, out, err = edge(capsys, "status", "--file", str(status_file))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"edge pid {os.getpid()}, up ")
    assert lines[1].startswith("source   file:clip.mp4 [ok] ") and "10 frames, 0 reopens" in lines[1]
    assert lines[2].startswith("model    tiny_stream.tflite") and "10 inferences, 0 resets" in lines[2]
    assert lines[3].startswith("drops    ring 0, overrun 0")
    assert lines[4].startswith("ring     ") and " MB (" in lines[4]  # the ring's bytes within source.ring_mb
    assert any(line.startswith("top      red ") for line in lines)
    assert "events   none active" in lines
    assert any(line.startswith("sink     record [ok]") for line in lines)
    assert lines[-1] == f"(from {status_file})"


def test_status_json_prints_the_file_as_it_is(capsys, status_file):
    code, out, _ = edge(capsys, "status", "--json", "--file", str(status_file))
    assert code == 0
    assert json.loads(out) == json.loads(status_file.read_text())


def test_status_says_stale_when_the_daemon_stopped_updating(capsys, status_file):
    data = json.loads(status_file.read_text())
    data["updated"] -= 3600
    status_file.write_text(json.dumps(data))
    _, out, _ = edge(capsys, "status", "--file", str(status_file))
    assert "STALE: last update 60 min ago" in out.splitlines()[0]


@pytest.mark.parametrize("content, needle", [(None, "no status file found"), ("{not json", "cannot read status file")])
def test_status_errors_are_one_line(capsys, tmp_path, content, needle):
    path = tmp_path / "status.json"
    if content is not None:
        path.write_text(content)
    code, _, err = edge(capsys, "status", "--file", str(path))
    assert code == 2
    assert needle in error_line(err)


# --------------------------------------------------------------------------- tail


LOG_LINES = [
    {"t": None, "wall": "2026-01-02T10:00:00.000+00:00", "kind": "status", "status": "started"},
    {"t": 1.0, "wall": "2026-01-02T10:00:01.000+00:00", "kind": "prediction", "seq": 5,
     "top": [{"label": "carving ice", "score": 0.9}],
     "smoothed": [{"label": "carving ice", "score": 0.8}, {"label": "sawing wood", "score": 0.1}], "active": []},
    {"t": 1.4, "wall": "2026-01-02T10:00:01.400+00:00", "kind": "event", "label": "ice", "rule": "ice",
     "phase": "start", "score": 0.54, "start": 1.4, "peak": 0.54, "duration": 0.0, "reason": ""},
    {"t": 36.2, "wall": "2026-01-02T10:00:36.200+00:00", "kind": "event", "label": "ice", "rule": "ice",
     "phase": "end", "score": 0.17, "start": 1.4, "peak": 0.99, "duration": 34.8, "reason": "score"},
    {"t": None, "wall": "2026-01-02T10:00:40.000+00:00", "kind": "status", "status": "stopped"},
]


@pytest.fixture
def log_file(tmp_path) -> Path:
    path = tmp_path / "edge.jsonl"
    path.write_text("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in LOG_LINES))
    return path


def test_tail_no_follow_prints_formatted_lines(capsys, log_file):
    code, out, _ = edge(capsys, "tail", "--file", str(log_file), "--no-follow")
    assert code == 0
    assert out.splitlines() == [
        "10:00:00            status: status=started",
        "10:00:01      1.0s  carving ice 0.80; sawing wood 0.10",
        "10:00:01      1.4s  EVENT ice start score 0.54",
        "10:00:36     36.2s  EVENT ice end score 0.17 duration 34.8 s peak 0.99",
        "10:00:40            status: status=stopped",
    ]


def test_tail_events_only_and_last_n(capsys, log_file):
    _, out, _ = edge(capsys, "tail", "--file", str(log_file), "--no-follow", "--events")
    assert [line.split("  ")[-1] for line in out.splitlines()] == [
        "EVENT ice start score 0.54", "EVENT ice end score 0.17 duration 34.8 s peak 0.99"]
    _, out, _ = edge(capsys, "tail", "--file", str(log_file), "--no-follow", "-n", "1", "--raw")
    assert [json.loads(line) for line in out.splitlines()] == LOG_LINES[-1:]


def test_tail_a_missing_log_is_one_line(capsys, tmp_path):
    code, _, err = edge(capsys, "tail", "--file", str(tmp_path / "nope.jsonl"), "--no-follow")
    assert code == 2
    assert "does not exist yet" in error_line(err)


def test_tail_uses_the_log_sink_of_the_config(capsys, tmp_path, log_file):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"sinks": [{"type": "log", "path": str(log_file)}]}))
    code, out, _ = edge(capsys, "tail", "-c", str(cfg), "--no-follow", "--events")
    assert code == 0 and len(out.splitlines()) == 2


# --------------------------------------------------------------------------- classify errors, in a real process


@pytest.mark.parametrize("make, needle", [
    (lambda d: d / "missing.mp4", "does not exist"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "could not be opened"),
    (lambda d: d, "could not be opened"),  # a folder
])
def test_classify_a_bad_file_is_one_error_line_and_exit_2(tmp_path, tiny_model_path, tiny_labels_path, make, needle):
    video = make(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "edge", "classify", str(video), "--model", str(tiny_model_path),
                           "--labels", str(tiny_labels_path)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge: error: ")]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0] and str(video) in errors[0]
    assert proc.stdout == ""


def test_check_config_catches_a_misspelt_watch_label(tmp_path, tiny_model_path, tiny_labels_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"model: {{name: {tiny_model_path}, labels: {tiny_labels_path}}}\n"
                   "watch:\n  - name: stop\n    labels: [redd]\n", encoding="utf-8")
    code, out, err = edge(capsys, "check-config", "-c", str(cfg))
    assert code == 2
    assert error_line(err) == (f"edge: error: {cfg}: watch rule 'stop': label 'redd' is not a label of this model "
                               "(did you mean 'red'?)")


def test_check_config_without_the_model_fails_with_the_fix(tmp_path, monkeypatch, capsys):
    # the daemon could not start either: ExecStartPre must refuse it (tests/test_checks.py has every case)
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path / "no-models"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("watch:\n  - name: cook\n    labels: [flipping pancake]\n", encoding="utf-8")
    code, out, err = edge(capsys, "check-config", "-c", str(cfg))
    assert code == 2 and out == ""
    assert 'model a0 is not installed' in error_line(err) and "edge models fetch a0" in err
