"""Read a CSV manifest ``path,label[,split]`` into a ``FileCollection``.

The first row is a header naming the columns (any order; extra columns are ignored).
Relative paths are resolved against the CSV's own folder, so a manifest and its images can
move together. Labels are class names; class indices follow their natural order over the
whole file, so every split of one manifest agrees on them.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from lookalike.data.folder import natural_key
from lookalike.data.images import DEFAULT_MAX_PIXELS
from lookalike.data.records import FileCollection
from lookalike.data.splits import whole_split
from lookalike.errors import DataError

REQUIRED_COLUMNS = ("path", "label")


def _read_rows(csv_path: Path) -> tuple[list[tuple[int, str, str, str | None]], bool]:
    """(line number, path, label, split) per data row, and whether a split column exists."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DataError(f"{csv_path}:1: header must name the columns path,label[,split]"
                                f" (missing {', '.join(missing)})")
            where = {name: header.index(name) for name in (*REQUIRED_COLUMNS, "split")
                     if name in header}
            rows = []
            for fields in reader:
                line = reader.line_num
                if not any(f.strip() for f in fields):
                    continue  # blank line
                if len(fields) != len(header):
                    raise DataError(f"{csv_path}:{line}: expected {len(header)} fields "
                                    f"({','.join(header)}), got {len(fields)}")
                values = {k: fields[i].strip() for k, i in where.items()}
                for column in REQUIRED_COLUMNS:
                    if not values[column]:
                        raise DataError(f"{csv_path}:{line}: empty {column}")
                rows.append((line, values["path"], values["label"], values.get("split")))
    except FileNotFoundError:
        raise DataError(f"{csv_path}: no such manifest file") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{csv_path}: the manifest lists no images")
    return rows, "split" in where


def read_manifest(csv_path: str | os.PathLike[str], split: str | None = None,
                  check_files: bool = True,
                  max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileCollection:
    """Read a manifest; keep the rows of ``split`` when given and the file has a split column.

    Args:
        csv_path: the CSV file.
        split: e.g. "train", a value of the split column; None or "all" keeps every row.
            Without a split column, "train" and "test" keep every row too; any other name
            is refused, naming the splits the file has.
        check_files: fail on a row whose image file does not exist (off with --skip-bad,
            which drops such rows later with the other bad images).
        max_pixels: the decode cap passed on to the collection.
    """
    csv_path = Path(csv_path)
    rows, has_split = _read_rows(csv_path)
    names = sorted({label for _, _, label, _ in rows}, key=natural_key)
    index = {name: i for i, name in enumerate(names)}
    found = sorted({s for *_, s in rows if s}, key=natural_key)  # the split column's values
    chosen = whole_split(csv_path, split, own=found)
    if chosen is not None:
        rows = [row for row in rows if row[3] == chosen]
    paths = []
    for line, path, _, _ in rows:
        full = Path(path) if Path(path).is_absolute() else csv_path.parent / path
        if check_files and not full.is_file():
            raise DataError(f"{csv_path}:{line}: no such image file {full}")
        paths.append(full)
    labels = [index[label] for _, _, label, _ in rows]
    splits = np.array([s for *_, s in rows]) if has_split else None
    return FileCollection(paths, labels, names, splits=splits, max_pixels=max_pixels)
