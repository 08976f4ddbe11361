"""systemd/edge-notify.conf: outbound IP for a notify sink, still no listening socket, exposure <= 2.0."""

from __future__ import annotations

from test_unit_file import MAX_EXPOSURE, SYSTEMD, analyze, exposure, needs_analyze, settings, staged_unit

NOTIFY = SYSTEMD / "edge-notify.conf"


def test_the_notify_dropin_opens_outbound_ip_and_no_listening_socket():
    s = settings(NOTIFY)
    assert s[("Service", "RestrictAddressFamilies")] == ["", "AF_UNIX AF_NETLINK AF_INET AF_INET6"]
    assert s[("Service", "IPAddressAllow")] == ["any"]  # ntfy.sh, Telegram, SMTP: anywhere on the internet
    assert s[("Service", "SocketBindDeny")] == ["any"]  # no bind(): no listening socket
    assert ("Unit", "After") in s and "network-online.target" in s[("Unit", "After")][0]
    assert "written by install.sh" in NOTIFY.read_text()  # install.sh may replace and remove it


@needs_analyze
def test_verify_with_the_notify_dropin_is_clean(tmp_path):
    done = analyze("verify", str(staged_unit(tmp_path, {"notify.conf": NOTIFY})))
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (0, "", "")


@needs_analyze
def test_security_exposure_with_the_notify_dropin(tmp_path):
    done = analyze("security", "--offline=true", str(staged_unit(tmp_path, {"notify.conf": NOTIFY})))  # 1.4 (1.0 without)
    assert done.returncode == 0, done.stderr
    assert "Service may allocate Internet sockets" in done.stdout  # the drop-in next to the unit was applied
    assert exposure(done.stdout) <= MAX_EXPOSURE, done.stdout
