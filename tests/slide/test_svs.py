"""Aperio SVS read from its tiles by tifffile: OpenSlide's pixels and metadata, OpenSlide the fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from napari_wsi_ssl.benchmark.reading import write_aperio_svs
from napari_wsi_ssl.slide import _svs, detect_format, looks_like_slide, open_slide
from napari_wsi_ssl.slide._backends import rgba_to_rgb
from napari_wsi_ssl.slide._tiff import PageReader, TileCache


@pytest.fixture(scope="module")
def cmu_crop(cmu_svs: Path) -> np.ndarray:
    """1000 x 760 px of the CMU slide: not a whole number of 240 px tiles either way."""
    osr = openslide.OpenSlide(str(cmu_svs))
    return np.asarray(osr.read_region((600, 1100), 0, (1000, 760)))[..., :3].copy()


def _openslide_rgb(path: Path, location: tuple[int, int], level: int, size: tuple[int, int]):
    """OpenSlide's RGBA on white (transparent outside the slide), as the product shows it."""
    with openslide.OpenSlide(str(path)) as osr:
        return rgba_to_rgb(np.asarray(osr.read_region(location, level, size)))


def test_cmu_svs_pixels_from_tifffile_metadata_from_openslide(cmu_svs: Path) -> None:
    with open_slide(cmu_svs) as slide:
        assert slide.backend_name == "tifffile" and slide.vendor == "aperio"
        assert slide.properties["openslide.vendor"] == "aperio"
        assert slide.properties["aperio.AppMag"] == "20"
        assert slide.mpp == pytest.approx((0.499, 0.499)) and slide.objective_power == 20
        whole = slide.read_region((0, 0), 0, slide.dimensions)
    np.testing.assert_array_equal(whole, _openslide_rgb(cmu_svs, (0, 0), 0, (2220, 2967)))


@pytest.mark.parametrize("compression", ["jpeg2000", "jpeg"])
def test_written_svs_equals_openslide(tmp_path: Path, cmu_crop: np.ndarray, compression: str):
    path = write_aperio_svs(
        tmp_path / f"{compression}.svs", cmu_crop, 0.25, compression, objective_power=40
    )
    assert detect_format(path) == "aperio"
    with tifffile.TiffFile(path) as tf:  # JPEG tiles are written in YCbCr, as scanners do
        assert tf.pages[0].photometric == (6 if compression == "jpeg" else 2)
    with openslide.OpenSlide(str(path)) as osr:
        dims, downsamples = osr.level_dimensions, osr.level_downsamples
    with open_slide(path) as slide:
        assert slide.backend_name == "tifffile" and slide.vendor == "aperio"
        assert slide.level_dimensions == dims == ((1000, 760), (250, 190))
        assert slide.level_downsamples == pytest.approx(downsamples)
        assert slide.mpp == pytest.approx((0.25, 0.25)) and slide.objective_power == 40
        for location, level, size in [
            ((0, 0), 0, (1000, 760)),
            ((237, 481), 0, (300, 200)),
            ((900, 700), 0, (250, 250)),  # past the edge: white there, as OpenSlide
            ((400, 200), 1, (120, 90)),
        ]:
            np.testing.assert_array_equal(
                slide.read_region(location, level, size),
                _openslide_rgb(path, location, level, size),
                err_msg=f"{compression} {location} level {level}",
            )
        # through the pyramid, as napari reads it
        np.testing.assert_array_equal(
            slide.pyramid()[1][30:130, 40:240].compute(),
            _openslide_rgb(path, (160, 120), 1, (200, 100)),
        )
    # lossy, as scanners write it, yet close to the image (mean error of a few levels)
    with open_slide(path) as slide:
        assert np.abs(slide.read_region((0, 0), 0, (1000, 760)) - cmu_crop.astype(float)).mean() < 8


