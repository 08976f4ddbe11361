"""A watch rule on a learned class whose head file (model.head) vanished: that rule is left out, inactive, with one
warning naming the rule, its labels and the head file; the daemon starts, check-config warns and exits 0, and a
reload with the head back brings the rule back. A label unknown for any other reason (a typo, with the head there
or with none configured) is still the one-line exit-2 error it was."""

from __future__ import annotations

import json
import logging

import pytest
from test_learn import _colour_frames, tiny_head

from edge import cli, config
from edge.capture.fake import FakeSource
from edge.config import WatchRule
from edge.daemon import Daemon
from edge.errors import EdgeError
from edge.service import Notifier
from edge.smoothing import RuleTracker

LABELS = ["red", "green", "blue", "previous", "none"]  # the tiny fixture model's


def rule(name, *labels):
    return WatchRule(name=name, labels=list(labels), enter=0.5, exit=0.3)


# --------------------------------------------------------------------------- RuleTracker


def test_a_rule_on_labels_the_model_lacks_is_inactive_only_while_the_head_is_missing():
    rules = [rule("halt", "stop"), rule("hot", "red"), rule("both", "Red", "go")]
    tracker = RuleTracker(rules, LABELS, missing_head="/m/my.head")
    assert list(tracker.inactive) == ["halt", "both"]
    assert tracker.inactive["halt"] == (
        "watch rule 'halt' is inactive: 'stop' is not among the model's labels and the head file /m/my.head "
        "(model.head, its learned classes) does not exist: teach them again (`edge learn add`) and reload, "
        "or fix the label if it is a typo")
    assert "'go' is not among" in tracker.inactive["both"] and "'Red'" not in tracker.inactive["both"]
    assert [r.name for r in tracker.rules] == ["hot"]
    red = [0.9, 0.05, 0.05, 0.0, 0.0]
    assert tracker.scores(red) == {"hot": pytest.approx(0.9)}
    assert [(e.rule, e.phase) for e in tracker.update(0.0, red)] == [("hot", "start")]
    with pytest.raises(EdgeError, match="watch rule 'halt': label 'stop' is not a label of this model"):
        RuleTracker(rules, LABELS)  # no head missing: the same rule is the error it always was


def test_the_inactive_warning_still_suggests_a_close_model_label():
    tracker = RuleTracker([rule("r", "rde", "blu")], LABELS, missing_head="/m/my.head")
    assert "'rde', 'blu' are not among" in tracker.inactive["r"]
    assert tracker.inactive["r"].endswith("or fix the label if it is a typo "
                                          "('rde': did you mean 'red'?; 'blu': did you mean 'blue'?)")


# --------------------------------------------------------------------------- check-config


@pytest.fixture
def check(tmp_path, tiny_model_path, tiny_labels_path, capsys):
    """``check(watch, head=...)`` -> (exit code, stdout, stderr) of `edge check-config`."""

    def run(watch, head=None):
        model = {"name": str(tiny_model_path), "labels": str(tiny_labels_path)}
        if head is not None:
            model["head"] = str(head)
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps({"model": model, "watch": watch,
                                    "sinks": [{"type": "log", "path": str(tmp_path / "edge.jsonl")}]}))
        code = cli.main(["check-config", "-c", str(path)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_check_config_warns_of_a_rule_whose_head_is_missing_and_exits_0(check, tmp_path):
    gone = tmp_path / "gone.head"
    code, out, err = check([{"name": "halt", "labels": ["stop"]}, {"name": "hot", "labels": ["red"]}], head=gone)
    assert code == 0, err
    assert "rules: halt (inactive), hot;" in out
    assert f"warning: watch rule 'halt' is inactive: 'stop' is not among the model's labels and the head file {gone}" \
        in err


@pytest.mark.parametrize("with_head", [False, True])
def test_check_config_still_refuses_a_typo_with_the_head_there_or_none_configured(check, tmp_path, tiny_model_path,
                                                                                  with_head):
    head = tiny_head(tmp_path / "my.head", tiny_model_path) if with_head else None
    code, _, err = check([{"name": "hot", "labels": ["rde"]}], head=head)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1
    assert "watch rule 'hot': label 'rde' is not a label of this model (did you mean 'red'?)" in lines[0]


def test_edge_run_still_exits_2_on_a_typo_when_the_head_is_there(tmp_path, tiny_model_path, tiny_labels_path,
                                                                 capsys):
    head = tiny_head(tmp_path / "my.head", tiny_model_path)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path),
                                          "head": str(head)},
                                "watch": [{"name": "halt", "labels": ["stopp"]}],
                                "status": {"path": str(tmp_path / "status.json")}}))
    assert cli.main(["run", "-c", str(path)]) == 2
    assert "label 'stopp' is not a label of this model (did you mean 'stop'?)" in capsys.readouterr().err


# --------------------------------------------------------------------------- the daemon: start and reload


