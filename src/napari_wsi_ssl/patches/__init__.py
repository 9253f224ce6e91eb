"""Patch coordinates (grid, random, class-balanced), lazy Datasets and augmentation."""

from .augment import NO_AUGMENT, Augment, color_jitter, dihedral, sample_generator
from .coords import balanced_coords, grid_coords, random_coords
from .datasets import (
    IMAGE_SUFFIXES,
    SLIDE_SUFFIXES,
    ImageFiles,
    ImageFolderPatches,
    LabelArray,
    SlidePatches,
    find_images,
    to_tensor,
    to_uint8,
)
from .nuclei import NucleiFolder, instances_to_classes, resample_pair

__all__ = [
    "IMAGE_SUFFIXES",
    "NO_AUGMENT",
    "SLIDE_SUFFIXES",
    "Augment",
    "ImageFiles",
    "ImageFolderPatches",
    "LabelArray",
    "NucleiFolder",
    "SlidePatches",
    "balanced_coords",
    "color_jitter",
    "dihedral",
    "find_images",
    "grid_coords",
    "instances_to_classes",
    "random_coords",
    "resample_pair",
    "sample_generator",
    "to_tensor",
    "to_uint8",
]
