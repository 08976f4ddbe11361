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
from dataclasses import asdict, dataclass
from pathlib import Path

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


def board_model(path: str = "/proc/device-tree/model") -> str:
    """``Raspberry Pi 5 Model B Rev 1.0``, or "" when not a device-tree board."""
    try:
        return Path(path).read_bytes().rstrip(b"\0\n").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def os_name(path: str = "/etc/os-release") -> str:
    """PRETTY_NAME from os-release (``Debian GNU/Linux 12 (bookworm)``), or ""."""
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
    except OSError:
        pass
    return ""


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
        what = f"{'model' if row.kind == 'model' else 'labels'} {row.name}"
        detail = f"{row.file}, {models.STATUS_TEXT[row.status]}"
        if row.status == "mismatch":
            checks.append(Check(FAIL, what, f"{detail}: the file is corrupt or was replaced",
                                f"edge models fetch {row.name} --force"))
        elif row.status == "unknown":
            checks.append(Check(WARN, what, detail, f"edge models fetch {row.name} --force (records its sha256)"))
        else:
            checks.append(Check(OK, what, detail))
    installed = [r for r in rows if r.installed and r.kind == "model"]
    if not installed:
        checks.insert(0, Check(WARN, "models", f"no model installed in {folder}", "edge models fetch a0"))
    wanted = {r.labels for r in installed}
    for row in rows:
        if row.kind == "labels" and row.name in wanted and not row.installed:
            checks.append(Check(WARN, f"labels {row.name}", f"{row.file} is not installed in {folder}",
                                "edge models fetch labels"))
    return checks


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
    board = board if board is not None else bench.board_name()
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


CheckFn = Callable[[], "Check | Iterable[Check] | None"]

CHECKS: list[CheckFn] = [
    check_python,
    check_platform,
    check_interpreter,
    check_numpy,
    check_opencv,
    check_tflite_runtime_numpy,
    check_tflite_runtime_python,
    check_tflite_runtime_speed,
    check_models,
    check_model_choice,
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
