"""Search results as text: the table ``lookalike search`` prints, and its JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lookalike.search.index import Hit


def hits_table(query: str, hits: Sequence[Hit]) -> str:
    """A plain-text table: rank, id, distance, label, path or source."""
    header = ("rank", "id", "distance", "label", "path")
    rows = [(str(h.rank), str(h.id), f"{h.distance:.4f}", h.label or "-", h.path or h.source)
            for h in hits]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = [f"query: {query}"]
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i < 3 else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def results_json(queries: Sequence[str], results: Sequence[Sequence[Hit]],
                 distance: str) -> list[dict[str, Any]]:
    """One object per query: its name, the distance its hits are measured in, the hits."""
    return [{"query": q, "distance": distance, "hits": [h.to_dict() for h in hits]}
            for q, hits in zip(queries, results, strict=True)]


def groups_table(groups: Sequence[Sequence[int]], sources: dict[int, str]) -> str:
    """Duplicate groups, one block per group: its size, then each member's id and source."""
    lines = []
    for number, group in enumerate(groups, start=1):
        lines.append(f"group {number}: {len(group)} items")
        lines.extend(f"  {item_id:>8}  {sources.get(item_id, '?')}" for item_id in group)
    return "\n".join(lines)
