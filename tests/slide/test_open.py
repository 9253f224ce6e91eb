"""open_slide on the real CMU SVS, the synthetic pyramid and OME formats, against OpenSlide itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from napari_wsi_ssl.errors import SlideError
from napari_wsi_ssl.slide import open_slide


def test_cmu_svs_facts(cmu_svs: Path) -> None:
    with open_slide(cmu_svs) as slide:
        assert slide.vendor == "aperio"
        assert slide.dimensions == (2220, 2967)
        assert slide.level_count == 1
        assert slide.mpp == pytest.approx((0.499, 0.499))
        assert slide.objective_power == 20.0
        assert slide.tile_size == (240, 240)
        assert slide.properties["openslide.vendor"] == "aperio"


def test_cmu_pixels_equal_openslide(cmu_svs: Path) -> None:
    osr = openslide.OpenSlide(str(cmu_svs))
    with open_slide(cmu_svs) as slide:
        for loc, size in [
            ((0, 0), (240, 240)),
            ((117, 1303), (517, 301)),
            ((2000, 2800), (220, 167)),
        ]:
            ours = slide.read_region(loc, 0, size)
            theirs = np.asarray(osr.read_region(loc, 0, size))[..., :3]
            assert ours.shape == (size[1], size[0], 3) and ours.dtype == np.uint8
            np.testing.assert_array_equal(ours, theirs)
        level0 = slide.pyramid()[0]
        np.testing.assert_array_equal(
            level0[1000:1240, 480:720].compute(),
            np.asarray(osr.read_region((480, 1000), 0, (240, 240)))[..., :3],
        )


def test_cmu_pyramid_is_synthesised_and_tile_aligned(cmu_svs: Path) -> None:
    with open_slide(cmu_svs) as slide:
        levels = slide.pyramid()
        assert [lv.shape for lv in levels] == [
            (2967, 2220, 3),
            (1484, 1110, 3),
            (742, 555, 3),
            (371, 278, 3),
        ]
        assert levels[0].chunksize == (480, 480, 3)  # 2 x 2 of the SVS's own 240 px tiles
        assert all(lv.dtype == np.uint8 for lv in levels)
        assert slide.pyramid_downsamples == (1.0, 2.0, 4.0, 8.0)
        # a synthesised level equals the 2x2 mean of the level above
        top = levels[0][:480, :480].compute().astype(np.uint16)
        mean = (
            (top[0::2, 0::2] + top[1::2, 0::2] + top[0::2, 1::2] + top[1::2, 1::2] + 2) >> 2
        ).astype(np.uint8)
        np.testing.assert_array_equal(levels[1][:240, :240].compute(), mean)
        thumb = levels[-1].compute()
        assert thumb.shape == (371, 278, 3) and 100 < thumb.mean() < 250


def test_out_of_bounds_is_white(cmu_svs: Path) -> None:
    with open_slide(cmu_svs) as slide:
        region = slide.read_region((2100, 2900), 0, (300, 200))
        assert region.shape == (200, 300, 3)
        assert (region[100:, :] == 255).all() and (region[:, 150:] == 255).all()
        assert (slide.read_region((-500, -500), 0, (100, 100)) == 255).all()


def test_read_scaled_and_downsample_for_mpp(cmu_svs: Path) -> None:
    with open_slide(cmu_svs) as slide:
        ds = slide.downsample_for_mpp(1.996)
        assert ds == pytest.approx(4.0)
        small = slide.read_scaled((0, 0), (100, 80), ds)
        assert small.shape == (80, 100, 3)
        full = slide.read_region((0, 0), 0, (400, 320)).astype(np.float32)
        box = full.reshape(80, 4, 100, 4, 3).mean(axis=(1, 3))
        assert np.abs(small.astype(np.float32) - box).mean() < 6
    with open_slide(cmu_svs, mpp=0.25) as slide:
        assert slide.mpp == (0.25, 0.25)


def test_synthetic_opens_with_tifffile_equal_to_openslide(synthetic) -> None:
    osr = openslide.OpenSlide(str(synthetic.slide))
    assert osr.detect_format(str(synthetic.slide)) == "generic-tiff"
    with open_slide(synthetic.slide) as slide:
        assert slide.backend_name == "tifffile"
        assert slide.level_count == osr.level_count == 3
        assert slide.level_dimensions == osr.level_dimensions
        assert slide.mpp == pytest.approx((0.5, 0.5))
        assert slide.tile_size == (256, 256)
        for level in range(slide.level_count):
            ours = slide.read_region((700, 900), level, (300, 200))
            np.testing.assert_array_equal(
                ours, np.asarray(osr.read_region((700, 900), level, (300, 200)))[..., :3]
            )
        levels = slide.pyramid()
        # chunks are whole file tiles: 2 x 2 tiles of 256 px
        assert [lv.chunksize for lv in levels[:3]] == [(512, 512, 3)] * 3
        assert levels[-1].shape[0] < 512


def test_ome_tiff_and_ome_zarr(tmp_path: Path, synthetic) -> None:
    import tifffile
    import zarr

    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((0, 0), 1, (1024, 1024))
    ome = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(ome) as tw:
        tw.write(
            rgb,
            tile=(256, 256),
            photometric="rgb",
            subifds=1,
            metadata={"PhysicalSizeX": 1.0, "PhysicalSizeY": 1.0},
        )
        tw.write(rgb[::2, ::2], tile=(256, 256), photometric="rgb", subfiletype=1)
    with open_slide(ome) as slide:
        assert slide.vendor == "ome-tiff"
        assert slide.level_dimensions == ((1024, 1024), (512, 512))
        assert slide.mpp == pytest.approx((1.0, 1.0))
        np.testing.assert_array_equal(
            slide.read_region((256, 256), 0, (100, 100)), rgb[256:356, 256:356]
        )
        np.testing.assert_array_equal(
            slide.read_region((256, 256), 1, (50, 50)), rgb[::2, ::2][128:178, 128:178]
        )

    store = tmp_path / "slide.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_dataset("0", data=np.moveaxis(rgb, -1, 0), chunks=(3, 256, 256))
    group.create_dataset("1", data=np.moveaxis(rgb[::2, ::2], -1, 0), chunks=(3, 256, 256))
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1, 1.0, 1.0]}],
                },
                {
                    "path": "1",
                    "coordinateTransformations": [{"type": "scale", "scale": [1, 2.0, 2.0]}],
                },
            ],
        }
    ]
    with open_slide(store) as slide:
        assert slide.vendor == "ome-zarr"
        assert slide.mpp == (1.0, 1.0)
        assert slide.level_dimensions == ((1024, 1024), (512, 512))
        np.testing.assert_array_equal(slide.read_region((10, 20), 0, (30, 40)), rgb[20:60, 10:40])
        assert slide.pyramid()[0].chunksize == (256, 256, 3)


@pytest.mark.parametrize("kind", ["empty", "truncated", "png", "text", "notzarr"])
def test_bad_files_raise_slide_error_naming_the_file(bad_files: dict[str, Path], kind: str) -> None:
    path = bad_files[kind]
    with pytest.raises(SlideError) as info, open_slide(path) as slide:
        slide.read_region((0, 0), 0, slide.dimensions)  # a truncated file may only fail here
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_mpp(tmp_path: Path, synthetic) -> None:
    import tifffile

    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((0, 0), 2, (512, 512))
    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb")
    with open_slide(path) as slide:
        assert slide.mpp is None
        with pytest.raises(SlideError, match="nompp.tif"):
            slide.downsample_for_mpp(1.0)


def test_tiff_reads_leave_tifffile_pages_alone(synthetic) -> None:
    """Concurrent reads share one file handle, guarded by the backend's lock.

    tifffile loads big tag values (tile offsets) lazily with a seek of its own; done during a
    read, outside the lock, it handed another thread's read the wrong bytes. So everything a
    read needs is taken from the page when the slide opens, and reads never touch the page.
    """
    from concurrent.futures import ThreadPoolExecutor

    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"a read touched the tifffile page ({name})")

    with open_slide(synthetic.slide) as slide:
        backend = slide._backend
        assert backend.name == "tifffile"
        for reader in backend._readers:
            reader.page = Untouchable()
        with ThreadPoolExecutor(4) as pool:
            tiles = list(
                pool.map(
                    lambda k: slide.read_level(k % slide.level_count, 37 * k, 11 * k, 300, 200),
                    range(16),
                )
            )
    assert all(t.shape == (200, 300, 3) for t in tiles)
