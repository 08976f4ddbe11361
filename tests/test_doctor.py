"""`edge doctor`: each check fed made-up facts, the runner, the output, the exit code."""

from __future__ import annotations

import json

import pytest

from edge import board, doctor
from edge.cli import main
from edge.doctor import FAIL, OK, WARN, Check
from edge.models import Row


def statuses(found) -> list[str]:
    if found is None:
        return []
    return [c.status for c in ([found] if isinstance(found, Check) else found)]


# --------------------------------------------------------------------------- known traps


@pytest.mark.parametrize("package, numpy, expected", [
    ("tflite-runtime", "2.0.1", [FAIL]),  # imports, but every Interpreter() raises: nothing can run
    ("tflite-runtime", "2.2.0", [FAIL]),
    ("tflite-runtime", "1.26.4", []),
    ("ai-edge-litert", "2.2.0", []),
    ("", "2.2.0", []),
])
def test_tflite_runtime_with_numpy_2(package, numpy, expected):
    found = doctor.check_tflite_runtime_numpy(package=package, numpy=numpy)
    assert statuses(found) == expected
    if found:
        assert "_ARRAY_API not found" in found.detail
        assert "numpy<2" in found.fix and "ai-edge-litert" in found.fix


@pytest.mark.parametrize("package, python, expected", [
    ("tflite-runtime", (3, 12, 3), [WARN]),
    ("tflite-runtime", (3, 13, 0), [WARN]),
    ("tflite-runtime", (3, 11, 2), []),
    ("ai-edge-litert", (3, 12, 3), []),
])
def test_tflite_runtime_on_new_python(package, python, expected):
    found = doctor.check_tflite_runtime_python(package=package, python=python)
    assert statuses(found) == expected
    if found:
        assert found.what == f"tflite-runtime on Python {python[0]}.{python[1]}"
        assert "no wheels" in found.detail


def test_tflite_runtime_is_slow():
    found = doctor.check_tflite_runtime_speed(package="tflite-runtime")
    assert found.status == WARN
    assert "10x slower" in found.detail
    assert "pip install ai-edge-litert" in found.fix
    assert doctor.check_tflite_runtime_speed(package="ai-edge-litert") is None


# --------------------------------------------------------------------------- basics


def test_python_version():
    assert doctor.check_python((3, 11, 2), "/usr/bin/python3") == Check(OK, "python", "3.11.2 (/usr/bin/python3)")
    old = doctor.check_python((3, 9, 2), "/usr/bin/python3")
    assert old.status == FAIL and "Bookworm" in old.fix


def test_platform():
    pi = doctor.check_platform("Linux", "aarch64", "Raspberry Pi 5 Model B Rev 1.0", "Debian GNU/Linux 12 (bookworm)")
    assert pi == Check(OK, "platform", "Linux aarch64, Raspberry Pi 5 Model B Rev 1.0, Debian GNU/Linux 12 (bookworm)")
    laptop = doctor.check_platform("Linux", "x86_64", "", "")
    assert laptop.status == OK and "not a Raspberry Pi" in laptop.detail
    pi32 = doctor.check_platform("Linux", "armv7l", "Raspberry Pi Zero 2 W Rev 1.0", "")
    assert pi32.status == WARN and "64-bit" in pi32.fix


