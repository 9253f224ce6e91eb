"""The Fine-tune dock's annotation buttons: a new annotation layer, a QuPath GeoJSON imported as
one; either becomes the layer the dock learns from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.layers import Labels
from napari.utils.notifications import show_error, show_info

from ...errors import WsiSslError
from ._annotations import add_geojson_layer, annotate_slide


class AnnotateMixin:
    """For a dock with ``_viewer``, ``_image`` (slide), ``_annotate_downsample``,
    ``_annotations`` and ``checked``."""

    _viewer: Any
    _image: Any
    _annotate_downsample: Any
    _annotations: Any
    checked: Any

    def _on_new_annotation(self, *_: Any) -> None:
        try:
            layer = annotate_slide(
                self._viewer, self._image.value, int(self._annotate_downsample.value) or None
            )
        except WsiSslError as exc:
            show_error(str(exc))
            return
        self._annotations.value = layer
        show_info(
            f"Paint tumour (label 1) and normal tissue (label 2) on {layer.name!r}, then Fine-tune."
        )

    def import_geojson(self, path: Path | None) -> Labels | None:
        """Lay a QuPath GeoJSON's annotations over the slide and choose them to learn from."""
        if path is None:  # the file dialog was cancelled
            return None
        ds = int(self._annotate_downsample.value) or None
        layer = self.checked(lambda: add_geojson_layer(self._viewer, self._image.value, path, ds))
        if layer is not None:
            self._annotations.value = layer
        return layer
