"""systemd/edge.service: what it promises the daemon, `systemd-analyze verify` clean, exposure <= 2.0.

`verify` checks that every Exec*= binary exists; /opt/edge/venv/bin/edge exists only after
`install.sh --system`, so the unit is verified from a copy in a temp folder whose Exec
lines point at a stand-in executable (everything else unchanged). Drop-ins next to it
(edge.service.d/) are read too. `security --offline=true` needs no binaries and no
running systemd. Without systemd-analyze (apt install systemd) those tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "edge.service"
NETWORK = SYSTEMD / "edge-network.conf"
ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt install systemd; "
                                                          ".ci/run installs it when it runs as root with apt)")


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120)


def staged_unit(tmp_path: Path, dropins: dict[str, Path] | None = None) -> Path:
    """A copy of the unit whose Exec lines run a stand-in for /opt/edge/venv/bin/edge, plus drop-ins."""
    fake = tmp_path / "bin" / "edge"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    unit = units / "edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge/venv/bin/edge", str(fake)))
    for name, src in (dropins or {}).items():
        (units / "edge.service.d").mkdir(exist_ok=True)
        (units / "edge.service.d" / name).write_text(src.read_text())
    return unit


def exposure(output: str) -> float:
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", output)
    assert found, f"no exposure line in:\n{output}"
    return float(found.group(1))


def settings(path: Path) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values, in order (systemd keys may repeat)."""
    out: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key), []).append(value)
    return out


def test_the_unit_says_what_the_daemon_does():
    s = settings(UNIT)
    one = {k: v[-1] for k, v in s.items()}
    assert one[("Service", "Type")] == "notify" and one[("Service", "NotifyAccess")] == "main"
    assert one[("Service", "ExecStartPre")] == "/opt/edge/venv/bin/edge check-config -c /etc/edge/config.yaml"
    assert one[("Service", "ExecStart")] == "/opt/edge/venv/bin/edge run -c /etc/edge/config.yaml"
    assert one[("Service", "ExecReload")] == """/bin/sh -c 'kill -HUP "$$MAINPID"'"""
    assert one[("Service", "WatchdogSec")] == "30"
    assert (one[("Service", "Restart")], one[("Service", "RestartSec")]) == ("on-failure", "5")
    assert ("Unit", "StartLimitIntervalSec") in s and ("Unit", "StartLimitBurst") in s
    assert one[("Service", "TimeoutStopSec")] == "10"
    assert s[("Service", "Environment")][0] == "EDGE_MODEL_DIR=/var/lib/edge/models PYTHONUNBUFFERED=1"
    assert (one[("Service", "User")], one[("Service", "Group")]) == ("edge", "edge")
    # only a group every Debian has: gpio/render come from a drop-in where they exist
    assert one[("Service", "SupplementaryGroups")] == "video"
    for key in ("StateDirectory", "LogsDirectory", "RuntimeDirectory", "ConfigurationDirectory"):
        assert one[("Service", key)] == "edge"
    assert one[("Service", "RestrictAddressFamilies")] == "AF_UNIX AF_NETLINK"
    assert one[("Service", "IPAddressDeny")] == "any"
    assert one[("Service", "ProtectSystem")] == "strict"
    assert one[("Service", "UMask")] == "0027"
    # ProtectClock= implies DeviceAllow=char-rtc, which would lock out the camera unless the
    # device policy is explicit and lists it
    assert one[("Service", "DevicePolicy")] == "closed"
    allowed = {v.split()[0] for v in s[("Service", "DeviceAllow")]}
    assert {"char-video4linux", "char-media", "char-dma_heap", "char-drm", "char-fb", "char-gpiochip"} <= allowed
    assert one[("Install", "WantedBy")] == "multi-user.target"


def exec_argv(value: str) -> list[str]:
    """An Exec*= line as systemd runs it: split on its quoting, ``$$`` a literal ``$``."""
    import shlex

    return [word.replace("$$", "$") for word in shlex.split(value)]


def test_reload_sends_sighup_without_procps(tmp_path):
    # the reload line runs with no /bin/kill on PATH (a slim image): the shell's builtin does it
    import os
    import signal
    import sys

    argv = exec_argv(settings(UNIT)[("Service", "ExecReload")][-1])
    daemon = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys\n"
        "signal.signal(signal.SIGHUP, lambda *a: sys.exit(42))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline().strip() == "ready"  # its handler is in place
        done = subprocess.run(argv, env={"MAINPID": str(daemon.pid), "PATH": str(tmp_path / "empty")},
                              capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        assert daemon.wait(timeout=10) == 42  # it got SIGHUP
    finally:
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait()


def test_watchdog_kills_cannot_exhaust_the_start_limit_but_a_broken_config_does():
    one = {k: v[-1] for k, v in settings(UNIT).items()}
    interval, burst = float(one[("Unit", "StartLimitIntervalSec")]), int(one[("Unit", "StartLimitBurst")])
    restart, watchdog = float(one[("Service", "RestartSec")]), float(one[("Service", "WatchdogSec")])
    # burst starts fall in the interval only if burst-1 cycles fit in it
    assert (burst - 1) * (watchdog + restart) > interval, "a daemon the watchdog kills would fail the unit for good"
    slow_check_config = 15.0  # ExecStartPre on a Pi Zero 2 W: Python, numpy, the interpreter and the model
    assert (burst - 1) * (slow_check_config + restart) < interval, "a broken config would restart forever"


def test_the_network_dropin_opens_ip_only():
    s = settings(NETWORK)
    assert s[("Service", "RestrictAddressFamilies")] == ["", "AF_UNIX AF_NETLINK AF_INET AF_INET6"]
    assert ("Service", "IPAddressAllow") in s
    assert "written by install.sh" in NETWORK.read_text()  # install.sh may replace and remove it


@needs_analyze
def test_verify_is_clean(tmp_path):
    done = analyze("verify", str(staged_unit(tmp_path)))
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (0, "", "")


@needs_analyze
def test_verify_with_the_network_dropin_is_clean(tmp_path):
    done = analyze("verify", str(staged_unit(tmp_path, {"network.conf": NETWORK})))
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (0, "", "")


@needs_analyze
def test_verify_reads_the_dropins(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[Service]\nNoSuchSetting=1\n")
    done = analyze("verify", str(staged_unit(tmp_path, {"bad.conf": bad})))
    assert "NoSuchSetting" in done.stderr  # so the clean run above did look at network.conf


@needs_analyze
def test_security_exposure():
    done = analyze("security", "--offline=true", str(UNIT))
    assert done.returncode == 0, done.stderr
    assert exposure(done.stdout) <= MAX_EXPOSURE, done.stdout


@needs_analyze
def test_security_exposure_with_the_network_dropin(tmp_path):
    units = tmp_path / "etc" / "systemd" / "system"
    (units / "edge.service.d").mkdir(parents=True)
    shutil.copy(UNIT, units / "edge.service")
    shutil.copy(NETWORK, units / "edge.service.d" / "network.conf")
    done = analyze("security", "--offline=true", f"--root={tmp_path}", "edge.service")
    assert done.returncode == 0, done.stderr
    assert "Service may allocate Internet sockets" in done.stdout  # the drop-in was applied
    assert exposure(done.stdout) <= MAX_EXPOSURE, done.stdout
