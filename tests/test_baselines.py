"""Baseline wrappers: input adaptation checked on tiny stand-ins of the authors' networks.

Each case builds a fake upstream checkout in tmp_path (a git repository) holding a module at the
authors' import path with the authors' class name and call signature; the stand-in network is the
identity (times a loaded weight) and records what it was given, so the test sees exactly the padding,
value range, clip length and windows the wrapper feeds it, and that outputs map back to our frames.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from cpgd_bench.models.registry import ModelError, get_model
from cpgd_bench.weights import WeightsError

HEADER = """
import torch
from torch import nn
CALLS = []

def record(**tensors):
    CALLS.append({k: (tuple(v.shape), float(v.min()), float(v.max())) for k, v in tensors.items()})
"""

CLIP_NET = HEADER + """
class {cls}(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        record(x=x)
        return x * self.gain
"""

SHIFT_NET = HEADER + """
class GShiftNet(nn.Module):
    def __init__(self, future_frames, past_frames):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        record(x=x)
        return x[0, 2:-2] * self.gain  # the middle frames only, no batch dim
"""

SLIDING_NET = HEADER + """
class {cls}(nn.Module):
    def __init__(self, in_channels=3, n_sequence=5, out_channels=3, n_resblock=3, n_feat=32, device="cuda", **kwargs):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        record(x=x)
        mid = x[:, 2] * self.gain
        return tuple([x[:, 1], x[:, 3], x[:, 0], mid, x[:, 4], x[:, 0]][:{outputs}])
"""

PVDNET = HEADER + """
PREVIOUS = []

class DeblurNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.network == "PVDNet" and config.PV_ksize == 5
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, I_prev, I_curr, I_next, I_prev_deblurred, gt_prev=None, gt_curr=None, is_train=False):
        record(prev=I_prev, curr=I_curr, next=I_next, prev_deblurred=I_prev_deblurred)
        PREVIOUS.append(I_prev_deblurred.clone())
        return {"result": I_curr * self.gain}
"""

BSST = HEADER + """
class BSST(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, lqs, flows_forwards, flows_backwards):
        record(lqs=lqs, forwards=flows_forwards, backwards=flows_backwards)
        return lqs * self.gain
"""

RAFT = """
import torch
from torch import nn

class RAFT(nn.Module):
    def __init__(self):  # as the authors' RAFT: its weights from a path relative to the working directory
        super().__init__()
        self.bias = nn.Parameter(torch.ones(1))
        self.load_state_dict(torch.load("model_zoos/raft-things.pth", map_location=lambda storage, loc: storage))

    def forward(self, image1, image2):
        n, _, h, w = image1.shape
        return torch.zeros(n, 2, h, w) + self.bias
