"""lookalike.data: labelled image collections from IDX files, image folders and CSV manifests,
safe decoding, tensor conversion, batched augmentations, datasets and seeded splits."""

from __future__ import annotations

from lookalike.data.dataset import ImageDataset
from lookalike.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from lookalike.data.folder import IMAGE_EXTENSIONS, UNLABELLED, scan_image_folder, scan_images
from lookalike.data.idx import read_idx, read_idx_pair
from lookalike.data.images import DEFAULT_MAX_PIXELS, decode_image
from lookalike.data.manifest import read_manifest
from lookalike.data.records import (
    ArrayCollection,
    FileCollection,
    ImageCollection,
    check_trainable,
)
from lookalike.data.sources import open_collection
from lookalike.data.splits import split_by_class, split_by_item
from lookalike.data.transforms import (
    Augment,
    random_crop_with_padding,
    random_horizontal_flip,
    to_tensor,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "UNLABELLED",
    "ArrayCollection",
    "Augment",
    "FileCollection",
    "ImageCollection",
    "ImageDataset",
    "check_trainable",
    "decode_image",
    "load_fashion_mnist",
    "open_collection",
    "random_crop_with_padding",
    "random_horizontal_flip",
    "read_idx",
    "read_idx_pair",
    "read_manifest",
    "scan_image_folder",
    "scan_images",
    "split_by_class",
    "split_by_item",
    "to_tensor",
]