def test_board_model_reads_device_tree(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\0")
    assert board.board_model(str(model)) == "Raspberry Pi Zero 2 W Rev 1.0"
    assert board.board_model(str(tmp_path / "missing")) == ""


def test_interpreter():
    assert doctor.check_interpreter("ai-edge-litert", "1.4.0", "") == Check(OK, "interpreter", "ai-edge-litert 1.4.0")
    broken = doctor.check_interpreter("tflite-runtime", "2.14.0", "numpy.core.multiarray failed to import")
    assert broken.status == FAIL and "does not import" in broken.detail
    none = doctor.check_interpreter("", "", "no module named ai_edge_litert")
    assert none.status == FAIL and "./install.sh" in none.fix


def test_numpy_and_opencv():
    assert doctor.check_numpy("2.1.3") == Check(OK, "numpy", "2.1.3")
    assert doctor.check_numpy("").status == FAIL
    assert doctor.check_opencv("4.10.0").status == OK
    assert "opencv-python-headless" in doctor.check_opencv("").fix


# --------------------------------------------------------------------------- models


def row(name, status, kind="model", labels="kinetics600"):
    return Row(name, kind, f"{name}.tflite", f"/m/{name}.tflite", (172, 172) if kind == "model" else None,
               status != "missing", status, None, None, labels if kind == "model" else None)


def test_models_statuses():
    rows = [row("a0", "ok"), row("a1", "mismatch"), row("a2", "recorded"),
            row("kinetics600", "ok", kind="labels")]
    found = doctor.check_models(rows=rows, directory="/m")
    assert [(c.what, c.status) for c in found] == [
        ("model a0", OK), ("model a1", FAIL), ("model a2", OK), ("labels kinetics600", OK)]
    assert found[1].fix == "edge models fetch a1 --force"


def test_models_none_installed_and_missing_labels():
    found = doctor.check_models(rows=[row("a0", "missing"), row("kinetics600", "missing", kind="labels")],
                                directory="/m")
    assert [(c.what, c.status, c.fix) for c in found] == [("models", WARN, "edge models fetch a0")]
    found = doctor.check_models(rows=[row("a0", "unknown"), row("kinetics600", "missing", kind="labels")],
                                directory="/m")
    assert [(c.what, c.status) for c in found] == [("model a0", WARN), ("labels kinetics600", WARN)]


def test_models_reads_the_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path))
    (tmp_path / "movinet_a0_stream_int8.tflite").write_bytes(b"not the real model")
    found = doctor.check_models()
    assert ("model a0", FAIL) in [(c.what, c.status) for c in found]


# --------------------------------------------------------------------------- runner and output


def test_run_collects_and_survives_a_crashing_check():
    def check_fine():
        return Check(OK, "fine", "yes")

    def check_quiet():
        return None

    def check_many():
        return [Check(WARN, "w", "x", "do y"), Check(OK, "o", "z")]

    def check_broken():
        raise RuntimeError("boom")

    results = doctor.run([check_fine, check_quiet, check_many, check_broken])
    assert [(c.what, c.status) for c in results] == [("fine", OK), ("w", WARN), ("o", OK), ("broken", FAIL)]
    assert "RuntimeError: boom" in results[-1].detail
    assert doctor.exit_code(results) == 1
    assert doctor.exit_code(results[:3]) == 0


def test_format_lines():
    text = doctor.format_checks([Check(OK, "numpy", "2.1.3", "unused"), Check(WARN, "tflite-runtime in use",
                                                                              "slow", "pip install ai-edge-litert")])
    assert text.splitlines() == [
        "ok    numpy: 2.1.3",
        "warn  tflite-runtime in use: slow",
        "      fix: pip install ai-edge-litert",
    ]


def test_cli_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path))
    code = main(["doctor", "--json"])
    checks = json.loads(capsys.readouterr().out)
    assert {"status", "what", "detail", "fix"} <= set(checks[0])
    assert [c["what"] for c in checks[:6]] == ["python", "platform", "interpreter", "runtime", "numpy", "opencv"]
    assert code == (1 if any(c["status"] == FAIL for c in checks) else 0)


# --------------------------------------------------------------------------- the service: camera, GPIO, display, disk, unit


def service_cfg(**sections):
    from edge.config import Config

    return Config.model_validate(sections)


GPIO_SINK = {"watch": [{"name": "cooking", "labels": ["frying"]}],
             "sinks": [{"type": "gpio", "pin": 17, "rule": "cooking"}]}
EDGE_IDS = {"edge": (990, 990)}  # the service user: uid 990, primary group 990


def fake_dev(tmp_path, *names, mode=0o660):
    """A /dev stand-in holding empty files named like device nodes, owned by the test's own gid."""
    dev = tmp_path / "dev"
    dev.mkdir(exist_ok=True)
    for name in names:
        (dev / name).touch()
        (dev / name).chmod(mode)
    return dev


def own_gid(path):
    return path.stat().st_gid


def test_camera_not_needed_for_a_stream_or_a_file():
    found = doctor.check_camera(service_cfg(source={"kind": "rtsp", "spec": "rtsp://10.0.0.9/s"}), devices=[])
    assert found.status == OK and "not needed" in found.detail
    found = doctor.check_camera(service_cfg(source={"spec": "clip.mp4"}), devices=[])  # auto + a path = file
    assert found.status == OK and "file clip.mp4" in found.detail
    found = doctor.check_camera(service_cfg(source={"kind": "rtsp", "spec": "rtsp://admin:s3cret@10.0.0.9/s"}), devices=[])
    assert "rtsp://10.0.0.9/s" in found.detail and "s3cret" not in found.detail  # doctor output is pasted into bug reports


