"""NotifySink: one message per incident to a person's phone, through Apprise.

Apprise (an optional extra: ``pip install 'edge[notify]'``) speaks one URL scheme
for ntfy, Telegram, Pushover, Gotify, Discord, Slack, Matrix, e-mail, Home
Assistant, JSON/form webhooks and about a hundred more; it is imported only when
a notify sink starts (or check-config / ``edge notify test`` look at one).

The path of a message::

    event() (sink thread) --> Spool: one JSON file each, atomic --> worker thread --> Apprise
                                    (survives restarts)                (retry with backoff per service)

- ``event(start)`` of a watched rule makes one message, unless the rule already
  sent one less than ``min_interval`` seconds ago (a burst of starts is one
  incident; suppressed starts are counted). An ``end`` is sent only when ``on``
  asks for it and the incident's start was sent. The snapshot is the annotated
  frame at the event's peak (the overlay sink's ``render``), so it does not need
  a clip or overlay sink.
- The message is written to the spool before anything is sent; the worker sends
  it to every configured service and deletes it when all have taken it. A
  service that fails is retried with exponential backoff (oldest message first,
  so order holds); the other services go on. What is still spooled at stop is
  sent after the next start. The spool is bounded by count and size (oldest
  dropped, counted) and by age.
- URLs carry tokens: logs, status and check-config name a service by its scheme
  only (``ntfy``, ``tgram``, ``json``; ``json#2`` for a second one). Apprise's
  own log lines are captured, stripped of every part of every configured URL,
  and reported through this module's logger; they never reach the log as they
  are.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import socket
import stat
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edge.errors import EdgeError
from edge.sinks.base import Sink, SinkContext
from edge.spool import Spool

if TYPE_CHECKING:
    from edge.prediction import Prediction
    from edge.smoothing import Event

logger = logging.getLogger(__name__)

INSTALL_HINT = "install it with `pip install 'edge[notify]'` or `./install.sh --with notify`"
HEARTBEAT_FILE = ".heartbeat"
IDLE_CHECK = 60.0  # seconds between worker passes with nothing due (heartbeat, age limit)


# --------------------------------------------------------------------------- URLs and secrets


def read_urls(cfg: Any) -> list[str]:
    """``cfg.urls`` and then the lines of ``cfg.urls_file``; EdgeError names the file, never a URL."""
    urls = list(cfg.urls)
    if cfg.urls_file:
        path = SinkContext.state_path(cfg.urls_file)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EdgeError(f"notify urls_file {path} does not exist: create it with one Apprise URL a line "
                            "(chmod 600)") from None
        except OSError as err:
            raise EdgeError(f"cannot read notify urls_file {path}: {err.strerror} (the edge user must own it, "
                            "mode 600)") from None
        except UnicodeDecodeError:
            raise EdgeError(f"notify urls_file {path} is not UTF-8 text") from None
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise EdgeError(f"notify urls_file {path} is open to every user (mode {stat.S_IMODE(mode):o}): "
                            f"its URLs hold tokens: chmod 600 {path}")
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "://" not in line:
                raise EdgeError(f"notify urls_file {path} line {n} is not a URL (service://...)")
            urls.append(line)
    if not urls:
        raise EdgeError("notify sink has no URL: add urls or lines to urls_file")
    return urls


def scheme(url: str) -> str:
    return url.split("://", 1)[0].strip().lower() or "?"


def service_names(urls: list[str]) -> list[str]:
    """Each URL's scheme; the second ``ntfy`` is ``ntfy#2``. Never anything else of a URL."""
    seen: dict[str, int] = {}
    names = []
    for url in urls:
        s = scheme(url)
        seen[s] = seen.get(s, 0) + 1
        names.append(s if seen[s] == 1 else f"{s}#{seen[s]}")
    return names


