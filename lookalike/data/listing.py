"""Plumbing shared by the benchmark readers: whitespace-separated listing files, image paths
checked up front, and the standard "first half of the classes" split.

Every error is one line naming the file (and line) at fault, so a half-extracted download
says which file is missing or broken instead of failing mid-training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from lookalike.data.splits import whole_split
from lookalike.errors import DataError

Row = tuple[int, tuple]
"""(line number, values converted to the column types) of one listing line."""


def listing_folder(root: str | os.PathLike[str],
                   find: Callable[[str | os.PathLike[str]], Path | None],
                   names: Sequence[str], what: str) -> Path:
    """The benchmark folder at or in ``root`` (as ``find`` locates it), refusing one that
    lacks any of the listing files ``names``: a half-extracted download is named up front."""
    found = find(root)
    folder = found if found is not None else Path(root)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: not a complete {what} folder (missing {', '.join(missing)})")
    return folder


def read_listing(path: Path, columns: Mapping[str, type], header: bool = False) -> list[Row]:
    """The rows of a whitespace-separated listing with exactly ``columns`` per line.

    Args:
        path: the listing file (e.g. CUB's ``images.txt``).
        columns: column name -> type (``int`` or ``str``), in file order.
        header: the first line must name the columns (as Stanford Online Products' do).

    Returns:
        (line number, values) per non-blank line, in file order.
    """
    names = tuple(columns)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable listing file ({exc})") from None
    start = 0
    if header:
        found = tuple(lines[0].split()) if lines else ()
        if found != names:
            raise DataError(f"{path}:1: expected the header {' '.join(names)}, "
                            f"got {' '.join(found) or 'an empty line'}")
        start = 1
    rows: list[Row] = []
    for number, line in enumerate(lines[start:], start=start + 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names):
            raise DataError(f"{path}:{number}: expected {len(names)} fields "
                            f"({' '.join(names)}), got {len(fields)}")
        values = []
        for name, kind, text in zip(names, columns.values(), fields, strict=True):
            try:
                values.append(kind(text))
            except ValueError:
                raise DataError(f"{path}:{number}: {name} must be an integer, "
                                f"got {text!r}") from None
        rows.append((number, tuple(values)))
    if not rows:
        raise DataError(f"{path}: the file lists nothing")
    return rows


def check_images_exist(paths: Sequence[str], origin: Callable[[int], str]) -> None:
    """Fail on the first image of ``paths`` that is not a file, naming where it is listed
    (``origin(i)``, e.g. "images.txt:12") and how many others are missing (a stat per image)."""
    missing = [i for i, p in enumerate(paths) if not os.path.isfile(p)]
    if missing:
        first = missing[0]
        more = f" ({len(missing) - 1} more of {len(paths)} are missing)" if len(missing) > 1 else ""
        raise DataError(f"{origin(first)}: no such image file {paths[first]}{more}")


def first_half_split(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) "train" for the items of the first ceil(C/2) classes, "test" for the rest: the
    unseen-class split of CUB-200-2011 (classes 1-100 / 101-200) and Cars196 (1-98 / 99-196)."""
    return np.where(np.asarray(labels) < (num_classes + 1) // 2, "train", "test")


def choose_split(paths: list[str], labels: np.ndarray, splits: np.ndarray, split: str | None,
                 name: str, where: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Keep the items of ``split`` ("train" or "test"; None or "all" keeps all)."""
    chosen = whole_split(f"{where} ({name})", split, own=("train", "test"))
    if chosen is None:
        return paths, labels, splits
    keep = np.flatnonzero(splits == chosen)
    return [paths[i] for i in keep], labels[keep], splits[keep]
