"""The index kinds by name (``--kind`` choices), and their options."""

from __future__ import annotations

from lookalike.errors import ConfigError
from lookalike.registry import Registry
from lookalike.search.kinds.base import IndexKind, KindOption

INDEX_KINDS: Registry[IndexKind] = Registry("index kind")


def register_index_kind(kind: IndexKind, *, replace: bool = False) -> IndexKind:
    """Make ``kind`` available to ``IndexSpec``, ``Index.build`` and ``--kind``.

    Its options must not clash with another kind's (same name, another definition): they
    become flags of one command.
    """
    others = {option.name: option for name in INDEX_KINDS if name != kind.name
              for option in INDEX_KINDS.get(name).options}
    for option in kind.options:
        if others.get(option.name, option) != option:
            raise ConfigError(f"index kind {kind.name!r}: option {option.name!r} is already "
                              "defined differently by another kind")
    return INDEX_KINDS.register(kind.name, kind, replace=replace)


def get_index_kind(name: str) -> IndexKind:
    """The registered kind ``name``, or a one-line error naming the choices."""
    return INDEX_KINDS.get(name)


def kind_options() -> dict[str, KindOption]:
    """Every registered kind's options, by name."""
    return {option.name: option for name in INDEX_KINDS
            for option in INDEX_KINDS.get(name).options}
