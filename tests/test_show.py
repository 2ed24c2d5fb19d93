"""`cpgd-bench dataset show`: the flow colour wheel, MV colours against true camera motion, reads of only
the requested frames of a 720p sequence, and the viewer in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cpgd_bench.cli import main
from cpgd_bench.data.flow import block_flows
from cpgd_bench.sources.synthetic import camera_flow
from cpgd_bench.store import StoreWriter
from cpgd_bench.store.reader import StrictLocalStore
from cpgd_bench.store.schema import FRAMES_PER_SHARD
from cpgd_bench.viz.flowviz import flow_to_rgb, wheel_image
from cpgd_bench.viz.show import BLOCK_CLASSES

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("CPGD_TEST_ARTIFACTS", REPO / "runs" / "test-artifacts"))


def _show(*args: str) -> str:
    result = CliRunner().invoke(main, ["dataset", "show", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_wheel_matches_the_middlebury_reference() -> None:
    """Colours of flow_vis / Middlebury flowToColor, worked out by hand from the published 55-hue wheel."""
    u = np.array([1.0, -1.0, 0.0, 0.0, 0.0, 0.5, 2.0])
    v = np.array([0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0])
    expected = [(255, 0, 0), (0, 209, 255), (88, 0, 255), (255, 229, 0), (255, 255, 255), (255, 127, 127),
                (191, 0, 0)]  # right, left, up, down, zero, half right, beyond the radius (75 %)
    np.testing.assert_array_equal(flow_to_rgb(u * 3, v * 3, 3.0), expected)
    legend = wheel_image(65)
    assert legend[32, 64, 3] == 255 and legend[0, 0, 3] == 0  # opaque disc, transparent corners
    assert tuple(legend[32, 64, :3]) == (255, 0, 0) and tuple(legend[64, 32, :3]) == (255, 229, 0)  # right, bottom


def _block_mean(field: np.ndarray, h4: int, w4: int) -> np.ndarray:
    return field[: 4 * h4, : 4 * w4].reshape(h4, 4, w4, 4, -1).mean((1, 3))


@pytest.mark.codec
def test_mv_colours_match_camera_motion(sample_store: Path, tmp_path: Path) -> None:
    """The flow layers' colour at textured blocks with a flow is the wheel colour of the true camera motion;
    black exactly where the dataset's flow is invalid; block classes are the blocks' own references."""
    from cpgd_bench.store import open_store

    out = tmp_path / "show"
    _show(str(sample_store), "--split", "test", "--sequence", "motorcycle", "--frames", "28:32", "--out", str(out))
    meta = json.loads((out / "show.json").read_text())
    group = open_store(sample_store).group("test", "motorcycle")
    camera, slice_type, mv_ref = group["camera"][:], group["slice_type"][:], group["mv_ref"][:]
    _, valid = block_flows(group["mv"][27:], mv_ref[27:])  # the frames shown and the one before them
    h, w, radius = meta["height"], meta["width"], meta["flow_radius"]
    h4, w4 = h // 4, w // 4
    classes = np.array([c for _, c in BLOCK_CLASSES])
    good, flipped, checked = [], [], 0
    for t in range(28, 32):
        gray = _png(out / "layers" / f"{t:05d}_decoded.png").mean(-1, keepdims=True)
        textured = (_block_mean(gray**2, h4, w4) - _block_mean(gray, h4, w4) ** 2)[..., 0] > 16.0
        blocks = _png(out / "layers" / f"{t:05d}_blocks.png")[2::4, 2::4]
        code = np.argmin(np.abs(blocks[..., None, :].astype(int) - classes).sum(-1), -1)
        np.testing.assert_array_equal(code, (mv_ref[t] < 0).any(0) + 2 * (mv_ref[t] > 0).any(0))
        if slice_type[t] == 2:
            assert (code == 0).all(), f"frame {t} is an I slice: every block is intra"
        for d, (name, step) in enumerate((("flow_prev", -1), ("flow_next", 1))):
            shown = _png(out / "layers" / f"{t:05d}_{name}.png")[2::4, 2::4].astype(int)  # block centres
            has_flow = valid[t - 27, d]
            np.testing.assert_array_equal(shown.sum(-1) == 0, ~has_flow, err_msg=f"frame {t} {name}: black")
            if not 0 <= t + step < len(camera):
                continue
            true = _block_mean(camera_flow(camera, t, t + step, h, w), h4, w4)
            used = has_flow & textured
            checked += int(used.sum())
            good.append(np.abs(shown - flow_to_rgb(true[..., 0], true[..., 1], radius)).max(-1)[used])
            flipped.append(np.abs(shown - flow_to_rgb(-true[..., 0], -true[..., 1], radius)).max(-1)[used])
    assert checked > 2000, f"too few textured blocks with a flow ({checked})"
    assert np.median(np.concatenate(good)) <= 20, "MV colours differ from the camera motion's colours"
    assert np.median(np.concatenate(flipped)) >= 60  # the check can tell opposite directions apart
    panel = _png(out / "panels" / "00029.png")
    assert panel.shape[1] > 3 * w and (out / "strip.png").stat().st_size > 5000


def _write_720p(path: Path, frames: int = 100, h: int = 720, w: int = 1280) -> Path:
    """A 1280x720 sequence of 100 frames (no ground truth): random MVs, pixels of frame t are 2t or 2t + 1."""
    rng = np.random.default_rng(0)
    with StoreWriter(path, "unit", {"codec_profile": {"name": "unit"}}) as writer, \
            writer.open_sequence("test", "big", frames, h, w) as seq:
        for start in range(0, frames, 20):
            n = min(20, frames - start)
            t = np.arange(start, start + n)
            pixels = (2 * t[:, None, None, None] + rng.integers(0, 2, (1, h, w, 3), np.uint8)).astype(np.uint8)
            seq.write("decoded", pixels, start)
            seq.write("blur", pixels.copy(), start)
            seq.write("mv", rng.integers(-64, 65, (n, 2, h // 4, w // 4, 2), np.int16), start)
            seq.write("mv_ref", rng.integers(-1, 2, (n, 2, h // 4, w // 4), np.int16), start)
            residual = np.zeros((n, h, w), np.int16)
            residual[:, :64, :64] = rng.integers(-50, 51, (n, 64, 64))
            seq.write("residual", residual, start)
            for name in ("residual_cb", "residual_cr"):
                seq.write(name, np.zeros((n, h // 2, w // 2), np.int16), start)
        seq.write("poc", np.arange(frames, dtype=np.int32))
        seq.write("slice_type", np.where(np.arange(frames) % 32 == 0, 2, 0).astype(np.uint8))
        seq.write("qp", np.full(frames, 32, np.int8))
        seq.commit({"fps": 30.0, "frame_names": [f"{i:05d}.png" for i in range(frames)],
                    "codec": {"bit_depth": 10}})
    return path


@pytest.fixture(scope="module")
def store_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_720p(tmp_path_factory.mktemp("big") / "big.zarr")


def test_720p_show_reads_only_requested_frames(store_720p: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """2 of 100 frames at 1280x720, they and their neighbours inside one inner chunk: only the shard holding them is
    read, and only part of it; a few seconds."""
    reads: list[tuple[str, int]] = []
    original = StrictLocalStore.get

    async def counting_get(self, key, prototype=None, byte_range=None):  # type: ignore[no-untyped-def]
        value = await original(self, key, prototype, byte_range)
        reads.append((key, 0 if value is None else len(value)))
        return value

    monkeypatch.setattr(StrictLocalStore, "get", counting_get)
    out = tmp_path / "show"
    start = time.perf_counter()
    output = _show(str(store_720p), "--split", "test", "--sequence", "big", "--frames", "49:51", "--out", str(out))
    seconds = time.perf_counter() - start
    print(f"720p, 2 of 100 frames: {seconds:.1f} s")
    assert "frames 49-50 of 100" in output and "no ground truth" in output
    chunk_reads = [(k, n) for k, n in reads if "/c/" in k]
    assert chunk_reads
    for array in ("decoded", "mv", "mv_ref", "residual"):
        keys = {k for k, _ in chunk_reads if k.split("/")[2] == array}
        shard_index = str(49 // FRAMES_PER_SHARD)
        assert keys and all(k.split("/")[3:5] == ["c", shard_index] and set(k.split("/")[5:]) == {"0"}
                            for k in keys), keys  # fmt: skip
        shard = store_720p / next(iter(keys))
        read = sum(n for k, n in chunk_reads if k.split("/")[2] == array)
        assert read < 0.6 * shard.stat().st_size, f"{array}: read {read} of the {shard.stat().st_size}-byte shard"
    assert not any(k.split("/")[2] in ("blur", "residual_cb", "residual_cr") for k, _ in chunk_reads)
    for t in (49, 50):  # the layer images show those frames (pixels 2t or 2t + 1)
        assert set(np.unique(_png(out / "layers" / f"{t:05d}_decoded.png"))) <= {2 * t, 2 * t + 1}
    assert sorted(p.name for p in (out / "panels").iterdir()) == ["00049.png", "00050.png"]
    assert not list((out / "layers").glob("*_sharp.png"))
    assert seconds < 30


def test_show_refuses_bad_frames_and_names(store_720p: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    base = ["dataset", "show", str(store_720p), "--split", "test", "--out", str(tmp_path / "o")]
    result = cli.invoke(main, [*base, "--sequence", "big", "--frames", "99:120"])
    assert result.exit_code == 1 and "frames 0-99" in result.output and len(result.output.splitlines()) == 1
    result = cli.invoke(main, [*base, "--sequence", "big", "--frames", "x"])
    assert result.exit_code == 1 and "not a:b" in result.output
    result = cli.invoke(main, [*base, "--sequence", "nope"])
    assert result.exit_code == 1 and "no sequence 'nope'" in result.output


def _chromium(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium binary (install it: `make system-deps` / apt-get install chromium)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
           "--v=0", *flags, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def drive(page: Path, script: str) -> tuple[list, str]:
    """Run ``script`` in a copy of ``page`` (same folder) after the page's own scripts, in headless Chromium.

    ``script`` stores its findings with ``done(list)``; returns them and Chromium's stderr.
    """
    driven = page.with_name("driven.html")
    hook = "<script>const done = (r) => document.body.setAttribute('data-driven', JSON.stringify(r));</script>"
    driven.write_text(page.read_text().replace("</body>", f"{hook}<script>{{{script}}}</script></body>"))
    dom = _chromium(driven.resolve().as_uri(), "--dump-dom")
    found = re.search(r'data-driven="([^"]*)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    return json.loads(html.unescape(found.group(1))), dom.stderr


_VIEWER_DRIVER = """
const img = document.getElementById("layer"), seen = [];
const frame = document.getElementById("frame"), zoom = document.getElementById("zoom");
frame.value = 2; frame.dispatchEvent(new Event("input")); seen.push(img.getAttribute("src"));
document.querySelectorAll("#layers input")[4].click(); seen.push(img.getAttribute("src"));
zoom.value = 3; zoom.dispatchEvent(new Event("input")); seen.push(img.style.width);
document.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowLeft"})); seen.push(img.getAttribute("src"));
document.dispatchEvent(new KeyboardEvent("keydown", {key: "6"})); seen.push(img.getAttribute("src"), location.hash);
seen.push(document.getElementById("legend").textContent.includes("later frames only"));
done(seen);
"""


@pytest.mark.codec
def test_viewer_renders_and_follows_its_controls(sample_store: Path, tmp_path: Path) -> None:
    """index.html in headless Chromium: no console message, the URL state picks frame, layer and zoom."""
    out = tmp_path / "show"
    _show(str(sample_store), "--split", "test", "--sequence", "chelsea", "--frames", "4:8", "--out", str(out))
    page = (out / "index.html").resolve().as_uri()
    dom = _chromium(page + "#frame=6&layer=flow_next&zoom=2", "--dump-dom")
    assert "CONSOLE" not in dom.stderr, dom.stderr
    assert 'data-state="frame=6&amp;layer=flow_next&amp;zoom=2"' in dom.stdout
    assert 'src="layers/00006_flow_next.png"' in dom.stdout and "width: 512px" in dom.stdout
    assert 'href="panels/00006.png"' in dom.stdout and 'src="wheel.png"' in dom.stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dataset-show-viewer.png"
    done = _chromium(page + "#frame=5&layer=residual&zoom=1", "--window-size=1280,1100", f"--screenshot={shot}")
    assert "CONSOLE" not in done.stderr, done.stderr
    assert shot.stat().st_size > 10_000
    seen, log = drive(out / "index.html", _VIEWER_DRIVER)  # slider, layer toggle, zoom, keys as a user would
    assert "CONSOLE" not in log, log
    assert seen == ["layers/00006_decoded.png", "layers/00006_flow_next.png", "768px", "layers/00005_flow_next.png",
                    "layers/00005_blocks.png", "#frame=5&layer=blocks&zoom=3", True]
    (out / "layers" / "00005_residual.png").unlink()  # a missing image is reported on the console
    done = _chromium(page + "#frame=5&layer=residual", "--dump-dom")
    assert "cannot load layers/00005_residual.png" in done.stderr
