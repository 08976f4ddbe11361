"""install.sh and the notify sink: `--with notify` installs Apprise; `--system` does it by itself for a config
with a notify sink and writes the notify drop-in, which goes again with the sink. Staged with --root, for real."""

from __future__ import annotations

import subprocess

import yaml
from conftest import REPO
from test_install import install, staged  # noqa: F401  (the fixture: one staged install for this module)


def set_notify(root, on: bool) -> None:
    conf = root / "etc/edge/config.yaml"
    data = yaml.safe_load(conf.read_text()) or {}
    sinks = [s for s in data.get("sinks", [{"type": "log"}]) if s.get("type") != "notify"]
    if on:
        sinks.append({"type": "notify", "urls": ["json://127.0.0.1:9/hook"]})
    data["sinks"] = sinks
    conf.write_text(yaml.safe_dump(data))


def test_a_notify_sink_brings_apprise_and_the_dropin_and_takes_the_dropin_away(staged):  # noqa: F811
    checkout, root, _ = staged  # this module's own staged root: changed in place (no other test here uses it)
    dropin = root / "etc/systemd/system/edge.service.d/notify.conf"
    venv_python = root / "opt/edge/venv/bin/python"
    assert not dropin.exists()
    set_notify(root, True)
    done = install(checkout, root)
    assert "the config has a notify sink: installing Apprise too" in done.stdout
    assert "(--with notify)" in done.stdout and "installed edge" not in done.stdout  # the extra alone, no rebuild
    assert dropin.read_text() == (checkout / "systemd/edge-notify.conf").read_text()
    assert subprocess.run([str(venv_python), "-c", "import apprise"], capture_output=True).returncode == 0
    set_notify(root, False)
    done = install(checkout, root)
    assert not dropin.exists() and f"removed {dropin}" in done.stdout
    assert "unchanged" in done.stdout and "installed edge" not in done.stdout  # no rebuild for that either


def test_with_takes_known_extras_only(tmp_path):
    done = subprocess.run(["bash", str(REPO / "install.sh"), "--with", "mqtt"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown extra mqtt for --with (known: notify)" in done.stderr
    done = subprocess.run(["bash", str(REPO / "install.sh"), "--help"], capture_output=True, text=True)
    assert "--with notify" in done.stdout
