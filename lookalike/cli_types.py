"""Option types for argparse that refuse nonsense where an option is parsed.

Each returns a ``type=`` callable: NaN, infinities and values outside the range give one
line naming the option's accepted range (argparse adds the option's name), in every command.
The training options are also checked in TrainConfig.validate, for callers of the library.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _range(low: float, high: float, low_open: bool) -> str:
    upper = "inf)" if math.isinf(high) else f"{_shown(high)}]"
    return f"{'(' if low_open else '['}{_shown(low)}, {upper}"


def integer(low: int = 0, high: float = math.inf) -> Callable[[str], int]:
    """An int in [low, high]; ``integer(1)`` is a count, ``integer(0)`` a size or index."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in {_range(low, high, False)}"
                                             f", got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {_range(low, high, False)}"
                                             f", got {value}")
        return value

    return parse


def number(low: float = -math.inf, high: float = math.inf, *,
           low_open: bool = False) -> Callable[[str], float]:
    """A finite float in [low, high] (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        accepted = _range(low, high, low_open)
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {accepted}, got "
                                             f"{text!r}") from None
        if not math.isfinite(value) or not low <= value <= high or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"must be a number in {accepted}, got {text}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as one line, ``lookalike: error: ...``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"lookalike: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)
