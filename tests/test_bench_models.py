"""``edge bench --all-models`` on tiny models from a test manifest, its saved result, and the doctor check.

Behaviour only (which models, which is recommended, where the result goes); the
timings themselves are numbers for a person to read, never asserted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge import bench, cli, doctor
from edge.config import ModelConfig

RED = (255, 0, 0)


@pytest.fixture
def store(tmp_path, monkeypatch, tiny_model_path, tiny_labels_path) -> Path:
    """A manifest of three tiny models (t0, t1 installed; t2 not) and its model folder, set in the environment."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("t0", "t1"):
        shutil.copy(tiny_model_path, folder / f"{name}.tflite")
    shutil.copy(tiny_labels_path, folder / "tiny.txt")
    entry = {"url": "http://127.0.0.1:9/x", "archive": "none", "sha256": None, "input_size": [8, 8], "labels": "tiny"}
    manifest = {"models": {name: {**entry, "file": f"{name}.tflite"} for name in ("t0", "t1", "t2")},
                "labels": {"tiny": {"url": "http://127.0.0.1:9/l", "archive": "none", "file": "tiny.txt", "sha256": None}}}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setenv("EDGE_MANIFEST", str(path))
    monkeypatch.setenv("EDGE_MODEL_DIR", str(folder))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return folder


@pytest.fixture
def video(tmp_path, make_video) -> Path:
    return make_video(tmp_path / "red.mp4", RED, seconds=2.0)


def test_all_models_recommends_the_largest_under_the_limit(store, video):
    result = bench.run_all_models(ModelConfig(), video, frames=12, limit=1.0)
    assert [m["name"] for m in result["models"]] == ["t0", "t1"]  # installed ones, manifest order
    assert result["recommended"] == "t1"
    assert result["limit"] == 1.0 and result["fps"] == 5.0 and result["state_policy"] == "window"
    for m in result["models"]:
        assert m["input"] == [8, 8] and m["split"] is True
        assert m["frame_ms"] > 0 and m["budget_share"] == pytest.approx(m["frame_ms"] * 5 / 1000, abs=1e-4)


def test_nothing_recommended_when_nothing_fits(store, video):
    result = bench.run_all_models(ModelConfig(), video, frames=12, limit=1e-9)
    assert result["recommended"] is None
    assert bench.recommendation_text(result).startswith("none: even t0 uses")


def test_each_model_is_timed_with_the_configured_policy(store, video):
    result = bench.run_all_models(ModelConfig(state_policy="ema"), video, frames=12, limit=1.0)
    assert result["state_policy"] == "ema"
    for m in result["models"]:
        assert m["frame_ms"] >= m["stream_ms"] > 0


def test_one_model_bench_splits_its_ratio_into_the_backbone_and_the_work_around_it(store, video):
    r = bench.run_bench(ModelConfig(name="t0"), video, frames=12, growth_from=12)
    assert r["frames"] == 12 and r["split"]
    assert 0 < r["backbone_to_original"] < r["ratio_to_original"]  # the path holds more than its backbone invoke
    around = r["ratio_to_original"] - r["backbone_to_original"]
    assert f"= backbone invoke {r['backbone_to_original']:.3f} + the work around it {around:.3f}" in bench.format_bench(r)


def test_cli_saves_the_result_where_doctor_finds_it(store, video, tmp_path, capsys):
    assert cli.main(["bench", "--all-models", "--video", str(video), "--frames", "12", "--max-share", "1"]) == 0
    out = capsys.readouterr().out
    assert "recommended: t1: the largest installed model under 100 % of the 5 fps budget" in out
    saved = tmp_path / "cache" / "edge" / "bench.json"
    assert f"saved to {saved}" in out
    data, path = bench.load_cached()
    assert path == saved and data["recommended"] == "t1"
    check = doctor.check_model_choice()
    assert (check.status, check.what) == ("ok", "model choice")
    assert check.detail.startswith("t1 recommended: t0 ")


def test_cli_all_models_refuses_a_model_choice(store, video, capsys):
    assert cli.main(["bench", "--all-models", "--video", str(video), "--model", "t0"]) == 2
    assert "drop --model" in capsys.readouterr().err


def test_state_directory_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'state'}:{tmp_path / 'other'}")
    assert bench.cache_path() == tmp_path / "state" / "bench.json"


# --------------------------------------------------------------------------- the doctor check, on made-up results


def saved(recommended="a1", board="Raspberry Pi 5 Model B Rev 1.0", names=("a0", "a1")) -> dict:
    shares = {"a0": 0.12, "a1": 0.31, "a2": 0.74}
    return {"created": "2025-01-02T03:04:05+00:00", "board": board, "fps": 5.0, "state_policy": "window",
            "limit": 0.5, "recommended": recommended,
            "models": [{"name": n, "budget_share": shares[n]} for n in names]}


PI5 = "Raspberry Pi 5 Model B Rev 1.0"


def test_doctor_without_a_saved_result_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(bench, "SYSTEM_STATE_DIR", tmp_path / "nothing")
    check = doctor.check_model_choice()
    assert (check.status, check.detail) == ("warn", "run edge bench --all-models to get a model recommendation "
                                                    "for this board")


def test_doctor_shows_the_recommendation():
    check = doctor.check_model_choice(saved(), "/var/lib/edge/bench.json", board=PI5, installed=["a0", "a1"])
    assert check.status == "ok"
    assert check.detail == ("a1 recommended: a0 12 %, a1 31 % of the 5 fps budget with 1 thread, window policy "
                            "(bench of 2025-01-02, /var/lib/edge/bench.json)")


def test_doctor_warns_about_a_result_from_another_board():
    check = doctor.check_model_choice(saved(board="Raspberry Pi Zero 2 W Rev 1.0"), board=PI5, installed=["a0"])
    assert check.status == "warn" and "from Raspberry Pi Zero 2 W Rev 1.0, this is Raspberry Pi 5" in check.detail


def test_doctor_warns_about_models_installed_since():
    check = doctor.check_model_choice(saved(), board=PI5, installed=["a0", "a1", "a2"])
    assert check.status == "warn" and check.detail.startswith("a2 installed since the benchmark")


def test_doctor_warns_when_nothing_fits():
    check = doctor.check_model_choice(saved(recommended=None, names=("a2",)), board=PI5, installed=["a2"])
    assert check.status == "warn" and check.detail.startswith("no installed model stays under 50 % of the budget")


def test_doctor_reads_the_newest_saved_result(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps({**saved(), "created": "2024-01-01T00:00:00+00:00"}))
    new.write_text(json.dumps({**saved(recommended="a0"), "created": "2025-06-01T00:00:00+00:00"}))
    (tmp_path / "junk.json").write_text("{not json")
    data, path = bench.load_cached([old, tmp_path / "junk.json", new, tmp_path / "missing.json"])
    assert (data["recommended"], path) == ("a0", new)
