"""The one root of every error a user can cause: :class:`CpgdBenchError`.

Each layer derives its own errors from it (``StoreError``, ``SourceError``, ``CodecError``, ``ModelError``,
``WeightsError``, ...), with messages of one line that name the file and the fix. The command line catches
this one class and prints that line (exit 1); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CpgdBenchError(Exception):
    """Something the user can fix: a missing or damaged file, a bad option, an unmet requirement."""
