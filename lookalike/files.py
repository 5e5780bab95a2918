"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file lookalike writes (checkpoints, configs, pools, indexes) goes through here: write
to a temporary file in the same folder, flush and fsync it, then ``os.replace`` it over the
target, which is atomic on POSIX and Windows. Logs are appended (``append_jsonl``), and a
reader drops a torn last line. A full disk, whichever library was writing, becomes one
:class:`DiskFullError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lookalike.errors import DiskFullError

# What a full disk looks like through the libraries that write for us: an OSError with
# ENOSPC/EDQUOT, safetensors' Rust I/O error, numpy's short write in ``tofile``.
_FULL_MESSAGES = ("No space left on device", "StorageFull", "Disk quota exceeded",
                  "requested and")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a write that failed for lack of space."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(seen) for text in _FULL_MESSAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def disk_full(path: str | os.PathLike[str]) -> DiskFullError:
    return DiskFullError(f"{path}: the disk is full (no space left on the device); nothing "
                         "committed before was lost, free some space and run the command again")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or new entry in folder ``path`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it over ``target`` on success.

    The caller writes the file at the yielded path by any means (numpy, safetensors,
    matplotlib). On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; files should follow the umask
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise disk_full(target) from exc
        raise


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``target``."""
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN written as null would lose meaning, so
    floats are written as Python's json does: NaN stays NaN)."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_jsonl(target: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it. Never rewrites what is there: a kill can at worst
    leave a torn last line, which :func:`read_jsonl` drops."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record) + "\n").encode("utf-8")
    try:
        with open(target, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(target) from exc
        raise


def read_jsonl(target: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """The complete records of a JSON-lines file, and the byte offset where each starts.

    A last line without its newline (a write cut short) is not a record.
    """
    target = Path(target)
    if not target.is_file():
        return [], []
    data = target.read_bytes()
    records, offsets, start = [], [], 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            break
        if data[start:end].strip():
            records.append(json.loads(data[start:end]))
            offsets.append(start)
        start = end + 1
    return records, offsets
