"""`edge doctor`: what this board runs, the known traps, and the fix for each.

Each check is a small function returning a :class:`Check` (status, what, detail,
fix), a list of them, or nothing when it has nothing to say. A check takes the
facts it looks at as keyword arguments; ``None`` (the default) means "read it
from this machine", so tests pass made-up facts and the CLI passes none. To add
a check (camera, GPIO, framebuffer, disk, systemd unit), write one more function
and append it to :data:`CHECKS`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edge.board import board_model, board_name, os_name  # the board's facts, shared with edge bench

logger = logging.getLogger(__name__)

OK, WARN, FAIL = "ok", "warn", "fail"
LITERT = "ai-edge-litert"
TFLITE_RUNTIME = "tflite-runtime"
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    what: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- facts (read from this machine)


def dist_version(dist: str) -> str:
    """Installed version of a distribution, or "" when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def module_version(module: str) -> str:
    """``__version__`` of an importable module, or "" when it does not import."""
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception as err:  # a broken install raises more than ImportError
        logger.debug("import %s: %s", module, err)
        return ""


def interpreter() -> tuple[str, str, str]:
    """(package, version, error) of the TFLite interpreter.

    The package edge.runtime picks; when none imports, the first one that is
    installed anyway (its import error tells why, e.g. tflite-runtime under
    numpy 2), else ("", "", error).
    """
    from edge import runtime
    from edge.errors import EdgeError

    try:
        chosen = runtime.backend()
        return chosen.package, chosen.version, ""
    except EdgeError as err:
        for _module, dist in runtime.CANDIDATES:
            if version := dist_version(dist):
                return dist, version, str(err)
        return "", "", str(err)


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


# --------------------------------------------------------------------------- checks


def check_python(version: tuple[int, ...] | None = None, executable: str | None = None) -> Check:
    version = tuple(version or sys.version_info[:3])
    where = f" ({executable or sys.executable})"
    if version[:2] < MIN_PYTHON:
        return Check(FAIL, "python", f"{_dotted(version)}{where} is too old: edge needs {_dotted(MIN_PYTHON)} or newer",
                     "use Raspberry Pi OS Bookworm (Python 3.11) or newer and run ./install.sh again")
    return Check(OK, "python", f"{_dotted(version)}{where}")


def check_platform(system: str | None = None, machine: str | None = None, board: str | None = None,
                   distro: str | None = None) -> Check:
    system = system if system is not None else platform.system()
    machine = machine if machine is not None else platform.machine()
    board = board if board is not None else board_model()
    distro = distro if distro is not None else os_name()
    detail = ", ".join(p for p in (f"{system} {machine}", board or "not a Raspberry Pi", distro) if p)
    if machine in ("armv7l", "armv6l"):
        return Check(WARN, "platform", f"{detail}: a 32-bit OS has no ai-edge-litert wheels, only the "
                     "about 10x slower tflite-runtime", "install the 64-bit Raspberry Pi OS (Bookworm, arm64)")
    return Check(OK, "platform", detail)


def check_interpreter(package: str | None = None, version: str | None = None, error: str | None = None) -> Check:
    if package is None:
        package, version, error = interpreter()
    if not package:
        return Check(FAIL, "interpreter", f"no TFLite interpreter package imports ({error})",
                     f"run ./install.sh, or pip install {LITERT}")
    if error:
        return Check(FAIL, "interpreter", f"{package} {version} is installed but does not import ({error})",
                     f"pip install {LITERT} (or, for {TFLITE_RUNTIME}, pip install 'numpy<2')")
    return Check(OK, "interpreter", f"{package} {version}")


