"""`edge run --demo`: the real daemon on the demo clip shows predictions and an event; who gets the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO

from edge import cli, demo
from edge.config import Config
from edge.errors import EdgeError

CLIP = "demo_carving_ice.mp4"


@pytest.fixture
def demo_models(real_model, tmp_path) -> Path:
    """A model folder with the real A0 model, its labels and the demo clip (linked), or skip."""
    model, labels = real_model
    clip = next((d / CLIP for d in (model.parent, REPO.parent / "shared" / "models") if (d / CLIP).is_file()), None)
    if clip is None:
        pytest.skip(f"demo clip {CLIP} not installed: edge models fetch demo")
    folder = tmp_path / "models"
    folder.mkdir()
    for f in (model, labels, clip):
        (folder / f.name).symlink_to(f)
    return folder


def test_edge_run_demo_prints_predictions_and_an_event(demo_models, tmp_path):
    env = {**os.environ, "EDGE_MODEL_DIR": str(demo_models), "TMPDIR": str(tmp_path)}
    env.pop("INVOCATION_ID", None)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--demo", "-c", str(REPO / "config.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "EVENT carving start" in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(60), "no event within 60 s:\n" + "".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        reader.join(10)
    text = "".join(lines)
    assert code == 0, text
    assert "demo: " in text and "overlay snapshot" in text
    predictions = [line for line in lines if "carving ice" in line and "EVENT" not in line]
    assert predictions, text
    assert (tmp_path / "edge-demo" / "edge-demo.jpg").is_file()
    assert "Traceback" not in text


@pytest.mark.parametrize("environ, tty, expected", [
    ({}, True, True),
    ({}, False, False),  # piped or redirected: a script, not a person
    ({"INVOCATION_ID": "abc"}, True, False),  # systemd started it
    ({"NOTIFY_SOCKET": "/run/systemd/notify"}, True, False),
])
def test_only_a_person_at_a_terminal_gets_the_demo(environ, tty, expected):
    class Stdin:
        def isatty(self) -> bool:
            return tty

    assert demo.interactive(Stdin(), environ) is expected


def test_an_interactive_run_without_a_camera_plays_the_demo(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(demo, "interactive", lambda: True)
    monkeypatch.setattr(demo, "no_camera", lambda cfg: "no camera found, tried: picamera2 (x); v4l2 (y)")
    monkeypatch.setattr(demo, "run", lambda cfg, path, overrides: calls.append(cfg) or 0)
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  name: a0\n")
    assert cli.main(["run", "-c", str(config)]) == 0
    assert len(calls) == 1


def test_the_service_never_plays_the_demo(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "interactive", lambda: False)
    monkeypatch.setattr(demo, "run", lambda *a: pytest.fail("the demo ran under systemd"))
    monkeypatch.setattr(demo, "no_camera", lambda cfg: pytest.fail("probed for the demo under systemd"))

    class Stop(Exception):
        pass

    def daemon_run(self):
        raise Stop

    monkeypatch.setattr("edge.daemon.Daemon.run", daemon_run)
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  name: a0\n")
    with pytest.raises(Stop):
        cli.main(["run", "-c", str(config)])


def test_no_camera_is_asked_only_for_an_auto_source():
    cfg = Config()
    cfg.source.kind, cfg.source.spec = "file", "clip.mp4"
    assert demo.no_camera(cfg) is None


def test_a_missing_clip_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path))
    with pytest.raises(EdgeError, match="edge models fetch demo"):
        demo.clip_path()


def test_the_demo_config_plays_the_clip_in_a_loop_with_a_rule_on_its_action(demo_models, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(demo_models))
    cfg = demo.demo_config(Config(), tmp_path)
    assert (cfg.source.kind, cfg.source.loop) == ("file", True) and cfg.source.spec.endswith(CLIP)
    assert [r.labels for r in cfg.watch] == [["carving ice"]]
    assert [s.type for s in cfg.sinks] == ["log", "overlay"] and cfg.sinks[1].display == "snapshot"
