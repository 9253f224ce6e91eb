"""Atomic writes: a temporary file beside the target, then a rename.

An existing file is never half-overwritten: if the write fails (full disk, cancelled run,
killed process), the old file stays as it was and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ExportError


@contextlib.contextmanager
def atomic_path(target: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success move it onto ``target``.

    For directories (zarr stores) the old directory is swapped out only after the new one is
    complete, then removed.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        if not parent.exists():
            parent.mkdir(parents=True, exist_ok=True)
        if not os.access(parent, os.W_OK):
            raise ExportError("the folder is not writable", parent, "choose another output folder")
        prefix = f".{target.name}."
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
            os.close(fd)
            tmp = Path(name)
            # mkstemp makes the file private (0600); a finished file gets the usual mode
            os.chmod(tmp, 0o666 & ~_umask())
    except OSError as exc:  # a file where a folder should be, a read-only or full disk
        reason = exc.strerror or type(exc).__name__
        raise ExportError(
            f"cannot write here ({reason.lower()})", target, "choose another output folder"
        ) from exc
    try:
        yield tmp
        if is_dir:
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                if old.exists():
                    shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
            tmp.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
    except OSError as exc:
        _cleanup(tmp, is_dir)
        if exc.errno == errno.ENOSPC:
            raise ExportError("the disk is full; the old file was kept", target) from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ExportError("permission denied; the old file was kept", target) from exc
        raise
    except BaseException:
        _cleanup(tmp, is_dir)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cleanup(tmp: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def ensure_writable(target: str | Path) -> None:
    """Raise ExportError now if ``target`` could not be written later (checked with a temporary
    file beside it, removed at once), so that a long run does not fail only at its first save."""
    with contextlib.suppress(_Probe), atomic_path(target):
        raise _Probe  # the temporary file is removed and the target left as it is


class _Probe(Exception):
    """Ends the probe of ``ensure_writable`` without touching the target."""


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))