def check_runtime_choice(package: str | None = None, machine: str | None = None, bits: int | None = None,
                         litert: str | None = None) -> Check | None:
    """Why this interpreter package: the fast one, the only one for 32-bit Arm, or why not the fast one."""
    package = package if package is not None else interpreter()[0]
    machine = machine if machine is not None else platform.machine()
    bits = bits if bits is not None else (64 if sys.maxsize > 2**32 else 32)
    if package == LITERT:
        return Check(OK, "runtime", f"{LITERT}: the maintained runtime (XNNPACK, about 10x faster than "
                     f"{TFLITE_RUNTIME}), used whenever it imports")
    if package != TFLITE_RUNTIME:
        return None
    if bits == 32 and machine.startswith(("arm", "aarch")):
        return Check(OK, "runtime", f"{TFLITE_RUNTIME}: the only TFLite runtime for 32-bit Arm ({machine}, "
                     f"32-bit Python); {LITERT} has 64-bit wheels only")
    litert = litert if litert is not None else dist_version(LITERT)
    if litert:
        return Check(WARN, "runtime", f"{TFLITE_RUNTIME}: {LITERT} {litert} is installed but does not import",
                     f"pip install --force-reinstall {LITERT}")
    return Check(WARN, "runtime", f"{TFLITE_RUNTIME}: {LITERT} is not installed (./install.sh --tflite-runtime, "
                 f"or no {LITERT} wheel for this Python or board)", f"pip install {LITERT}")


def check_numpy(version: str | None = None) -> Check:
    version = version if version is not None else module_version("numpy")
    if not version:
        return Check(FAIL, "numpy", "not importable", "run ./install.sh, or pip install numpy")
    return Check(OK, "numpy", version)


def check_opencv(version: str | None = None) -> Check:
    version = version if version is not None else module_version("cv2")
    if not version:
        return Check(FAIL, "opencv", "cv2 not importable", "run ./install.sh, or pip install opencv-python-headless")
    return Check(OK, "opencv", version)


def check_clip_encoder(encoder: str | None = None, why: str | None = None, machine: str | None = None) -> Check:
    """Which encoder the clip sink will use here (probed once with blank frames; edge/sinks/encoders.py)."""
    from edge.sinks import encoders

    if encoder is None:
        choice = encoders.choose("auto")
        encoder, why = choice.encoder, choice.why
    machine = machine if machine is not None else platform.machine()
    if encoder == encoders.FALLBACK:
        fix = ("sudo apt install python3-av" if machine in ("armv7l", "armv6l")
               else "pip install av (./install.sh installs it)")
        return Check(WARN, "clip encoder", f"mp4v (MPEG-4 Part 2): clips will not play on phones or in browsers "
                     f"({why})", fix)
    kind = "hardware" if encoder == encoders.HARDWARE else "software, on the CPU"
    return Check(OK, "clip encoder", f"{encoder} (H.264, {kind})")


def check_tflite_runtime_numpy(package: str | None = None, numpy: str | None = None) -> Check | None:
    """tflite-runtime is built against numpy 1: under numpy 2 it dies with `_ARRAY_API not found`.

    A fail, not a warning: the module imports, but building an Interpreter
    raises, so nothing can run (seen with tflite-runtime 2.14 and numpy 2.4).
    """
    package = package if package is not None else interpreter()[0]
    numpy = numpy if numpy is not None else (dist_version("numpy") or module_version("numpy"))
    if package != TFLITE_RUNTIME or _major(numpy) < 2:
        return None
    return Check(FAIL, "tflite-runtime with numpy 2",
                 f"numpy {numpy} crashes tflite-runtime when it loads a model (`_ARRAY_API not found`)",
                 f"pip install {LITERT} (works with numpy 2), or pin numpy: pip install 'numpy<2'")


def check_tflite_runtime_python(package: str | None = None, python: tuple[int, ...] | None = None) -> Check | None:
    """tflite-runtime stopped at 2.14: wheels for Python up to 3.11 only."""
    package = package if package is not None else interpreter()[0]
    python = tuple(python or sys.version_info[:3])
    if package != TFLITE_RUNTIME or python[:2] <= (3, 11):
        return None
    return Check(WARN, "tflite-runtime on Python " + _dotted(python[:2]),
                 "tflite-runtime has no wheels for Python newer than 3.11 and is not maintained",
                 f"pip install {LITERT}")


