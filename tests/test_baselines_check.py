"""Baselines against the failure kinds of the authors' real code, on stand-in checkouts (see test_baselines).

Stand-ins here fail as the real repositories do on a CPU machine: a CUDA op compiled at import
(``torch.utils.cpp_extension.load``, which raises IndexError without a GPU), a constructor that needs
CUDA, a forward that fails, a RAFT that loads its weights relative to the working directory, a
``basicsr/version.py`` that only setup.py writes, ``import cupy``. Each must be one line naming the
model and the checkout's commit; ``baselines check`` must say which requirement is missing before import.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.models.baselines.requirements import scan
from cpgd_bench.models.registry import ModelError, get_model

from .test_baselines import CASES, CLIP_NET, RAFT_FILE, Case, clip, fill, make_checkout

BSST_CASE = CASES[7]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the failure kinds of a machine without a GPU")

COMPILING_OP = """
import os
from torch.utils.cpp_extension import load

here = os.path.dirname(__file__)
deform_attn_ext = load("cpgd_test_deform_attn", sources=[os.path.join(here, "deform_attn_ext.cpp"),
                                                         os.path.join(here, "deform_attn_cuda_kernel.cu")])
"""
CPP = "#include <torch/extension.h>\nPYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {}\n"


def rvrt_case(net_source: str) -> Case:
    """An RVRT stand-in: network_rvrt.py importing ``models/op/deform_attn.py`` (a JIT-compiled CUDA op)."""
    return Case("rvrt", {
        "models/network_rvrt.py": "from models.op.deform_attn import deform_attn_ext\n" + net_source,
        "models/op/deform_attn.py": COMPILING_OP,
        "models/op/deform_attn_ext.cpp": CPP,
        "models/op/deform_attn_cuda_kernel.cu": "__global__ void kernel() {}\n",
    }, "params")


def vrt_case(net_source: str, **files: str) -> Case:
    return Case("vrt", {"models/network_vrt.py": net_source, **files}, "params")


def check_cli(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["baselines", "check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output.splitlines()


@NO_GPU
def test_cuda_op_compiled_at_import_is_one_line_naming_model_and_commit(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    repo, weights, commit = make_checkout(tmp_path, rvrt_case(fill(CLIP_NET, cls="RVRT")))
    with pytest.raises(ModelError) as e:
        get_model("rvrt", upstream=repo, weights=weights, device="cpu")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"rvrt (upstream {commit[:12]}, {repo}): building RVRT failed: ")
    assert "cannot import models.network_rvrt" in message and "GPU only" in message


@NO_GPU
def test_check_says_gpu_only_before_importing_a_compiling_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    repo, _, commit = make_checkout(tmp_path, rvrt_case(fill(CLIP_NET, cls="RVRT")))
    code, lines = check_cli("rvrt", "--upstream", str(repo))
    assert code == 1
    assert lines[0].startswith("ok    checkout") and commit in lines[0]
    assert lines[1].startswith("FAIL  requirement   CUDA op compiled at import (models/op/deform_attn.py)")
    assert any(line.startswith("FAIL  gpu           GPU only: rvrt needs a CUDA GPU") for line in lines)
    assert lines[-1].startswith("skip  build")
    assert not (tmp_path / "ext").exists()  # nothing was imported, so nothing compiled
    code, lines = check_cli("rvrt", "--upstream", str(repo), "--device", "cuda")
    assert code == 1
    assert "FAIL  gpu           device cuda asked for, but torch sees no CUDA GPU on this machine" in lines
    assert not (tmp_path / "ext").exists()


@NO_GPU
def test_constructor_needing_cuda_is_one_line(tmp_path: Path) -> None:
    source = fill(CLIP_NET, cls="VRT").replace("self.kwargs = kwargs", "self.kwargs = torch.zeros(1).cuda()")
    repo, weights, commit = make_checkout(tmp_path, vrt_case(source))
    with pytest.raises(ModelError, match=rf"^vrt \(upstream {commit[:12]}, .*\): building VRT failed: .*GPU only") as e:
        get_model("vrt", upstream=repo, weights=weights, device="cpu")
    assert "\n" not in str(e.value)


def test_forward_failure_is_one_line(tmp_path: Path) -> None:
    source = fill(CLIP_NET, cls="VRT").replace("record(x=x)", "raise IndexError('tuple index out of range')")
    repo, weights, commit = make_checkout(tmp_path, vrt_case(source))
    restorer = get_model("vrt", upstream=repo, weights=weights, device="cpu")
    with pytest.raises(ModelError) as e:
        restorer.restore(clip(3, 16, 16))
    assert str(e.value) == (f"vrt (upstream {commit[:12]}, {repo}): forward on (3, 3, 16, 16) frames failed: "
                            "IndexError: tuple index out of range")


def test_missing_dependency_names_the_module(tmp_path: Path) -> None:
    repo, weights, _ = make_checkout(tmp_path, vrt_case("import cpgd_no_such_module\n" + fill(CLIP_NET, cls="VRT")))
    with pytest.raises(ModelError, match=r"ModuleNotFoundError: No module named 'cpgd_no_such_module'") as e:
        get_model("vrt", upstream=repo, weights=weights, device="cpu")
    assert "\n" not in str(e.value)


def test_checkout_gets_its_own_top_level_helpers_not_another_checkouts(tmp_path: Path) -> None:
    net = "from utils import TAG\n" + fill(CLIP_NET, cls="VRT").replace("self.kwargs = kwargs", "self.tag = TAG")
    first = make_checkout(tmp_path / "one", vrt_case(net, **{"utils/__init__.py": "TAG = 'one'\n"}))
    second = make_checkout(tmp_path / "two", vrt_case(net, **{"utils.py": "TAG = 'two'\n"}))
    tags = [get_model("vrt", upstream=repo, weights=w, device="cpu").net.tag for repo, w, _ in (first, second)]
    assert tags == ["one", "two"]


def test_failed_fallback_import_names_both_causes(tmp_path: Path) -> None:
    net = ("try:\n    import cpgd_missing_first\nexcept ImportError:\n    import cpgd_missing_fallback\n"
           + fill(CLIP_NET, cls="VRT"))
    repo, weights, _ = make_checkout(tmp_path, vrt_case(net))
    with pytest.raises(ModelError, match="No module named 'cpgd_missing_fallback', after ModuleNotFoundError: "
                                         "No module named 'cpgd_missing_first'"):
        get_model("vrt", upstream=repo, weights=weights, device="cpu")


def test_stand_in_raft_fails_outside_its_checkout_as_the_authors_does(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from cpgd_bench.models.baselines.adapter import import_upstream

    repo, _, _ = make_checkout(tmp_path, BSST_CASE)
    raft = import_upstream(repo, "basicsr.archs.RAFT.raft").RAFT
    monkeypatch.chdir(repo)
    raft()  # inside the checkout: fine
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="model_zoos/raft-things.pth"):
        raft()


def test_bsstnet_runs_from_any_working_directory_and_records_its_raft_weights(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo, weights, _ = make_checkout(tmp_path, BSST_CASE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CPGD_BENCH_WEIGHTS", raising=False)
    restorer = get_model("bsstnet", upstream=repo, weights=weights, device="cpu")
    assert os.getcwd() == str(elsewhere) and not list(elsewhere.iterdir())  # cwd restored, nothing left there
    item = clip(3, 16, 16)
    torch.testing.assert_close(restorer.restore(item), item["lq"], atol=1e-6, rtol=0)
    prov = restorer.provenance()
    raft = (repo / RAFT_FILE).resolve()
    sha256 = hashlib.sha256(raft.read_bytes()).hexdigest()
    assert prov["upstream_files"] == {"raft": {"path": str(raft), "sha256": sha256}}
    assert prov["precision"] == "fp32"  # autocast is for CUDA only
    assert restorer.spec.precision == "autocast"


def test_bsstnet_raft_weights_from_the_weights_dir_or_a_one_line_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo, weights, _ = make_checkout(tmp_path, BSST_CASE)
    shared = tmp_path / "weights-dir"
    shared.mkdir()
    (repo / RAFT_FILE).rename(shared / "raft-things.pth")
    monkeypatch.delenv("CPGD_BENCH_WEIGHTS", raising=False)
    with pytest.raises(ModelError) as e:
        get_model("bsstnet", upstream=repo, weights=weights, device="cpu")
    assert str(e.value).startswith(f"bsstnet needs its raft file raft-things.pth: put it at {repo / RAFT_FILE} ")
    assert "$CPGD_BENCH_WEIGHTS" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("CPGD_BENCH_WEIGHTS", str(shared))
    restorer = get_model("bsstnet", upstream=repo, weights=weights, device="cpu")
    assert restorer.provenance()["upstream_files"]["raft"]["path"] == str((shared / "raft-things.pth").resolve())


def test_cli_run_bsstnet_outside_its_checkout_records_raft_and_precision(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_store_util import random_sequence, write_store

    repo, weights, commit = make_checkout(tmp_path, BSST_CASE)
    store = write_store(tmp_path / "s.zarr", {("test", "a"): random_sequence(1, t=6)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CPGD_BENCH_WEIGHTS", raising=False)
    result = CliRunner().invoke(main, ["run", "--model", "bsstnet", "--upstream", str(repo), "--weights", str(weights),
                                       "--store", str(store), "--metrics", "psnr", "--device", "cpu",
                                       "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "runs").glob("*/run.json")).read_text())
    prov = record["provenance"]
    assert prov["upstream_commit"] == commit and prov["precision"] == "fp32"
    assert prov["upstream_files"]["raft"]["path"] == str((repo / RAFT_FILE).resolve())


def test_precision_per_baseline_is_what_the_authors_test() -> None:
    from cpgd_bench.models.baselines.check import baseline_spec

    precision = {name: baseline_spec(name, "cpu").precision for name in
                 ("vrt", "rvrt", "bsstnet", "shift-net", "dstnet", "stdan", "cdvd-tsp", "pvdnet")}
    assert precision == {"vrt": "fp32", "rvrt": "fp32", "bsstnet": "autocast", "shift-net": "half",
                         "dstnet": "fp32", "stdan": "fp32", "cdvd-tsp": "fp32", "pvdnet": "fp32"}


def test_check_passes_on_a_runnable_checkout_with_weights(tmp_path: Path) -> None:
    repo, weights, commit = make_checkout(tmp_path, CASES[0])
    code, lines = check_cli("vrt", "--upstream", str(repo), "--weights", str(weights), "--device", "cpu")
    assert code == 0, lines
    assert [line.split()[:2] for line in lines] == [
        ["ok", "checkout"], ["ok", "requirements"], ["ok", "gpu"], ["ok", "build"], ["ok", "weights"], ["ok", "forward"]
    ]
    assert f"at commit {commit}" in lines[0]
    assert lines[4].endswith("fits VRT strictly") and "(3, 3, 64, 64) -> (3, 3, 64, 64)" in lines[5]


def test_check_fails_on_weights_that_do_not_fit_and_on_a_missing_checkout(tmp_path: Path) -> None:
    repo, _, _ = make_checkout(tmp_path, CASES[0])
    wrong = tmp_path / "wrong.pth"
    torch.save({"params": {"other": torch.ones(1)}}, wrong)
    code, lines = check_cli("vrt", "--upstream", str(repo), "--weights", str(wrong), "--device", "cpu")
    assert code == 1 and lines[-1].startswith("FAIL  weights       weights ") and "do not fit VRT" in lines[-1]
    code, lines = check_cli("vrt", "--upstream", str(tmp_path / "nowhere"))
    assert code == 1 and len(lines) == 1 and lines[0].startswith("FAIL  checkout") and "git clone" in lines[0]
    code, lines = check_cli("input", "--upstream", str(repo))
    assert code == 1 and lines == ["Error: 'input' is not a baseline wrapping authors' code; baselines: see "
                                   "`cpgd-bench models`"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="cupy may be usable with a GPU")
def test_check_reports_missing_generated_file_cupy_and_commit_unknown_outside_git(tmp_path: Path) -> None:
    checkout = tmp_path / "plain"  # an unpacked archive: no .git
    files = {
        "setup.py": "version_file = 'basicsr/version.py'\n",
        "basicsr/__init__.py": "from .archs import *\nfrom .version import __version__\n",
        "basicsr/archs/__init__.py": "",
        "basicsr/archs/deblur_arch.py": "from basicsr.archs.kpn_pixel import IDynamicDWConv\n",
        "basicsr/archs/kpn_pixel.py": "import cupy\ntry:\n    import cpgd_optional_thing\n"
                                      "except ImportError:\n    pass\n",
    }
    for rel, text in files.items():
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_text(text)
    code, lines = check_cli("dstnet", "--upstream", str(checkout), "--device", "cpu")
    assert code == 1
    assert lines[0] == f"ok    checkout      {checkout} at commit unknown (https://github.com/xuboming8/DSTNet)"
    assert lines[1].startswith("FAIL  requirement   generated file basicsr/version.py [basicsr/__init__.py]: written")
    assert lines[2].startswith("FAIL  requirement   cupy (GPU only) [basicsr/archs/kpn_pixel.py]")
    assert lines[3].startswith("warn  requirement   python module cpgd_optional_thing [basicsr/archs/kpn_pixel.py] "
                               "(optional import)")
    assert lines[4].startswith("FAIL  requirements  2 missing, 1 optional missing, 0 met")
    assert lines[5].startswith("FAIL  gpu           GPU only: dstnet needs a CUDA GPU (cupy (GPU only))")
    assert lines[-1].startswith("skip  build")


def test_scan_follows_dynamic_imports_and_sees_built_extensions(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    files = {
        "ops/setup.py": "from torch.utils.cpp_extension import CUDAExtension\nCUDAExtension(name='corr_ext')\n",
        "ops/__init__.py": "",
        "ops/layer.py": "from . import corr_ext\n",
        "models/__init__.py": "",
        "models/trainer.py": "import importlib\nlib = importlib.import_module('models.archs.{}'.format('x'))\n",
        "models/archs/flow.py": "from ops.layer import *\nimport einops\n",
        "models/archs/pwc.py": "try:\n    from ops import corr\nexcept ImportError:\n    import corr\n",
        "ops/corr.py": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    reqs = {r.what: r for r in scan(root, ("models.trainer",))}
    assert set(reqs) == {"compiled CUDA op ops.corr_ext", "python module einops"}
    assert not reqs["compiled CUDA op ops.corr_ext"].met and reqs["compiled CUDA op ops.corr_ext"].gpu_only
    assert reqs["compiled CUDA op ops.corr_ext"].where == "ops/layer.py"
    (root / "ops/corr_ext.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert all(r.met for r in scan(root, ("models.trainer",)))
