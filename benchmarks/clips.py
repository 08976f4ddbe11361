"""Test and benchmark videos made from the shared labelled clips (never committed).

``switch_video`` writes one clip looped for about ``seconds_each`` seconds,
then the next one: the scene-change test for state policies and the daemon.
Frames are resampled by timestamp to a common frame rate and size.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from edge.capture.opencv import read_frames


def switch_video(clips: list[str | Path], out: str | Path, seconds_each: float = 30.0, fps: float = 15.0,
                 size: tuple[int, int] = (320, 240)) -> list[float]:
    """Write the clips back to back (each looped to ~seconds_each); returns each clip's start time."""
    out = Path(out)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {out}")
    starts, n = [], 0
    try:
        for clip in clips:
            starts.append(n / fps)
            frames = [(f.t, cv2.resize(f.pixels, size, interpolation=cv2.INTER_AREA)) for f in read_frames(str(clip))]
            length = frames[-1][0] + (frames[-1][0] - frames[0][0]) / max(1, len(frames) - 1)
            loops = max(1, round(seconds_each / length))
            for k in range(int(loops * length * fps)):
                t = (k / fps) % length
                # the source frame shown at time t: the last one with pts <= t
                idx = max(0, next((i for i, (ft, _) in enumerate(frames) if ft > t), len(frames)) - 1)
                writer.write(cv2.cvtColor(frames[idx][1], cv2.COLOR_RGB2BGR))
                n += 1
    finally:
        writer.release()
    return starts
