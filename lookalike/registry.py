"""A name -> value table for each extension point (losses, selectors, backbones, ...).

One registry per kind of extension: the command line takes its ``choices`` from it, the
config validation checks names against it, and an unknown name gets one line that lists the
registered ones. Adding a loss, selector or backbone is its own file plus one ``register``
line (docs/extending.md). Cf. timm's ``register_model`` and PML's one-class-per-file layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from lookalike.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered values by name, in registration order.

    Args:
        kind: what is registered, as an error message should name it (e.g. "--loss").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._values: dict[str, T] = {}

    def register(self, name: str, value: T, *, replace: bool = False) -> T:
        """Add ``value`` under ``name``; a second value under one name needs ``replace``."""
        if name in self._values and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._values[name] = value
        return value

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests register toys and clean up after themselves)."""
        self._values.pop(name, None)

    def get(self, name: str) -> T:
        """The value of ``name``, or a one-line error that lists the registered names."""
        try:
            return self._values[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of "
                              f"{', '.join(self._values)}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, for argparse ``choices`` and ``--help``."""
        return tuple(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)