def test_camera_csi_or_usb_or_none():
    auto = service_cfg()
    assert doctor.check_camera(auto, present=(True, "imx708"), devices=[]) == Check(OK, "camera", "imx708 (picamera2)")
    soc = [("/dev/video10", "bcm2835-codec-decode"), ("/dev/video13", "bcm2835-isp")]
    usb = doctor.check_camera(auto, present=(False, "libcamera lists no camera"),
                              devices=soc + [("/dev/video0", "HD Pro Webcam C920")])
    assert usb.status == OK and "/dev/video0 (HD Pro Webcam C920)" in usb.detail
    none = doctor.check_camera(auto, present=(False, "libcamera lists no camera"), devices=soc)
    assert none.status == FAIL
    assert "/dev/video10, /dev/video13 are the SoC's codec/ISP nodes" in none.detail
    assert "rpicam-hello --list-cameras" in none.fix and "source.kind" in none.fix
    csi_only = doctor.check_camera(service_cfg(source={"kind": "picamera2"}), present=(False, "no ribbon"),
                                   devices=[("/dev/video0", "HD Pro Webcam C920")])
    assert csi_only.status == FAIL and "no ribbon" in csi_only.detail


def test_camera_v4l2_device_named_in_the_config():
    cfg = service_cfg(source={"kind": "v4l2", "spec": "2"})
    assert doctor.check_camera(cfg, devices=[("/dev/video2", "cam")]).status == OK
    missing = doctor.check_camera(cfg, devices=[("/dev/video0", "cam")])
    assert missing.status == FAIL and "/dev/video2" in missing.detail


def test_camera_reads_device_names_from_sysfs(tmp_path):
    dev = fake_dev(tmp_path, "video0", "video10", "video2")
    for name, label in (("video0", "USB Camera"), ("video10", "bcm2835-codec-decode")):
        (tmp_path / "sys" / name).mkdir(parents=True)
        (tmp_path / "sys" / name / "name").write_text(label + "\n")
    from edge.capture.auto import v4l2_devices  # what doctor lists (the list AutoSource picks from)

    assert v4l2_devices(str(dev), str(tmp_path / "sys")) == [
        (f"{dev}/video0", "USB Camera"), (f"{dev}/video2", ""), (f"{dev}/video10", "bcm2835-codec-decode")]


def test_gpio_through_the_gpio_group(tmp_path):
    dev = fake_dev(tmp_path, "gpiochip0", "gpiochip4")
    gid = own_gid(dev / "gpiochip0")
    member = [("gpio", gid, ["edge"])]
    found = doctor.check_gpio(service_cfg(**GPIO_SINK), dev=str(dev), passwd=EDGE_IDS, groups=member)
    assert found.status == OK and "edge can read and write" in found.detail and "gpiochip4" in found.detail
    outsider = [("gpio", gid, ["pi"])]
    found = doctor.check_gpio(service_cfg(**GPIO_SINK), dev=str(dev), passwd=EDGE_IDS, groups=outsider)
    assert found.status == FAIL and "group gpio" in found.detail
    assert found.fix.startswith("sudo usermod -aG gpio edge")
    # without a gpio sink the same problem is only a warning
    assert doctor.check_gpio(service_cfg(), dev=str(dev), passwd=EDGE_IDS, groups=outsider).status == WARN


def test_gpio_not_group_writable_needs_a_udev_rule(tmp_path):
    dev = fake_dev(tmp_path, "gpiochip0", mode=0o600)
    found = doctor.check_gpio(service_cfg(**GPIO_SINK), dev=str(dev), passwd=EDGE_IDS,
                              groups=[("gpio", own_gid(dev / "gpiochip0"), ["edge"])])
    assert found.status == FAIL and "udev" in found.fix and "mode 600" in found.detail


def test_gpio_absent(tmp_path):
    dev = fake_dev(tmp_path)
    assert doctor.check_gpio(service_cfg(), dev=str(dev), passwd=EDGE_IDS, groups=[]) is None
    found = doctor.check_gpio(service_cfg(**GPIO_SINK), dev=str(dev), passwd=EDGE_IDS, groups=[])
    assert found.status == FAIL and "gpiochip" in found.detail


