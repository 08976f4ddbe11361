"""The notify sink: config, the on-disk spool, delivery through Apprise to a real HTTP receiver.

The receiver is a standard-library HTTP server on 127.0.0.1 taking Apprise's
``json://`` posts (no mock of Apprise). Tests wait on conditions with timeouts.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO

from edge import config
from edge.capture.base import Frame
from edge.errors import EdgeError
from edge.prediction import Prediction, Scored
from edge.sinks.base import SinkContext
from edge.smoothing import Event
from edge.spool import Spool

pytest.importorskip("apprise", reason="Apprise is not installed: pip install -e '.[dev]'")

from edge.sinks.notify import NotifySink, read_urls, secret_parts, service_names  # noqa: E402

SECRET = "SuperSecret123"


# --------------------------------------------------------------------------- a real receiver


class Receiver:
    """An HTTP server on 127.0.0.1 recording Apprise json:// posts; ``codes`` answers the first requests."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[dict] = []
        self.times: list[float] = []
        self.codes: list[int] = []  # popped one per request; 200 when empty
        self.cond = threading.Condition()
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.cond:
                    code = outer.codes.pop(0) if outer.codes else 200
                    outer.times.append(time.monotonic())
                    if code == 200:
                        outer.posts.append(json.loads(body))
                    outer.cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, secret: str = SECRET) -> str:
        return f"json://127.0.0.1:{self.port}/hook?token={secret}"

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.posts) >= n, timeout)

    def wait_requests(self, n: int, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.times) >= n, timeout)


def free_port() -> int:
    """A port nothing listens on (a receiver that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


# --------------------------------------------------------------------------- building blocks


RULES = [{"name": "cooking", "labels": ["red"]}, {"name": "dog", "labels": ["green"]}]


def notify_cfg(**options):
    data = {"type": "notify", "urls": ["json://127.0.0.1:1/x"], **options}
    return config.parse({"watch": RULES, "sinks": [data]}).sinks[0]


def frame(rgb=(0, 160, 0), h: int = 48, w: int = 64) -> Frame:
    pixels = np.empty((h, w, 3), np.uint8)
    pixels[...] = rgb
    return Frame(pixels, 1.0, 1)


def prediction(t: float = 1.0, rule: str = "cooking", score: float = 0.9, active: bool = True,
               with_frame: bool = True) -> Prediction:
    probs = np.array([score, 1 - score, 0, 0, 0], np.float32)
    ev = Event(rule=rule, phase="start", t=t, score=score, start=t, peak=score, duration=0.0)
    return Prediction(t=t, wall=time.time(), seq=int(t * 10), probs=probs, top=[Scored("red", score)],
                      smoothed=probs, smoothed_top=[Scored("red", score)], scores={rule: score},
                      active={rule: ev} if active else {}, frame=frame() if with_frame else None)


def start(rule: str = "cooking", t: float = 1.0, score: float = 0.9) -> Event:
    return Event(rule=rule, phase="start", t=t, score=score, start=t, peak=score, duration=0.0)


def end(rule: str = "cooking", t: float = 5.0, start_t: float = 1.0, peak: float = 0.9) -> Event:
    return Event(rule=rule, phase="end", t=t, score=0.1, start=start_t, peak=peak, duration=t - start_t,
                 reason="score")


@pytest.fixture
def make_sink(tmp_path):
    """``make_sink(url, **options)``: a started NotifySink spooling under tmp_path; closed at teardown."""
    built: list[NotifySink] = []

    def make(url: str, wall=time.time, **options) -> NotifySink:
        options.setdefault("spool_dir", str(tmp_path / "spool"))
        options.setdefault("retry_seconds", 0.05)
        options.setdefault("retry_max_seconds", 0.2)
        sink = NotifySink(notify_cfg(**{"urls": [url], **options}), SinkContext(labels=["red", "green"]), wall=wall)
        sink.start()
        built.append(sink)
        return sink

    yield make
    for sink in built:
        sink.close()


def incident(sink: NotifySink, rule: str = "cooking", t: float = 1.0) -> None:
    """What the sink thread sees for a short incident: start, a prediction, end."""
    p = prediction(t, rule)
    sink.event(start(rule, t), p)
    sink.emit(p)
    sink.event(end(rule, t + 4, t), prediction(t + 4, rule, 0.1, active=False))


# --------------------------------------------------------------------------- config


def test_the_issue_example_is_a_valid_config():
    text = """
