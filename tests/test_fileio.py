"""Files written whole or not at all."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import BinaryIO

import pytest

from scaler.errors import InputError, ScalerError
from scaler.fileio import write_atomically


def _half_then_fail(stream: BinaryIO) -> None:
    stream.write(b"timestamp,signal,value\n2026-03-02T08:00:00Z,cpu")
    raise KeyboardInterrupt  # Ctrl-C in the middle of an export


def _disk_full(stream: BinaryIO) -> None:
    stream.write(b"timestamp,signal,value\n")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("existing", [None, b"the previous export\n"])
def test_a_full_disk_fails_the_write_naming_the_file(
    tmp_path: Path, existing: bytes | None
) -> None:
    """A write the disk refuses: a failure (not bad input) naming the file; the old file (or
    none) stays and no temporary file is left, so `main` never reads it as stdout's failure."""
    target = tmp_path / "incident.csv"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(ScalerError, match=r"incident\.csv: cannot write: No space left") as info:
        write_atomically(target, _disk_full)
    assert not isinstance(info.value, InputError)
    assert (target.read_bytes() if target.exists() else None) == existing
    assert [p.name for p in tmp_path.iterdir()] == ([target.name] if existing else [])


@pytest.mark.parametrize("existing", [None, b"the previous export\n"])
def test_an_interrupted_write_leaves_no_half_file(tmp_path: Path, existing: bytes | None) -> None:
    """Interrupted: the old file (or none) stays, and no temporary file is left behind."""
    target = tmp_path / "incident.csv"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, _half_then_fail)
    assert (target.read_bytes() if target.exists() else None) == existing
    assert [p.name for p in tmp_path.iterdir()] == ([target.name] if existing else [])


def test_a_complete_write_replaces_the_file_with_normal_permissions(tmp_path: Path) -> None:
    """Done: the new content under the name, readable like any file the user writes."""
    target = tmp_path / "incident.csv"
    target.write_bytes(b"old")
    write_atomically(target, lambda stream: stream.write(b"new"))
    assert target.read_bytes() == b"new"
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode == plain.stat().st_mode  # the umask's mode, not mkstemp's 0600


def test_a_folder_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    """-o into a missing folder: one line naming the path, exit 2 (InputError)."""
    with pytest.raises(InputError, match=r"nowhere/x\.csv: cannot write here"):
        write_atomically(tmp_path / "nowhere" / "x.csv", lambda stream: stream.write(b"x"))
