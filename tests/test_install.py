"""`install.sh --system --root DIR`: the service install staged into a temp root, for real.

One module fixture runs the whole install once, venv included (a real `python -m venv
--system-site-packages` and a non-editable `pip install` of this package, about 10 s with
a warm pip cache), into DIR/opt/edge, DIR/etc/edge, ... The scripts in that venv point at
DIR (fine for a staging root). Tests that change things work on a copy of that root and
of the checkout (for the shipped config.yaml), so they neither rebuild the venv nor touch
the repo. The model part needs ../shared/models (EDGE_MODELS_FROM in CI) and is skipped
with a reason without it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SHARED_MODELS = REPO.parent / "shared" / "models"
MODEL_FILE = "movinet_a0_stream_int8.tflite"
CHECKOUT_ITEMS = ("install.sh", "pyproject.toml", "README.md", "LICENSE", "edge", "systemd", "config.yaml")

pytestmark = pytest.mark.skipif(sys.platform != "linux" or shutil.which("bash") is None,
                                reason="install.sh is a bash script for Linux")


def base_python() -> str:
    """The interpreter the service venv is built from: Debian's own, as on the Pi, when it can make venvs."""
    system = "/usr/bin/python3"
    if os.access(system, os.X_OK) and subprocess.run(
            [system, "-c", "import ensurepip, venv, sys; sys.exit(sys.version_info < (3, 11))"],
            capture_output=True).returncode == 0:
        return system
    return getattr(sys, "_base_executable", sys.executable)


