"""CodingPriorDataset on a store with exactly known motion (a translating texture), no codec needed."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cpgd_bench.data import CodingPriorDataset, backward_warp, expand_item, normalize_residual, upsample_flow_tensor
from cpgd_bench.data import augment as aug
from cpgd_bench.data.errors import DataError
from cpgd_bench.data.flow import FLOW_METHODS, upsample_flows
from cpgd_bench.store import StoreError, StoreWriter
from cpgd_bench.store.reader import open_array, open_root
from cpgd_bench.store.shard_reader import ChunkReadError, ShardReader

from .test_store_util import edit_attrs, random_sequence, sequence_attrs

T, H, W = 12, 48, 64
VELOCITY = np.array([2, -1])  # camera moves +2 px in x and -1 px in y per frame
INTRA = (3, slice(2, 4), slice(5, 7))  # frame 3, block rows 2-3, block cols 5-6: intra (no MV)
FAR_COLS = slice(0, 2)  # in frames >= 2 these block columns reference t-2 / t+2 instead of t-1 / t+1


def translating_sequence(seed: int, sharp: bool = True) -> dict[str, np.ndarray]:
    """Frames of a random texture seen by a camera moving at VELOCITY, with matching MVs."""
    rng = np.random.default_rng(seed)
    margin = 2 * T + 8
    base = rng.integers(0, 256, size=(H + 2 * margin, W + 2 * margin, 3)).astype(np.uint8)
    pos = np.array([VELOCITY * t for t in range(T)]) + margin  # (T, xy): frame t shows base at p + pos[t]
    frames = np.stack([base[y : y + H, x : x + W] for x, y in pos])
    h4, w4 = H // 4, W // 4
    mv = np.zeros((T, 2, h4, w4, 2), np.int16)
    mv_ref = np.zeros((T, 2, h4, w4), np.int16)
    for t in range(T):
        for lst, d in ((0, -1), (1, 1)):
            if 0 <= t + d < T:
                mv_ref[t, lst] = d
                mv[t, lst] = 16 * (pos[t] - pos[t + d])  # block at p predicted from p + mv/16 in frame t+d
            far = 2 * d
            if 0 <= t + far < T and t >= 2:
                mv_ref[t, lst][:, FAR_COLS] = far
                mv[t, lst][:, FAR_COLS] = 16 * (pos[t] - pos[t + far])
    mv_ref[INTRA[0], :, INTRA[1], INTRA[2]] = 0
    mv[INTRA[0], :, INTRA[1], INTRA[2]] = 0
    arrays = random_sequence(seed, t=T, h=H, w=W, sharp=sharp)
    arrays.update(blur=frames, decoded=frames, mv=mv, mv_ref=mv_ref)
    if sharp:
        arrays["sharp"] = frames
    return arrays


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ds") / "t.zarr"
    with StoreWriter(path, "unit") as writer:
        for i, name in enumerate(["s0", "s1"]):
            writer.write_sequence("train", name, translating_sequence(i), sequence_attrs(T))
        writer.write_sequence("test", "s2", translating_sequence(2), sequence_attrs(T))
        writer.write_sequence("nogt", "s3", translating_sequence(3, sharp=False), sequence_attrs(T))
    return path


def warp_error(item: dict, direction: str) -> float:
    """Mean |neighbour warped by the flow - frame| over valid pixels away from the border."""
    lq, flow = item["lq"], item[f"flow_{direction}"]
    channel, shift = (0, 1) if direction == "prev" else (1, -1)
    frames = range(1, len(lq)) if shift == 1 else range(len(lq) - 1)
    errors = []
    for t in frames:
        warped = backward_warp(lq[t - shift][None], flow[t][None])[0]
        valid = item["flow_valid"][t, channel].clone()
        valid[:8], valid[-8:], valid[:, :8], valid[:, -8:] = 0, 0, 0, 0  # sampling outside the frame
        assert valid.sum() > 0
        errors.append(((warped - lq[t]).abs().mean(0) * valid).sum() / valid.sum())
    return float(torch.stack(errors).mean())


def test_item_shapes_ranges_and_key(store: Path) -> None:
    ds = CodingPriorDataset(store, "train", clip_len=5, crop=32)
    assert len(ds) == 2 * (T - 5 + 1)
    item = ds[3]
    for key, channels in (("lq", 3), ("gt", 3), ("flow_prev", 2), ("flow_next", 2), ("flow_valid", 2), ("residual", 1)):
        assert item[key].shape == (5, channels, 32, 32) and item[key].dtype == torch.float32, key
    for key in ("lq", "gt", "residual", "flow_valid"):
        assert float(item[key].min()) >= 0.0 and float(item[key].max()) <= 1.0
    assert item["key"]["sequence"] == "train/s0"
    assert sorted(item["key"]["frames"].tolist()) == [3, 4, 5, 6, 7]


def test_flows_match_motion_with_poc_scaling_intra_and_clip_ends(store: Path) -> None:
    ds = CodingPriorDataset(store, "train", clip_len=T, mode="test", flow="scaled")
    item = ds[0]
    valid = item["flow_valid"]
    # intra blocks have no flow; the clip ends have no neighbour inside the clip
    assert valid[3, :, 8:16, 20:28].sum() == 0
    assert valid[0, 0].sum() == 0 and valid[-1, 1].sum() == 0
    assert valid[1:, 0].mean() > 0.95 and valid[:-1, 1].mean() > 0.95
    prev = item["flow_prev"].permute(0, 2, 3, 1)[valid[:, 0] > 0]
    nxt = item["flow_next"].permute(0, 2, 3, 1)[valid[:, 1] > 0]
    # the content at p in frame t is at p + VELOCITY in frame t-1, also for blocks referencing t-2 (POC scaling)
    torch.testing.assert_close(prev, torch.tensor(VELOCITY, dtype=torch.float32).expand_as(prev))
    torch.testing.assert_close(nxt, torch.tensor(-VELOCITY, dtype=torch.float32).expand_as(nxt))
    assert warp_error(item, "prev") < 1e-5 and warp_error(item, "next") < 1e-5


@pytest.mark.parametrize("transform", [aug.hflip, aug.vflip, aug.reverse])
def test_augmentation_keeps_flows_consistent(store: Path, transform) -> None:
    ds = CodingPriorDataset(store, "train", clip_len=6, crop=40, augment=False)
    torch.manual_seed(0)
    item = ds[2]
    clip = {k: v.numpy() for k, v in item.items() if k != "key"}
    moved = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in transform(clip).items()}
    for direction in ("prev", "next"):
        assert warp_error(item, direction) < 1e-5
        assert warp_error(moved, direction) < 1e-5
    if transform is not aug.reverse:  # forgetting to negate the flow component breaks the alignment
        unsigned = {
            k: torch.from_numpy(np.ascontiguousarray(np.flip(v, -1 if transform is aug.hflip else -2)))
            for k, v in clip.items()
        }
        assert warp_error(unsigned, "prev") > 0.05


def test_random_augmentation_in_dataset_stays_consistent(store: Path) -> None:
    ds = CodingPriorDataset(store, "train", clip_len=4, crop=32, augment=True)
    reversed_seen = 0
    for seed in range(12):
        torch.manual_seed(seed)
        item = ds[seed % len(ds)]
        frames = item["key"]["frames"].tolist()
        reversed_seen += frames[0] > frames[-1]
        assert warp_error(item, "prev") < 1e-5 and warp_error(item, "next") < 1e-5
    assert 0 < reversed_seen < 12


def test_residual_normalisation(store: Path) -> None:
    r = np.array([-2000, -512, -1, 0, 1, 511, 2000], np.int16)
    expected = np.clip((r.astype(np.float64) + 512) / 1024, 0, 1)
    np.testing.assert_allclose(normalize_residual(r, 10).numpy(), expected, atol=1e-7)
    assert float(normalize_residual(np.zeros(1, np.int16), 8)[0]) == 0.5
    item = CodingPriorDataset(store, "test", clip_len=T, mode="test")[0]
    raw = translating_sequence(2)["residual"]
    np.testing.assert_allclose(item["residual"][:, 0].numpy(), np.clip((raw + 512) / 1024, 0, 1), atol=1e-6)


def test_test_mode_windows_cover_every_frame_deterministically(store: Path) -> None:
    ds = CodingPriorDataset(store, "test", clip_len=5, mode="test")
    windows = [ds[i]["key"]["frames"].tolist() for i in range(len(ds))]
    assert windows == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [7, 8, 9, 10, 11]]
    again = ds[1]
    assert again["lq"].shape == (5, 3, H, W)
    torch.testing.assert_close(ds[1]["lq"], again["lq"])
    strided = CodingPriorDataset(store, "test", clip_len=5, mode="test", stride=3)
    assert [strided[i]["key"]["frames"][0].item() for i in range(len(strided))] == [0, 3, 6, 7]


def test_dataloader_with_two_workers(store: Path) -> None:
    ds = CodingPriorDataset(store, "train", clip_len=3, crop=16, mode="test")
    state = pickle.loads(pickle.dumps(ds))
    assert state._arrays == {}  # the store is reopened lazily in each worker
    direct = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(len(b["lq"]) for b in batches) == len(ds)
    assert batches[0]["lq"].shape == (4, 3, 3, H, W) and batches[0]["flow_valid"].shape == (4, 3, 2, H, W)
    torch.testing.assert_close(
        torch.cat([b["flow_prev"] for b in batches]), torch.stack([d["flow_prev"] for d in direct])
    )
    assert batches[0]["key"]["sequence"][:2] == ["train/s0", "train/s0"]

    train = DataLoader(
        CodingPriorDataset(store, "train", clip_len=3, crop=16), batch_size=2, num_workers=2, shuffle=True
    )
    batch = next(iter(train))
    assert batch["lq"].shape == (2, 3, 3, 16, 16) and batch["residual"].shape == (2, 3, 1, 16, 16)


def test_blur_input_and_store_without_ground_truth(store: Path) -> None:
    blur = CodingPriorDataset(store, "train", clip_len=3, crop=16, input="blur", augment=False)
    assert blur[0]["lq"].shape == (3, 3, 16, 16)
    nogt = CodingPriorDataset(store, "nogt", clip_len=3, crop=16)
    assert not nogt.has_gt and "gt" not in nogt[0]


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_errors_name_the_path_and_fix(store: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at") as e:
        CodingPriorDataset(tmp_path / "missing.zarr", "train")
    assert "missing.zarr" in _one_line(e)
    with pytest.raises(StoreError, match=r"has no split 'val' \(splits: nogt, test, train\)") as e:
        CodingPriorDataset(store, "val")
    assert str(store) in _one_line(e)
    with pytest.raises(
        StoreError, match=r"clip_len=13 is longer than sequence train/s0 \(12 frames.*use clip_len <= 12"
    ) as e:
        CodingPriorDataset(store, "train", clip_len=13)
    assert str(store) in _one_line(e)
    with pytest.raises(StoreError, match=r"crop=64 is larger than .*use crop <= 48"):
        CodingPriorDataset(store, "train", crop=64)
    with pytest.raises(ValueError, match="multiple of 4"):
        CodingPriorDataset(store, "train", crop=30)
    with pytest.raises(ValueError, match="input must be one of"):
        CodingPriorDataset(store, "train", input="sharp")

    old = tmp_path / "old.zarr"
    with StoreWriter(old, "unit") as writer:
        writer.write_sequence("train", "s0", translating_sequence(0), sequence_attrs(T))
    edit_attrs(old, format_version=1)  # older than any version read (2: SHA-256 checksums, read)
    with pytest.raises(StoreError, match="rebuild it") as e:
        CodingPriorDataset(old, "train")
    assert str(old) in _one_line(e)


ODD_H, ODD_W = 46, 62  # not multiples of 4: the block grid (12 x 16) overhangs the frame


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("odd") / "o.zarr"
    arrays = random_sequence(5, t=8, h=ODD_H, w=ODD_W)
    arrays["mv_ref"] = translating_sequence(5)["mv_ref"][:8, :, : -(-ODD_H // 4), : -(-ODD_W // 4)]
    arrays["mv"] = np.clip(arrays["mv"], -40, 40)  # a few pixels of motion, so the flows matter
    with StoreWriter(path, "unit") as writer:
        writer.write_sequence("test", "odd", arrays, sequence_attrs(8))
    return path


def _compact_cases() -> list[tuple[str, str, str]]:
    return [(f, r, d) for f in FLOW_METHODS for r in ("full", "block") for d in ("float32", "stored")]


@pytest.mark.parametrize(("flow", "resolution", "dtype"), _compact_cases())
def test_compact_items_expand_to_the_default_item_bit_for_bit(
    store: Path, odd_store: Path, flow: str, resolution: str, dtype: str
) -> None:
    cases = [
        ("train", dict(store=store, split="train", clip_len=5, crop=32, augment=True), 32, 32),
        ("test", dict(store=odd_store, split="test", clip_len=4, mode="test"), ODD_H, ODD_W),
    ]
    for mode, kwargs, h, w in cases:
        default = CodingPriorDataset(**kwargs, flow=flow)  # type: ignore[arg-type]
        compact = CodingPriorDataset(**kwargs, flow=flow, prior_resolution=resolution, dtype=dtype)  # type: ignore[arg-type]
        for seed in range(4 if mode == "train" else 1):  # train: random crops, flips and reversal
            torch.manual_seed(seed)
            want = default[seed]
            torch.manual_seed(seed)
            item = compact[seed]
            side = (-(-h // 4), -(-w // 4)) if resolution == "block" else (h, w)
            assert item["flow_prev"].shape[-2:] == item["flow_valid"].shape[-2:] == side
            pixel = torch.uint8 if dtype == "stored" else torch.float32
            assert item["lq"].dtype == pixel and item["residual"].dtype == (torch.int16 if dtype == "stored" else pixel)
            assert [k for k, v in item.items() if k != "key" and not v.is_contiguous()] == []
            assert ("bit_depth" in item) == (dtype == "stored")
            full = compact.expand(item)
            assert full.keys() == want.keys()
            for key in want.keys() - {"key"}:
                assert full[key].dtype == want[key].dtype and torch.equal(full[key], want[key]), (mode, key)
            assert torch.equal(item["key"]["frames"], want["key"]["frames"])


def test_compact_batches_expand_like_stacked_default_items(store: Path) -> None:
    """Collated compact items (DataLoader, pinned-memory friendly) expand on their device to the default batch."""
    default = CodingPriorDataset(store, "test", clip_len=4, mode="test")
    compact = CodingPriorDataset(store, "test", clip_len=4, mode="test", prior_resolution="block", dtype="stored")
    batch = next(iter(DataLoader(compact, batch_size=3, num_workers=1, pin_memory=torch.cuda.is_available())))
    assert batch["flow_prev"].shape == (3, 4, 2, H // 4, W // 4) and batch["flow_valid"].dtype == torch.uint8
    assert batch["bit_depth"].tolist() == [10, 10, 10]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    full = expand_item({k: v.to(device) for k, v in batch.items() if k != "key"}, compact.flow)
    for key in ("lq", "gt", "flow_prev", "flow_next", "flow_valid", "residual"):
        want = torch.stack([default[i][key] for i in range(3)])
        if device == "cpu":
            assert torch.equal(full[key], want), key
        else:  # CUDA's bilinear upsampling rounds its own way
            torch.testing.assert_close(full[key].cpu(), want, rtol=0, atol=1e-5)


def test_upsample_flow_tensor_matches_upsample_flows() -> None:
    blocks = np.random.default_rng(0).normal(size=(3, 2, 5, 7)).astype(np.float32)
    for flow in FLOW_METHODS:
        want = upsample_flows(blocks, 18, 27, flow)
        assert torch.equal(upsample_flow_tensor(torch.from_numpy(blocks), 18, 27, flow), torch.from_numpy(want))
    with pytest.raises(DataError, match="flow must be one of"):
        upsample_flow_tensor(torch.from_numpy(blocks), 18, 27, "nearest")


def test_option_errors_name_the_choices(store: Path) -> None:
    with pytest.raises(DataError, match=r"prior_resolution must be one of \('full', 'block'\), got 'half'"):
        CodingPriorDataset(store, "train", crop=16, prior_resolution="half")
    with pytest.raises(DataError, match=r"dtype must be one of \('float32', 'stored'\), got 'uint8'"):
        CodingPriorDataset(store, "train", crop=16, dtype="uint8")


def test_shard_reader_equals_zarr_and_refuses_damage(store: Path, tmp_path: Path) -> None:
    root = open_root(store)
    pixels = [(slice(0, 12), slice(0, 48), slice(0, 64)), (slice(3, 10), slice(4, 37), slice(8, 60)), (slice(11, 12),)]
    grid = [(slice(2, 9), slice(None), slice(1, 11), slice(3, 15)), (slice(0, 12),), (slice(5, 6), slice(1, 2))]
    for name in ("decoded", "sharp", "residual", "mv", "mv_ref"):
        array = open_array(root, f"train/s1/{name}")
        reader = ShardReader.open(array, checksums=True)
        assert reader is not None, name
        for selection in grid if name.startswith("mv") else pixels:
            assert np.array_equal(reader.read(selection), np.asarray(array[selection])), (name, selection)
    assert ShardReader.open(open_array(root, "train/s1/poc"), checksums=True) is None  # not sharded: Zarr reads it

    copy = tmp_path / "t.zarr"
    shutil.copytree(store, copy)
    shard = sorted((copy / "train" / "s0" / "decoded" / "c").rglob("*"))[-1]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 3] ^= 0x01  # a flipped bit inside a chunk
    shard.write_bytes(bytes(raw))
    reader = ShardReader.open(open_array(open_root(copy), "train/s0/decoded"), checksums=True)
    with pytest.raises(ChunkReadError):
        reader.read((slice(0, 12),))  # type: ignore[union-attr]
    dataset = CodingPriorDataset(copy, "train", clip_len=12, mode="test")
    with pytest.raises(StoreError, match=r"train/s0/decoded: frames 0-11 cannot be read: corrupt data") as e:
        dataset[0]
    _one_line(e)


def test_cpfp_training_is_the_same_with_compact_items(tmp_path: Path) -> None:
    """The trainer's compact data path (block priors expanded on the device) trains the same weights on the CPU."""
    from cpgd_bench.models.cpgd.cpfp.checkpoint import read_payload
    from cpgd_bench.train.cpfp import train

    from .cpfp_fixtures import tiny_config, tiny_store

    data = tiny_store(tmp_path / "tiny.zarr")
    runs = {}
    for compact in (True, False):
        config = tiny_config(tmp_path / f"{compact}.yaml", data={"compact": compact}, val={"every": 100})
        runs[compact] = read_payload(train(config, data, tmp_path / f"run-{compact}", max_steps=2))["model"]
    assert runs[True].keys() == runs[False].keys()
    assert all(torch.equal(runs[True][k], runs[False][k]) for k in runs[True])
