"""The malloc tuning (lookalike/allocator.py): on by default on glibc, off with the variable."""

import os
import subprocess
import sys

import pytest

CHECK = ("import ctypes.util, sys; from lookalike.allocator import tune_malloc; "
         "first = tune_malloc(); print(first, tune_malloc() == first)")


def run_check(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("LOOKALIKE_MALLOC_TUNING", None)
    if env_value is not None:
        env["LOOKALIKE_MALLOC_TUNING"] = env_value
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tuning_is_on_by_default_and_idempotent() -> None:
    assert run_check(None) == "True True"


def test_the_variable_turns_it_off() -> None:
    assert run_check("0") == "False True"
