"""``edge eval``: accuracy of the configured engine on a labelled set of videos.

A dataset is a CSV (``file,label`` columns, other columns ignored, paths relative
to the CSV's folder) or a folder of class folders (``carving_ice/clip.mp4``; an
underscore in a folder name matches a space in a model label). Every video goes
through :func:`edge.classify.classify_file`, the path ``edge classify`` takes
(5 fps by timestamp), with one Engine reset between videos, so the accuracy is
the one the camera would get from the same clips.

Dataset labels must be model labels, or be mapped to some with a label-group
file (YAML, ``dataset_label: [model label, ...]``): a video counts as correct
when its top-1 (top-5: any of its top 5) is one of its group's model labels.
A video that cannot be read is listed as an error and left out of the accuracy.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import TextIO

from edge.dataset import Sample, load_dataset  # noqa: F401  (load_dataset: the CLI reads a dataset as evaluate.load_dataset)
from edge.errors import EdgeError
from edge.labels import LabelIndex, did_you_mean

logger = logging.getLogger(__name__)

TOP = 5


# --------------------------------------------------------------------------- labels


def load_label_map(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A label-group file: ``dataset_label: [model label, ...]`` (a single string is one label)."""
    import yaml

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeError(f"label map {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EdgeError(f"cannot read label map {path}: {err}") from None
    except yaml.YAMLError as err:
        raise EdgeError(f"label map {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise EdgeError(f"label map {path} must be a mapping of dataset label -> [model label, ...]")
    groups = {}
    for key, value in data.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise EdgeError(f"label map {path}: {key!r} must map to a model label or a list of them")
        groups[str(key).strip()] = [v.strip() for v in values]
    return groups


def _find(name: str, index: LabelIndex) -> str | None:
    """The model label ``name`` means: as written, or with underscores as spaces (folder names)."""
    for candidate in (name, name.replace("_", " ")):
        i = index.find(candidate)
        if i is not None:
            return index.labels[i]
    return None


def _suggest(name: str, index: LabelIndex) -> str:
    hint = did_you_mean(index.close(name.replace("_", " ")))
    return f" ({hint})" if hint else ""


def match_labels(dataset_labels: list[str], model_labels: list[str],
                 label_map: dict[str, list[str]] | None = None) -> dict[str, frozenset[str]]:
    """For each dataset label, the model labels a correct top-1 may be; EdgeError lists the unknown ones."""
    index = LabelIndex(model_labels)
    groups = dict(label_map or {})
    targets: dict[str, frozenset[str]] = {}
    unknown, bad_targets = [], []
    for label in sorted(set(dataset_labels)):
        group = groups.get(label, groups.get(label.replace("_", " ")))
        if group is not None:
            found = []
            for target in group:
                hit = _find(target, index)
                if hit is None:
                    bad_targets.append(f"{target!r}{_suggest(target, index)}")
                else:
                    found.append(hit)
            targets[label] = frozenset(found)
            continue
        hit = _find(label, index)
        if hit is None:
            unknown.append(f"{label!r}{_suggest(label, index)}")
        else:
            targets[label] = frozenset([hit])
    if bad_targets:
        raise EdgeError(f"label map names {len(bad_targets)} label(s) the model does not know: "
                        f"{'; '.join(bad_targets)}: use the model's own label names")
    if unknown:
        raise EdgeError(f"{len(unknown)} dataset label(s) the model does not know: {'; '.join(unknown)}: "
                        "rename them, or map them to model labels with --label-map FILE "
                        "(YAML: dataset_label: [model label, ...])")
    return targets


# --------------------------------------------------------------------------- running


def evaluate(samples: list[Sample], engine, targets: dict[str, frozenset[str]], *,
             progress: TextIO | None = None, dataset: str = "") -> dict:
    """Classify every sample with ``engine`` (reset between videos); the report as a dict."""
    import cv2

    from edge.capture.base import SourceError
    from edge.classify import classify_file

    from edge.progress import progress_bar

    results, errors = [], []
    # ``eval 3/12 [####      ], clip.mp4`` on stderr: redrawn in place on a terminal, about every 10 % otherwise
    bar = progress_bar(len(samples), "eval", fmt="{desc} {n_fmt}/{total_fmt} [{bar:20}]{postfix}", stream=progress)
    try:
        for sample in samples:
            bar.set_postfix_str(sample.name, refresh=False)
            try:
                out = classify_file(str(sample.path), engine.cfg, top=TOP, engine=engine)
            except (EdgeError, SourceError, cv2.error, OSError) as err:
                logger.debug("eval: %s failed", sample.path, exc_info=True)
                errors.append({"file": sample.name, "label": sample.label, "error": str(err)})
                bar.update(1)
                continue
            want = targets[sample.label]
            top = out["top"]
            results.append({"file": sample.name, "label": sample.label, "frames": out["frames"], "top": top,
                            "top1": top[0]["label"] in want, "top5": any(p["label"] in want for p in top[:TOP]),
                            "warnings": out.get("warnings", [])})
            bar.update(1)
        bar.set_postfix_str("done", refresh=False)
    finally:
        bar.close()

    per_class: dict[str, dict] = {}
    by_class = defaultdict(list)
    for r in results:
        by_class[r["label"]].append(r)
    for label in sorted({s.label for s in samples}):
        rs = by_class.get(label, [])
        per_class[label] = {"n": len(rs), "top1": _rate(sum(r["top1"] for r in rs), len(rs)),
                            "top5": _rate(sum(r["top5"] for r in rs), len(rs))}
    n = len(results)
    return {
        "dataset": dataset,
        "model": engine.describe(),
        "n": n,
        "top1": _rate(sum(r["top1"] for r in results), n),
        "top5": _rate(sum(r["top5"] for r in results), n),
        "per_class": per_class,
        "misses": [{"file": r["file"], "label": r["label"], "top": r["top"]} for r in results if not r["top1"]],
        "errors": errors,
        "warnings": [{"file": r["file"], "warning": w} for r in results for w in r["warnings"]],
        "confusion": confusion(results, targets),
    }


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


# --------------------------------------------------------------------------- confusion matrix


def confusion(results: list[dict], targets: dict[str, frozenset[str]]) -> dict:
    """``{"classes": [...], "counts": [[...]]}``: rows the true (dataset) label, columns the predicted top-1.

    A prediction is shown in dataset-label terms where it can be (a correct one
    on the diagonal, a model label that belongs to another class's group under
    that class), else as the model label itself. Only the classes in the
    dataset plus the ones predicted appear.
    """
    owner: dict[str, str] = {}
    for label in sorted(targets):
        for target in sorted(targets[label]):
            owner.setdefault(target, label)
    pairs = []
    for r in results:
        top1 = r["top"][0]["label"]
        predicted = r["label"] if r["top1"] else owner.get(top1, top1)
        pairs.append((r["label"], predicted))
    true_classes = sorted(targets)
    extra = sorted({p for _, p in pairs} - set(true_classes))
    classes = true_classes + extra
    index = {c: i for i, c in enumerate(classes)}
    counts = [[0] * len(classes) for _ in classes]
    for (t, p), k in Counter(pairs).items():
        counts[index[t]][index[p]] += k
    return {"classes": classes, "counts": counts}


CONFUSION_HEADER = "true \\ predicted"


def confusion_paths(png: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The PNG and the CSV beside it; EdgeError before any work if they cannot or must not be written.

    The CSV shares the PNG's name, so ``--confusion labels.png`` next to a
    dataset's labels.csv would overwrite it: an existing CSV that is not a
    confusion table is never replaced.
    """
    png = Path(png).expanduser()
    if png.suffix.lower() != ".png":
        png = png.with_name(png.name + ".png")
    table = png.with_suffix(".csv")
    if not png.parent.is_dir():
        raise EdgeError(f"cannot write {png}: folder {png.parent} does not exist")
    if table.exists():
        try:
            with open(table, encoding="utf-8", errors="replace") as f:
                first = f.readline()
        except OSError:
            first = ""
        if not first.startswith(CONFUSION_HEADER):
            raise EdgeError(f"--confusion {png.name} would overwrite {table}, which is not a confusion table: "
                            "choose another name")
    return png, table


def write_confusion(matrix: dict, png: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Draw the matrix as a PNG (OpenCV) and write the same counts as a CSV beside it."""
    import cv2
    import numpy as np

    png, table = confusion_paths(png)
    classes, counts = matrix["classes"], matrix["counts"]
    n = len(classes)
    try:
        with open(table, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([CONFUSION_HEADER, *classes])
            for label, row in zip(classes, counts):
                w.writerow([label, *row])
    except OSError as err:
        raise EdgeError(f"cannot write {table}: {err.strerror or err}") from None

    font = cv2.FONT_HERSHEY_SIMPLEX
    cell = max(18, min(44, 1400 // max(1, n)))
    scale = cell / 80
    text_h = cv2.getTextSize("Ag", font, scale, 1)[0][1]
    name_w = max([cv2.getTextSize(c, font, scale, 1)[0][0] for c in classes] + [40]) + 12
    title = "rows: true label, columns: predicted top-1"
    title_h = 2 * text_h + 12
    left, top = name_w, title_h + name_w
    width = max(left + n * cell + 8, cv2.getTextSize(title, font, scale, 1)[0][0] + 16)
    img = np.full((top + n * cell + 8, width, 3), 255, np.uint8)
    cv2.putText(img, title, (8, 6 + text_h), font, scale, (0, 0, 0), 1, cv2.LINE_AA)

    # column names: written horizontally on a strip, turned 90 degrees counter-clockwise
    strip = np.full((n * cell, name_w, 3), 255, np.uint8)
    for i, label in enumerate(classes):
        cv2.putText(strip, label, (6, i * cell + (cell + text_h) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    img[title_h:title_h + name_w, left:left + n * cell] = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)

    for r, label in enumerate(classes):
        y = top + r * cell
        size = cv2.getTextSize(label, font, scale, 1)[0]
        cv2.putText(img, label, (left - size[0] - 6, y + (cell + text_h) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        total = max(1, sum(counts[r]))
        for c in range(n):
            x = left + c * cell
            k = counts[r][c]
            share = k / total
            if k and r == c:
                colour = (int(255 - 120 * share), int(255 - 50 * share), int(255 - 120 * share))  # green
            elif k:
                colour = (int(255 - 150 * share), int(255 - 150 * share), 255)  # red
            else:
                colour = (255, 255, 255)
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), (190, 190, 190), 1)
            if k:
                text = str(k)
                size = cv2.getTextSize(text, font, scale, 1)[0]
                cv2.putText(img, text, (x + (cell - size[0]) // 2, y + (cell + size[1]) // 2), font, scale,
                            (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(png), img):
        raise EdgeError(f"cannot write {png}: check that its folder exists and is writable")
    return png, table


# --------------------------------------------------------------------------- printing


def _pct(x: float | None) -> str:
    return "   - " if x is None else f"{x * 100:5.1f}"


def format_report(r: dict) -> str:
    n = r["n"]
    hits1 = round((r["top1"] or 0) * n)
    hits5 = round((r["top5"] or 0) * n)
    lines = [f"edge eval: {r['dataset']}: {n} video(s), model {r['model']}",
             f"top-1 {_pct(r['top1'])} %  ({hits1}/{n})    top-5 {_pct(r['top5'])} %  ({hits5}/{n})",
             "per class:", f"  {'n':>4}  {'top-1':>5}  {'top-5':>5}  class"]
    for label, c in r["per_class"].items():
        lines.append(f"  {c['n']:>4}  {_pct(c['top1'])}  {_pct(c['top5'])}  {label}")
    if r["misses"]:
        lines.append(f"misses ({len(r['misses'])}): true label -> top-5")
        for m in r["misses"]:
            guesses = ", ".join(f"{p['label']} {p['score']:.3f}" for p in m["top"])
            lines.append(f"  {m['file']}  ({m['label']}) -> {guesses}")
    if r["errors"]:
        lines.append(f"errors ({len(r['errors'])}): could not be read, not counted above")
        for e in r["errors"]:
            lines.append(f"  {e['file']}: {e['error']}")
    if r.get("warnings"):
        lines.append(f"warnings ({len(r['warnings'])}): counted above, but the answer rests on little")
        lines += [f"  {w['file']}: {w['warning']}" for w in r["warnings"]]
    if r.get("confusion_png"):
        lines.append(f"confusion matrix: {r['confusion_png']} (counts: {r['confusion_csv']})")
    return "\n".join(lines)
