"""The config schema, declared once: pydantic models with ``extra="forbid"``.

A typo in config.yaml is an error naming its key path (``sinks[1].pin: ...``),
never a silently ignored key. Values the model itself defines (input size,
number of classes, state tensors) are read from the .tflite file, not configured
here. ``edge config schema`` exports the JSON Schema for editors.

Every section is built lazily (``defer_build``): pydantic builds a section's
validator the first time it is used, so a one-shot command that only needs the
``model:`` section (``edge classify``) does not pay for the sinks' schemas.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.choices import PreprocessMode, SmoothingMethod, SourceKind
from edge.errors import EdgeError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


# --------------------------------------------------------------------------- model


REMOVED_POLICIES = {
    "capped": "use 'window' instead: the exact mean of the last window_seconds (--window), at no extra cost",
    "windowed": "use 'window' instead: the exact mean of the last window_seconds (--window), with one stream",
}


class ModelConfig(Section):
    name: str = Field("a0", description="a0, a1 or a2 (installed with `edge models fetch`), or a path to a MoViNet-style stream .tflite")
    labels: str | None = Field(None, description="label file (one class a line, in logit order); default: the model's own label file")
    threads: int = Field(1, ge=1, le=8, description="interpreter CPU threads; 1 leaves the other cores to capture and sinks")
    fps: float = Field(5.0, gt=0, le=30, description="frames a second fed to the model; MoViNet stream models are trained at 5")
    preprocess: PreprocessMode = Field(
        "resize", description="resize: squash the whole frame to the model input; center-crop: crop the centre square first")
    state_policy: Literal["window", "ema", "cumulative"] = Field(
        "window", description="how the model forgets: window = the exact mean of the last window_seconds of head features; "
        "ema = an exponential average with half_life_seconds; cumulative = never forget (the original model, for comparison)")
    window_seconds: float = Field(5.0, gt=0, le=3600, description="window policy: seconds of frames the answer averages over (5 s: the shortest that does not flicker on the shared clips)")
    half_life_seconds: float = Field(2.0, gt=0, le=3600, description="ema policy: seconds after which a frame counts half")
    ensemble: list[str] = Field(
        default_factory=list,
        description="temporal ensemble: two or more models (names or paths), each fed every other frame, logits averaged; "
        "empty = just `name`")
    head: str | None = Field(None, description="learned classes (`edge learn`): a .head file, scored on every frame's "
                             "window feature; a relative path is in the models folder (my-actions.head)")
    head_mode: Literal["add", "replace"] = Field(
        "add", description="add: the learned classes are ranked alongside the model's own labels; replace: only the "
        "learned classes and 'unknown'")

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cap_frames" in data:
            raise ValueError("cap_frames was removed with the capped policy: use state_policy: window "
                             "with window_seconds (25 frames at 5 fps = window_seconds: 5)")
        return data

    @field_validator("state_policy", mode="before")
    @classmethod
    def _removed_policy(cls, value: Any) -> Any:
        if isinstance(value, str) and value in REMOVED_POLICIES:
            raise ValueError(f"{value!r} was removed: {REMOVED_POLICIES[value]}")
        return value

    @field_validator("ensemble")
    @classmethod
    def _ensemble_size(cls, value: list[str]) -> list[str]:
        if len(value) == 1:
            raise ValueError("needs at least two models (or leave it empty to use `name` alone)")
        return value

    @classmethod
    def from_cli(cls, data: dict[str, Any], flags: dict[str, str]) -> ModelConfig:
        """Build from command-line values; an error names the flag (``flags``: field -> ``--flag``)."""
        try:
            return cls(**data)
        except ValidationError as err:
            raise EdgeError(format_errors(err, names=flags)) from None


# --------------------------------------------------------------------------- source


class SourceConfig(Section):
    kind: SourceKind = Field(
        "auto", description="auto: picamera2 if a camera is present, else the first V4L2 device")
    spec: str | None = Field(None, description="file: a path; v4l2: a device index or /dev/videoN; rtsp: the URL")
    width: int = Field(640, ge=16, le=4096, description="largest frame width kept: cameras are asked for it, every other source is scaled down to fit (aspect kept)")
    height: int = Field(480, ge=16, le=4096, description="largest frame height kept (as width)")
    fps: float = Field(10.0, gt=0, le=120, description="capture frame rate asked of the camera; the model samples 5 fps of it")
    loop: bool = Field(False, description="file: start again at the end instead of stopping")
    ring_seconds: float = Field(4.0, gt=0, le=120, description="seconds of frames kept in memory (pre-event clips come from here)")
    ring_mb: float = Field(48.0, ge=1, le=4096, description="most memory the frame ring may take, whatever the source's size and rate (48 MB: 4 s of 640x480 at 10 fps, and room to spare on a 512 MB Pi Zero 2 W)")
    reopen_min_seconds: float = Field(1.0, gt=0, le=60, description="first wait before reopening a camera that stopped")
    reopen_max_seconds: float = Field(30.0, gt=0, le=600, description="longest wait between reopen attempts")
    stall_seconds: float = Field(5.0, gt=0, le=600, description="no new frame (or identical frames) this long = the camera stalled: reopen it")
    gap_reset_seconds: float = Field(2.0, gt=0, le=600, description="a gap in frames longer than this resets the model state")


# --------------------------------------------------------------------------- smoothing and rules


class SmoothingConfig(Section):
    method: SmoothingMethod = Field("none", description="none: the model's answer as is (its state policy already averages the last seconds; more smoothing only adds lag, see benchmarks/events.py); ema: exponential moving average; window: mean of the last `window` predictions")
    alpha: float = Field(0.4, gt=0, le=1, description="ema: weight of the newest prediction")
    window: int = Field(5, ge=1, le=300, description="window: predictions averaged")


class WatchRule(Section):
    name: str = Field(..., min_length=1, description="the event's name in logs, overlays and sink configs")
    labels: list[str] = Field(..., min_length=1, description="model labels whose smoothed scores are summed into this rule's score")
    enter: float = Field(0.3, gt=0, le=1, description="score at or above which the event starts (0.3: events start within 3 s on benchmarks/events.py, no false event)")
    exit: float = Field(0.2, ge=0, le=1, description="score below which the event ends (hysteresis; <= enter)")
    min_duration: float = Field(0.0, ge=0, le=3600, description="seconds the score must stay above enter before the event starts")
    cooldown: float = Field(0.0, ge=0, le=86400, description="seconds after an event ends before the same rule can start again")

    @field_validator("labels", mode="before")
    @classmethod
    def _one_label(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _hysteresis(self) -> WatchRule:
        if self.exit > self.enter:
            raise ValueError(f"exit ({self.exit}) must be <= enter ({self.enter})")
        return self


# --------------------------------------------------------------------------- sinks


class SinkBase(Section):
    queue: int = Field(64, ge=1, le=10000, description="predictions buffered for this sink before the oldest are dropped")


class LogSinkConfig(SinkBase):
    type: Literal["log"] = "log"
    implementation: ClassVar[str] = "edge.sinks.log:LogSink"  # the Sink class, imported on first use (edge.sinks)
    path: str = Field("edge.jsonl", description="JSONL file; relative paths are under $LOGS_DIRECTORY (systemd) or the current folder")
    prediction_every: float = Field(1.0, ge=0, le=3600, description="seconds between prediction lines (0 = every prediction); events are always written")
    top: int = Field(3, ge=1, le=20, description="labels per prediction line")
    max_mb: float = Field(20.0, gt=0, le=10000, description="rotate the file at this size")
    keep: int = Field(5, ge=0, le=1000, description="rotated files kept (edge.jsonl.1 ...)")
    backlog: int = Field(1000, ge=0, le=100000, description="event lines kept in memory while the file is unwritable (disk full, read-only), written first when it is writable again")
    retry_seconds: float = Field(5.0, ge=0, le=3600, description="while the file is unwritable, seconds between attempts to write it again")


class OverlaySinkConfig(SinkBase):
    type: Literal["overlay"] = "overlay"
    implementation: ClassVar[str] = "edge.sinks.overlay:OverlaySink"
    display: Literal["auto", "drm", "fbdev", "snapshot"] = Field(
        "auto", description="drm: picamera2 preview overlay; fbdev: write to a framebuffer; snapshot: JPEG every snapshot_every s; auto: drm if a picamera2 camera is open, else fbdev if fb_device is writable, else snapshot")
    fb_device: str = Field("/dev/fb0", description="fbdev: the framebuffer device")
    snapshot_path: str = Field("snapshot.jpg", description="snapshot: JPEG path; relative paths are under $STATE_DIRECTORY or the current folder")
    snapshot_every: float = Field(5.0, gt=0, le=3600, description="snapshot: seconds (wall clock) between JPEGs")
    top: int = Field(3, ge=1, le=10, description="labels drawn with bars")
    max_fps: float = Field(10.0, gt=0, le=60, description="fbdev/drm: most screen updates per second (never more than one per prediction)")
    jpeg_quality: int = Field(85, ge=10, le=100, description="snapshot: JPEG quality")
    blank_on_close: bool = Field(True, description="fbdev: clear the screen when the sink closes, so a stale alert banner is not left showing")


class GpioSinkConfig(SinkBase):
    type: Literal["gpio"] = "gpio"
    implementation: ClassVar[str] = "edge.sinks.gpio:GpioSink"
    pin: int = Field(..., ge=0, le=27, description="BCM pin number")
    rule: str = Field(..., description="the watch rule that drives this pin")
    device: Literal["output", "led", "buzzer"] = Field("output", description="gpiozero device class: output = DigitalOutputDevice (an OutputDevice that can blink, for a relay or transistor), LED or Buzzer")
    mode: Literal["on", "pulse", "blink"] = Field("on", description="on: while the event is active; pulse: pulse_seconds at start; blink: while active")
    pulse_seconds: float = Field(1.0, gt=0, le=3600, description="pulse: how long the pin is on")
    blink_on: float = Field(0.5, gt=0, le=60, description="blink: seconds on")
    blink_off: float = Field(0.5, gt=0, le=60, description="blink: seconds off")
    active_high: bool = Field(True, description="false when the load is on with the pin low")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_on(cls, value: Any) -> Any:
        return "on" if value is True else value  # YAML 1.1 reads an unquoted `mode: on` as true


class ClipSinkConfig(SinkBase):
    type: Literal["clip"] = "clip"
    implementation: ClassVar[str] = "edge.sinks.clip:ClipSink"
    dir: str = Field("clips", description="folder for MP4 clips; relative paths are under $STATE_DIRECTORY or the current folder")
    rules: list[str] = Field(default_factory=list, description="rules that save clips (empty = all)")
    pre_seconds: float = Field(3.0, ge=0, le=60, description="seconds before the event start (from the ring; <= source.ring_seconds)")
    post_seconds: float = Field(5.0, ge=0, le=600, description="seconds after the event start")
    max_files: int = Field(50, ge=1, le=100000, description="oldest clips deleted beyond this many")
    max_mb: float = Field(500.0, gt=0, le=1000000, description="oldest clips deleted beyond this total size")
    max_seconds: float = Field(60.0, gt=0, le=3600, description="longest clip: a new event start during a clip extends it (to its start + post_seconds) up to this length")
    min_free_mb: float = Field(100.0, ge=0, le=1000000, description="no clip is started, and one in progress is abandoned, when the disk has less free space than this")
    codec: Literal["auto", "h264_v4l2m2m", "libx264", "mp4v", "avc1"] = Field("auto", description="auto: H.264 that plays on phones, from the Pi 4's hardware encoder (h264_v4l2m2m) if it works here, else libx264 (PyAV), else MPEG-4 Part 2 (mp4v, OpenCV) with a warning; a named encoder that does not work falls down the same list; avc1 = auto (older configs)")
    crf: int = Field(26, ge=0, le=51, description="libx264 quality: lower is better and bigger (26: a 10 s 640x480 clip at 10-15 fps is about 1-2 MB; see docs/clips.md)")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field("ultrafast", description="libx264 speed: slower presets make smaller files for more CPU (ultrafast leaves the CPU to the model)")


# template fields of the notify sink's title and body, with sample values to check a template against
NOTIFY_SAMPLE: dict[str, Any] = {"rule": "cooking", "label": "frying vegetables", "score": 0.82, "host": "pi",
                                 "time": "12:00:00", "duration": "0s", "phase": "started", "reason": ""}
NOTIFY_FIELDS = tuple(NOTIFY_SAMPLE)


class NotifySinkConfig(SinkBase):
    """Messages to a person through Apprise (ntfy, Telegram, e-mail, webhooks, ...); see docs/notify.md."""

    type: Literal["notify"] = "notify"
    implementation: ClassVar[str] = "edge.sinks.notify:NotifySink"
    urls: list[str] = Field(default_factory=list, description="Apprise URLs (ntfy://topic, tgram://token/chat, json://host/path, ...); they hold secrets: prefer urls_file")
    urls_file: str | None = Field(None, description="file with one Apprise URL a line (# comments), readable by the edge user only (chmod 600); read at start")
    rules: list[str] = Field(default_factory=list, description="watch rules that notify (empty = all)")
    on: list[Literal["start", "end"]] = Field(["start"], min_length=1, description="phases that send a message: start, end or both (an end is sent only for an incident whose start was)")
    attach: Literal["snapshot", "none"] = Field("snapshot", description="snapshot: the annotated frame at the event's peak as a JPEG; none: text only")
    title: str = Field("{host}: {rule}", max_length=250, description="message title; fields: " + ", ".join(NOTIFY_FIELDS))
    body: str = Field("{rule} {phase} at {time}: {label} {score:.0%}", max_length=2000, description="message text; fields as for title")
    min_interval: float = Field(60.0, ge=0, le=86400, description="seconds: at most one incident message per rule this often (a burst of starts sends one)")
    heartbeat_hours: float = Field(0.0, ge=0, le=8760, description=">0: a 'still watching' message this often, so silence means something")
    spool_dir: str = Field("notify-spool", description="where messages wait to be sent (one file each); relative paths are under $STATE_DIRECTORY or the current folder; one folder per notify sink")
    spool_max_messages: int = Field(200, ge=1, le=100000, description="messages kept waiting at most; beyond that the oldest is dropped (counted)")
    spool_max_mb: float = Field(50.0, gt=0, le=10000, description="spool size at most, snapshots included; beyond that the oldest is dropped (counted)")
    max_age_hours: float = Field(24.0, gt=0, le=8760, description="a message still unsent after this long is dropped (counted): a day-old alert is news to nobody")
    retry_seconds: float = Field(5.0, gt=0, le=3600, description="first wait before a failed service is tried again; doubles each failure")
    retry_max_seconds: float = Field(600.0, gt=0, le=86400, description="longest wait between tries of a failing service")
    jpeg_quality: int = Field(80, ge=10, le=100, description="snapshot JPEG quality")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 reads an unquoted `on:` key as true, and `on: start` is one phase
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        if isinstance(data, dict) and isinstance(data.get("on"), str):
            data = {**data, "on": [data["on"]]}
        return data

    @field_validator("urls")
    @classmethod
    def _url_shape(cls, value: list[str]) -> list[str]:
        for i, url in enumerate(value):  # never echo a URL: it carries tokens
            if "://" not in url.strip():
                raise ValueError(f"urls[{i}] is not a URL (service://...); see docs/notify.md for the forms")
        return [u.strip() for u in value]

    @field_validator("title", "body")
    @classmethod
    def _template(cls, value: str) -> str:
        import string

        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as err:
            raise ValueError(f"bad template ({err}); write {{{{ and }}}} for literal braces") from None
        unknown = sorted(f for f in fields if f not in NOTIFY_FIELDS)
        if unknown:
            raise ValueError(f"unknown field {{{unknown[0]}}} (fields: {', '.join(NOTIFY_FIELDS)})")
        try:
            value.format(**NOTIFY_SAMPLE)
        except (ValueError, TypeError, IndexError) as err:
            raise ValueError(f"bad template ({err})") from None
        return value

    @model_validator(mode="after")
    def _some_url(self) -> NotifySinkConfig:
        if not self.urls and not self.urls_file:
            raise ValueError("needs urls or urls_file (one Apprise URL a line)")
        if self.retry_max_seconds < self.retry_seconds:
            raise ValueError(f"retry_max_seconds ({self.retry_max_seconds}) must be >= retry_seconds ({self.retry_seconds})")
        return self


class PluginSinkConfig(BaseModel):
    """A third-party sink from the ``edge.sinks`` entry-point group; it validates its own options."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    type: str
    queue: int = Field(64, ge=1, le=10000)


