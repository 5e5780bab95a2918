"""``IndexSpec``: which index kind to build and its options, as an index folder stores it.

A spec is a kind name ("auto" or a registered kind) plus integer options, each declared by
a kind (``KindOption``): ``IndexSpec(kind="hnsw", hnsw_m=16)``. An option left out takes
its kind's default. ``auto`` picks exact search up to ``AUTO_APPROXIMATE_ABOVE`` items and
a graph index above, where a single exact query takes too long.
"""

from __future__ import annotations

import operator
from typing import Any

from lookalike.errors import ConfigError
from lookalike.search.kinds import INDEX_KINDS, IndexKind, get_index_kind, kind_options

AUTO = "auto"
OPTION_MAX = 2**31 - 1
"""The largest value of a kind's option: FAISS takes them as C ints."""
AUTO_APPROXIMATE_ABOVE = 250_000
"""``kind="auto"`` builds an exact index up to this many items and HNSW above it."""


def auto_kind(n: int) -> str:
    """The kind ``auto`` resolves to for ``n`` items."""
    return "flat" if n <= AUTO_APPROXIMATE_ABOVE else "hnsw"


def kind_choices() -> tuple[str, ...]:
    """``--kind`` choices: "auto" and every registered kind."""
    return (AUTO, *INDEX_KINDS.names())


def _option_names(kind: str) -> set[str]:
    """The options a kind takes ("auto": any kind's, since it may become any of them)."""
    if kind == AUTO:
        return set(kind_options())
    return {option.name for option in get_index_kind(kind).options}


class IndexSpec:
    """How to build the vector index: a kind and the options it was given.

    Args:
        kind: "auto" or a registered kind ("flat", "hnsw", "ivf", ...).
        options: values of options some registered kind declares (``hnsw_m``, ``nprobe``...).
    """

    def __init__(self, kind: str = AUTO, **options: int) -> None:
        if kind != AUTO:
            get_index_kind(kind)  # one line naming the choices
        declared = kind_options()
        checked: dict[str, int] = {}
        for name, value in options.items():
            option = declared.get(name)
            if option is None:
                raise ConfigError(f"unknown index option {name!r}; the registered kinds take "
                                  f"{', '.join(declared) or 'none'}")
            try:
                if isinstance(value, bool):
                    raise TypeError
                checked[name] = operator.index(value)
            except TypeError:
                raise ConfigError(f"{name} must be an integer, got {value!r}") from None
            if checked[name] < option.minimum:
                raise ConfigError(f"{name} must be >= {option.minimum}, got {value}")
            if checked[name] > OPTION_MAX:
                raise ConfigError(f"{name} must be <= {OPTION_MAX}, got {value}")
        self.kind = kind
        self.options = checked

    def get(self, name: str) -> int:
        """Option ``name``: the value given, else its kind's default."""
        if name in self.options:
            return self.options[name]
        option = kind_options().get(name)
        if option is None:
            raise ConfigError(f"unknown index option {name!r}")
        return option.default

    @property
    def index_kind(self) -> IndexKind:
        """The registered kind (resolve ``auto`` first)."""
        if self.kind == AUTO:
            raise ConfigError("an 'auto' index spec must be resolved for a size first")
        return get_index_kind(self.kind)

    def resolved(self, n: int) -> IndexSpec:
        """The spec for ``n`` items: ``auto`` replaced by its choice, and only that kind's
        options kept, each with its value (given or default)."""
        kind = auto_kind(n) if self.kind == AUTO else self.kind
        return IndexSpec(kind, **{o.name: self.get(o.name) for o in get_index_kind(kind).options})

    def with_search_options(self, **options: int) -> IndexSpec:
        """This spec with some search-time options replaced (``at_search``: recall knobs);
        those of other kinds are ignored, build-time ones are refused."""
        declared = kind_options()
        for name in options:
            if name in declared and not declared[name].at_search:
                raise ConfigError(f"{name} is fixed when an index is built; it is not a "
                                  "search-time option")
        own = _option_names(self.kind)
        return IndexSpec(self.kind, **{**self.options,
                                       **{k: v for k, v in options.items() if k in own}})

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.options}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IndexSpec:
        """Rebuild a stored spec; options its kind does not take are ignored (folders written
        before options belonged to kinds stored every kind's options)."""
        kind = str(values.get("kind", AUTO))
        own = _option_names(kind)
        return cls(kind, **{k: v for k, v in values.items() if k in own})

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, IndexSpec) and self.kind == other.kind
                and self.options == other.options)

    def __hash__(self) -> int:
        return hash((self.kind, tuple(sorted(self.options.items()))))

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"IndexSpec(kind={self.kind!r}{options})"
