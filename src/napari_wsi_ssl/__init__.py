"""Self-supervised deep learning for whole-slide histopathology images, in napari and on the command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-wsi-ssl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