watch: [{name: cooking, labels: [red]}]
sinks:
  - type: notify
    urls: ["ntfy://ntfy.sh/my-garage-topic", "tgram://123456:ABCdef/987"]
    rules: [cooking]
    on: [start]
    attach: snapshot
    title: "{host}: {rule}"
    min_interval: 60
    heartbeat_hours: 0
"""
    sink = config.parse(yaml.safe_load(text)).sinks[0]
    assert (sink.type, sink.rules, sink.on, sink.attach, sink.min_interval) == ("notify", ["cooking"], ["start"],
                                                                                "snapshot", 60)


def test_an_unquoted_yaml_on_key_and_a_single_phase_are_read():
    # YAML 1.1 reads `on:` as the boolean true
    data = yaml.safe_load("type: notify\nurls: ['json://h/x']\non: end\n")
    assert True in data
    sink = config.parse({"sinks": [data]}).sinks[0]
    assert sink.on == ["end"]


@pytest.mark.parametrize("change, message", [
    ({"urls": []}, "sinks[0]: needs urls or urls_file"),
    ({"urls": [SECRET]}, "sinks[0].urls: urls[0] is not a URL"),
    ({"on": ["middle"]}, "sinks[0].on[0]: must be 'start' or 'end'"),
    ({"on": []}, "sinks[0].on"),
    ({"attach": "clip"}, "sinks[0].attach: must be 'snapshot' or 'none'"),
    ({"title": "{host}: {rule} {camera}"}, "sinks[0].title: unknown field {camera}"),
    ({"body": "{score:d}"}, "sinks[0].body: bad template"),
    ({"body": "{rule"}, "sinks[0].body: bad template"),
    ({"rules": ["cookin"]}, "sinks[0]: unknown watch rule 'cookin'"),
    ({"min_interval": -1}, "sinks[0].min_interval: must be greater than or equal to 0"),
    ({"retry_seconds": 10, "retry_max_seconds": 5}, "retry_max_seconds (5.0) must be >= retry_seconds"),
    ({"spool_max_mb": 0}, "sinks[0].spool_max_mb: must be greater than 0"),
    ({"urlz": ["json://h/x"]}, "sinks[0].urlz: unknown key"),
])
def test_config_mistakes_name_the_key_and_never_echo_a_url(change, message):
    with pytest.raises(EdgeError) as err:
        config.parse({"watch": RULES, "sinks": [{"type": "notify", "urls": [f"json://h/{SECRET}"], **change}]})
    assert message in str(err.value)
    assert SECRET not in str(err.value)


def test_urls_file_lines_are_read_and_a_file_open_to_everyone_is_refused(tmp_path):
    path = tmp_path / "notify.urls"
    path.write_text(f"# my phone\n\nntfy://ntfy.sh/{SECRET}\n  json://h/x  \n")
    path.chmod(0o600)
    cfg = notify_cfg(urls=[], urls_file=str(path))
    assert read_urls(cfg) == [f"ntfy://ntfy.sh/{SECRET}", "json://h/x"]
    path.chmod(0o644)
    with pytest.raises(EdgeError, match="open to every user .*chmod 600") as err:
        read_urls(cfg)
    assert SECRET not in str(err.value)
    path.chmod(0o600)
    path.write_text(f"ntfy://ntfy.sh/a\n{SECRET}\n")
    with pytest.raises(EdgeError, match="line 2 is not a URL") as err:
        read_urls(cfg)
    assert SECRET not in str(err.value)
    with pytest.raises(EdgeError, match="does not exist"):
        read_urls(notify_cfg(urls=[], urls_file=str(tmp_path / "missing")))


def test_services_are_named_by_scheme_only():
    assert service_names(["ntfy://a/b", "tgram://1:x/2", "NTFY://c/d"]) == ["ntfy", "tgram", "ntfy#2"]
    parts = secret_parts("tgram://123456:ABCdef/987654?format=markdown")
    assert {"123456:ABCdef", "987654", "markdown"} <= parts


# --------------------------------------------------------------------------- the spool


def test_spool_keeps_messages_in_order_across_a_reopen(tmp_path):
    spool = Spool(tmp_path / "s", 10, 1 << 20)
    spool.open()
    names = [spool.put({"n": i, "targets": ["a"], "created": 1.0}) for i in range(3)]
    assert spool.pending() == names == sorted(names)
    assert all(oct((tmp_path / "s" / n).stat().st_mode & 0o777) == "0o600" for n in names)
    spool.close()
    again = Spool(tmp_path / "s", 10, 1 << 20)
    again.open()
    assert [again.read(n)["n"] for n in again.pending()] == [0, 1, 2]
    newer = again.put({"n": 3, "targets": ["a"]})
    assert again.pending()[-1] == newer > names[-1]  # numbering goes on, whatever the clock says
    again.close()


def test_spool_bounds_drop_the_oldest_and_count_them(tmp_path):
    spool = Spool(tmp_path / "s", 3, 1 << 20)
    spool.open()
    for i in range(5):
        spool.put({"n": i, "targets": ["a", "b"]})
    assert [spool.read(n)["n"] for n in spool.pending()] == [2, 3, 4]
    assert spool.dropped == 2 and spool.dropped_by_target == {"a": 2, "b": 2}
    assert len(list((tmp_path / "s").glob("*.json"))) == 3
    size = len(json.dumps({"n": 0, "pad": "x" * 1000, "targets": ["a"]}, separators=(",", ":")))
    by_size = Spool(tmp_path / "t", 100, 2 * size + 10)
    by_size.open()
    for i in range(4):
        by_size.put({"n": i, "pad": "x" * 1000, "targets": ["a"]})
    assert [by_size.read(n)["n"] for n in by_size.pending()] == [2, 3]
    assert by_size.dropped == 2


def test_a_spool_folder_has_one_owner_and_unreadable_leftovers_are_dropped(tmp_path):
    spool = Spool(tmp_path / "s", 10, 1 << 20)
    spool.open()
    spool.put({"targets": ["a"]})
    with pytest.raises(EdgeError, match="in use by another notify sink"):
        Spool(tmp_path / "s", 10, 1 << 20).open()
    spool.close()
    (tmp_path / "s" / "000000000007.json").write_text("{half a mess")
    (tmp_path / "s" / ".000000000008.json.abc.tmp").write_text("cut short")
    again = Spool(tmp_path / "s", 10, 1 << 20)
    again.open()
    assert len(again) == 1 and again.dropped == 1
    assert not list((tmp_path / "s").glob(".*.tmp"))
    kept = again.pending()
    assert again.put({"targets": []}) > kept[-1]
    again.close()


# --------------------------------------------------------------------------- delivery


def test_an_event_start_sends_one_message_with_the_templated_title_and_the_snapshot(receiver, make_sink):
    sink = make_sink(receiver.url(), title="{host}: {rule}", body="{label} {score:.0%} at {time}")
    p = prediction(1.0, "cooking", 0.9)
    sink.event(start("cooking", 1.0, 0.9), p)
    sink.emit(p)
    assert receiver.wait_for(1)
    assert sink.wait_idle(10)
    [post] = receiver.posts
    assert post["title"] == f"{socket.gethostname()}: cooking"
    assert post["message"].startswith("red 90% at ")
    [att] = post["attachments"]
    assert att["mimetype"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(base64.b64decode(att["base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3)  # the frame the model saw, full size
    banner = image[-3:, :, ::-1].reshape(-1, 3).astype(int)  # BGR -> RGB
    amber = (np.abs(banner - (255, 176, 0)) <= 40).all(axis=1)  # the overlay's alert banner, between its text
    green = (np.abs(banner - (0, 160, 0)) <= 40).all(axis=1)  # the frame's own colour
    assert amber.mean() > 0.25 and not green.any()  # x86 OpenCV: 0.84; Debian's 4.6 (bolder text): 0.39
    assert p.frame.pixels[-1, 0].tolist() == [0, 160, 0]  # the prediction's frame is untouched
    status = sink.status()
    assert status["services"]["json"]["sent"] == 1
    assert status["services"]["json"]["queued"] == 0
    assert status["spooled"] == 0


def test_min_interval_turns_a_burst_into_one_message_per_rule(receiver, make_sink):
    sink = make_sink(receiver.url(), min_interval=60, on=["start", "end"])
    for k in range(5):
        incident(sink, "cooking", t=1.0 + 10 * k)
    incident(sink, "dog", t=3.0)
    assert receiver.wait_for(4)
    assert sink.wait_idle(10)
    bodies = [p["message"].split(" at ")[0] for p in receiver.posts]
    assert bodies == ["cooking started", "cooking ended", "dog started", "dog ended"]
    assert sink.status()["suppressed"] == 4


def test_rules_and_on_choose_what_notifies(receiver, make_sink):
    sink = make_sink(receiver.url(), rules=["dog"], on=["end"], min_interval=0, body="{rule} {phase} after {duration}")
    incident(sink, "cooking")
    incident(sink, "dog")
    assert receiver.wait_for(1)
    assert sink.wait_idle(10)
    assert [p["message"] for p in receiver.posts] == ["dog ended after 4s"]


def test_a_receiver_answering_500_is_retried_with_backoff(receiver, make_sink, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.codes = [500, 500, 500]
    sink = make_sink(receiver.url(), retry_seconds=0.1, retry_max_seconds=10)
    sink.event(start(), prediction())
    assert receiver.wait_for(1, timeout=15)
    assert sink.wait_idle(10)
    assert len(receiver.posts) == 1 and len(receiver.times) == 4
    gaps = np.diff(receiver.times)
    assert list(gaps >= np.array([0.1, 0.2, 0.4]) * 0.95) == [True] * 3, gaps  # 0.1, 0.2, 0.4 s: doubling
    svc = sink.status()["services"]["json"]
    assert (svc["sent"], svc["failed"]) == (1, 3)
    assert "500" in svc["last_error"]
    assert SECRET not in caplog.text and SECRET not in json.dumps(sink.status())


def test_the_spool_bound_drops_the_oldest_while_the_receiver_is_down(tmp_path, make_sink):
    down = Receiver(free_port())
    sink = make_sink(down.url(), min_interval=0, spool_max_messages=3, body="{score}",
                     retry_seconds=0.05, retry_max_seconds=0.05)
    for k in range(5):
        sink.event(start("cooking", t=k, score=0.51 + k / 100), prediction(k))
        sink.event(end("cooking", t=k + 0.5, start_t=k), prediction(k + 0.5, active=False))
    status = sink.status()
    assert status["spooled"] == 3 and status["dropped"] == 2
    assert status["services"]["json"]["dropped"] == 2 and status["services"]["json"]["queued"] == 3
    assert sink.wait(lambda: sink.status()["services"]["json"]["failed"] >= 1, 10)
    down.start()
    try:
        assert sink.wait_idle(10)
        assert [p["message"] for p in down.posts] == ["0.53", "0.54", "0.55"]  # the oldest two were dropped
    finally:
        down.stop()


def test_a_message_older_than_max_age_is_dropped_and_counted(make_sink):
    now = [1_000_000.0]
    sink = make_sink(Receiver(free_port()).url(), max_age_hours=1, wall=lambda: now[0])
    sink.event(start(), prediction())
    assert sink.wait(lambda: sink.status()["services"]["json"]["failed"] >= 1, 10)
    now[0] += 3601
    sink.kick()
    assert sink.wait_idle(10)
    status = sink.status()
    assert (status["spooled"], status["dropped"], status["services"]["json"]["dropped"]) == (0, 1, 1)


def test_messages_spooled_while_the_receiver_is_down_are_sent_once_after_a_restart(tmp_path, make_sink, caplog):
    caplog.set_level(logging.DEBUG)
    down = Receiver(free_port())
    first = make_sink(down.url(), min_interval=0, title="{rule} #{score}")
    for k in range(4):
        first.event(start("cooking", t=k, score=0.5 + k / 10), prediction(k))
    first.close()  # the daemon stops with 4 messages spooled
    assert first.status()["spooled"] == 4
    down.start()
    try:
        second = make_sink(down.url(), min_interval=0)
        assert second.wait_idle(10)
        assert down.wait_for(4)
        assert [p["title"] for p in down.posts] == [f"cooking #{0.5 + k / 10}" for k in range(4)]
        second.close()
        third = make_sink(down.url())  # nothing left to send twice
        assert third.wait_idle(10) and third.status()["spooled"] == 0
        assert len(down.posts) == 4
    finally:
        down.stop()
    assert SECRET not in caplog.text


def test_a_heartbeat_says_it_is_still_watching(receiver, make_sink):
    now = [1_000_000.0]
    sink = make_sink(receiver.url(), heartbeat_hours=1, wall=lambda: now[0])
    sink.emit(prediction(active=False))
    now[0] += 3601
    sink.kick()
    assert receiver.wait_for(1)
    [post] = receiver.posts
    assert post["title"].endswith("still watching")
    assert "1 predictions and 0 events" in post["message"]


def test_without_apprise_messages_still_spool_and_status_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise -> ImportError
    sink = NotifySink(notify_cfg(urls=["json://h/x"], spool_dir=str(tmp_path / "s")), SinkContext(labels=[]))
    sink.start()
    try:
        sink.event(start(), prediction())
        status = sink.status()
        assert status["spooled"] == 1
        assert "pip install 'edge[notify]'" in status["error"]
    finally:
        sink.close()


def test_apprise_is_imported_only_when_a_notify_sink_is_used():
    code = ("import sys, edge.config, edge.sinks, edge.daemon, edge.sinks.notify, edge.cli\n"
            "edge.config.parse({'sinks': [{'type': 'log'}]})\n"
            "print('apprise' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------- the command line


def run_edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture
def write_config(tiny_model_path, tiny_labels_path):
    """``write_config(path, url)``: a config on the tiny model with one notify sink."""

    def write(path, *urls: str):
        path.write_text(yaml.safe_dump({"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                                        "sinks": [{"type": "notify", "urls": list(urls)}]}))
        return path

    return write


def test_check_config_validates_each_url_without_sending_or_showing_it(tmp_path, receiver, write_config):
    good = run_edge("check-config", "-c", str(write_config(tmp_path / "good.yaml", receiver.url())))
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"{tmp_path / 'good.yaml'}: ok") and "sinks: notify" in good.stdout
    assert receiver.posts == [] and receiver.times == []
    bad = run_edge("check-config", "-c", str(write_config(tmp_path / "bad.yaml", f"tgram://{SECRET}")))
    assert bad.returncode == 2
    assert "sinks[0] (notify): tgram: not a valid Apprise URL" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    for out in (good, bad):
        assert SECRET not in out.stdout + out.stderr


def test_notify_test_sends_one_message_and_prints_what_each_service_answered(tmp_path, receiver, write_config):
    cfg = write_config(tmp_path / "c.yaml", receiver.url(), receiver.url("other"))
    ok = run_edge("notify", "test", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["sinks[0] json: ok: Sent JSON POST notification",
                                      "sinks[0] json#2: ok: Sent JSON POST notification"]
    assert len(receiver.posts) == 2 and "test message" in receiver.posts[0]["title"]
    down = write_config(tmp_path / "down.yaml", Receiver(free_port()).url())
    failed = run_edge("notify", "test", "-c", str(down))
    assert failed.returncode == 1
    assert failed.stdout.startswith("sinks[0] json: FAILED: ")
    for out in (ok, failed):
        assert SECRET not in out.stdout + out.stderr
    (tmp_path / "none.yaml").write_text("sinks: [{type: log}]\n")
    none = run_edge("notify", "test", "-c", str(tmp_path / "none.yaml"))
    assert none.returncode == 2 and "no notify sink" in none.stderr


# --------------------------------------------------------------------------- the real daemon, end to end


def run_daemon(cfg, items, *, until=None, timeout: float = 30.0):
    """The real Daemon on a FakeSource of ``items``; returns (daemon, notify sink) after it stopped.

    Without ``until`` it runs to the end of the frames; with it, it runs until ``until(sink)`` is true.
    """
    from conftest import FakeSource

    from edge.daemon import Daemon
    from edge.service import Notifier

    source = FakeSource(items, realtime=False, size=64, at_end="end" if until is None else "block")
    daemon = Daemon(cfg, notifier=Notifier(address=""), source_factory=lambda _cfg: source)
    result: list[int] = []
    th = threading.Thread(target=lambda: result.append(daemon.run(install_signals=False)), name="test-daemon")
    th.start()
    try:
        if until is not None:
            assert daemon.ready.wait(timeout), "the daemon never made a first prediction"
            sink = next(r.sink for r in daemon.runners if r.sink.type == "notify")
            assert until(sink), "the condition was not met in time"
            status = sink.status()
            daemon.stop()
            source.abort()
            th.join(timeout)
            return status
        th.join(timeout)
        assert not th.is_alive(), "the daemon did not finish"
        assert result == [0]
    finally:
        if th.is_alive():
            source.abort()
            daemon.stop()
            th.join(10)


def test_the_daemon_spools_while_the_receiver_is_down_and_delivers_once_after_a_restart(
        tmp_path, tiny_config, caplog):
    caplog.set_level(logging.DEBUG)
    down = Receiver(free_port())
    cfg = tiny_config(watch=[{"name": "redness", "labels": ["red"], "enter": 0.5, "exit": 0.3}],
                      sinks=[{"type": "notify", "urls": [down.url()], "on": ["start", "end"], "min_interval": 0,
                              "spool_dir": str(tmp_path / "spool"), "title": "{rule} {phase}",
                              "body": "{label} for {duration} ({reason})"}])
    def red(t0: float) -> list:
        return [(t0 + k * 0.2, (255, 0, 0) if k % 2 else (250, 0, 0)) for k in range(15)]

    blue = [(3.0 + k * 0.2, (0, 0, 255)) for k in range(15)]
    run_daemon(cfg, red(0.0) + blue + red(6.0))  # two incidents: start, end, start, end (stopped)
    assert len(list((tmp_path / "spool").glob("*.json"))) == 4
    down.start()
    try:
        quiet = [(k * 0.2, (0, 0, 255)) for k in range(10_000)]  # no event in this run
        status = run_daemon(cfg, quiet, until=lambda sink: sink.wait_idle(15))
        assert down.wait_for(4)
        assert [p["title"] for p in down.posts] == ["redness started", "redness ended"] * 2
        assert down.posts[1]["message"].endswith("(score)") and down.posts[3]["message"].endswith("(stopped)")
        image = cv2.imdecode(np.frombuffer(base64.b64decode(down.posts[0]["attachments"][0]["base64"]), np.uint8),
                             cv2.IMREAD_COLOR)
        assert image.shape == (64, 64, 3)
        assert status["services"]["json"]["sent"] == 4 and status["spooled"] == 0
        assert not list((tmp_path / "spool").glob("*.json"))
        assert len(down.posts) == 4  # none doubled
    finally:
        down.stop()
    assert SECRET not in caplog.text
