"""The `cpgd-bench` group is lazy: importing it or asking for help loads no torch, and it lists what runs."""

from __future__ import annotations

import subprocess
import sys
import time

import click
from click.testing import CliRunner

from cpgd_bench.cli import command_specs, main

_CLI = "from cpgd_bench.cli import main; main()"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_importing_the_cli_and_every_help_page_loads_no_torch() -> None:
    """`from cpgd_bench.cli import main` and `--help` of the group and of each command leave torch unimported."""
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom cpgd_bench.cli import command_specs, main\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "for args in [[]] + [[name] for name in command_specs()]:\n"
        "    result = CliRunner().invoke(main, [*args, '--help'])\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "    assert 'torch' not in sys.modules, args\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr


def test_help_is_fast() -> None:
    """`cpgd-bench --help` in a fresh interpreter; the target is < 1 s, asserted loosely on a shared machine."""
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        done = _python(_CLI, "--help")
        seconds.append(time.perf_counter() - start)
        assert done.returncode == 0 and "Commands:" in done.stdout, done.stderr
    print(f"cpgd-bench --help: {', '.join(f'{s:.2f}' for s in seconds)} s")
    assert min(seconds) < 3.0, seconds


def test_lazy_listing_matches_the_commands() -> None:
    """Names and short help in `--help` are those of the imported commands, so the table cannot drift."""
    ctx = click.Context(main)
    commands = {name: main.get_command(ctx, name) for name in command_specs()}
    eager = click.Group(commands={name: cmd for name, cmd in commands.items() if cmd is not None})
    for name, cmd in commands.items():
        assert cmd is not None and cmd.name == name, name
    lazy_help, eager_help = click.HelpFormatter(), click.HelpFormatter()
    main.format_commands(ctx, lazy_help)
    eager.format_commands(click.Context(eager), eager_help)
    assert lazy_help.getvalue() == eager_help.getvalue()


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output
