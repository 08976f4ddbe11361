"""Frame sources: picamera2, OpenCV (V4L2 device, file, RTSP), and a replay fake for tests."""

from edge.capture.base import Frame, FrameSource, SourceError, open_source

__all__ = ["Frame", "FrameSource", "SourceError", "open_source"]