"""
RAFT_FILE = "model_zoos/raft-things.pth"


def fill(source: str, **fields: str) -> str:
    """``source`` with ``{name}`` placeholders replaced."""
    for name, value in fields.items():
        source = source.replace("{" + name + "}", value)
    return source


@dataclass(frozen=True)
class Case:
    model: str
    files: dict[str, str]  # path in the checkout -> source
    checkpoint: str  # "params" | "deblurnet" | "plain"
    value_range: tuple[float, float] = (0.0, 1.0)
    pad: int = 1


CASES = [
    Case("vrt", {"models/network_vrt.py": fill(CLIP_NET, cls="VRT")}, "params", pad=8),
    Case("rvrt", {"models/network_rvrt.py": fill(CLIP_NET, cls="RVRT")}, "params", pad=8),
    Case("dstnet", {"basicsr/archs/deblur_arch.py": fill(CLIP_NET, cls="Deblur")}, "params", pad=8),
    Case("shift-net", {"basicsr/models/archs/gshift_deblur1.py": SHIFT_NET}, "params", pad=4),
    Case("cdvd-tsp", {"code/model/cdvd_tsp.py": fill(SLIDING_NET, cls="CDVD_TSP", outputs="5")}, "plain", pad=4),
    Case("stdan", {"models/STDAN_Stack.py": fill(SLIDING_NET, cls="STDAN_Stack", outputs="6")}, "deblurnet", pad=4),
    Case("pvdnet", {"models/trainers/trainer.py": PVDNET}, "plain", value_range=(-1.0, 1.0), pad=4),
    Case("bsstnet", {"basicsr/archs/BSST_arch.py": BSST, "basicsr/archs/RAFT/raft.py": RAFT}, "params", pad=8),
]


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def make_checkout(root: Path, case: Case) -> tuple[Path, Path, str]:
    """A git checkout with the case's modules, and a checkpoint in the authors' layout."""
    for rel, source in case.files.items():
        path = root / "upstream" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    repo = root / "upstream"
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "fake upstream")
    if "basicsr/archs/RAFT/raft.py" in case.files:  # untracked, as the authors' README has it downloaded
        (repo / RAFT_FILE).parent.mkdir()
        torch.save({"bias": torch.zeros(1)}, repo / RAFT_FILE)
    state = {"gain": torch.ones(1)}
    if case.checkpoint == "params":
        ckpt: object = {"params": state}
    elif case.checkpoint == "deblurnet":
        ckpt = {"deblurnet_state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch_idx": 7}
    else:
        ckpt = {f"module.{k}": v for k, v in state.items()}
    weights = root / "weights.pth"
    torch.save(ckpt, weights)
    return repo, weights, _git(repo, "rev-parse", "HEAD")


def calls_of(restorer) -> list[dict]:  # noqa: ANN001
    return sys.modules[type(restorer.net).__module__].CALLS


def clip(frames: int, height: int, width: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(frames * 1000 + height)
    lq = torch.rand(frames, 3, height, width, generator=g)
    lq[0, 0, 0, 0], lq[0, 1, 0, 0] = 0.0, 1.0  # the range ends are present
    flow = torch.zeros(frames, 2, height, width)
    return {"lq": lq, "flow_prev": flow, "flow_next": flow, "flow_valid": torch.ones_like(flow),
            "residual": torch.full((frames, 1, height, width), 0.5)}


@pytest.mark.parametrize("case", CASES, ids=[c.model for c in CASES])
def test_wrapper_adapts_input_and_maps_back(tmp_path: Path, case: Case) -> None:
    repo, weights, commit = make_checkout(tmp_path, case)
    restorer = get_model(case.model, upstream=repo, weights=weights, device="cpu")
    item = clip(7, 36, 44)  # 36 x 44: no multiple of 8, so padding is exercised
    out = restorer.restore(item)
    assert out.shape == item["lq"].shape
    torch.testing.assert_close(out, item["lq"], atol=1e-6, rtol=0)  # identity network: range and pads undone

    calls = calls_of(restorer)
    assert calls, "the upstream network was never called"
    lo, hi = case.value_range
    for call in calls:
        for name, (shape, vmin, vmax) in call.items():
            if name in ("forwards", "backwards") or not isinstance(shape, tuple):
                continue
            assert shape[-2] % case.pad == 0 and shape[-1] % case.pad == 0, (name, shape)
            assert shape[-2] >= 36 and shape[-1] >= 44
            assert lo - 1e-6 <= vmin and vmax <= hi + 1e-6
    assert min(v[1] for c in calls for k, v in c.items() if k in ("x", "curr", "lqs")) == pytest.approx(lo, abs=1e-6)

    prov = restorer.provenance()
    assert prov["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert prov["upstream_commit"] == commit
    assert prov["model"] == case.model


def _frames_in(call: dict, key: str) -> int:
    return call[key][0][1]


def test_vrt_pads_time_to_its_window_and_feeds_18_frame_windows(tmp_path: Path) -> None:
    case = CASES[0]
    repo, weights, _ = make_checkout(tmp_path, case)
    restorer = get_model("vrt", upstream=repo, weights=weights, device="cpu")
    assert (restorer.window, restorer.overlap) == (18, 2)
    restorer.restore(clip(7, 16, 16))
    assert _frames_in(calls_of(restorer)[-1], "x") == 12  # 7 frames mirrored up to a multiple of 6


def test_vrt_tiles_large_frames(tmp_path: Path) -> None:
    repo, weights, _ = make_checkout(tmp_path, CASES[0])
    restorer = get_model("vrt", upstream=repo, weights=weights, device="cpu")
    item = clip(6, 200, 236)
    out = restorer.restore(item)
    torch.testing.assert_close(out, item["lq"], atol=1e-6, rtol=0)
    shapes = {c["x"][0][-2:] for c in calls_of(restorer)}
    assert len(calls_of(restorer)) == 4 and all(max(s) <= 240 for s in shapes)  # 2 x 2 tiles of ~192 px


def test_shift_net_gets_two_context_frames_each_side(tmp_path: Path) -> None:
    repo, weights, _ = make_checkout(tmp_path, CASES[3])
    restorer = get_model("shift-net", upstream=repo, weights=weights, device="cpu")
    assert (restorer.window, restorer.overlap) == (52, 4)
    item = clip(6, 8, 8)
    restorer.restore(item)
    assert _frames_in(calls_of(restorer)[-1], "x") == 10


@pytest.mark.parametrize("index", [4, 5], ids=["cdvd-tsp", "stdan"])
def test_sliding_networks_get_five_frames_per_output_frame(tmp_path: Path, index: int) -> None:
    case = CASES[index]
    repo, weights, _ = make_checkout(tmp_path, case)
    restorer = get_model(case.model, upstream=repo, weights=weights, device="cpu")
    restorer.restore(clip(6, 8, 8))
    calls = calls_of(restorer)
    assert len(calls) == 6 and all(_frames_in(c, "x") == 5 for c in calls)


def test_cdvd_border_repeats_the_first_frames_as_a_block(tmp_path: Path) -> None:
    from cpgd_bench.models.baselines.adapter import pad_time

    x = torch.arange(6.0)[:, None]
    assert pad_time(x, 2, 2, "repeat_block").flatten().tolist() == [0, 1, 0, 1, 2, 3, 4, 5, 4, 5]
    assert pad_time(x, 2, 2, "replicate").flatten().tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 5, 5]


def test_pvdnet_feeds_back_its_previous_output(tmp_path: Path) -> None:
    repo, weights, _ = make_checkout(tmp_path, CASES[6])
    restorer = get_model("pvdnet", upstream=repo, weights=weights, device="cpu")
    item = clip(4, 8, 8)
    restorer.restore(item)
    previous = sys.modules[type(restorer.net).__module__].PREVIOUS
    assert len(calls_of(restorer)) == len(previous) == 4
    scaled = item["lq"] * 2 - 1
    torch.testing.assert_close(previous[0][0], scaled[0])  # frame 0 starts the recursion
    for t in range(1, 4):  # then the previous output (identity: the previous frame)
        torch.testing.assert_close(previous[t][0], scaled[t - 1])


def test_bsst_gets_whole_256_tiles_and_quarter_resolution_bidirectional_flows(tmp_path: Path) -> None:
    repo, weights, _ = make_checkout(tmp_path, CASES[7])
    restorer = get_model("bsstnet", upstream=repo, weights=weights, device="cpu")
    restorer.restore(clip(5, 36, 44))  # smaller than a tile: padded up to one
    call = calls_of(restorer)[-1]
    assert call["lqs"][0] == (1, 5, 3, 256, 256)
    assert call["forwards"][0] == call["backwards"][0] == (1, 4, 2, 64, 64)
    item = clip(3, 262, 330)  # no multiple of 8: padded to 264 x 336, then 2 x 2 whole tiles
    torch.testing.assert_close(restorer.restore(item), item["lq"], atol=1e-6, rtol=0)
    assert [c["lqs"][0][-2:] for c in calls_of(restorer)[1:]] == [(256, 256)] * 4


def test_missing_checkout_names_what_to_clone(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"git clone https://github.com/JingyunLiang/VRT .*--weights") as e:
        get_model("vrt", upstream=tmp_path / "nowhere", weights=tmp_path / "w.pth")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="no --upstream given"):
        get_model("bsstnet")


def test_missing_or_wrong_weights_are_one_line_errors(tmp_path: Path) -> None:
    repo, weights, _ = make_checkout(tmp_path, CASES[0])
    with pytest.raises(ModelError, match="weights .*not found"):
        get_model("vrt", upstream=repo, weights=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"params": {"other": torch.ones(1)}}, wrong)
    with pytest.raises(ModelError, match=r"do not fit VRT: 1 missing keys \['gain'\], 1 unexpected") as e:
        get_model("vrt", upstream=repo, weights=wrong)
    assert "\n" not in str(e.value)
    layout = tmp_path / "layout.pth"
    torch.save({"epoch": 3, "net": {"gain": torch.ones(1)}}, layout)
    with pytest.raises(ModelError, match=r"hold no state dict under \['params'\]"):
        get_model("vrt", upstream=repo, weights=layout)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        get_model("vrt", upstream=repo, weights=garbage)


def test_each_checkout_imports_its_own_modules(tmp_path: Path) -> None:
    first = make_checkout(tmp_path / "one", CASES[0])
    second = make_checkout(tmp_path / "two", CASES[0])
    a = get_model("vrt", upstream=first[0], weights=first[1], device="cpu")
    b = get_model("vrt", upstream=second[0], weights=second[1], device="cpu")
    file_a, file_b = (type(m.net).forward.__code__.co_filename for m in (a, b))
    assert file_a.startswith(str(first[0].resolve())) and file_b.startswith(str(second[0].resolve()))
    assert a.provenance()["upstream_commit"] == first[2] and b.provenance()["upstream_commit"] == second[2]
