"""deploy/ansible: the role `edge` run for real against a booted Debian bookworm container.

The container is a debootstrap rootfs (built once, cached under /var/cache/edge-fleet or
$EDGE_FLEET_CACHE), copied per run and booted with systemd-nspawn on the host's network:
its sshd listens on 127.0.0.1 on a free port with a throwaway key, and ansible-playbook
reaches it as the user `pi` with sudo, as on a Raspberry Pi OS Lite card. The role pushes a
git commit of a clone of this repository, installs with install.sh --system, templates the
config and runs edge on the demo clip (looping file source, models from ../shared/models).

The tests run in file order on one container: first run, second run (changed=0), the
status table, a config change (reload, same MainPID), a bad variable (refused by
check-config, running config untouched), an update (one restart, waits for frames), and
state: absent. The container is shut down and deleted on any exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

ANSIBLE_DIR = REPO / "deploy" / "ansible"
SHARED_MODELS = REPO.parent / "shared" / "models"
DEMO_CLIP = "demo_carving_ice.mp4"
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("EDGE_FLEET_CACHE", "/var/cache/edge-fleet"))
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,python3-pip,ca-certificates,openssh-server,sudo"
DEVICE_MODELS = "/var/lib/edge-deploy/models"  # where the role copies edge_models_from
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


# --------------------------------------------------------------------------- lint (no container)


def test_ansible_lint_is_clean_on_the_role():
    lint = BIN / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed: pip install -e '.[dev]'")
    done = subprocess.run([str(lint), "--offline", "--profile", "production", "--nocolor", "."],
                          cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout + done.stderr


# --------------------------------------------------------------------------- the container


def _missing_tools() -> str | None:
    if sys.platform != "linux":
        return "systemd-nspawn containers need Linux"
    if os.geteuid() != 0:
        return "booting a container with systemd-nspawn needs root"
    for tool, package in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container"),
                          ("nsenter", "util-linux"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"),
                          ("git", "git")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install {package})"
    if not (BIN / "ansible-playbook").exists():
        return "ansible-playbook is not installed: pip install -e '.[dev]'"
    if not (SHARED_MODELS / DEMO_CLIP).is_file():
        return f"no model files and demo clip at {SHARED_MODELS}"
    return None


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip() or "amd64"


def cached_rootfs() -> Path:
    """The debootstrapped bookworm rootfs, built once (under a lock) and reused by every run."""
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = CACHE / f"bookworm-{_arch()}"
    done = rootfs.with_name(rootfs.name + ".complete")
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and rootfs.is_dir():
            return rootfs
        partial = rootfs.with_name(rootfs.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(rootfs, ignore_errors=True)
        try:
            built = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
                                    str(partial), "http://deb.debian.org/debian"],
                                   capture_output=True, text=True, timeout=1500)
        except subprocess.TimeoutExpired:
            built = None
        if built is None or built.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            tail = "timed out" if built is None else (built.stdout + built.stderr).strip().splitlines()[-1:]
            pytest.skip(f"cannot debootstrap a bookworm rootfs here: {tail}")
        partial.rename(rootfs)
        done.touch()
    return rootfs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _container_init(nspawn: int) -> int:
    """The container's systemd: the child of systemd-nspawn once it has exec'd init (0 until then)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            comm, rest = stat.read_text().rsplit(")", 1)
            if int(rest.split()[1]) == nspawn and comm.endswith("(systemd"):
                return int(stat.parent.name)
    return 0


