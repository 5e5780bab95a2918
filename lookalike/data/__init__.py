"""lookalike.data: labelled image collections from IDX files, benchmark folders (CUB-200-2011,
Cars196, Stanford Online Products), image folders and CSV manifests, safe decoding, tensor
conversion, batched augmentations, datasets and seeded splits."""

from __future__ import annotations

from lookalike.data.benchmarks import find_benchmark, open_benchmark
from lookalike.data.cars196 import load_cars196
from lookalike.data.cub import load_cub200
from lookalike.data.dataset import ImageDataset
from lookalike.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from lookalike.data.folder import IMAGE_EXTENSIONS, UNLABELLED, scan_image_folder, scan_images
from lookalike.data.idx import read_idx, read_idx_pair
from lookalike.data.images import DEFAULT_MAX_PIXELS, decode_image
from lookalike.data.manifest import read_manifest
from lookalike.data.online_products import load_online_products
from lookalike.data.records import (
    ArrayCollection,
    FileCollection,
    ImageCollection,
    check_trainable,
)
from lookalike.data.sources import open_collection, open_seen_unseen
from lookalike.data.splits import (
    UNSEEN_CLASS_SPLITS,
    split_by_class,
    split_by_class_halves,
    split_by_item,
    split_seen_unseen,
)
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
    "UNSEEN_CLASS_SPLITS",
    "ArrayCollection",
    "Augment",
    "FileCollection",
    "ImageCollection",
    "ImageDataset",
    "check_trainable",
    "decode_image",
    "find_benchmark",
    "load_cars196",
    "load_cub200",
    "load_fashion_mnist",
    "load_online_products",
    "open_benchmark",
    "open_collection",
    "open_seen_unseen",
    "random_crop_with_padding",
    "random_horizontal_flip",
    "read_idx",
    "read_idx_pair",
    "read_manifest",
    "scan_image_folder",
    "scan_images",
    "split_by_class",
    "split_by_class_halves",
    "split_by_item",
    "split_seen_unseen",
    "to_tensor",
]
