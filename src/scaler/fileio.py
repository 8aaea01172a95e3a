"""Files written whole or not at all: a temporary file beside the target, then a rename.

Called by `scaler export`, `scaler backtest --plot` and `scaler report`: an interrupted run
leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from scaler.errors import InputError, ScalerError

__all__ = ["html_path", "png_path", "write_atomically"]


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through `write(stream)` to a temporary file beside `path`, then rename it over."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise InputError(f"{path}: cannot write here: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file is the usual
        os.replace(temp, path)
    except OSError as exc:  # a full disk, a quota: the run could not do its job (exit 1)
        Path(temp).unlink(missing_ok=True)
        raise ScalerError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def png_path(path: Path, flag: str = "--plot") -> Path:
    """`path` if it names a PNG; else InputError saying so (checked before any work is done)."""
    return _named(path, (".png",), f"{flag} {path}: the picture is a PNG")


def html_path(path: Path, flag: str = "-o") -> Path:
    """`path` if it names an HTML file; else InputError saying so (checked before any work)."""
    return _named(path, (".html", ".htm"), f"{flag} {path}: the report is one HTML file")


def _named(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{what}; name it ending in {suffixes[0]}")
    return path
