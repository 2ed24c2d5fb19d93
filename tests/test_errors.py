"""One error root: every error class of the package derives from CpgdBenchError; the CLI prints it as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from click.testing import CliRunner

import cpgd_bench
from cpgd_bench.cli import main
from cpgd_bench.errors import CpgdBenchError


def _package_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(cpgd_bench.__path__, "cpgd_bench."):
        if info.name.startswith(("cpgd_bench.manifests", "cpgd_bench.codec_src", "cpgd_bench.vvc_patches")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_class_derives_from_the_one_root() -> None:
    errors = _package_exceptions()
    assert len(errors) >= 15, sorted(errors)  # the package's own errors were found
    strays = [name for name, cls in errors.items() if not issubclass(cls, CpgdBenchError)]
    assert not strays, f"errors outside CpgdBenchError: {strays}"


def _error_line(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_the_cli_turns_each_layers_error_into_one_line(tmp_path: Path) -> None:
    assert "no store at" in _error_line(["dataset", "info", str(tmp_path / "none.zarr")])  # store
    assert "training config" in _error_line(["train", "--stage", "cpfp", "--config", str(tmp_path / "x.yaml"),
                                             "--store", str(tmp_path)])  # fmt: skip
    assert "is not a coding-prior store" in _error_line(["score", "--predictions", str(tmp_path), "--store",
                                                         str(tmp_path)])  # fmt: skip
    assert "unknown model 'cpfpp'" in _error_line(["run", "--model", "cpfpp", "--store", str(tmp_path)])  # models
    (tmp_path / "tree").mkdir()
    assert "no <sequence>/blur/" in _error_line(["dataset", "build", "folder", "--root", str(tmp_path / "tree"),
                                                 "--out", str(tmp_path / "s.zarr")])  # sources  # fmt: skip
