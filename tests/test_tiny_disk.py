"""The tiny_disk fixture's tmpfs never outlives its test: unmounted even when the test failed with a file
still open on it (before, `umount` failed with EBUSY, silently, and the mount stayed in /tmp/pytest-of-root)."""

from __future__ import annotations

import os

import pytest
from conftest import mount_tmpfs, unmount


@pytest.fixture
def disk(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    problem = mount_tmpfs(folder)
    if problem:
        pytest.skip(f"cannot mount a tmpfs here: {problem}")
    yield folder
    if os.path.ismount(folder):  # the test failed before unmounting: do not leave it behind
        unmount(folder)


def test_unmount_with_a_file_still_open_on_it(disk):
    held = open(disk / "log.jsonl", "w")  # what a failed test's sink leaves open
    try:
        held.write("x")
        unmount(disk)
        assert not os.path.ismount(disk)
    finally:
        held.close()


def test_unmount_of_an_idle_tmpfs(disk):
    (disk / "f").write_text("x")
    unmount(disk)
    assert not os.path.ismount(disk) and not (disk / "f").exists()