BUILTIN_SINK_CONFIGS = (LogSinkConfig, OverlaySinkConfig, GpioSinkConfig, ClipSinkConfig, NotifySinkConfig)
BUILTIN_SINKS = tuple(c.model_fields["type"].default for c in BUILTIN_SINK_CONFIGS)  # the names, declared once


def _sink_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in BUILTIN_SINKS else "plugin"


SinkConfig = Annotated[
    Union[
        Annotated[LogSinkConfig, Tag("log")],
        Annotated[OverlaySinkConfig, Tag("overlay")],
        Annotated[GpioSinkConfig, Tag("gpio")],
        Annotated[ClipSinkConfig, Tag("clip")],
        Annotated[NotifySinkConfig, Tag("notify")],
        Annotated[PluginSinkConfig, Tag("plugin")],
    ],
    Discriminator(_sink_tag),
]


# --------------------------------------------------------------------------- status and top level


class StatusConfig(Section):
    path: str | None = Field(None, description="status.json path; default $RUNTIME_DIRECTORY/status.json, /run/edge/status.json or the user runtime dir")
    interval: float = Field(1.0, gt=0, le=60, description="seconds between status.json updates")
    stats_every: float = Field(60.0, gt=0, le=86400, description="seconds between stats lines in the journal")


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig)
    watch: list[WatchRule] = Field(default_factory=list, description="rules that turn smoothed scores into events")
    sinks: list[SinkConfig] = Field(default_factory=lambda: [LogSinkConfig()], description="where predictions and events go")
    status: StatusConfig = Field(default_factory=StatusConfig)

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        names = [rule.name for rule in self.watch]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"watch: rule names must be unique, repeated: {', '.join(dupes)}")
        for i, sink in enumerate(self.sinks):
            if isinstance(sink, PluginSinkConfig):
                _check_plugin(i, sink.type)
            wanted = [sink.rule] if isinstance(sink, GpioSinkConfig) else getattr(sink, "rules", []) or []
            for rule in wanted:
                if rule not in names:
                    known = ", ".join(names) or "none defined"
                    raise ValueError(f"sinks[{i}]: unknown watch rule {rule!r} (rules: {known})")
        return self