def target_id(url: str) -> str:
    """What a spooled message names a service by: a hash, so the spool holds no token."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def secret_parts(url: str) -> set[str]:
    """Every piece of ``url`` that may be a secret: the URL, user, password, host, path segments, query values."""
    parts = {url}
    rest = url.split("://", 1)[-1]
    try:
        split = urllib.parse.urlsplit("x://" + rest)
        pieces = [split.username, split.password, split.hostname, split.fragment]
        pieces += split.path.split("/")
        pieces += [v for _, v in urllib.parse.parse_qsl(split.query, keep_blank_values=True)]
        pieces += split.netloc.split("@") + rest.split("?")[0].split("/")  # tgram://123:ABC/...: the whole token
    except ValueError:  # not parseable as a URL: fall back to its plain pieces
        pieces = rest.replace("@", "/").replace(":", "/").replace("?", "/").split("/")
    for piece in pieces:
        if piece and len(piece) >= 3:
            parts.add(piece)
            parts.add(urllib.parse.quote(piece, safe=""))
    return parts


class _Redact(logging.Filter):
    """Sits on urllib3's logger (Apprise's HTTP client): its DEBUG lines print request paths, tokens and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _LOG.secrets:
            record.msg, record.args = _LOG.redact(record.getMessage()), ()
        return True


