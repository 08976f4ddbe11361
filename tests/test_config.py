"""The config schema: one minimal valid config, each test breaks one key and checks the error names it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from edge.config import (
    Config,
    GpioSinkConfig,
    LogSinkConfig,
    ModelConfig,
    PluginSinkConfig,
    json_schema,
    load,
    parse,
)
from edge.errors import EdgeError

REPO = Path(__file__).resolve().parent.parent

MINIMAL = {
    "model": {"name": "a0"},
    "watch": [{"name": "cook", "labels": ["flipping pancake"]}],
    "sinks": [{"type": "log"}, {"type": "gpio", "pin": 17, "rule": "cook"}],
}


def broken(mutate) -> str:
    """The one-line error of MINIMAL after ``mutate(copy)``."""
    data = copy.deepcopy(MINIMAL)
    mutate(data)
    with pytest.raises(EdgeError) as err:
        parse(data)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def setkey(*path, value):
    """A mutation that sets data[path...] = value."""
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def delkey(*path):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


def test_minimal_config_is_valid():
    config = parse(copy.deepcopy(MINIMAL))
    assert config.model.name == "a0"
    assert config.model.state_policy == "window" and config.model.window_seconds == 5.0
    assert [type(s) for s in config.sinks] == [LogSinkConfig, GpioSinkConfig]
    assert config.sinks[1].pin == 17 and config.sinks[1].rule == "cook"
    assert config.watch[0].labels == ["flipping pancake"]


def test_empty_config_gives_the_defaults():
    config = parse(None)
    assert config == Config()
    assert [s.type for s in config.sinks] == ["log"]
    assert config.watch == []


BROKEN = [
    # (mutation, substrings the error must contain)
    (setkey("sinks", 1, "pin", value=40), ["sinks[1].pin", "less than or equal to 27"]),
    (setkey("sinks", 1, "pin", value=-1), ["sinks[1].pin", "greater than or equal to 0"]),
    (setkey("sinks", 1, "pin", value="seventeen"), ["sinks[1].pin", "integer"]),
    (delkey("sinks", 1, "pin"), ["sinks[1].pin", "required"]),
    (setkey("sinks", 1, "mode", value="flash"), ["sinks[1].mode", "'on', 'pulse' or 'blink'"]),
    (setkey("sinks", 0, "queue", value=0), ["sinks[0].queue", "greater than or equal to 1"]),
    (setkey("sinks", 0, "top", value=21), ["sinks[0].top", "20"]),
    (setkey("model", "threads", value=0), ["model.threads", "greater than or equal to 1"]),
    (setkey("model", "threads", value=9), ["model.threads", "less than or equal to 8"]),
    (setkey("model", "fps", value=0), ["model.fps", "greater than 0"]),
    (setkey("model", "state_policy", value="sliding"), ["model.state_policy", "'window', 'ema' or 'cumulative'"]),
    (setkey("model", "state_policy", value="capped"), ["model.state_policy", "'capped' was removed", "use 'window'"]),
    (setkey("model", "state_policy", value="windowed"), ["model.state_policy", "'windowed' was removed", "use 'window'"]),
    (setkey("model", "cap_frames", value=25), ["cap_frames was removed", "window_seconds"]),
    (setkey("model", "window_seconds", value=0), ["model.window_seconds", "greater than 0"]),
    (setkey("model", "half_life_seconds", value=-1), ["model.half_life_seconds", "greater than 0"]),
    (setkey("model", "preprocess", value="crop"), ["model.preprocess", "'resize' or 'center-crop'"]),
    (setkey("model", "ensemble", value=["a0"]), ["model.ensemble", "at least two models"]),
    (setkey("source", value={"kind": "usb"}), ["source.kind", "'picamera2'"]),
    (setkey("source", value={"width": 8}), ["source.width", "greater than or equal to 16"]),
    (setkey("smoothing", value={"method": "median"}), ["smoothing.method", "'ema', 'window' or 'none'"]),
    (setkey("smoothing", value={"alpha": 0}), ["smoothing.alpha", "greater than 0"]),
    (setkey("smoothing", value={"alpha": 1.5}), ["smoothing.alpha", "less than or equal to 1"]),
    (setkey("smoothing", value={"window": 0}), ["smoothing.window", "greater than or equal to 1"]),
    (setkey("smoothing", value={"window": 2.5}), ["smoothing.window", "integer"]),
    (setkey("status", value={"interval": 0}), ["status.interval"]),
    (setkey("watch", 0, "enter", value=1.5), ["watch[0].enter", "less than or equal to 1"]),
    (setkey("watch", 0, "labels", value=[]), ["watch[0].labels", "at least 1 item"]),
    (delkey("watch", 0, "name"), ["watch[0].name", "required"]),
    (setkey("watch", 0, "exit", value=0.6), ["watch[0]", "exit (0.6) must be <= enter (0.3)"]),
    (setkey("sinks", 1, "rule", value="sleep"), ["sinks[1]", "unknown watch rule 'sleep'", "rules: cook"]),
    (setkey("sinks", value={"type": "log"}), ["sinks", "valid list"]),
]


@pytest.mark.parametrize("mutate, expected", BROKEN)
def test_one_broken_key(mutate, expected):
    msg = broken(mutate)
    for part in expected:
        assert part in msg, msg


def test_every_problem_is_reported():
    def mutate(data):
        data["model"]["threads"] = 0
        data["sinks"][1]["pin"] = 99
    msg = broken(mutate)
    assert "model.threads" in msg and "sinks[1].pin" in msg


def test_unknown_top_level_key():
    msg = broken(setkey("modle", value={"name": "a0"}))
    assert "modle: unknown key" in msg


def test_unknown_key_inside_a_section():
    assert "model.thread: unknown key" in broken(setkey("model", "thread", value=2))


@pytest.mark.parametrize("index, key", [(0, "pth"), (1, "pinn")])
def test_unknown_key_inside_a_sink(index, key):
    assert f"sinks[{index}].{key}: unknown key" in broken(setkey("sinks", index, key, value=3))


@pytest.fixture
def mqtt_plugin(monkeypatch):
    """Pretend a third-party package registered an `mqtt` sink in the edge.sinks group."""
    import importlib.metadata

    real = importlib.metadata.entry_points
    fake = importlib.metadata.EntryPoint("mqtt", "edge_mqtt:MqttSink", "edge.sinks")

    def entry_points(**kw):
        return [fake] if kw.get("group") == "edge.sinks" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_unknown_sink_type_is_an_error_with_a_suggestion():
    msg = broken(lambda d: d["sinks"].append({"type": "gpoi", "pin": 4}))
    assert "sinks[2].type: unknown sink type 'gpoi'" in msg
    assert "did you mean 'gpio'?" in msg


def test_sink_of_plugin_type_is_a_plugin_config(mqtt_plugin):
    data = copy.deepcopy(MINIMAL)
    data["sinks"].append({"type": "mqtt", "host": "broker.local", "topic": "edge"})
    sink = parse(data).sinks[2]
    assert isinstance(sink, PluginSinkConfig)
    assert sink.type == "mqtt"
    assert sink.model_extra == {"host": "broker.local", "topic": "edge"}
    assert sink.queue == 64


def test_plugin_sink_common_keys_are_still_checked(mqtt_plugin):
    data_msg = broken(lambda d: d["sinks"].append({"type": "mqtt", "queue": 0}))
    assert "sinks[2].queue" in data_msg


def test_sink_without_type():
    assert "sinks[2].type" in broken(lambda d: d["sinks"].append({"path": "x.jsonl"}))


def test_clip_sink_rule_must_exist():
    msg = broken(lambda d: d["sinks"].append({"type": "clip", "rules": ["cook", "nope"]}))
    assert "sinks[2]: unknown watch rule 'nope'" in msg


def test_gpio_rule_without_any_watch_rule():
    msg = broken(setkey("watch", value=[]))
    assert "sinks[1]: unknown watch rule 'cook'" in msg and "none defined" in msg


def test_duplicate_rule_names():
    msg = broken(lambda d: d["watch"].append({"name": "cook", "labels": ["frying egg"]}))
    assert "watch: rule names must be unique" in msg and "cook" in msg


def test_exit_equal_to_enter_is_allowed():
    data = copy.deepcopy(MINIMAL)
    data["watch"][0].update(enter=0.4, exit=0.4)
    assert parse(data).watch[0].exit == 0.4


def test_single_label_string_becomes_a_list():
    data = copy.deepcopy(MINIMAL)
    data["watch"][0]["labels"] = "flipping pancake"
    assert parse(data).watch[0].labels == ["flipping pancake"]


def test_cli_errors_use_option_names():
    with pytest.raises(EdgeError, match="--window: must be greater than 0"):
        ModelConfig.from_cli({"window_seconds": 0}, {"window_seconds": "--window"})


@pytest.mark.parametrize("argv, message", [
    (["--cap", "25"], "edge: error: --cap was removed with the capped policy: use --state-policy window --window"),
    (["--state-policy", "capped"], "edge: error: --state-policy: 'capped' was removed: use 'window'"),
    (["--state-policy", "sliding"], "edge: error: --state-policy: must be 'window', 'ema' or 'cumulative'"),
    (["--window", "-2"], "edge: error: --window: must be greater than 0"),
    (["--half-life", "0"], "edge: error: --half-life: must be greater than 0"),
    (["--threads", "0"], "edge: error: --threads: must be greater than or equal to 1"),
    (["--ensemble", "a0"], "edge: error: --ensemble: needs at least two models"),
])
def test_classify_names_the_flag_the_user_typed(argv, message, capsys):
    from edge import cli

    assert cli.main(["classify", "clip.mp4", *argv]) == 2
    assert capsys.readouterr().err.startswith(message)


@pytest.mark.parametrize("argv", [["--top", "0"], ["--every", "0"], ["--every", "-1"], ["--every", "x"]])
def test_classify_rejects_counts_and_periods_that_are_not_positive(argv, capsys):
    from edge import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["classify", "clip.mp4", *argv])
    assert stop.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("data", [["model"], "model", 3])
def test_top_level_must_be_a_mapping(data):
    with pytest.raises(EdgeError, match="top level must be a mapping"):
        parse(data)


# --------------------------------------------------------------------------- load()


def test_load_missing_file(tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        load(tmp_path / "nope.yaml")


def test_load_folder(tmp_path):
    with pytest.raises(EdgeError, match="cannot read config file"):
        load(tmp_path)


@pytest.mark.parametrize("text, line", [
    ("model:\n  name: a0\n  threads: [1\nsource:\n  kind: file\n", 4),
    ("model:\n  name: a0\n\tthreads: 2\n", 3),
    ("model:\n  name: a0\nsinks:\n  - type: log\n    path: a: b\n", 5),
])
def test_load_invalid_yaml_names_the_line(tmp_path, text, line):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(EdgeError) as err:
        load(path)
    msg = str(err.value)
    assert f"line {line}," in msg and "not valid YAML" in msg and str(path) in msg


def test_load_yaml_error_without_position(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"model:\n  name: a0\x07\n")  # a control character: a reader error, no line mark
    with pytest.raises(EdgeError) as err:
        load(path)
    msg = str(err.value)
    assert "not valid YAML" in msg
    assert "::" not in msg


def test_load_non_utf8_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xff\xfemodel: {}\n")
    with pytest.raises(EdgeError, match="config.yaml"):
        load(path)


@pytest.mark.parametrize("text", ["- model\n- sinks\n", "just a string\n"])
def test_load_non_mapping_yaml(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(EdgeError, match="top level must be a mapping"):
        load(path)


def test_load_empty_file_gives_the_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("# nothing yet\n")
    assert load(path) == Config()


def test_load_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  threads: 0\n")
    with pytest.raises(EdgeError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: model.threads:")


def test_load_valid_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  name: a0\nwatch:\n  - name: cook\n    labels: flipping pancake\n"
                    "sinks:\n  - type: log\n  - type: gpio\n    pin: 17\n    rule: cook\n")
    assert load(path) == parse(copy.deepcopy(MINIMAL))


def test_json_schema_has_the_sections():
    schema = json_schema()
    assert {"model", "source", "sinks", "watch", "smoothing", "status"} <= set(schema["properties"])
    assert schema.get("additionalProperties") is False


def test_repo_config_yaml_loads():
    path = REPO / "config.yaml"
    if not path.exists():
        pytest.skip("config.yaml not in the repo yet")
    assert isinstance(load(path), Config)
