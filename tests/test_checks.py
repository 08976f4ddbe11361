"""edge check-config checks what start would check: every broken input is one line naming its key, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from edge import cli


def edge(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and ": warning: " not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("edge: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def check(tmp_path, tiny_model_path, tiny_labels_path, capsys, monkeypatch):
    """``check(**sections)`` -> (exit code, stdout, stderr) of check-config on the tiny model plus ``sections``."""
    monkeypatch.delenv("LOGS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)

    def run(**sections):
        data = {"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                "sinks": [{"type": "log", "path": str(tmp_path / "edge.jsonl")}]}
        data.update(sections)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return edge(capsys, "check-config", "-c", str(path))

    return run


def test_a_good_config_is_ok_and_says_what_it_runs(check):
    code, out, err = check()
    assert code == 0, err
    assert ": ok (model tiny_stream" in out and "5 classes" in out and "sinks: log" in out


def test_an_empty_config_is_valid_and_says_so(tmp_path, capsys, monkeypatch, real_model):
    model, _ = real_model
    monkeypatch.setenv("EDGE_MODEL_DIR", str(model.parent))  # the default model a0, from the shared folder
    monkeypatch.chdir(tmp_path)
    for text in ("", "# nothing but a comment\n"):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        code, out, err = edge(capsys, "check-config", "-c", str(path))
        assert code == 0, err
        assert out.startswith(f"{path}: ok, empty: running every default (model ")


# --------------------------------------------------------------------------- the model and its labels


def broken_models(tmp_path: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    out = {"missing": tmp_path / "missing.tflite", "zero-byte": tmp_path / "zero.tflite",
           "random": tmp_path / "random.tflite", "truncated": tmp_path / "truncated.tflite"}
    out["zero-byte"].write_bytes(b"")
    out["random"].write_bytes(os.urandom(len(data)))
    out["truncated"].write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize("which", ["missing", "zero-byte", "random", "truncated"])
def test_a_broken_model_file_fails_with_one_line(check, tmp_path, tiny_model_path, tiny_labels_path, which):
    bad = broken_models(tmp_path, tiny_model_path)[which]
    code, out, err = check(model={"name": str(bad), "labels": str(tiny_labels_path)})
    assert code == 2 and out == ""
    line = error_line(err)
    assert "model: " in line and bad.name in line


@pytest.mark.parametrize("which", ["zero-byte", "random", "truncated"])
def test_the_real_model_broken_fails_too(check, tmp_path, real_model, which):
    model, labels = real_model
    bad = broken_models(tmp_path, model)[which]
    code, _, err = check(model={"name": str(bad), "labels": str(labels)})
    assert code == 2
    assert "model: " in error_line(err)


def test_a_label_file_one_line_short_fails(check, tmp_path, real_model):
    model, labels = real_model
    short = tmp_path / "599.txt"
    short.write_text("\n".join(labels.read_text().splitlines()[:599]) + "\n")
    code, _, err = check(model={"name": str(model), "labels": str(short)})
    assert code == 2
    line = error_line(err)
    assert "599 labels" in line and "600" in line


def test_the_real_model_splits(check, real_model):
    model, labels = real_model
    code, out, err = check(model={"name": str(model), "labels": str(labels)})
    assert code == 0, err
    assert "600 classes, splits at its head pool" in out


def test_a_model_that_cannot_split_says_it_runs_cumulative(check, monkeypatch):
    split = pytest.importorskip("edge.split")

    def refuse(data):
        raise split.NotSplittable("no head pool in this test")

    monkeypatch.setattr(split, "split", refuse)  # the loader's own split, as for a model of another shape
    monkeypatch.setattr(split, "check", lambda data: "no head pool in this test")
    code, out, err = check()
    assert code == 0, err
    assert "5 classes, will run cumulative: no head pool in this test" in out


def test_a_watch_rule_label_the_model_lacks_fails(check):
    code, _, err = check(watch=[{"name": "stop", "labels": ["redd"]}])
    assert code == 2
    assert "label 'redd' is not a label of this model (did you mean 'red'?)" in error_line(err)


# --------------------------------------------------------------------------- sink and status paths


def test_a_log_path_that_is_a_folder_fails_naming_the_key(check, tmp_path):
    code, _, err = check(sinks=[{"type": "log", "path": str(tmp_path)}])
    assert code == 2
    line = error_line(err)
    assert "sinks[0].path: " in line and "is a folder" in line


def test_a_missing_parent_fails_naming_the_key(check, tmp_path):
    code, _, err = check(sinks=[{"type": "log", "path": str(tmp_path)}, {"type": "log", "path": str(tmp_path / "no" / "x.jsonl")}])
    assert code == 2
    line = error_line(err)
    assert "sinks[0].path: " in line and "sinks[1].path: " in line and "does not exist" in line  # every problem, one line


def test_a_clip_dir_that_is_a_file_fails(check, tmp_path):
    (tmp_path / "clips").write_text("x")
    code, _, err = check(sinks=[{"type": "clip", "dir": str(tmp_path / "clips")}])
    assert code == 2
    assert "sinks[0].dir: " in error_line(err)


def test_a_clip_dir_that_does_not_exist_yet_is_fine(check, tmp_path):
    code, _, err = check(sinks=[{"type": "clip", "dir": str(tmp_path / "clips")}])
    assert code == 0, err


def test_a_status_path_in_a_missing_folder_fails(check, tmp_path):
    code, _, err = check(status={"path": str(tmp_path / "nope" / "status.json")})
    assert code == 2
    assert "status.path: " in error_line(err)


def test_relative_log_paths_are_checked_under_logs_directory(check, tmp_path, monkeypatch):
    monkeypatch.setenv("LOGS_DIRECTORY", str(tmp_path / "not-made"))
    code, _, err = check(sinks=[{"type": "log", "path": "edge.jsonl"}])
    assert code == 2
    assert str(tmp_path / "not-made") in error_line(err)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs (root ignores file modes, so a mode-0555 folder would not do)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        os.chmod(ro, 0o555)
        yield ro
        os.chmod(ro, 0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(ro)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.strip()}")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_a_log_in_a_read_only_place_fails(check, read_only_dir):
    code, _, err = check(sinks=[{"type": "log", "path": str(read_only_dir / "edge.jsonl")},
                                {"type": "clip", "dir": str(read_only_dir / "clips")}])
    assert code == 2
    line = error_line(err)
    assert "sinks[0].path: " in line and "sinks[1].dir: " in line and "read-only" in line


# --------------------------------------------------------------------------- the source


@pytest.mark.parametrize("source, needle", [
    ({"kind": "rtsp", "spec": "rtsp//cam/stream"}, "is not a stream URL"),
    ({"kind": "rtsp", "spec": "rtsp://:554/stream"}, "has no host"),
    ({"kind": "rtsp", "spec": "rtsp://cam:port/stream"}, "port that is not a number"),
    ({"kind": "rtsp"}, "no URL is given"),
    ({"kind": "file"}, "no video path"),
    ({"kind": "file", "spec": "/nonexistent/clip.mp4"}, "does not exist"),
    ({"kind": "v4l2", "spec": "/etc/hostname"}, "not a V4L2 device"),
])
def test_a_malformed_source_fails_naming_the_key(check, source, needle):
    code, _, err = check(source=source)
    assert code == 2
    line = error_line(err)
    assert "source.spec: " in line and needle in line


def test_a_file_source_that_is_not_a_video_fails(check, tmp_path):
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(os.urandom(4096))
    code, _, err = check(source={"kind": "file", "spec": str(junk)})
    assert code == 2
    assert "could not be decoded" in error_line(err)


def test_a_good_file_source_passes(check, tmp_path, make_video):
    video = make_video(tmp_path / "v.mp4", (1, 2, 3), seconds=0.5)
    code, out, err = check(source={"kind": "file", "spec": str(video)})
    assert code == 0, err


def test_an_rtsp_password_is_never_shown(check):
    code, _, err = check(source={"kind": "rtsp", "spec": "rtsp//admin:s3cret@cam/stream"})
    assert code == 2
    assert "s3cret" not in err


def test_a_camera_not_plugged_in_yet_is_a_warning_not_an_error(check):
    code, out, err = check(source={"kind": "v4l2", "spec": "/dev/video97"})
    assert code == 0, err
    assert "camera /dev/video97 is not present now (the daemon waits for it)" in err
