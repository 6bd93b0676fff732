"""Data layer: reading images safely, label sources, splits, augmentation and loaders."""

from pixclass.data.augment import PRESETS, Augment
from pixclass.data.images import open_image
from pixclass.data.loaders import ImageData

__all__ = ["Augment", "ImageData", "PRESETS", "open_image"]
