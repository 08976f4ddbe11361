"""``edge eval`` on tiny synthetic datasets (solid-colour clips) with the tiny fixture model."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from edge import cli, evaluate
from edge.config import ModelConfig
from edge.engine import Engine
from edge.errors import EdgeError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def tiny_args(tiny_model_path, tiny_labels_path) -> list[str]:
    return ["--model", str(tiny_model_path), "--labels", str(tiny_labels_path)]


@pytest.fixture
def engine(tiny_model_path, tiny_labels_path) -> Engine:
    return Engine(ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path)))


def write_csv(path: Path, rows: list[tuple[str, str]], extra: bool = True) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "source"] if extra else ["file", "label"])
        for file, label in rows:
            w.writerow([file, label, "synthetic"] if extra else [file, label])
    return path


@pytest.fixture
def rgb_csv(tmp_path, make_video) -> Path:
    """red.mp4, green.mp4, blue.mp4 (2 s at 15 fps) and a labels.csv with an extra column."""
    for name, colour in (("red", RED), ("green", GREEN), ("blue", BLUE)):
        make_video(tmp_path / "clips" / f"{name}.mp4", colour)
    return write_csv(tmp_path / "labels.csv", [("clips/red.mp4", "red"), ("clips/green.mp4", "green"),
                                               ("clips/blue.mp4", "blue")])


def run_eval(args: list[str], capsys) -> tuple[int, dict, str]:
    code = cli.main(["eval", *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


# --------------------------------------------------------------------------- datasets


def test_csv_dataset(rgb_csv, tiny_args, capsys):
    code, report, err = run_eval([str(rgb_csv), *tiny_args], capsys)
    assert code == 0
    assert (report["n"], report["top1"], report["top5"]) == (3, 1.0, 1.0)
    assert report["per_class"] == {"blue": {"n": 1, "top1": 1.0, "top5": 1.0},
                                   "green": {"n": 1, "top1": 1.0, "top5": 1.0},
                                   "red": {"n": 1, "top1": 1.0, "top5": 1.0}}
    assert report["misses"] == [] and report["errors"] == []
    assert "eval 3/3" in err  # the progress bar, on stderr


def test_folder_dataset_matches_underscores_to_spaces(tmp_path, make_video, tiny_model_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("solid red\nsolid green\nsolid blue\nprevious\nnone\n")
    data = tmp_path / "data"
    make_video(data / "solid_red" / "a.mp4", RED)
    make_video(data / "solid_red" / "b.mp4", RED)
    make_video(data / "solid_blue" / "c.mp4", BLUE)
    (data / "solid_blue" / "notes.txt").write_text("not a video")
    code, report, _ = run_eval([str(data), "--model", str(tiny_model_path), "--labels", str(labels)], capsys)
    assert code == 0
    assert report["n"] == 3 and report["top1"] == 1.0
    assert report["per_class"] == {"solid_blue": {"n": 1, "top1": 1.0, "top5": 1.0},
                                   "solid_red": {"n": 2, "top1": 1.0, "top5": 1.0}}


def test_load_dataset_csv_paths_are_relative_to_the_csv(rgb_csv):
    samples = evaluate.load_dataset(rgb_csv)
    assert [(s.path, s.label) for s in samples] == [(rgb_csv.parent / "clips" / f"{c}.mp4", c)
                                                    for c in ("red", "green", "blue")]


def test_csv_without_label_column_is_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("file,class\na.mp4,red\n")
    with pytest.raises(EdgeError, match="'file' and 'label' columns"):
        evaluate.load_dataset(path)


def test_missing_dataset_is_an_error(tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        evaluate.load_dataset(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- labels


def test_unknown_labels_are_an_error_with_suggestions(tmp_path, make_video, tiny_args, capsys):
    make_video(tmp_path / "red.mp4", RED, seconds=1.0)
    path = write_csv(tmp_path / "labels.csv", [("red.mp4", "gren"), ("red.mp4", "purple"), ("red.mp4", "red")])
    code, _, err = run_eval([str(path), *tiny_args], capsys)
    assert code == 2
    assert "2 dataset label(s) the model does not know: 'gren' (did you mean 'green'?); 'purple'" in err
    assert "--label-map" in err


def test_label_map_groups(tmp_path, make_video, tiny_args, capsys):
    make_video(tmp_path / "red.mp4", RED)
    make_video(tmp_path / "blue.mp4", BLUE)
    make_video(tmp_path / "green.mp4", GREEN)
    path = write_csv(tmp_path / "labels.csv", [("red.mp4", "warm"), ("blue.mp4", "cool"), ("green.mp4", "warm")])
    groups = tmp_path / "groups.yaml"
    groups.write_text("warm: [red, previous]\ncool:\n  - green\n  - blue\n")
    code, report, _ = run_eval([str(path), *tiny_args, "--label-map", str(groups)], capsys)
    assert code == 0
    assert report["n"] == 3
    assert report["top1"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["per_class"]["cool"] == {"n": 1, "top1": 1.0, "top5": 1.0}
    assert report["per_class"]["warm"]["top1"] == 0.5
    # the green clip labelled warm: predicted green, which belongs to the cool group
    assert [(m["file"], m["label"], m["top"][0]["label"]) for m in report["misses"]] == [("green.mp4", "warm", "green")]
    assert report["confusion"] == {"classes": ["cool", "warm"], "counts": [[1, 0], [1, 1]]}


def test_label_map_with_an_unknown_model_label_is_an_error(tmp_path, make_video, tiny_args, capsys):
    make_video(tmp_path / "red.mp4", RED, seconds=1.0)
    path = write_csv(tmp_path / "labels.csv", [("red.mp4", "warm")])
    groups = tmp_path / "groups.yaml"
    groups.write_text("warm: [redd]\n")
    code, _, err = run_eval([str(path), *tiny_args, "--label-map", str(groups)], capsys)
    assert code == 2
    assert "label map names 1 label(s) the model does not know: 'redd' (did you mean 'red'?)" in err


def test_match_labels_ignores_case():
    targets = evaluate.match_labels(["Carving_Ice"], ["carving ice", "skiing"])
    assert targets == {"Carving_Ice": frozenset({"carving ice"})}


# --------------------------------------------------------------------------- misses, errors, reuse


def test_misses_list_their_top5(tmp_path, make_video, engine):
    make_video(tmp_path / "red.mp4", RED)
    samples = [evaluate.Sample(tmp_path / "red.mp4", "green", "red.mp4"),
               evaluate.Sample(tmp_path / "red.mp4", "red", "red.mp4")]
    targets = evaluate.match_labels(["green", "red"], engine.labels)
    report = evaluate.evaluate(samples, engine, targets, progress=io.StringIO())
    assert (report["n"], report["top1"], report["top5"]) == (2, 0.5, 1.0)
    (miss,) = report["misses"]
    assert miss["label"] == "green"
    assert [p["label"] for p in miss["top"]][:2] == ["red", "previous"]
    assert len(miss["top"]) == 5


def test_engine_is_reset_between_videos(tmp_path, make_video, engine):
    """The same clip after a different one scores exactly as it does alone."""
    make_video(tmp_path / "red.mp4", RED)
    make_video(tmp_path / "blue.mp4", BLUE)
    samples = [evaluate.Sample(tmp_path / f, label, f) for f, label in
               (("red.mp4", "blue"), ("blue.mp4", "red"), ("red.mp4", "blue"))]
    targets = evaluate.match_labels(["red", "blue"], engine.labels)
    report = evaluate.evaluate(samples, engine, targets, progress=io.StringIO())
    first, _, third = report["misses"]
    assert first["top"] == third["top"]


def test_unreadable_video_is_listed_not_fatal(rgb_csv, tiny_args, capsys):
    (rgb_csv.parent / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with open(rgb_csv, "a", newline="") as f:
        csv.writer(f).writerows([["clips/broken.mp4", "red", "x"], ["clips/missing.mp4", "blue", "x"]])
    code, report, _ = run_eval([str(rgb_csv), *tiny_args], capsys)
    assert code == 1  # some videos could not be read
    assert (report["n"], report["top1"]) == (3, 1.0)
    assert [(e["file"], e["label"]) for e in report["errors"]] == [("clips/broken.mp4", "red"),
                                                                    ("clips/missing.mp4", "blue")]
    assert "does not exist" in report["errors"][1]["error"]


def test_text_report(rgb_csv, tiny_args, capsys):
    assert cli.main(["eval", str(rgb_csv), *tiny_args]) == 0
    out = capsys.readouterr().out
    assert "top-1 100.0 %  (3/3)    top-5 100.0 %  (3/3)" in out
    assert "     1  100.0  100.0  red" in out


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_png_and_csv(tmp_path, make_video, tiny_args, capsys):
    import cv2

    for name, colour in (("r1", RED), ("r2", RED), ("g1", GREEN), ("b1", BLUE)):
        make_video(tmp_path / f"{name}.mp4", colour)
    # b1 is labelled green: a miss predicted blue, a class not in the dataset's labels
    path = write_csv(tmp_path / "labels.csv", [("r1.mp4", "red"), ("r2.mp4", "red"), ("g1.mp4", "green"),
                                               ("b1.mp4", "green")], extra=False)
    out = tmp_path / "out" / "confusion.png"
    out.parent.mkdir()
    code, report, _ = run_eval([str(path), *tiny_args, "--confusion", str(out)], capsys)
    assert code == 0
    assert report["confusion_png"] == str(out)
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 50 and image.shape[1] > 50
    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["true \\ predicted", "green", "red", "blue"],
                    ["green", "1", "0", "1"],
                    ["red", "0", "2", "0"],
                    ["blue", "0", "0", "0"]]


# --------------------------------------------------------------------------- the real model


@pytest.mark.realmodel
def test_real_model_on_the_shared_clips(real_model, shared_videos, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(real_model[0].parent))
    code, report, _ = run_eval([str(shared_videos / "labels.csv")], capsys)
    assert code == 0
    rows = (shared_videos / "labels.csv").read_text().strip().splitlines()[1:]
    assert report["n"] == len(rows) and not report["errors"]  # every labelled clip is classified
    # every clip's true label is among the top 5 ...
    assert all(c["top5"] == 1.0 for c in report["per_class"].values()), report["per_class"]
    # ... and the top-1 on each clip the A0 engine answers with a clear margin (putting on eyeliner is
    # a near tie with dyeing eyebrows in A0: not asserted, it may flip with another decoder)
    clear = {"carving ice", "flipping pancake", "shooting basketball", "cleaning pool"} & set(report["per_class"])
    assert clear and all(report["per_class"][c]["top1"] == 1.0 for c in clear), report["misses"]


def test_confusion_never_overwrites_the_dataset_csv(rgb_csv, tiny_args, capsys):
    before = rgb_csv.read_text()
    code = cli.main(["eval", str(rgb_csv), *tiny_args, "--confusion", str(rgb_csv.with_suffix(".png"))])
    assert code == 2
    assert "would overwrite" in capsys.readouterr().err
    assert rgb_csv.read_text() == before
    assert not rgb_csv.with_suffix(".png").exists()


def test_confusion_rewrites_its_own_csv(rgb_csv, tiny_args, tmp_path, capsys):
    out = tmp_path / "matrix"  # no suffix: .png is added
    for _ in range(2):
        assert cli.main(["eval", str(rgb_csv), *tiny_args, "--confusion", str(out)]) == 0
    assert (tmp_path / "matrix.png").is_file() and (tmp_path / "matrix.csv").is_file()