def check_tflite_runtime_speed(package: str | None = None) -> Check | None:
    package = package if package is not None else interpreter()[0]
    if package != TFLITE_RUNTIME:
        return None
    return Check(WARN, "tflite-runtime in use", f"about 10x slower than {LITERT} on MoViNet",
                 f"pip install {LITERT} (edge prefers it as soon as it is installed)")


def check_models(rows: list | None = None, directory: str | None = None) -> list[Check]:
    """Installed models and label files, and whether their sha256 checks out (edge.models.verify)."""
    from edge import models
    from edge.errors import EdgeError

    try:
        folder = directory if directory is not None else str(models.model_dir())
        rows = rows if rows is not None else models.verify(folder)
    except EdgeError as err:
        return [Check(FAIL, "models", str(err), "reinstall edge with ./install.sh")]
    checks = []
    for row in rows:
        if not row.installed:
            continue
        what = f"{row.kind} {row.name}"
        detail = f"{row.file}, {models.STATUS_TEXT[row.status]}"
        if row.status == "mismatch":
            checks.append(Check(FAIL, what, f"{detail}: the file is corrupt or was replaced",
                                f"edge models fetch {row.name} --force"))
        elif row.status == "unknown":
            checks.append(Check(WARN, what, detail, f"edge models fetch {row.name} --force (records its sha256)"))
        else:
            checks.append(Check(OK, what, detail))
        if row.kind == "model" and row.status != "mismatch":
            checks[-1] = _with_split(checks[-1], row.path)
    installed = [r for r in rows if r.installed and r.kind == "model"]
    if not installed:
        checks.insert(0, Check(WARN, "models", f"no model installed in {folder}", "edge models fetch a0"))
    wanted = {r.labels for r in installed}
    for row in rows:
        if row.kind == "labels" and row.name in wanted and not row.installed:
            checks.append(Check(WARN, f"labels {row.name}", f"{row.file} is not installed in {folder}",
                                "edge models fetch labels"))
    return checks


def _with_split(check: Check, path: str) -> Check:
    """The model check, saying whether the model splits at its head pool (edge/split.py)."""
    from edge.split import describe_file

    found = describe_file(path)
    if found is None:
        return check
    splits, text = found
    if splits:
        return replace(check, detail=f"{check.detail}, {text}")
    return Check(WARN, check.what, f"{check.detail}, {text}", check.fix or
                 "use a MoViNet stream export with state_head_pool_buffer/_frame_count and logits (the official A0-A2)")


def _installed_model_names() -> list[str] | None:
    """Manifest models whose file is in the model folder (no sha256: doctor stays fast); None if unknown."""
    from edge import models
    from edge.errors import EdgeError

    try:
        folder = models.model_dir()
        return [e.name for e in models.load_manifest().models if (folder / e.file).is_file()]
    except (EdgeError, OSError):
        return None


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %" if share < 0.1 else f"{share * 100:.0f} %"


