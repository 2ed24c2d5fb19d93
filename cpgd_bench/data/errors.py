"""Errors of the data layer: dataset options and degradation settings a user (or a training config) gave."""

from cpgd_bench.errors import CpgdBenchError


class DataError(CpgdBenchError, ValueError):
    """A dataset or degradation option is out of range; the message names the option and what is allowed."""