def test_ycbcr_jpeg2000_is_left_to_openslide(tmp_path: Path, cmu_crop: np.ndarray) -> None:
    """Aperio's YCbCr JPEG 2000 (33003) is converted by OpenSlide's own tables: OpenSlide reads it."""
    path = write_aperio_svs(
        tmp_path / "ycbcr.svs", cmu_crop[:480, :480], compression="jpeg2000-ycbcr"
    )
    with open_slide(path) as slide:
        assert slide.backend_name == "openslide" and slide.vendor == "aperio"
        np.testing.assert_array_equal(
            slide.read_region((10, 20), 0, (300, 200)),
            _openslide_rgb(path, (10, 20), 0, (300, 200)),
        )


def test_openslide_reads_what_tifffile_is_not_given(
    cmu_svs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_svs, "DIRECT", {})
    with open_slide(cmu_svs) as slide:
        assert slide.backend_name == "openslide"
        assert slide.pyramid()[0].chunksize == (240, 240, 3)  # OpenSlide reads tile by tile
        np.testing.assert_array_equal(
            slide.read_region((117, 1303), 0, (517, 301)),
            _openslide_rgb(cmu_svs, (117, 1303), 0, (517, 301)),
        )


def test_tiles_are_decoded_once_while_they_fit_the_cache(
    cmu_svs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    decode = PageReader._decode
    monkeypatch.setattr(
        PageReader, "_decode", lambda self, index: decoded.append(index) or decode(self, index)
    )
    with open_slide(cmu_svs) as slide:
        first = slide.read_region((100, 100), 0, (500, 500))
        n = len(decoded)
        assert n == 9  # 3 x 3 tiles of 240 px
        np.testing.assert_array_equal(slide.read_region((100, 100), 0, (500, 500)), first)
        assert len(decoded) == n
    cache = TileCache(max_bytes=3 * 240 * 240 * 3)
    for index in range(5):
        cache.put((0, index), np.zeros((240, 240, 3), np.uint8))
    assert cache.nbytes <= cache.max_bytes
    assert cache.get((0, 0)) is None and cache.get((0, 4)) is not None


def test_detect_format_and_slide_names(cmu_svs: Path, synthetic, tmp_path: Path) -> None:
    text = tmp_path / "notes.svs"
    text.write_text("patient 12, block B\n")
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    folder = tmp_path / "empty"
    folder.mkdir()
    assert detect_format(cmu_svs) == "aperio"
    assert detect_format(synthetic.slide) == "generic-tiff"
    assert detect_format(text) is None and detect_format(plain) is None
    assert detect_format(folder) is None and detect_format(tmp_path / "absent.svs") is None
    # named like a slide: the napari reader claims it, to say why it cannot be opened
    assert looks_like_slide(text) and looks_like_slide(cmu_svs)
    assert not looks_like_slide(plain) and not looks_like_slide(folder)
    assert not looks_like_slide(tmp_path / "absent.svs")


def test_properties_are_the_files_own(synthetic) -> None:
    """The pixel size is ``mpp``; properties never hold values a backend derived."""
    with open_slide(synthetic.slide) as slide:
        assert slide.mpp == pytest.approx((0.5, 0.5))
        assert not any(key.startswith("openslide.") for key in slide.properties)
        assert "tiff.XResolution" in slide.properties


def test_read_bench_measures_the_slide_and_a_jpeg2000_svs(cmu_svs: Path, tmp_path: Path) -> None:
    from napari_wsi_ssl.benchmark import BenchConfig
    from napari_wsi_ssl.benchmark.reading import bench_read

    figure = bench_read(cmu_svs, BenchConfig.quick_config(work_dir=tmp_path))
    j2k = figure.extra["jpeg2000_svs"]
    assert figure.value > 0 and figure.baseline > 0
    assert j2k["value"] > 0 and j2k["ratio"] == pytest.approx(j2k["value"] / j2k["baseline"])
    assert detect_format(tmp_path / "bench_jpeg2000.svs") == "aperio"