def _poweroff_with_parent() -> None:
    """In the nspawn child: SIGTERM (a clean poweroff) when pytest dies, even by SIGKILL."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Device:
    """One booted container: commands inside it, and ansible-playbook against it over SSH."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.root = work / "root"
        self.name = f"edge-fleet-{os.getpid()}"
        self.port = _free_port()
        self.key = work / "id_ed25519"
        self.boot: subprocess.Popen | None = None
        self.init_pid = 0
        self.repo = work / "repo"
        self.inventory = work / "inventory.yml"

    # ------------------------------------------------------------------ set up

    def prepare(self, rootfs: Path) -> None:
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], check=True, timeout=300)
        # the package index is reached with the host's pip config and CA certificates
        for conf in (Path("/etc/pip.conf"), Path("/etc/xdg/pip")):
            if conf.is_dir():
                shutil.copytree(conf, self.root / conf.relative_to("/"), dirs_exist_ok=True)
            elif conf.is_file():
                shutil.copy2(conf, self.root / conf.relative_to("/"))
        cas = Path("/usr/local/share/ca-certificates")
        if cas.is_dir():
            shutil.copytree(cas, self.root / cas.relative_to("/"), dirs_exist_ok=True)
        self.chroot("update-ca-certificates")
        # a Raspberry Pi OS Lite login: user pi with passwordless sudo, reached by key only
        self.chroot("useradd", "--create-home", "--shell", "/bin/bash", "pi")
        sudoers = self.root / "etc/sudoers.d/pi"
        sudoers.write_text("pi ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-fleet-test", "-f", str(self.key)],
                       check=True, timeout=30)
        ssh_dir = self.root / "home/pi/.ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        self.chroot("chown", "-R", "pi:pi", "/home/pi/.ssh")
        (self.root / "etc/ssh/sshd_config.d/edge-fleet.conf").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nPasswordAuthentication no\n")
        login = {"ansible_host": "127.0.0.1", "ansible_user": "pi", "ansible_ssh_private_key_file": str(self.key),
                 "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
        self.inventory.write_text(json.dumps({"edge": {"hosts": {"pi1": {**login, "ansible_port": self.port}}}}))
        # the same fleet plus a second device after pi1 that nothing listens for: a rollout that
        # stops at pi1 never tries it, one that goes on reports it unreachable
        self.fleet = self.inventory.with_name("fleet.yml")
        self.fleet.write_text(json.dumps({"edge": {"hosts": {"pi1": {**login, "ansible_port": self.port},
                                                             "pi2": {**login, "ansible_port": _free_port()}}}}))
        # the versions the role installs: commits of a clone, so the repo's own HEAD may move meanwhile
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(self.repo)], check=True, timeout=120)

    def chroot(self, *cmd: str) -> None:
        subprocess.run(["chroot", str(self.root), *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        pip_cache = CACHE / "pip"  # the wheels pip downloads in the container, kept between runs
        pip_cache.mkdir(parents=True, exist_ok=True)
        log = open(self.work / "boot.log", "wb")
        self.boot = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit", "--resolv-conf=copy-host",
             "-M", self.name, f"--bind={pip_cache}:/root/.cache/pip"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_poweroff_with_parent)
        log.close()
        deadline = time.monotonic() + 60
        while not self.init_pid and time.monotonic() < deadline and self.boot.poll() is None:
            self.init_pid = _container_init(self.boot.pid)
            if self.init_pid:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.boot.wait(timeout=0.2)  # returns at once if nspawn gives up
        if not self.init_pid:
            pytest.skip(f"systemd-nspawn cannot boot a container here: {self.boot_log()}")
        deadline = time.monotonic() + 120
        state = ""
        while state not in ("running", "degraded") and time.monotonic() < deadline and self.boot.poll() is None:
            # fails at once ("Failed to connect to bus") until systemd inside has its socket
            done = self.run("systemctl", "is-system-running", "--wait", timeout=120, check=False)
            state = done.stdout.strip() or done.stderr.strip()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.boot.wait(timeout=0 if state in ("running", "degraded") else 1)
        if state not in ("running", "degraded"):
            pytest.skip(f"the container did not finish booting ({state}): {self.boot_log()}")
        if self.run("systemctl", "is-active", "ssh", check=False).stdout.strip() != "active":
            pytest.skip(f"sshd did not start in the container: {self.boot_log()}")

    def boot_log(self) -> str:
        text = (self.work / "boot.log").read_text(errors="replace")
        return " | ".join(line.strip() for line in text.splitlines()[-5:])

    def stop(self) -> None:
        if self.boot is not None and self.boot.poll() is None:
            self.boot.send_signal(signal.SIGTERM)  # nspawn powers the container off
            try:
                self.boot.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.boot.kill()
                self.boot.wait(timeout=30)
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / self.name, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    # ------------------------------------------------------------------ use

    def run(self, *cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["nsenter", "-t", str(self.init_pid), "-m", "-u", "-i", "-n", "-p", "-C", "--", *cmd],
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout}{done.stderr}"
        return done

    def playbook(self, variables: dict, *args: str, timeout: float = 900, inventory: Path | None = None) -> Playbook:
        extra = self.work / "vars.json"
        extra.write_text(json.dumps(variables))
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_HOME": str(self.work / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp")}
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory or self.inventory),
                               "-e", f"@{extra}",
                               str(ANSIBLE_DIR / "site.yml"), *args],
                              capture_output=True, text=True, timeout=timeout, env=env)
        (self.work / "last-playbook.log").write_text(done.stdout + done.stderr)
        return Playbook(done)

    def main_pid(self) -> int:
        return int(self.run("systemctl", "show", "-p", "MainPID", "--value", "edge").stdout.strip())

    def status(self) -> dict:
        return json.loads(self.run("/opt/edge/venv/bin/edge", "status", "--json", "--file",
                                   "/run/edge/status.json").stdout)

    def file_sha(self, path: str) -> str:
        return hashlib.sha256((self.root / path.lstrip("/")).read_bytes()).hexdigest()

    def starts(self) -> int:
        """How many times edge.service has been started (the journal's "Started" lines)."""
        journal = self.run("journalctl", "-u", "edge", "--no-pager", "-o", "cat").stdout
        return sum(1 for line in journal.splitlines() if line.startswith("Started edge"))

    def commit(self, message: str, path: str = "README.md", append: str | None = None) -> str:
        """A new version: a commit in the clone that appends to one packaged file (the README by default)."""
        target = self.repo / path
        target.write_text(target.read_text() + (append if append is not None else f"\n<!-- {message} -->\n"))
        git = ["git", "-C", str(self.repo), "-c", "user.name=edge tests", "-c", "user.email=tests@edge.invalid"]
        subprocess.run([*git, "commit", "--quiet", "-am", message], check=True, timeout=60)
        return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    def installed_version(self) -> str:
        return self.run("/opt/edge/venv/bin/python", "-c", "import edge; print(edge.__version__)").stdout.strip()