def check_model_choice(cached: dict | None = None, path: str | None = None, board: str | None = None,
                       installed: list[str] | None = None) -> Check:
    """The model ``edge bench --all-models`` recommended for this board, from its saved result.

    Never runs a benchmark: without a saved result it says how to get one.
    """
    from edge import bench

    fix = "edge bench --all-models (a short run per installed model; the result is saved for doctor)"
    if cached is None:
        found = bench.load_cached()
        if found is None:
            return Check(WARN, "model choice",
                         "run edge bench --all-models to get a model recommendation for this board", fix)
        cached, path = found[0], str(found[1])
    board = board if board is not None else board_name()
    installed = installed if installed is not None else _installed_model_names()
    benched = [m["name"] for m in cached.get("models", [])]
    shares = ", ".join(f"{m['name']} {_percent(m['budget_share'])}" for m in cached.get("models", []))
    detail = (f"{shares} of the {cached.get('fps', 5):g} fps budget with 1 thread, {cached.get('state_policy', '?')} "
              f"policy (bench of {str(cached.get('created', '?'))[:10]}{', ' + path if path else ''})")
    if cached.get("board") != board:
        return Check(WARN, "model choice", f"the saved benchmark is from {cached.get('board') or 'another board'}, "
                     f"this is {board}", fix)
    new = [name for name in installed or [] if name not in benched]
    if new:
        return Check(WARN, "model choice", f"{', '.join(new)} installed since the benchmark ({detail})", fix)
    if not cached.get("recommended"):
        return Check(WARN, "model choice", f"no installed model stays under {cached.get('limit', 0.5) * 100:.0f} % "
                     f"of the budget: {detail}", "use the smallest model (a0) and expect dropped frames, or a faster board")
    return Check(OK, "model choice", f"{cached['recommended']} recommended: {detail}")


# --------------------------------------------------------------------------- the service: camera, GPIO, display, disk, unit
# These look at the machine as the service sees it: the `edge` user's groups (read from
# the user and group databases, so `edge doctor` run as pi or root answers for the
# service) and the service's config (/etc/edge/config.yaml, or wherever `edge run` finds it).

SERVICE_USER = "edge"
UNIT = "edge.service"
DISK_WARN_MB = 200
DISK_FAIL_MB = 20
SERVICE_FOLDERS = (("logs", "/var/log/edge"), ("state", "/var/lib/edge"))
# V4L2 nodes of the SoC itself (codecs, ISP, CSI receivers): there with or without a camera
SOC_V4L2 = ("bcm2835-codec", "bcm2835-isp", "pispbe", "rpivid", "rpi-hevc-dec", "rp1-cfe", "unicam")


@dataclass(frozen=True)
class Account:
    """Who a device permission is checked for: uid and every group id (primary and supplementary)."""

    name: str
    uid: int
    gids: frozenset[int]


GroupTable = Iterable[tuple[str, int, Iterable[str]]]  # (name, gid, members), as grp.getgrall()


def group_table() -> list[tuple[str, int, list[str]]]:
    import grp

    return [(g.gr_name, g.gr_gid, list(g.gr_mem)) for g in grp.getgrall()]


def account(user: str = SERVICE_USER, passwd: dict[str, tuple[int, int]] | None = None,
            groups: GroupTable | None = None) -> Account | None:
    """``user``'s uid and groups from the databases (or the fake ``passwd`` {name: (uid, gid)} and
    ``groups`` tables given); None when there is no such user."""
    if passwd is None:
        import pwd

        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            return None
        uid, gid = entry.pw_uid, entry.pw_gid
    elif user in passwd:
        uid, gid = passwd[user]
    else:
        return None
    table = group_table() if groups is None else groups
    return Account(user, uid, frozenset({gid} | {g for _name, g, members in table if user in members}))


def current_account() -> Account:
    import getpass
    import os

    return Account(getpass.getuser(), os.geteuid(), frozenset({os.getegid(), *os.getgroups()}))


def can_read_write(st, who: Account) -> bool:
    """Would ``who`` get read+write access to a file with this stat? (POSIX classes; ACLs ignored)."""
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        return st.st_mode & 0o600 == 0o600
    if st.st_gid in who.gids:
        return st.st_mode & 0o060 == 0o060
    return st.st_mode & 0o006 == 0o006


def _group_name(gid: int, groups: GroupTable | None) -> str:
    table = group_table() if groups is None else groups
    return next((name for name, g, _members in table if g == gid), str(gid))


