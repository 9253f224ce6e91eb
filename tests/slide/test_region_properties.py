"""Property test of read_region's arithmetic: exact shapes, white outside, equal to a padded read."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_wsi_ssl.slide import open_slide


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=st.integers(-300, 2300),
    y=st.integers(-300, 2300),
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    level=st.integers(0, 2),
)
def test_read_region_shapes_and_padding(
    synthetic, x: int, y: int, w: int, h: int, level: int
) -> None:
    with open_slide(synthetic.slide) as slide:
        region = slide.read_region((x, y), level, (w, h))
        assert region.shape == (h, w, 3) and region.dtype == np.uint8
        ds = int(slide.level_downsamples[level])
        lw, lh = slide.level_dimensions[level]
        lx, ly = x // ds, y // ds
        # the part outside the level is white; the part inside equals an in-bounds read
        full = np.full((h, w, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(lx, 0), max(ly, 0), min(lx + w, lw), min(ly + h, lh)
        if x1 > x0 and y1 > y0:
            full[y0 - ly : y1 - ly, x0 - lx : x1 - lx] = slide.read_region(
                (x0 * ds, y0 * ds), level, (x1 - x0, y1 - y0)
            )
        np.testing.assert_array_equal(region, full)