class Playbook:
    def __init__(self, done: subprocess.CompletedProcess) -> None:
        self.rc = done.returncode
        self.output = done.stdout + done.stderr
        self.recap = {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
                      for m in RECAP.finditer(done.stdout)}

    def __str__(self) -> str:
        return self.output[-6000:]


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    reason = _missing_tools()
    if reason:
        pytest.skip(reason)
    rootfs = cached_rootfs()
    dev = Device(tmp_path_factory.mktemp("fleet"))

    def interrupted(signum, frame):  # `timeout` sends SIGTERM: clean up as for Ctrl-C
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        dev.prepare(rootfs)
        dev.start()
        yield dev
    finally:
        dev.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def base_vars(device) -> dict:
    """The inventory variables every run starts from: the demo clip looping, models from the control machine."""
    commit = subprocess.run(["git", "-C", str(device.repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    return {
        "edge_git_repo": str(device.repo),
        "edge_version": commit,
        "edge_local_cache": str(device.work / "control-cache"),
        "edge_models_from": str(SHARED_MODELS),
        "edge_source": {"kind": "file", "spec": f"{DEVICE_MODELS}/{DEMO_CLIP}", "loop": True},
        "edge_watch": [{"name": "carving", "labels": ["carving ice", "carving pumpkin"], "enter": 0.5, "exit": 0.3}],
        "edge_sinks": [{"type": "log", "path": "edge.jsonl"}],
        "edge_ready_timeout": 240,
    }


def with_vars(base: dict, **changes) -> dict:
    return {**base, **changes}


# --------------------------------------------------------------------------- the checks, in order


@pytest.mark.container
def test_first_run_installs_and_starts_edge_on_the_looping_clip(device, base_vars):
    run = device.playbook(base_vars, timeout=1500)
    assert run.rc == 0, run
    assert run.recap["pi1"]["failed"] == 0 and run.recap["pi1"]["changed"] > 0, run
    assert device.run("systemctl", "is-active", "edge", check=False).stdout.strip() == "active"
    status = device.status()
    assert status["pid"] == device.main_pid()
    assert DEMO_CLIP in status["source"]["name"]
    assert status["model"]["inferences"] > 0 and status["healthy"]
    config = (device.root / "etc/edge/config.yaml").read_text()
    assert "Ansible" in config and DEMO_CLIP in config
    device.run("/opt/edge/venv/bin/edge", "check-config", "-c", "/etc/edge/config.yaml")
    assert "Wait until edge status shows frames flowing" in run.output


@pytest.mark.container
def test_a_second_run_changes_nothing(device, base_vars):
    pid = device.main_pid()
    run = device.playbook(base_vars)
    assert run.rc == 0, run
    assert run.recap["pi1"]["changed"] == 0, run
    assert device.main_pid() == pid


@pytest.mark.container
def test_status_tag_gathers_the_fleet_into_one_table(device, base_vars):
    run = device.playbook(base_vars, "--tags", "status", inventory=device.fleet)
    assert run.rc == 4, run  # ansible-playbook's "a host was unreachable": pi2 has no sshd
    assert "install.sh" not in run.output  # only the status play ran
    lines = run.output.splitlines()
    header = next(line for line in lines if "in fps" in line)
    assert "top-1" in header and "last error" in header
    row = next(line for line in lines if line.strip().startswith("pi1 "))
    pi1 = row.split()
    assert pi1[1] == "ok" and float(pi1[2]) > 0 and float(pi1[3]) > 0, row
    assert "carving ice" in row, row  # the demo clip's top-1
    pi2 = next(line for line in lines if line.strip().startswith("pi2 "))
    assert "UNREACHABLE" in pi2 and "Connection refused" in pi2, pi2


@pytest.mark.container
def test_a_config_change_reloads_without_a_restart(device, base_vars):
    pid, starts = device.main_pid(), device.starts()
    sinks = [{"type": "log", "path": "edge.jsonl"}, {"type": "log", "path": "second.jsonl", "top": 1}]
    run = device.playbook(with_vars(base_vars, edge_sinks=sinks))
    assert run.rc == 0, run
    assert run.recap["pi1"]["changed"] >= 2, run  # the config, and the reload
    assert device.main_pid() == pid and device.starts() == starts
    assert len(device.status()["sinks"]) == 2
    assert "second.jsonl" in (device.root / "etc/edge/config.yaml").read_text()
    journal = device.run("journalctl", "-u", "edge", "--no-pager", "-o", "cat").stdout
    assert "config reloaded" in journal


@pytest.mark.container
def test_a_bad_variable_fails_on_check_config_and_leaves_the_running_config(device, base_vars):
    before, pid = device.file_sha("/etc/edge/config.yaml"), device.main_pid()
    run = device.playbook(with_vars(base_vars, edge_sinks=[{"type": "no-such-sink"}]))
    assert run.rc != 0, run
    assert run.recap["pi1"]["failed"] == 1, run
    assert "check-config" in run.output and "no-such-sink" in run.output, run
    assert device.file_sha("/etc/edge/config.yaml") == before
    assert device.main_pid() == pid
    assert device.status()["healthy"]


@pytest.mark.container
def test_head_files_and_vault_urls_are_pushed_and_reload(device, base_vars, tmp_path):
    head = tmp_path / "my-actions.head"
    head.write_bytes(b"a learned head, pushed as it is")
    secret = "json://127.0.0.1:9/edge-fleet-secret-token"  # a closed port: nothing is delivered anywhere
    pid = device.main_pid()
    pushed_vars = with_vars(base_vars, edge_heads=[str(head)], edge_notify_urls=[secret])
    run = device.playbook(pushed_vars)
    assert run.rc == 0, run
    assert "edge-fleet-secret-token" not in run.output
    pushed = device.root / "var/lib/edge/models/my-actions.head"
    assert pushed.read_bytes() == head.read_bytes()
    urls = device.run("stat", "-c", "%a %U:%G", "/etc/edge/notify.urls").stdout.split()
    assert urls == ["600", "edge:edge"]  # the edge user only, as the notify sink asks
    assert (device.root / "etc/edge/notify.urls").read_text() == secret + "\n"
    assert device.main_pid() == pid  # reloaded, not restarted

    # a notify sink reading them: install.sh adds Apprise (check-config needs it) and the sink runs
    sinks = [*base_vars["edge_sinks"], {"type": "notify", "urls_file": "/etc/edge/notify.urls"}]
    notify_vars = with_vars(pushed_vars, edge_sinks=sinks)
    run = device.playbook(notify_vars)
    assert run.rc == 0, run
    assert "edge-fleet-secret-token" not in run.output
    device.run("/opt/edge/venv/bin/python", "-c", "import apprise")
    assert any(sink["sink"].startswith("notify") for sink in device.status()["sinks"]), device.status()["sinks"]
    again = device.playbook(notify_vars)
    assert again.rc == 0 and again.recap["pi1"]["changed"] == 0, again

    own = device.root / "var/lib/edge/models/learned-here.head"  # made on the device: not the role's
    own.write_bytes(b"edge learn on the device")
    gone = device.playbook(base_vars)  # no heads and no URLs any more: the role's files go
    assert gone.rc == 0, gone
    assert not (device.root / "etc/edge/notify.urls").exists()
    assert not pushed.exists() and own.exists()


@pytest.mark.container
def test_an_update_restarts_once_and_waits_for_frames(device, base_vars):
    pid, starts = device.main_pid(), device.starts()
    new = device.commit("a new version")
    base_vars["edge_version"] = new  # later tests run on this version
    run = device.playbook(base_vars)
    assert run.rc == 0, run
    assert device.starts() == starts + 1, run
    assert device.main_pid() != pid
    status = device.status()
    assert status["pid"] == device.main_pid() and status["model"]["inferences"] > 0
    assert re.search(r"Wait until edge status shows frames flowing.*\n(ok|changed): \[pi1\]", run.output), run
    versions = sorted(p.name for p in (device.root / "var/lib/edge-deploy").glob("src-*"))
    assert versions == [f"src-{new}"]  # the old version's files are gone


@pytest.mark.container
def test_a_device_that_does_not_come_back_stops_the_rollout(device, base_vars):
    good = base_vars["edge_version"]
    broken = device.commit("edge run dies at once", "edge/cli.py", append=(
        "\n\n_main = main\n\n\ndef main(argv=None):\n"
        "    if (sys.argv[1:] if argv is None else argv)[:1] == ['run']:\n"
        "        raise SystemExit('broken on purpose')\n"
        "    return _main(argv)\n"))
    run = device.playbook(with_vars(base_vars, edge_version=broken), inventory=device.fleet)
    assert run.rc != 0, run
    assert run.recap["pi1"]["failed"] == 1, run
    assert "pi2" not in run.recap, run  # the rollout stopped at pi1: pi2 was never tried
    back = device.playbook(with_vars(base_vars, edge_version=good))  # roll back
    assert back.rc == 0, back
    status = device.status()
    assert status["pid"] == device.main_pid() and status["model"]["inferences"] > 0


@pytest.mark.container
def test_a_built_wheel_replaces_the_package_and_restarts_once(device, base_vars, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(device.repo), "archive", base_vars["edge_version"]],
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-C", str(src), "-xf", "-"], input=archive, check=True, timeout=60)
    init = src / "edge" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "0.1.0+fleet"', init.read_text()))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"),
                            str(src)], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1:]}")
    wheel = next((tmp_path / "dist").glob("edge-*.whl"))
    pid, starts = device.main_pid(), device.starts()
    run = device.playbook(with_vars(base_vars, edge_wheel=str(wheel)))
    assert run.rc == 0, run
    assert device.installed_version() == "0.1.0+fleet"
    assert device.starts() == starts + 1 and device.main_pid() != pid
    assert device.status()["model"]["inferences"] > 0
    again = device.playbook(with_vars(base_vars, edge_wheel=str(wheel)))
    assert again.rc == 0 and again.recap["pi1"]["changed"] == 0, again


@pytest.mark.container
def test_state_absent_uninstalls(device, base_vars):
    run = device.playbook(with_vars(base_vars, edge_state="absent"))
    assert run.rc == 0, run
    assert run.recap["pi1"]["changed"] > 0
    assert device.run("systemctl", "is-active", "edge", check=False).stdout.strip() != "active"
    assert not (device.root / "opt/edge").exists()
    assert not (device.root / "etc/systemd/system/edge.service").exists()
    assert not (device.root / "var/lib/edge-deploy").exists()
    assert (device.root / "etc/edge/config.yaml").exists()  # kept without edge_purge, as install.sh does
    again = device.playbook(with_vars(base_vars, edge_state="absent"))
    assert again.rc == 0 and again.recap["pi1"]["changed"] == 0, again