class _AppriseLog(logging.Filter):
    """Sits on the ``apprise`` logger: captures its lines for the send in progress, lets none through."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lines: list[str] | None = None

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        lines = self.lines
        if lines is not None and record.levelno >= logging.INFO:
            try:
                lines.append(self.redact(record.getMessage()))
            except Exception:  # a malformed apprise record must not break a send
                pass
        return False


_LOG = _AppriseLog()
_SEND_LOCK = threading.Lock()  # one Apprise call at a time in this process, so its log lines are ours


def _apprise():
    """The apprise module, with its logger captured; EdgeError with the install hint if it is missing."""
    try:
        import apprise
    except ImportError as err:
        raise EdgeError(f"the notify sink needs Apprise ({err}): {INSTALL_HINT}") from None
    log = logging.getLogger("apprise")
    if _LOG not in log.filters:
        log.addFilter(_LOG)
        log.setLevel(logging.INFO)  # its DEBUG lines print request URLs: never even formatted
        logging.getLogger("urllib3.connectionpool").addFilter(_Redact())
    return apprise


def redact(text: str) -> str:
    return _LOG.redact(text)


def _answer(lines: list[str], ok: bool) -> str:
    kept = []
    for line in lines:
        line = line.strip().rstrip(".")
        if line and line not in kept and not line.startswith("Notifying "):
            kept.append(line)
    return "; ".join(kept)[:300] or ("sent" if ok else "failed (no reason given)")


class Service:
    """One configured URL: its own Apprise object, name, counters and backoff."""

    def __init__(self, url: str, name: str, *, retry: float = 5.0, retry_max: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.target = target_id(url)
        self._url = url
        self.retry, self.retry_max = retry, retry_max
        _LOG.secrets |= secret_parts(url)
        self.apprise: Any = None
        self.sent = 0
        self.failed = 0  # failed attempts
        self.failures = 0  # failed attempts in a row (the backoff)
        self.next_try = 0.0  # monotonic
        self.last_error = ""
        self.last_error_at = 0.0
        self.last_sent_at = 0.0
        self.last_answer = ""

    def load(self) -> None:
        """Parse the URL with Apprise; EdgeError (service name, Apprise's reason, no secret) if it is not valid."""
        apprise = _apprise()
        with _SEND_LOCK:
            _LOG.lines = []
            try:
                obj = apprise.Apprise()
                ok = obj.add(self._url)
            finally:
                lines, _LOG.lines = _LOG.lines, None
        if not ok:
            why = _answer(lines, False) if lines else "Apprise does not know this URL form"
            raise EdgeError(f"{self.name}: not a valid Apprise URL ({why}); see https://github.com/caronc/apprise/wiki")
        self.apprise = obj

    def send(self, title: str, body: str, attach: str | None) -> bool:
        """One attempt; counts it and sets the backoff. True if the service took the message."""
        ok = False
        with _SEND_LOCK:
            _LOG.lines = []
            try:
                ok = bool(self.apprise.notify(title=title, body=body, attach=attach))
            except Exception as err:  # a plugin bug must not stop the worker
                _LOG.lines.append(f"{type(err).__name__}: {redact(str(err))}")
            finally:
                lines, _LOG.lines = _LOG.lines, None
        self.last_answer = _answer(lines, ok)
        if ok:
            self.sent += 1
            self.failures = 0
            self.next_try = 0.0
            self.last_sent_at = time.time()
            return True
        self.failed += 1
        self.failures += 1
        self.next_try = self.clock() + min(self.retry_max, self.retry * 2 ** min(self.failures - 1, 30))
        self.last_error = self.last_answer
        self.last_error_at = time.time()
        return False


def load_services(cfg: Any, clock: Callable[[], float] = time.monotonic) -> list[Service]:
    urls = read_urls(cfg)
    return [Service(url, name, retry=cfg.retry_seconds, retry_max=cfg.retry_max_seconds, clock=clock)
            for url, name in zip(urls, service_names(urls))]


def notify_sinks(config: Any) -> list[tuple[int, Any]]:
    return [(i, s) for i, s in enumerate(config.sinks) if getattr(s, "type", None) == "notify"]


def check_urls(config: Any) -> list[str]:
    """check-config: every notify URL parsed by Apprise, nothing sent. The problems, naming services only."""
    problems = []
    for i, sink in notify_sinks(config):
        try:
            for svc in load_services(sink):
                try:
                    svc.load()
                except EdgeError as err:
                    problems.append(f"sinks[{i}] (notify): {err}")
        except EdgeError as err:
            problems.append(f"sinks[{i}] (notify): {err}")
    return problems


def send_test(config: Any) -> list[tuple[str, bool, str]]:
    """``edge notify test``: one message through every configured URL, now; (name, ok, answer) each."""
    found = notify_sinks(config)
    if not found:
        raise EdgeError("the config has no notify sink: add one (see docs/notify.md)")
    host = socket.gethostname()
    results = []
    for i, sink in found:
        for svc in load_services(sink):
            name = f"sinks[{i}] {svc.name}"
            try:
                svc.load()
            except EdgeError as err:
                results.append((name, False, str(err).split(": ", 1)[-1]))
                continue
            ok = svc.send(f"{host}: edge test message",
                          f"Test message from edge on {host} at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                          "notifications work.", None)
            results.append((name, ok, svc.last_answer))
    return results


# --------------------------------------------------------------------------- messages


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _snapshot(p: Prediction, quality: int) -> str | None:
    """The prediction's frame with the overlay drawn on it, as base64 JPEG (None without a frame)."""
    if p.frame is None:
        return None
    import cv2

    from edge.sinks.overlay import render

    image = render(p.frame.pixels, p)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None


@dataclass
class _Incident:
    """A watched rule's event in progress: whether its start was sent, and its peak so far."""

    sent: bool
    peak: float
    at: Prediction | None = None


class NotifySink(Sink):
    """Events -> spooled messages -> Apprise, off the pipeline's threads. See the module docstring.

    ``clock`` (monotonic seconds: min_interval, backoff) and ``wall`` (Unix time:
    heartbeat, age limit) are for tests.
    """

    type = "notify"

    def __init__(self, cfg: Any, ctx: SinkContext, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(cfg, ctx)
        self.clock, self.wall = clock, wall
        self.host = socket.gethostname()
        self.services: list[Service] = []
        self.spool: Spool | None = None
        self.suppressed = 0  # starts within min_interval of the rule's last message
        self.not_spooled = 0  # messages that could not be written (disk full, no spool)
        self.gone = 0  # spooled deliveries to services no longer configured
        self.heartbeats = 0
        self.predictions = 0  # since the last heartbeat
        self.events = 0  # since the last heartbeat
        self.last_error = ""
        self._incidents: dict[str, _Incident] = {}
        self._last_message: dict[str, float] = {}
        self._last_heartbeat = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._passed = threading.Condition()  # notified after each worker pass
        self._worker: threading.Thread | None = None
        self._closed = False

    def describe(self) -> str:
        return "notify:" + ",".join(s.name for s in self.services) if self.services else "notify"

    # ------------------------------------------------------------------ start / close

    def start(self) -> None:
        self.services = load_services(self.cfg, self.clock)
        folder = self.ctx.state_path(self.cfg.spool_dir)
        spool = Spool(folder, self.cfg.spool_max_messages, int(self.cfg.spool_max_mb * 1024 * 1024))
        spool.open()
        self.spool = spool
        try:
            for svc in self.services:
                svc.load()
        except EdgeError as err:  # messages still spool; they go out once Apprise and the URL are right
            self.last_error = str(err)
            logger.error("notify: %s; messages are kept in %s", err, folder)
        self._last_heartbeat = self._read_heartbeat()
        self._worker = threading.Thread(target=self._run, name="notify-worker", daemon=True)
        self._worker.start()
        logger.info("notify: to %s; %d messages waiting in %s", ", ".join(s.name for s in self.services),
                    len(spool), folder)

    def close(self) -> None:
        """Stop the worker (a send in progress finishes); what is spooled stays for the next start. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(5.0)  # systemd kills at TimeoutStopSec=10; what is unsent stays spooled
            if self._worker.is_alive():
                logger.warning("notify: a send was still in progress at stop; its message stays spooled")
        if self.spool is not None:
            left = len(self.spool)
            if left:
                logger.info("notify: %d messages stay spooled, to be sent after the next start", left)
            self.spool.close()

    # ------------------------------------------------------------------ events (the sink thread)

    def event(self, event: Event, latest: Prediction | None) -> None:
        rule = event.rule
        if self.cfg.rules and rule not in self.cfg.rules:
            return
        if event.phase == "start":
            self.events += 1
            now = self.clock()
            last = self._last_message.get(rule)
            send = last is None or now - last >= self.cfg.min_interval
            self._incidents[rule] = _Incident(sent=send, peak=event.score, at=latest)
            if not send:
                self.suppressed += 1
                logger.debug("notify: %s started %.0f s after the last message: suppressed", rule, now - last)
                return
            self._last_message[rule] = now
            if "start" in self.cfg.on:
                self._enqueue(event, latest, latest)
            return
        incident = self._incidents.pop(rule, None)
        if incident is not None and incident.sent and "end" in self.cfg.on:
            self._enqueue(event, latest, incident.at or latest)

    def emit(self, p: Prediction) -> None:
        self.predictions += 1
        for rule, incident in self._incidents.items():
            score = p.scores.get(rule, 0.0)
            if rule in p.active and score > incident.peak:
                incident.peak, incident.at = score, p

    def _fields(self, event: Event, latest: Prediction | None, shown: Prediction | None) -> dict[str, Any]:
        from edge.prediction import event_wall

        top = (shown or latest).smoothed_top if (shown or latest) is not None else ()
        score = event.score if event.phase == "start" else event.peak
        return {"rule": event.rule, "label": top[0].label if top else "", "score": round(float(score), 4),
                "host": self.host, "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event_wall(event, latest))),
                "duration": _duration(event.duration), "phase": "started" if event.phase == "start" else "ended",
                "reason": event.reason}

    def _enqueue(self, event: Event, latest: Prediction | None, shown: Prediction | None) -> None:
        values = self._fields(event, latest, shown)
        snapshot = None
        if self.cfg.attach == "snapshot" and shown is not None:
            snapshot = _snapshot(shown, self.cfg.jpeg_quality)
        stamp = values["time"].replace("-", "").replace(":", "").replace(" ", "-")
        self._put({"kind": "event", "rule": event.rule, "phase": event.phase,
                   "title": self.cfg.title.format(**values), "body": self.cfg.body.format(**values),
                   "snapshot": snapshot, "snapshot_name": _safe_name(f"{event.rule}-{stamp}.jpg")})

    def _put(self, message: dict[str, Any]) -> None:
        spool = self.spool
        if spool is None:
            self.not_spooled += 1
            return
        message = {"v": 1, "created": self.wall(), "targets": [s.target for s in self.services], **message}
        try:
            spool.put(message)
        except OSError as err:
            self.not_spooled += 1
            self.last_error = f"spool: {err.strerror or err}"
            logger.error("notify: cannot spool a message in %s: %s", spool.folder, err.strerror or err)
            return
        self._wake.set()

    # ------------------------------------------------------------------ heartbeat

    def _read_heartbeat(self) -> float:
        path = self.spool.folder / HEARTBEAT_FILE
        try:
            return float(path.read_text().strip())
        except (OSError, ValueError):
            now = self.wall()
            self._write_heartbeat(now)
            return now

    def _write_heartbeat(self, when: float) -> None:
        try:
            (self.spool.folder / HEARTBEAT_FILE).write_text(f"{when:.0f}\n")
        except OSError as err:
            logger.debug("notify: cannot record the heartbeat time: %s", err)

    def _heartbeat(self) -> None:
        hours = self.cfg.heartbeat_hours
        now = self.wall()
        if hours <= 0 or now - self._last_heartbeat < hours * 3600:
            return
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(self._last_heartbeat))
        self._put({"kind": "heartbeat", "title": f"{self.host}: still watching",
                   "body": f"edge on {self.host} is still watching: {self.predictions} predictions and "
                           f"{self.events} events since {since}, {self.suppressed} suppressed in all."})
        self.heartbeats += 1
        self.predictions = self.events = 0
        self._last_heartbeat = now
        self._write_heartbeat(now)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._pass()
            except Exception as err:  # never let the worker die: log, wait, try again
                self.last_error = f"worker: {type(err).__name__}: {redact(str(err))}"
                logger.error("notify: %s", self.last_error)
                delay = self.cfg.retry_seconds
            with self._passed:
                self._passed.notify_all()
            self._wake.wait(delay)
            self._wake.clear()

    def _pass(self) -> float:
        """Send what is due, oldest first; the seconds until something is due again."""
        spool = self.spool
        self._heartbeat()
        spool.expire(self.wall() - self.cfg.max_age_hours * 3600)
        by_target = {s.target: s for s in self.services}
        due = math.inf
        held: set[str] = set()  # services an older message is still waiting for: later ones wait too (order kept)
        for name in spool.pending():
            if self._stop.is_set():
                break
            message = spool.read(name)
            if message is None:
                continue
            targets = list(message["targets"])
            left = []
            attach: Path | None = None
            tmp = tempfile.TemporaryDirectory(prefix="edge-notify-")  # /tmp is private under systemd
            try:
                for target in targets:
                    svc = by_target.get(target)
                    if svc is None:  # its URL left the config
                        self.gone += 1
                        continue
                    now = self.clock()
                    if svc.apprise is None or target in held or svc.next_try > now or self._stop.is_set():
                        left.append(target)
                        held.add(target)
                        if svc.apprise is not None:
                            due = min(due, svc.next_try)
                        continue
                    if attach is None and message.get("snapshot"):
                        attach = Path(tmp.name) / message.get("snapshot_name", "snapshot.jpg")  # the name they see
                        attach.write_bytes(base64.b64decode(message["snapshot"]))
                    if svc.send(message["title"], message["body"], str(attach) if attach else None):
                        logger.info("notify: %s sent to %s", message.get("rule") or message.get("kind"), svc.name)
                    else:
                        left.append(target)
                        held.add(target)
                        due = min(due, svc.next_try)
                        if svc.failures == 1 or svc.failures % 10 == 0:  # the first failure, then every 10th
                            logger.warning("notify: %s failed (%s): retrying in %.0f s (failure %d in a row)",
                                           svc.name, svc.last_error, svc.next_try - self.clock(), svc.failures)
            finally:
                tmp.cleanup()
            if not left:
                spool.delete(name)
            elif left != targets:
                spool.update(name, {**message, "targets": left})
        return max(0.01, min(IDLE_CHECK, due - self.clock()))

    def kick(self) -> None:
        """Make the worker look at the spool (and the heartbeat) now."""
        self._wake.set()

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (tests, ``edge notify``) until ``condition()`` holds after a worker pass; False on timeout."""
        with self._passed:
            return self._passed.wait_for(condition, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once a worker pass ends with nothing spooled (all sent or dropped), within ``timeout``."""
        return self.wait(lambda: self.spool is not None and not len(self.spool), timeout)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        spool = self.spool
        if spool is None:  # not started (or its spool could not be opened): an empty Spool is falsy, so no `if spool`
            spool = Spool(self.cfg.spool_dir, 1, 1)
        services = {s.name: {"queued": spool.queued(s.target), "sent": s.sent, "failed": s.failed,
                             "dropped": spool.dropped_by_target.get(s.target, 0), "last_error": s.last_error,
                             "retry_in_s": round(max(0.0, s.next_try - self.clock()), 1) if s.failures else 0.0}
                    for s in self.services}
        return {"services": services, "spooled": len(spool), "spool_kb": round(spool.bytes() / 1024, 1),
                "dropped": spool.dropped, "gone": self.gone, "suppressed": self.suppressed,
                "not_spooled": self.not_spooled, "heartbeats": self.heartbeats, "error": self.last_error}
