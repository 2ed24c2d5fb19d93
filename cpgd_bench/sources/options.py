"""Checks of source options (``-o KEY=VALUE`` on the command line, keyword arguments in Python).

Each raises :class:`SourceError` with one line naming the source, the option, the value and an example.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cpgd_bench.sources import SourceError


def _bad(source: str, key: str, want: str, value: Any, example: str) -> SourceError:
    return SourceError(f"{source}: option {key} must be {want}, got {value!r} (e.g. -o {key}={example})")


def positive_number(source: str, key: str, value: Any) -> float:
    """``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _bad(source, key, "a positive number", value, "25")
    return float(value)


def whole_number(source: str, key: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(source, key, f"a whole number >= {minimum}", value, str(max(minimum, 1) * 10))
    return value


def store_name(source: str, key: str, value: Any) -> str:
    """``value`` as a split name the store accepts (letters, digits, ``_.-``; no leading ``.``)."""
    from cpgd_bench.store.errors import StoreError
    from cpgd_bench.store.schema import check_name

    if isinstance(value, str):
        try:
            return check_name(key, value)
        except StoreError:
            pass
    raise _bad(source, key, "a name of letters, digits, '_', '.', '-' (no leading '.')", value, "test")


def store_names(source: str, key: str, value: Any) -> tuple[str, ...]:
    """``value`` (one name or a list of names) as a tuple of store names."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise _bad(source, key, "a name or a list of names", value, "[train,test]")
    return tuple(store_name(source, key, v) for v in value)


def folder_name(source: str, key: str, value: Any) -> str:
    """``value`` as a non-empty relative folder name."""
    if not isinstance(value, str) or not value.strip() or Path(value).is_absolute():
        raise _bad(source, key, "a folder name", value, "blur")
    return value


def manifest_ref(source: str, value: Any) -> str | Path:
    """``value`` as a manifest name or a path to a manifest YAML file."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise _bad(source, "manifest", "a manifest name or a .yaml path", value, "gopro")
    return value
