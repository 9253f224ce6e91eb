"""Bad and unusual slides: every failure is one SlideError line naming the file, never a hang.

The opening of empty, truncated, renamed-PNG, text and non-zarr inputs is asserted at the API
level in ``tests/slide/test_open.py``; here the same files go through the command line, and the
cases that need more than ``open_slide`` are covered: damaged tiles, no mpp, one level, a huge
one-level TIFF, and unusual path names.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from rel_helpers import assert_one_line_error, corrupt_tile, nompp_copy, run_wsi_ssl

from napari_wsi_ssl.errors import SlideError
from napari_wsi_ssl.slide import _svs, open_slide, tissue_mask
from napari_wsi_ssl.slide._tiff import MARK_DARK, MARK_LIGHT


@pytest.fixture(scope="module")
def bad_slides(tmp_path_factory: pytest.TempPathFactory, cmu_svs: Path) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad slides")
    out = {"empty": folder / "empty.svs", "truncated": folder / "truncated.svs"}
    out["empty"].write_bytes(b"")
    data = cmu_svs.read_bytes()
    out["truncated"].write_bytes(data[: len(data) * 2 // 3])
    out["png"] = folder / "photo.svs"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(out["png"], format="PNG")
    out["text"] = folder / "notes.svs"
    out["text"].write_text("patient 12, block B\n")
    out["folder"] = folder / "scans.zarr"
    out["folder"].mkdir()
    (out["folder"] / "list.txt").write_text("not a store")
    out["missing"] = folder / "absent.svs"
    return out


@pytest.mark.parametrize("kind", ["empty", "truncated", "png", "text", "folder", "missing"])
def test_bad_slide_on_the_command_line(cli, bad_slides: dict[str, Path], kind: str) -> None:
    path = bad_slides[kind]
    result = cli("info", path, "--no-tissue")
    assert result.code == 2
    assert_one_line_error(result.err, str(path))


def test_damaged_tile_is_an_error_for_compute_and_a_mark_for_display(
    small_slide, tmp_path: Path
) -> None:
    damaged = corrupt_tile(small_slide.slide, tmp_path / "damaged.tif", index=5)
    with open_slide(damaged) as slide:
        # tile 5 of a 4x4 grid of 256 px tiles: columns 256..512, rows 256..512
        with pytest.raises(SlideError, match=r"tile 5 of level 0 cannot be decoded") as err:
            slide.read_region((300, 300), 0, (64, 64))
        assert str(damaged) in str(err.value) and "\n" not in str(err.value)
        # the rest of the slide still reads, and equals the undamaged file
        with open_slide(small_slide.slide) as good:
            np.testing.assert_array_equal(
                slide.read_region((600, 600), 0, (200, 200)),
                good.read_region((600, 600), 0, (200, 200)),
            )
            expected = good.read_region((0, 0), 0, (1024, 1024))
        # the display pyramid draws the tile as a grey checkerboard and warns once
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            level0 = slide.pyramid()[0].compute()
            slide.pyramid()[0][256:512, 256:512].compute()
        messages = [str(w.message) for w in caught if "cannot be decoded" in str(w.message)]
        assert len(messages) == 1 and str(damaged) in messages[0]
        tile = level0[256:512, 256:512]
        assert set(np.unique(tile).tolist()) == {MARK_DARK, MARK_LIGHT}
        outside = np.ones(level0.shape[:2], bool)
        outside[256:512, 256:512] = False
        np.testing.assert_array_equal(level0[outside], expected[outside])
        assert slide.corrupt_tiles >= 1
        # synthesised levels of the display pyramid go through the same marks
        assert slide.pyramid()[-1].compute().shape[2] == 3


@pytest.mark.parametrize("reader", ["tifffile", "openslide"])
def test_damaged_svs_tile_leaves_the_rest_readable(
    cmu_svs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """Both readers of an SVS: its tiles through tifffile, and OpenSlide (the fallback), which
    refuses every read after one error, so the backend reopens the file."""
    if reader == "openslide":
        monkeypatch.setattr(_svs, "DIRECT", {})
    damaged = corrupt_tile(cmu_svs, tmp_path / "damaged.svs", index=30)
    with tifffile.TiffFile(damaged) as tf:
        nx = -(-tf.pages[0].imagewidth // tf.pages[0].tilewidth)
    tx, ty = 30 % nx, 30 // nx
    with open_slide(damaged) as slide, open_slide(cmu_svs) as good:
        assert slide.backend_name == reader
        with pytest.raises(SlideError, match="cannot be (read|decoded)") as err:
            slide.read_region((tx * 240 + 10, ty * 240 + 10), 0, (50, 50))
        assert str(damaged) in str(err.value) and "Error" not in str(err.value)
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (200, 200)), good.read_region((0, 0), 0, (200, 200))
        )


@pytest.fixture(scope="module")
def cut_svs(tmp_path_factory: pytest.TempPathFactory, cmu_svs: Path) -> dict[str, Path]:
    """The CMU SVS cut at several lengths: inside its first page's directory (which this file
    keeps near its end), in the middle of its pages, and just short of its last tag's value."""
    folder = tmp_path_factory.mktemp("cut svs")
    data = cmu_svs.read_bytes()
    cuts = {"300kB": 300_000, "half": len(data) // 2, "pages": len(data) - 20_000}
    cuts["last tag"] = len(data) - 100
    out = {}
    for name, length in cuts.items():
        out[name] = folder / f"cut {name}.svs"
        out[name].write_bytes(data[:length])
    return out


@pytest.mark.parametrize("cut", ["300kB", "half", "pages", "last tag"])
def test_truncated_svs_is_one_line_on_the_terminal(cut_svs: dict[str, Path], cut: str) -> None:
    path = cut_svs[cut]
    result = run_wsi_ssl(["info", path, "--no-tissue"])
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no library's log line
    line = assert_one_line_error(result.stderr, str(path), "truncated or damaged")
    assert "Error" not in line.split(": error: ")[1]  # no exception names without --debug


def test_truncated_svs_with_debug_shows_the_libraries(cut_svs: dict[str, Path]) -> None:
    result = run_wsi_ssl(["info", cut_svs["300kB"], "--no-tissue", "--debug"])
    assert result.returncode != 0
    assert "tifffile" in result.stderr and "invalid offset" in result.stderr
    assert "Traceback" in result.stderr and "SlideError" in result.stderr


def test_slide_without_mpp(cli, small_slide, tiny_ckpt: Path, tmp_path: Path) -> None:
    path = nompp_copy(small_slide.slide, tmp_path / "no pixel size.tif")
    with open_slide(path) as slide:
        assert slide.mpp is None
        with pytest.raises(SlideError, match="no mpp"):
            slide.downsample_for_mpp(2.0)
    # the checkpoint works at 2 µm/px, which cannot be found on this slide
    args = ["predict", path, "--model", tiny_ckpt, "-o", tmp_path / "out", "--tile-size", "64"]
    args += ["--region", "0,0,256,256"]
    result = cli(*args)
    assert result.code == 2
    line = assert_one_line_error(result.err, str(path), "no pixel size in the file")
    assert "it looks like about" in line and "--slide-mpp" in line
    # giving the slide's pixel size is the way out
    result = cli(*args, "--slide-mpp", "0.5", "--json")
    assert result.code == 0, result.err
    # pretraining at a working mpp says the same; at the native resolution it needs none
    out = tmp_path / "ae.pt"
    tiny = ["--preset", "resnet34-ae", "--width", "8", "--patch-size", "32", "--batch-size", "2"]
    result = cli("pretrain", path, "-o", out, "--mpp", "2", "--steps", "1", *tiny)
    assert result.code == 2
    assert_one_line_error(result.err, str(path), "no pixel size in the file", "--slide-mpp")
    assert not out.exists()


def test_one_level_slide(tmp_path: Path, small_slide) -> None:
    with open_slide(small_slide.slide) as slide:
        rgb = slide.read_region((0, 0), 0, (1000, 700))
    path = tmp_path / "one level.tif"
    tifffile.imwrite(
        path, rgb, tile=(128, 128), photometric="rgb", resolution=(20000, 20000), resolutionunit=3
    )
    with open_slide(path) as slide:
        assert slide.level_count == 1 and slide.mpp == pytest.approx((0.5, 0.5))
        levels = slide.pyramid()
        assert [lv.shape[:2] for lv in levels] == [(700, 1000), (350, 500)]
        small = slide.read_scaled((0, 0), (250, 175), 4.0)
        box = rgb.reshape(175, 4, 250, 4, 3).mean(axis=(1, 3))
        assert np.abs(small.astype(float) - box).mean() < 6
        mask, ds = tissue_mask(slide)
        assert mask.any() and ds >= 1


@pytest.mark.slow
def test_huge_one_level_tiff_opens_lazily(tmp_path: Path) -> None:
    """30000 px a side, one level: opening and building the pyramid read no pixels, and even
    the deepest synthesised level reads in bands of bounded memory."""
    import tracemalloc
    import zlib

    side, t = 30000, 512
    colour = (230, 190, 215)
    tile = np.empty((t, t, 3), np.uint8)
    tile[:] = colour
    encoded = zlib.compress(tile.tobytes(), 1)
    n = (-(-side // t)) ** 2
    path = tmp_path / "huge.tif"
    # every tile is the same pre-compressed bytes: a 2.7 GB image in a 12 MB file, in a blink
    tifffile.imwrite(
        path,
        (encoded for _ in range(n)),
        shape=(side, side, 3),
        dtype=np.uint8,
        tile=(t, t),
        photometric="rgb",
        compression="zlib",
    )
    start = time.perf_counter()
    with open_slide(path) as slide:
        levels = slide.pyramid()
        opened = time.perf_counter() - start
        assert opened < 5, f"opening took {opened:.1f} s"
        assert slide.level_count == 1 and levels[0].shape == (side, side, 3)
        assert max(levels[-1].shape[:2]) < 512
        corner = slide.read_region((side - 100, side - 100), 0, (200, 200))
        assert (corner[:100, :100] == colour).all() and (corner[100:, :] == 255).all()
        tracemalloc.start()
        try:
            chunk = levels[-2][:64, :64].compute()  # 64 * 32 = 2048 level-0 px a side
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (chunk == colour).all()
        footprint = (256 * 32) ** 2 * 3  # a whole chunk of that level, read at once
        assert peak < footprint / 2, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("name", ["scan 01 (copy).tif", "préparation ü 標本.tif"])
def test_unusual_path_names(cli, small_slide, tiny_ckpt: Path, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "dossier été" / "with space"
    folder.mkdir(parents=True)
    path = folder / name
    shutil.copy(small_slide.slide, path)
    with open_slide(path) as slide:
        assert slide.read_region((0, 0), 0, (64, 64)).shape == (64, 64, 3)
    result = cli("info", path, "--no-tissue", "--json")
    assert result.code == 0, result.err
    out = folder / "résultats ü"
    region = "0,0,512,512"
    args = ["--model", tiny_ckpt, "-o", out, "--tile-size", "64", "--region", region, "--json"]
    result = cli("predict", path, *args)
    assert result.code == 0, result.err
    import json

    store = Path(json.loads(result.out.strip().splitlines()[-1])["slides"][0]["store"])
    assert store.is_dir() and store.parent == out


def test_unusual_svs_path(cmu_svs: Path, tmp_path: Path) -> None:
    path = tmp_path / "Präparat 7 – ü.svs"
    shutil.copy(cmu_svs, path)
    with open_slide(path) as slide:
        assert slide.backend_name == "tifffile" and slide.vendor == "aperio"
        assert slide.read_region((0, 0), 0, (32, 32)).shape == (32, 32, 3)
