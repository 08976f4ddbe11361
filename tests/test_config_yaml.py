"""The shipped config.yaml documents the whole schema: every key of every section is in it, at its default
(unless the file says "example"), and the commented sink examples are valid sinks with every key of their type.

A field added to edge/config.py without a line in config.yaml fails here, so the file users copy cannot fall
behind the schema."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO

from edge import config
from edge.config import (
    BUILTIN_SINK_CONFIGS,
    Config,
    LogSinkConfig,
    ModelConfig,
    SinkBase,
    SmoothingConfig,
    SourceConfig,
    StatusConfig,
    WatchRule,
)

PATH = REPO / "config.yaml"
SECTIONS = {"model": ModelConfig, "source": SourceConfig, "smoothing": SmoothingConfig, "status": StatusConfig}
EXAMPLE_START = re.compile(r"^  # - type: ")  # a commented sink: "  # - type: gpio", then "  #   key: value" lines
EXAMPLE_LINE = re.compile(r"^  #   \S")


@pytest.fixture(scope="module")
def text() -> str:
    if not PATH.is_file():
        pytest.skip("no config.yaml in the repo")
    return PATH.read_text(encoding="utf-8")


def commented_sinks(text: str) -> list[dict]:
    """The commented-out sink examples, uncommented and parsed (YAML's bare `on:` key is read back as "on")."""
    block, inside = [], False
    for line in text.splitlines():
        inside = bool(EXAMPLE_START.match(line)) or (inside and bool(EXAMPLE_LINE.match(line)))
        if inside:
            block.append("  " + line[len("  # "):])
    sinks = yaml.safe_load("sinks:\n" + "\n".join(block))["sinks"] if block else []
    return [{("on" if k is True else k): v for k, v in s.items()} for s in sinks]


def field_names(model) -> set[str]:
    return set(model.model_fields)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_key_of_a_section_is_in_config_yaml_at_its_default(text, section):
    model = SECTIONS[section]
    shown = yaml.safe_load(text)[section]
    assert set(shown) == field_names(model), f"{section}: config.yaml lacks or has extra keys"
    defaults = model()
    for key, value in shown.items():
        assert value == getattr(defaults, key), f"{section}.{key}: config.yaml says {value!r}, the default differs"


def test_the_top_level_sections_are_all_there(text):
    assert set(yaml.safe_load(text)) == field_names(Config)


def test_the_example_rules_show_every_rule_key(text):
    rules = yaml.safe_load(text)["watch"]
    assert rules and set(rules[0]) == field_names(WatchRule)


def test_the_log_sink_shows_every_key_at_its_default(text):
    (log,) = yaml.safe_load(text)["sinks"]
    assert set(log) == field_names(LogSinkConfig)
    defaults = LogSinkConfig()
    assert all(v == getattr(defaults, k) for k, v in log.items()), log


def test_every_builtin_sink_type_has_a_commented_example_with_every_key(text):
    examples = {s["type"]: s for s in commented_sinks(text)}
    shown = {"log"} | set(examples)
    assert shown == {c.model_fields["type"].default for c in BUILTIN_SINK_CONFIGS}
    for cls in BUILTIN_SINK_CONFIGS:
        kind = cls.model_fields["type"].default
        if kind == "log":
            continue
        missing = field_names(cls) - field_names(SinkBase) - set(examples[kind])  # queue: shown once, on the log sink
        assert not missing, f"the commented {kind} sink lacks {sorted(missing)}"


def test_the_commented_examples_are_valid_when_uncommented(text):
    data = yaml.safe_load(text)
    examples = commented_sinks(text)
    cfg = config.parse({**data, "sinks": data["sinks"] + examples})  # rule names, templates, limits: all checked
    assert [s.type for s in cfg.sinks] == ["log"] + [s["type"] for s in examples]


def test_the_example_reader_finds_a_sink_and_stops_at_prose():
    text = ("sinks:\n  - type: log\n  # Other sinks:\n  # - type: gpio   # a pin\n  #   pin: 17\n"
            "  #   on: [start]\n  # prose, not a key\n  #   indented prose after a gap is not read\n")
    assert commented_sinks(text) == [{"type": "gpio", "pin": 17, "on": ["start"]}]
