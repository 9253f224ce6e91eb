"""Writers of masks, probability maps and nuclei labels (no torch), and the one entry point
(:func:`export_arrays`, :func:`export_store`) that the command line and napari call.

Every writer is atomic: the file or store is written beside the target, then renamed.
"""

from ..inference.nuclei import haematoxylin
from .api import (
    DEFAULT_THRESHOLD,
    FORMATS,
    ExportResult,
    ExportSettings,
    Placement,
    as_levels,
    export_arrays,
    export_store,
    format_of,
    measure_nuclei,
    suffix_of,
)
from .geojson import mask_features, read_geojson_mask, write_geojson
from .nuclei_csv import write_nuclei_csv
from .ome_tiff import write_ome_tiff
from .ome_zarr import write_ome_zarr
from .preview import write_png

__all__ = [
    "DEFAULT_THRESHOLD",
    "FORMATS",
    "ExportResult",
    "ExportSettings",
    "Placement",
    "as_levels",
    "export_arrays",
    "export_store",
    "format_of",
    "haematoxylin",
    "mask_features",
    "measure_nuclei",
    "read_geojson_mask",
    "suffix_of",
    "write_geojson",
    "write_nuclei_csv",
    "write_ome_tiff",
    "write_ome_zarr",
    "write_png",
]
