"""`edge status --file` and `edge tail --file` on wrong paths and wrong JSON: one line, exit 2, never a traceback."""

from __future__ import annotations

import json

import pytest
from test_cli import edge as run
from test_cli import error_line as one_error


@pytest.mark.parametrize("content, needle", [
    ("[1, 2]", "a JSON object expected, found a list"),
    ('"text"', "found a str"),
    ("{not json", "is not JSON"),
    ('{"source": 3, "model": []}', "is not an edge status"),
    ("", "is not JSON"),
])
def test_status_on_a_file_that_is_not_a_status(capsys, tmp_path, content, needle):
    path = tmp_path / "status.json"
    path.write_text(content)
    code, out, err = run(capsys, "status", "--file", str(path))
    assert code == 2 and out == ""
    assert needle in one_error(err)


def test_status_on_a_folder_names_the_file_to_pass(capsys, tmp_path):
    code, _, err = run(capsys, "status", "--file", str(tmp_path))
    assert code == 2
    assert f"--file {tmp_path / 'status.json'}" in one_error(err)


def test_status_json_shows_an_odd_object_as_it_is(capsys, tmp_path):
    path = tmp_path / "status.json"
    path.write_text('{"source": 3}')
    code, out, _ = run(capsys, "status", "--file", str(path), "--json")
    assert code == 0 and json.loads(out) == {"source": 3}


def test_tail_on_a_folder(capsys, tmp_path):
    code, _, err = run(capsys, "tail", "--file", str(tmp_path), "--no-follow")
    assert code == 2
    assert "is a folder" in one_error(err)


def test_tail_shows_lines_that_are_not_ours_as_they_are(capsys, tmp_path):
    path = tmp_path / "edge.jsonl"
    good = {"kind": "event", "t": 1.5, "wall": "2026-12-01T10:00:00", "label": "cook", "phase": "start", "score": 0.8}
    path.write_text("\n".join(["[1, 2]", '"text"', "not json at all", '{"kind": "event", "score": "high"}',
                               json.dumps(good)]) + "\n")
    code, out, err = run(capsys, "tail", "--file", str(path), "--no-follow")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:4] == ["[1, 2]", '"text"', "not json at all", '{"kind": "event", "score": "high"}']
    assert "EVENT cook start score 0.80" in lines[4]
