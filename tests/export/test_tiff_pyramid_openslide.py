"""The exported OME-TIFF is a pyramid for OpenSlide (main IFD chain) and for tifffile (OME SubIFDs)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.export import write_ome_tiff


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    """A 0/1 mask of odd size, so that the levels round up."""
    rng = np.random.default_rng(3)
    cells = (rng.random((40, 52)) > 0.5).astype(np.uint8)
    return np.ascontiguousarray(cells.repeat(50, 0).repeat(50, 1)[:1901, :2503])


@pytest.fixture(scope="module")
def exported(mask: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pyramid") / "mask.ome.tif"
    return write_ome_tiff(out, mask, 0.25, downsample=2.0, tile=256)


def test_openslide_sees_every_level_with_its_pixels_and_mpp(
    exported: Path, mask: np.ndarray
) -> None:
    with tifffile.TiffFile(exported) as tif:
        ome_levels = [lv.asarray() for lv in tif.series[0].levels]
    with openslide.OpenSlide(str(exported)) as slide:
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        assert slide.level_count == len(ome_levels) == 5
        dims = slide.level_dimensions
        assert dims[0] == (2503, 1901)
        for (w, h), (w2, h2) in zip(dims, dims[1:], strict=False):
            assert (w2, h2) == (math.ceil(w / 2), math.ceil(h / 2))
        assert slide.level_downsamples[1] == pytest.approx(2.0, rel=1e-3)
        # 0.25 µm/px slide, mask at 2x downsample: 0.5 µm per mask pixel
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == pytest.approx(0.5)
        level0 = np.asarray(slide.read_region((0, 0), 0, dims[0]))
        np.testing.assert_array_equal(level0[..., 0], mask)  # grey: R = G = B = the mask
        assert (level0[..., 3] == 255).all()
        for k in range(1, slide.level_count):
            region = np.asarray(slide.read_region((0, 0), k, dims[k]))[..., 0]
            np.testing.assert_array_equal(region, ome_levels[k])


def test_tifffile_reads_one_ome_image_with_its_physical_size(
    exported: Path, mask: np.ndarray
) -> None:
    with tifffile.TiffFile(exported) as tif:
        assert tif.is_ome and len(tif.series) == 1
        series = tif.series[0]
        assert [lv.shape for lv in series.levels] == [
            (1901, 2503),
            (951, 1252),
            (476, 626),
            (238, 313),
            (119, 157),
        ]
        np.testing.assert_array_equal(series.levels[0].asarray(), mask)
        np.testing.assert_array_equal(series.levels[1].asarray(), mask[::2, ::2])
        ome = tif.ome_metadata
        assert 'PhysicalSizeX="0.5"' in ome and 'PhysicalSizeY="0.5"' in ome
        assert 'PhysicalSizeXUnit="µm"' in ome
        # the main chain and the SubIFDs list the same IFDs: nothing is stored twice
        first = tif.pages.first
        main_chain = [page.offset for page in tif.pages][1:]
        assert main_chain == list(first.subifds)
    with tifffile.TiffFile(exported) as tif:
        tif.pages.useframes = False
        # OpenSlide takes a further page as a level only with the reduced-image bit
        assert [tif.pages[i].subfiletype for i in range(len(tif.pages))] == [0, 1, 1, 1, 1]


def test_cli_export_of_a_mask_image_opens_in_openslide(mask: np.ndarray, tmp_path: Path) -> None:
    source = tmp_path / "mask.tif"
    tifffile.imwrite(source, mask)
    out = tmp_path / "out.ome.tif"
    assert main(["export", str(source), "-o", str(out), "--slide-mpp", "0.5", "--json"]) == 0
    with openslide.OpenSlide(str(out)) as slide:
        assert slide.level_count > 1
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5)
        top = slide.level_count - 1
        small = np.asarray(slide.read_region((0, 0), top, slide.level_dimensions[top]))
        step = 2**top
        np.testing.assert_array_equal(small[..., 0], mask[::step, ::step])


def test_the_plugin_reads_its_own_export_as_a_pyramid(exported: Path, mask: np.ndarray) -> None:
    from napari_wsi_ssl.slide import open_slide

    with open_slide(exported) as slide:
        assert slide.mpp == pytest.approx((0.5, 0.5))
        assert len(slide.level_dimensions) == 5
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (64, 64))[..., 0], mask[:64, :64]
        )