def _service_account(user: str, passwd, groups, me: Account | None) -> tuple[Account, str]:
    """The service user, else (not installed) whoever runs doctor, with a note saying so."""
    found = account(user, passwd, groups)
    if found is not None:
        return found, ""
    me = me or current_account()
    return me, f" (there is no {user} user, so the service is not installed: this is for you, {me.name})"


def service_config(path: str | None = None):
    """The config the service runs with; the defaults when it cannot be read."""
    from edge import config
    from edge.errors import EdgeError

    try:
        p = Path(path) if path else config.default_path()
        if p.exists():
            return config.load(p)
    except (EdgeError, OSError) as err:
        logger.debug("doctor: config not readable: %s", err)
    return config.Config()


def _permission_fix(path: Path, st, who: Account, groups: GroupTable | None) -> str:
    group = _group_name(st.st_gid, groups)
    if st.st_mode & 0o060 == 0o060 and group != "root":
        return f"sudo usermod -aG {group} {who.name}, then sudo systemctl restart edge (sudo ./install.sh --system does it)"
    return (f"{path} is not group read-writable ({st.st_mode & 0o777:o}, group {group}): Raspberry Pi OS sets it with "
            "a udev rule (package raspberrypi-sys-mods); reinstall that, or add a rule of your own")


def _device_access(what: str, paths: list[Path], who: Account, note: str, groups: GroupTable | None,
                   bad_status: str) -> Check:
    bad = [p for p in paths if not can_read_write(p.stat(), who)]
    names = ", ".join(str(p) for p in paths)
    if not bad:
        return Check(OK, what, f"{who.name} can read and write {names}{note}")
    st = bad[0].stat()
    detail = (f"{who.name} cannot read and write {', '.join(str(p) for p in bad)} "
              f"(owner uid {st.st_uid}, group {_group_name(st.st_gid, groups)}, mode {st.st_mode & 0o777:o}){note}")
    return Check(bad_status, what, detail, _permission_fix(bad[0], st, who, groups))


def _picamera_present() -> tuple[bool, str]:
    try:
        from edge.capture.picamera import camera_present
    except ImportError as err:  # the picamera2 source is not part of this install
        return False, f"edge has no picamera2 source here ({err})"
    return camera_present()


def check_camera(cfg=None, present: tuple[bool, str] | None = None, devices: list[tuple[str, str]] | None = None,
                 dev: str = "/dev", sysfs: str = "/sys/class/video4linux") -> Check:
    """A CSI camera (picamera2) or a V4L2 capture device, as the configured source needs."""
    from edge.capture.base import describe_spec, redact

    cfg = cfg if cfg is not None else service_config()
    kind, spec = cfg.source.kind, cfg.source.spec
    if kind == "auto" and spec not in (None, "auto"):
        kind = describe_spec(spec)
    if kind in ("file", "rtsp"):
        return Check(OK, "camera", f"not needed: the source is {kind} {redact(spec)}")
    if devices is None:
        from edge.capture.auto import v4l2_devices  # the list AutoSource picks a camera from

        devices = v4l2_devices(dev, sysfs)
    if kind == "v4l2":
        want = spec or "0"
        want = f"{dev}/video{want}" if want.isdigit() else want
        if any(path == want for path, _name in devices):
            return Check(OK, "camera", f"{want} (source v4l2)")
        return Check(FAIL, "camera", f"the source is {want} but it does not exist",
                     "plug the camera in (ls /dev/video*; v4l2-ctl --list-devices), or set source.spec")
    present, why = present if present is not None else _picamera_present()
    if present:
        return Check(OK, "camera", f"{why} (picamera2)")
    fix = ("power off, reseat the camera ribbon cable (contacts the right way round), boot, then "
           "rpicam-hello --list-cameras; sudo apt install python3-picamera2 if it is missing")
    if kind == "picamera2":
        return Check(FAIL, "camera", f"no CSI camera: {why}", fix)
    capture = [(p, n) for p, n in devices if not n.startswith(SOC_V4L2)]
    if capture:
        shown = ", ".join(f"{p} ({n})" if n else p for p, n in capture)
        return Check(OK, "camera", f"V4L2 {shown}; no CSI camera ({why})")
    soc = f"; {', '.join(p for p, _n in devices)} are the SoC's codec/ISP nodes, not cameras" if devices else ""
    return Check(FAIL, "camera", f"no camera: {why}; no V4L2 capture device{soc}",
                 fix + "; or plug in a USB webcam, or set source.kind to file or rtsp")


