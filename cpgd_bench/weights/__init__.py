"""Weights: the one table of every file cpgd-bench loads, its lookup and checks (:mod:`.table`), and the bundled
demo weights (package data here, each with a JSON record of how it was made)."""

from cpgd_bench.weights.table import (
    ENV_VAR,
    FileStatus,
    Resolved,
    WeightFile,
    WeightsError,
    WeightsTable,
    available,
    bundled_dir,
    file_status,
    find,
    load_table,
    load_torch,
    missing_message,
    resolve,
    search_dirs,
)

__all__ = [
    "ENV_VAR",
    "FileStatus",
    "Resolved",
    "WeightFile",
    "WeightsError",
    "WeightsTable",
    "available",
    "bundled_dir",
    "file_status",
    "find",
    "load_table",
    "load_torch",
    "missing_message",
    "resolve",
    "search_dirs",
]