def copy_checkout(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in CHECKOUT_ITEMS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    if not (dest / "config.yaml").exists():  # the shipped default, should the checkout lack one
        (dest / "config.yaml").write_text("model:\n  name: a0\n")
    return dest


def install(checkout: Path, root: Path, *args: str, models: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EDGE_MODELS_FROM", "EDGE_MODEL_DIR", "EDGE_CONFIG", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHON"] = base_python()
    if models:
        env["EDGE_MODELS_FROM"] = str(SHARED_MODELS)
    wanted = list(args) or ["--system"]
    if "--system" in wanted and not models:
        wanted.append("--no-models")
    done = subprocess.run(["bash", str(checkout / "install.sh"), *wanted, "--root", str(root)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"install.sh {' '.join(wanted)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def tree(root: Path) -> dict[str, tuple]:
    """Every path under root: type, mode, mtime, size, sha256 (files) or target (links)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", st.st_mode)
        else:
            out[rel] = ("file", st.st_mode, st.st_mtime_ns, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """(checkout, root, first install's output): installed once, with the model when it is available."""
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout") / "edge")
    root = tmp_path_factory.mktemp("root")
    done = install(checkout, root, models=SHARED_MODELS.is_dir())
    return checkout, root, done


@pytest.fixture
def copy_of(staged, tmp_path):
    """A private copy of the installed root (and of the checkout) to change things in."""
    checkout, root, _ = staged
    mine = tmp_path / "root"
    shutil.copytree(root, mine, symlinks=True)
    return copy_checkout(tmp_path / "checkout"), mine


def needs_models():
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"no model files to install from ({SHARED_MODELS} not found)")


# --------------------------------------------------------------------------- where things go


def test_files_where_they_belong(staged):
    checkout, root, done = staged
    assert (root / "etc/systemd/system/edge.service").read_text() == (checkout / "systemd/edge.service").read_text()
    assert (root / "etc/edge/config.yaml").read_text() == (checkout / "config.yaml").read_text()
    assert (root / "etc/edge/config.yaml").stat().st_mode & 0o777 == 0o640  # may hold an RTSP password
    assert os.readlink(root / "usr/local/bin/edge") == "/opt/edge/venv/bin/edge"  # the live path, for the image
    for folder in ("var/lib/edge/models", "var/log/edge"):
        assert (root / folder).is_dir()
    assert "skipping the edge user" in done.stdout and "skipping systemctl" in done.stdout


def test_the_venv_is_real_and_sees_system_packages(staged):
    checkout, root, _ = staged
    venv = root / "opt/edge/venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    edge = venv / "bin/edge"
    assert os.access(edge, os.X_OK)
    version = subprocess.run([str(edge), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("edge ")
    where = subprocess.run([str(venv / "bin/python"), "-c", "import edge; print(edge.__file__)"],
                           capture_output=True, text=True, cwd="/", timeout=60).stdout.strip()
    assert where.startswith(str(venv)), f"edge must be installed into the venv, not linked to a checkout: {where}"
    assert not (checkout / "build").exists() and not list(checkout.glob("*.egg-info"))  # built from a copy


def test_the_model_is_installed(staged):
    needs_models()
    _, root, done = staged
    assert (root / "var/lib/edge/models" / MODEL_FILE).is_file()
    assert "sha256 ok" in done.stdout


def test_a_second_run_changes_nothing(staged):
    checkout, root, _ = staged
    before = tree(root)
    again = install(checkout, root, models=SHARED_MODELS.is_dir())
    assert tree(root) == before
    assert "nothing changed" in again.stdout
    assert "unchanged" in again.stdout and "wrote" not in again.stdout


# --------------------------------------------------------------------------- the config is the user's


def test_a_changed_default_goes_to_config_yaml_new(copy_of):
    checkout, root = copy_of
    conf = root / "etc/edge/config.yaml"
    conf.write_text(conf.read_text() + "# my own edit\n")
    mine = conf.read_text()
    (checkout / "config.yaml").write_text((checkout / "config.yaml").read_text() + "# a new default\n")
    done = install(checkout, root)
    assert conf.read_text() == mine
    assert (root / "etc/edge/config.yaml.new").read_text() == (checkout / "config.yaml").read_text()
    assert "config.yaml.new" in done.stdout
    # said once: the next run leaves both alone
    before = tree(root)
    assert "nothing changed" in install(checkout, root).stdout
    assert tree(root) == before


def test_edits_alone_do_not_make_a_new_file(copy_of):
    checkout, root = copy_of
    conf = root / "etc/edge/config.yaml"
    conf.write_text(conf.read_text() + "# my own edit\n")
    done = install(checkout, root)
    assert not (root / "etc/edge/config.yaml.new").exists()
    assert "your edits are kept" in done.stdout


# --------------------------------------------------------------------------- drop-ins


def test_groups_dropin_lists_only_groups_that_exist(copy_of):
    checkout, root = copy_of
    dropin = root / "etc/systemd/system/edge.service.d/groups.conf"
    assert not dropin.exists()  # the staging root has no group file: video (in the unit) only
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\ngpio:x:997:\n")
    install(checkout, root)
    assert "SupplementaryGroups=gpio\n" in dropin.read_text()
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\ngpio:x:997:\nrender:x:105:\n")
    install(checkout, root)
    assert "SupplementaryGroups=gpio render\n" in dropin.read_text()


def set_source(root: Path, kind: str, spec: str | None) -> None:
    import yaml

    conf = root / "etc/edge/config.yaml"
    data = yaml.safe_load(conf.read_text()) or {}
    data.setdefault("source", {}).update(kind=kind, spec=spec)
    conf.write_text(yaml.safe_dump(data))


def test_network_dropin_follows_the_source(copy_of):
    checkout, root = copy_of
    dropin = root / "etc/systemd/system/edge.service.d/network.conf"
    assert not dropin.exists()
    set_source(root, "rtsp", "rtsp://viewer:secret@192.168.1.50:554/stream1")
    install(checkout, root)
    text = dropin.read_text()
    assert "IPAddressAllow=192.168.1.50\n" in text and "AF_INET AF_INET6" in text
    set_source(root, "rtsp", "rtsp://camera.lan/stream1")  # a name: the local network
    install(checkout, root)
    assert "IPAddressAllow=localhost link-local 10.0.0.0/8" in dropin.read_text()
    set_source(root, "auto", None)
    done = install(checkout, root)
    assert not dropin.exists() and "removed" in done.stdout


def test_someone_elses_dropin_is_left_alone(copy_of):
    checkout, root = copy_of
    dropins = root / "etc/systemd/system/edge.service.d"
    dropins.mkdir()
    mine = "[Service]\nRestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET\nIPAddressAllow=10.1.2.3\n"
    (dropins / "network.conf").write_text(mine)
    done = install(checkout, root)  # the source is a camera: ours would be removed, this one stays
    assert (dropins / "network.conf").read_text() == mine and "left" in done.stdout
    set_source(root, "rtsp", "rtsp://10.9.9.9/live")  # ours would be written: this one stays
    done = install(checkout, root)
    assert (dropins / "network.conf").read_text() == mine and "left" in done.stdout


# --------------------------------------------------------------------------- uninstall and purge


def test_uninstall_keeps_config_models_and_logs_and_purge_removes_them(copy_of):
    checkout, root = copy_of
    (root / "var/log/edge/edge.jsonl").write_text("{}\n")
    models = sorted(p.name for p in (root / "var/lib/edge/models").iterdir())
    done = install(checkout, root, "--uninstall")
    for gone in ("opt/edge", "etc/systemd/system/edge.service", "usr/local/bin/edge"):
        assert not (root / gone).exists() and not (root / gone).is_symlink(), gone
    assert (root / "etc/edge/config.yaml").is_file()
    assert sorted(p.name for p in (root / "var/lib/edge/models").iterdir()) == models
    assert (root / "var/log/edge/edge.jsonl").is_file()
    assert "kept" in done.stdout
    assert "nothing to remove" in install(checkout, root, "--uninstall").stdout
    install(checkout, root, "--purge")
    for gone in ("etc/edge", "var/lib/edge", "var/log/edge"):
        assert not (root / gone).exists(), gone


def test_uninstall_keeps_the_models(copy_of):
    needs_models()
    checkout, root = copy_of
    install(checkout, root, "--uninstall")
    assert (root / "var/lib/edge/models" / MODEL_FILE).is_file()


def test_bad_usage(tmp_path):
    done = subprocess.run(["bash", str(REPO / "install.sh"), "--root", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "--root goes with --system" in done.stderr
