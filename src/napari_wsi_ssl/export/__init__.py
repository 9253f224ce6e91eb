"""Writers of masks, probability maps and nuclei labels (no torch).

Every writer is atomic: the file or store is written beside the target, then renamed.
"""

from .geojson import mask_features, read_geojson_mask, write_geojson
from .nuclei_csv import haematoxylin, write_nuclei_csv
from .ome_tiff import write_ome_tiff
from .ome_zarr import write_ome_zarr
from .preview import write_png

__all__ = [
    "haematoxylin",
    "mask_features",
    "read_geojson_mask",
    "write_geojson",
    "write_nuclei_csv",
    "write_ome_tiff",
    "write_ome_zarr",
    "write_png",
]