@pytest.fixture
def head_daemon(tmp_path, tiny_model_path, tiny_labels_path, recorder):
    """A daemon on red frames whose config has a head file (not written yet) and rules: halt (learned 'stop'),
    hot (the model's 'red'). ``start()`` starts it; yields (start, daemon, head path, config path, record handle)."""
    head = tmp_path / "my.head"
    data = {"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path), "head": str(head)},
            "watch": [{"name": "halt", "labels": ["stop"], "enter": 0.5, "exit": 0.3},
                      {"name": "hot", "labels": ["red"], "enter": 0.5, "exit": 0.3}],
            "sinks": [{"type": "record", "queue": 10000}], "status": {"path": str(tmp_path / "status.json")}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data))
    src = FakeSource(_colour_frames((255, 0, 0)), realtime=True, fps=5, interval=0.01, at_end="block")
    daemon = Daemon(config.load(path), notifier=Notifier(address=""), source_factory=lambda _cfg: src,
                    config_path=path)
    started = []

    def start():
        daemon.start()
        started.append(True)

    yield start, daemon, head, path, recorder
    src.abort()
    if started:
        daemon.shutdown()


def _inactive_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "is inactive" in r.getMessage()]


def test_the_daemon_starts_without_the_rule_whose_head_is_missing(head_daemon, caplog):
    start, daemon, head, _, recorder = head_daemon
    caplog.set_level(logging.INFO, logger="edge")
    start()  # before this change: EdgeError "label 'stop' is not a label of this model", a restart loop
    sink = recorder.sink
    assert sink.wait_for_events(lambda evs: any(ev.rule == "hot" and ev.phase == "start" for ev in evs))
    assert _inactive_warnings(caplog) == [
        f"watch rule 'halt' is inactive: 'stop' is not among the model's labels and the head file {head} "
        "(model.head, its learned classes) does not exist: teach them again (`edge learn add`) and reload, "
        "or fix the label if it is a typo"]
    assert "halt" not in sink.predictions[-1].scores
    snap = daemon.snapshot()
    assert [r["rule"] for r in snap["inactive_rules"]] == ["halt"]
    assert str(head) in snap["inactive_rules"][0]["why"]


def test_reload_takes_the_rule_out_when_the_head_vanishes_and_back_when_it_returns(head_daemon, tiny_model_path,
                                                                                    caplog):
    start, daemon, head, _, recorder = head_daemon
    tiny_head(head, tiny_model_path)  # stop = red, go = green
    start()
    sink = recorder.sink
    assert sink.wait_for_events(lambda evs: any(ev.rule == "halt" and ev.phase == "start" for ev in evs))
    assert daemon.snapshot()["inactive_rules"] == []

    head.unlink()  # the file vanished under a running service; a reload (for any reason) follows
    caplog.set_level(logging.INFO, logger="edge")
    assert daemon.reload() is True
    assert len(_inactive_warnings(caplog)) == 1
    assert sink.wait_for(lambda ps: len(ps[-1].probs) == 5)  # the new pipeline runs from the next frame
    assert daemon.pipeline.labels == ["red", "green", "blue", "previous", "none"]
    assert [r["rule"] for r in daemon.snapshot()["inactive_rules"]] == ["halt"]
    assert sink.wait_for_events(lambda evs: any(ev.rule == "halt" and ev.phase == "end" for ev in evs))
    assert [ev.reason for ev in sink.events if ev.rule == "halt" and ev.phase == "end"] == ["reload"]
    n = len(sink.predictions)
    assert sink.wait_for(lambda ps: len(ps) >= n + 3), "the daemon stopped after the reload"
    assert "halt" not in sink.predictions[-1].scores and "hot" in sink.predictions[-1].scores

    tiny_head(head, tiny_model_path)  # `edge learn add` again, then `systemctl reload edge`
    assert daemon.reload() is True
    assert sink.wait_for(lambda ps: len(ps[-1].probs) == 7)
    assert daemon.snapshot()["inactive_rules"] == []
    assert sink.wait_for_events(lambda evs: sum(ev.rule == "halt" and ev.phase == "start" for ev in evs) == 2)


def test_a_reload_with_a_typo_while_the_head_is_there_is_refused(head_daemon, tiny_model_path, caplog):
    start, daemon, head, path, recorder = head_daemon
    tiny_head(head, tiny_model_path)
    start()
    assert recorder.sink.wait_for(lambda ps: len(ps) >= 3)
    data = json.loads(path.read_text())
    data["watch"][0]["labels"] = ["stopp"]
    path.write_text(json.dumps(data))
    old = daemon.pipeline
    assert daemon.reload() is False
    assert "reload failed, still running the previous config: watch rule 'halt': label 'stopp'" in caplog.text
    assert daemon.pipeline is old


def test_edge_status_text_names_an_inactive_rule(head_daemon):
    from edge.status import format_status

    start, daemon, head, _, _ = head_daemon
    start()
    text = format_status(daemon.snapshot())
    line = next(x for x in text.splitlines() if x.startswith("rule "))
    assert "halt [INACTIVE]" in line and str(head) in line
