"""`cpgd-bench` command line: a thin click layer; each subcommand calls one library function."""

from __future__ import annotations

import importlib

import click

# Each entry is "module:attribute" of a click command or group; modules are owned by their feature.
_COMMANDS = [
    "cpgd_bench.cli.dataset:dataset",
    "cpgd_bench.cli.run:run",
    "cpgd_bench.cli.run:report",
    "cpgd_bench.cli.run:models",
    "cpgd_bench.cli.score:score",
    "cpgd_bench.cli.weights:weights",
    "cpgd_bench.cli.train:train",
    "cpgd_bench.cli.baselines:baselines",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cpgd-bench")
def main() -> None:
    """Coding-prior video restoration: build VVC coding-prior datasets, run models, score, report."""


for _spec in _COMMANDS:
    _module, _attr = _spec.split(":")
    main.add_command(getattr(importlib.import_module(_module), _attr))