def check_gpio(cfg=None, dev: str = "/dev", user: str = SERVICE_USER, passwd: dict[str, tuple[int, int]] | None = None,
               groups: GroupTable | None = None, me: Account | None = None) -> Check | None:
    """/dev/gpiochip* read-writable by the service user (through the gpio group on Raspberry Pi OS)."""
    from edge.config import GpioSinkConfig

    cfg = cfg if cfg is not None else service_config()
    needed = any(isinstance(s, GpioSinkConfig) for s in cfg.sinks)
    chips = sorted(Path(dev).glob("gpiochip*"))
    if not chips:
        if needed:
            return Check(FAIL, "gpio", f"a gpio sink is configured but there is no {dev}/gpiochip*",
                         "run edge on a board with GPIO (a Raspberry Pi), or remove the gpio sink")
        return None  # a laptop: nothing to say
    who, note = _service_account(user, passwd, groups, me)
    return _device_access("gpio", chips, who, note, groups, FAIL if needed else WARN)


def check_framebuffer(cfg=None, dev: str = "/dev", user: str = SERVICE_USER,
                      passwd: dict[str, tuple[int, int]] | None = None, groups: GroupTable | None = None,
                      me: Account | None = None) -> Check | None:
    """The overlay sink's framebuffer (/dev/fb0) writable by the service user (group video)."""
    from edge.config import OverlaySinkConfig

    cfg = cfg if cfg is not None else service_config()
    overlays = [s for s in cfg.sinks if isinstance(s, OverlaySinkConfig)]
    fb = Path(overlays[0].fb_device if overlays else f"{dev}/fb0")
    needed = any(s.display == "fbdev" for s in overlays)
    if not fb.exists():
        if needed:
            return Check(FAIL, "framebuffer", f"the overlay sink draws on {fb} but it does not exist",
                         "connect a display (HDMI/DSI/SPI) and enable its driver, or set the overlay display to snapshot")
        return None
    who, note = _service_account(user, passwd, groups, me)
    return _device_access("framebuffer", [fb], who, note, groups, FAIL if needed else WARN)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(folders: Iterable[tuple[str, str]] = SERVICE_FOLDERS, statvfs: Callable | None = None) -> list[Check]:
    """Free space where the service writes logs, clips and snapshots: warn < 200 MB, fail < 20 MB."""
    import os

    statvfs = statvfs or os.statvfs
    checks = []
    for label, folder in folders:
        where = _existing(Path(folder))
        st = statvfs(str(where))
        free_mb = st.f_bavail * st.f_frsize / 1e6
        detail = f"{free_mb:,.0f} MB free for {folder}" + ("" if where == Path(folder) else f" (on {where})")
        fix = ("free some space: sudo journalctl --vacuum-size=50M, delete old clips in /var/lib/edge/clips, "
               "sudo apt clean; lower max_mb/keep of the log sink and max_mb of the clip sink")
        if free_mb < DISK_FAIL_MB:
            checks.append(Check(FAIL, f"disk {label}", f"{detail}: logs and clips can no longer be written", fix))
        elif free_mb < DISK_WARN_MB:
            checks.append(Check(WARN, f"disk {label}", f"{detail}: nearly full", fix))
        else:
            checks.append(Check(OK, f"disk {label}", detail))
    return checks


