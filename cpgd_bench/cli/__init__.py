"""`cpgd-bench` command line: a thin click layer; each subcommand calls one library function.

Errors a user can fix derive from :class:`cpgd_bench.errors.CpgdBenchError`; the group catches that one class
and prints its message as one ``Error:`` line (exit 1). Commands catch nothing themselves.

The group is lazy: `cpgd-bench --help` lists each command by name with the first line of its docstring, read
from the module's source, and a command's module (with torch, zarr, ...) is imported only when that command runs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import click

# Each entry is "module:attribute" of a click command or group; modules are owned by their feature.
# The command's name is the attribute with "_" as "-"; tests/test_cli_lazy.py checks names and help.
_COMMANDS = [
    "cpgd_bench.cli.dataset:dataset",
    "cpgd_bench.cli.run:run",
    "cpgd_bench.cli.run:report",
    "cpgd_bench.cli.run:models",
    "cpgd_bench.cli.score:score",
    "cpgd_bench.cli.weights:weights",
    "cpgd_bench.cli.train:train",
    "cpgd_bench.cli.baselines:baselines",
    "cpgd_bench.cli.codec:codec",
]


def command_specs() -> dict[str, str]:
    """Command name -> "module:attribute", for every command of `cpgd-bench`."""
    return {spec.rpartition(":")[2].replace("_", "-"): spec for spec in _COMMANDS}


def _docstring(spec: str) -> str:
    """The docstring of the function ``module:attribute``, read from the module's source without importing it."""
    module, attr = spec.split(":")
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        return ""
    for node in ast.parse(Path(found.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            return ast.get_docstring(node) or ""
    return ""


class _LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is looked up to run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(command_specs())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = command_specs().get(cmd_name)
        if spec is None:
            return None
        module, attr = spec.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; an error the user can fix (:class:`CpgdBenchError`) becomes one ``Error:`` line, exit 1."""
        from cpgd_bench.errors import CpgdBenchError

        try:
            return super().invoke(ctx)
        except CpgdBenchError as e:
            raise click.ClickException(str(e)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        specs = command_specs()
        limit = formatter.width - 6 - max(map(len, specs))
        rows = [(name, click.Command(name, help=_docstring(specs[name])).get_short_help_str(limit))
                for name in sorted(specs)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cpgd-bench")
def main() -> None:
    """Coding-prior video restoration: build VVC coding-prior datasets, run models, score, report."""