def _check_plugin(i: int, kind: str) -> None:
    """A sink type that is neither built in nor an installed ``edge.sinks`` plug-in is a typo."""
    import difflib

    from edge.labels import did_you_mean
    from edge.plugins import sink_plugins

    known = sorted(set(BUILTIN_SINKS) | set(sink_plugins()))
    if kind in known:
        return
    hint = did_you_mean(difflib.get_close_matches(kind, known, n=1))
    hint = f"; {hint}" if hint else ""
    raise ValueError(f"sinks[{i}].type: unknown sink type {kind!r} (known: {', '.join(known)}){hint}")


# --------------------------------------------------------------------------- loading and errors


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in BUILTIN_SINKS + ("plugin",) and out.endswith("]"):
            continue  # the discriminator tag pydantic adds to union paths
        else:
            out += f".{part}" if out else str(part)
    return out


def format_errors(err: ValidationError, names: dict[str, str] | None = None) -> str:
    """One line per problem: ``key.path: message``."""
    lines = []
    for e in err.errors(include_url=False):
        loc = _loc(tuple(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?); see `edge config schema` for the valid keys"
        elif e["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be")
        elif "greater_than" in e["type"] or "less_than" in e["type"]:
            msg = msg.replace("Input should be", "must be")
        if names:
            head, _, rest = loc.partition("[")
            loc = names.get(head, head) + (f"[{rest}" if rest else "")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def parse(data: Any, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EdgeError(f"{source}: the top level must be a mapping of sections (model:, source:, ...)")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise EdgeError(f"{source}: {format_errors(err)}") from None


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; every problem is an EdgeError naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgeError(f"config file {path} does not exist: create it (copy config.yaml from the repo) or pass -c FILE") from None
    except OSError as err:
        raise EdgeError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise EdgeError(f"cannot read config file {path}: not UTF-8 text (save it as UTF-8)") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise EdgeError(f"{path}:{where} not valid YAML ({problem})") from None
    return parse(data, str(path))


def default_path() -> Path:
    """Where the config is looked for when -c is not given."""
    env = os.environ.get("EDGE_CONFIG")
    if env:
        return Path(env)
    system = Path("/etc/edge/config.yaml")
    if system.exists():
        return system
    return Path("config.yaml")


def json_schema() -> dict[str, Any]:
    return Config.model_json_schema()