def _run(args: list[str]) -> tuple[int, str, str]:
    import subprocess

    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 1, "", str(err)
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def check_service(systemctl: str | None = None, booted: bool | None = None,
                  run: Callable[[list[str]], tuple[int, str, str]] | None = None) -> Check:
    """edge.service: installed, enabled (starts at boot) and active (running)."""
    import shutil

    systemctl = shutil.which("systemctl") or "" if systemctl is None else systemctl
    if not systemctl:
        return Check(OK, "service", "systemctl not available (not a systemd system): skipped")
    booted = Path("/run/systemd/system").is_dir() if booted is None else booted
    run = run or _run
    _code, enabled, _err = run([systemctl, "is-enabled", UNIT])
    install_fix = "sudo ./install.sh --system (in the edge checkout)"
    if not enabled or enabled == "not-found":
        if not booted:
            return Check(OK, "service", f"{UNIT} is not installed; systemd is not running here: skipped")
        return Check(WARN, "service", f"{UNIT} is not installed", install_fix)
    if not booted:
        return Check(OK, "service", f"{UNIT} is {enabled}; systemd is not running here, so its state is unknown")
    _code, active, _err = run([systemctl, "is-active", UNIT])
    logs = "journalctl -u edge -n 50 says why"
    if enabled == "masked":
        return Check(FAIL, "service", f"{UNIT} is masked: it cannot start", "sudo systemctl unmask --now edge")
    if active == "failed":
        return Check(FAIL, "service", f"{UNIT} failed ({enabled})",
                     f"{logs}; fix it (edge check-config -c /etc/edge/config.yaml), then "
                     "sudo systemctl reset-failed edge && sudo systemctl start edge")
    if active in ("activating", "reloading", "deactivating"):
        return Check(WARN, "service", f"{UNIT} is {active} ({enabled})",
                     "wait a minute (it is ready after the first inference); if it stays so, " + logs)
    if active != "active":
        return Check(WARN, "service", f"{UNIT} is {active or 'unknown'} ({enabled})", "sudo systemctl start edge")
    if enabled != "enabled":
        return Check(WARN, "service", f"{UNIT} is running but {enabled}: it will not start at boot",
                     "sudo systemctl enable edge")
    return Check(OK, "service", f"{UNIT} is active and enabled")


CheckFn = Callable[[], "Check | Iterable[Check] | None"]

CHECKS: list[CheckFn] = [
    check_python,
    check_platform,
    check_interpreter,
    check_runtime_choice,
    check_numpy,
    check_opencv,
    check_clip_encoder,
    check_tflite_runtime_numpy,
    check_tflite_runtime_python,
    check_tflite_runtime_speed,
    check_models,
    check_model_choice,
    check_camera,
    check_gpio,
    check_framebuffer,
    check_disk,
    check_service,
]


# --------------------------------------------------------------------------- running


def run(checks: Iterable[CheckFn] | None = None) -> list[Check]:
    """Run the checks in order; a check that crashes is reported as a failure, not raised."""
    results: list[Check] = []
    for check in (CHECKS if checks is None else checks):
        try:
            found = check()
        except Exception as err:  # a doctor must not die of what it examines
            logger.debug("check %s crashed", check.__name__, exc_info=True)
            name = check.__name__.removeprefix("check_")
            results.append(Check(FAIL, name, f"the check itself failed: {type(err).__name__}: {err}",
                                 "report it with the output of edge -v doctor"))
            continue
        if found is None:
            continue
        results.extend([found] if isinstance(found, Check) else found)
    return results


def exit_code(results: Iterable[Check]) -> int:
    """0 unless a check failed (warnings do not fail)."""
    return 1 if any(c.status == FAIL for c in results) else 0


def format_checks(results: Iterable[Check]) -> str:
    lines = []
    for c in results:
        lines.append(f"{c.status:<4}  {c.what}: {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"      fix: {c.fix}")
    return "\n".join(lines)


def format_json(results: Iterable[Check]) -> str:
    return json.dumps([c.as_dict() for c in results], indent=2)
