"""A real RTSP server for the tests: GStreamer's rtsp-server through python3-gi (the SYSTEM python3).

    /usr/bin/python3 tests/rtsp_server.py VIDEO --port 8554 --path /clip

Serves VIDEO (anything decodebin reads), re-encoded to H.264, on rtsp://127.0.0.1:PORT/PATH,
bound to 127.0.0.1 only. Prints "ready" on stdout once it listens. The tests kill it (it comes
back on the same port), and freeze it with SIGSTOP (a stream that stops without closing).
Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good
gstreamer1.0-plugins-ugly gstreamer1.0-libav (.ci/run installs them).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/clip")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.video.replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! decodebin ! videoconvert ! video/x-raw,format=I420 '
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=800 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(False)  # each client (a reconnect too) gets the clip from its start
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