def test_gpio_without_the_service_user_checks_whoever_runs_doctor(tmp_path):
    dev = fake_dev(tmp_path, "gpiochip0")
    gid = own_gid(dev / "gpiochip0")
    pi = doctor.Account("pi", 1000, frozenset({1000, gid}))
    found = doctor.check_gpio(service_cfg(), dev=str(dev), passwd={}, groups=[("gpio", gid, ["pi"])], me=pi)
    assert found.status == OK and "no edge user" in found.detail and found.detail.startswith("pi can")


def test_account_from_fake_tables():
    groups = [("edge", 990, []), ("video", 44, ["edge", "pi"]), ("gpio", 997, ["pi"])]
    assert doctor.account("edge", EDGE_IDS, groups) == doctor.Account("edge", 990, frozenset({990, 44}))
    assert doctor.account("nobody-here", EDGE_IDS, groups) is None


def test_framebuffer(tmp_path):
    dev = fake_dev(tmp_path, "fb0")
    gid = own_gid(dev / "fb0")
    overlay = service_cfg(sinks=[{"type": "overlay", "display": "fbdev", "fb_device": str(dev / "fb0")}])
    assert doctor.check_framebuffer(overlay, passwd=EDGE_IDS, groups=[("video", gid, ["edge"])]).status == OK
    denied = doctor.check_framebuffer(overlay, passwd=EDGE_IDS, groups=[("video", gid, [])])
    assert denied.status == FAIL and "usermod -aG video edge" in denied.fix
    # the default /dev/fb0 of a dev folder, with no overlay sink: only a warning
    assert doctor.check_framebuffer(service_cfg(), dev=str(dev), passwd=EDGE_IDS,
                                    groups=[("video", gid, [])]).status == WARN
    assert doctor.check_framebuffer(service_cfg(), dev=str(tmp_path), passwd=EDGE_IDS, groups=[]) is None
    gone = service_cfg(sinks=[{"type": "overlay", "display": "fbdev", "fb_device": str(tmp_path / "fb9")}])
    assert doctor.check_framebuffer(gone, passwd=EDGE_IDS, groups=[]).status == FAIL


@pytest.mark.parametrize("free_mb, expected", [(5000, OK), (199, WARN), (21, WARN), (19, FAIL), (0, FAIL)])
def test_disk_thresholds(tmp_path, free_mb, expected):
    from types import SimpleNamespace

    def statvfs(path):
        return SimpleNamespace(f_bavail=free_mb * 1_000_000 // 4096, f_frsize=4096)

    found = doctor.check_disk([("logs", str(tmp_path / "var" / "log" / "edge"))], statvfs=statvfs)
    assert [(c.what, c.status) for c in found] == [("disk logs", expected)]
    assert f"(on {tmp_path})" in found[0].detail  # the folder is not there yet: its parent's disk counts
    if expected != OK:
        assert "journalctl --vacuum-size" in found[0].fix


def test_disk_on_this_machine(tmp_path):
    found = doctor.check_disk([("state", str(tmp_path))])
    assert found[0].what == "disk state" and "MB free" in found[0].detail


def systemctl_says(enabled, active):
    def run(args):
        verb = args[1]
        if verb == "is-enabled":
            if enabled is None:
                return 1, "", "Failed to get unit file state for edge.service: No such file or directory"
            return (0 if enabled == "enabled" else 1), enabled, ""
        return (0 if active == "active" else 3), active, ""
    return run


@pytest.mark.parametrize("enabled, active, status, words", [
    ("enabled", "active", OK, "active and enabled"),
    ("disabled", "active", WARN, "will not start at boot"),
    ("enabled", "failed", FAIL, "failed"),
    ("enabled", "activating", WARN, "activating"),
    ("enabled", "inactive", WARN, "inactive"),
    ("masked", "inactive", FAIL, "masked"),
    (None, "inactive", WARN, "not installed"),
])
def test_service_states(enabled, active, status, words):
    found = doctor.check_service("/bin/systemctl", booted=True, run=systemctl_says(enabled, active))
    assert found.status == status and words in found.detail
    if status != OK:
        assert found.fix


def test_service_skipped_without_systemd():
    assert doctor.check_service("", booted=True).status == OK
    assert "not available" in doctor.check_service("", booted=True).detail
    found = doctor.check_service("/bin/systemctl", booted=False, run=systemctl_says("enabled", "unknown"))
    assert found.status == OK and "not running here" in found.detail


def test_service_checks_are_registered():
    names = [c.__name__ for c in doctor.CHECKS]
    for name in ("check_camera", "check_gpio", "check_framebuffer", "check_disk", "check_service"):
        assert name in names
