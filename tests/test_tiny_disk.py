"""The tiny_disk fixture's tmpfs never outlives its test: unmounted even when the test failed with a file
still open on it (before, `umount` failed with EBUSY, silently, and the mount stayed in /tmp/pytest-of-root)."""

from __future__ import annotations

import os

from conftest import unmount


def test_unmount_with_a_file_still_open_on_it(tiny_disk):
    held = open(tiny_disk / "log.jsonl", "w")  # what a failed test's sink leaves open when the fixture ends
    try:
        held.write("x")
        unmount(tiny_disk)
        assert not os.path.ismount(tiny_disk)
    finally:
        held.close()


def test_unmount_of_an_idle_tmpfs(tiny_disk):
    (tiny_disk / "f").write_text("x")
    unmount(tiny_disk)
    assert not os.path.ismount(tiny_disk) and not (tiny_disk / "f").exists()
