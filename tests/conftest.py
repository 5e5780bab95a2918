"""Shared fixtures: tiny, seeded, self-made image data (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.models import EmbedderConfig, build_embedder, save_checkpoint

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TINY_EMBEDDER = EmbedderConfig(input_size=28, in_channels=3, embedding_dim=16,
                               backbone_options={"widths": [8, 16]})  # tiny: fast to embed
# `lookalike train` options for one short epoch on tiny_folder
TINY_TRAIN = ("--epochs", "1", "-P", "3", "-K", "4", "--batches-per-epoch", "3",
              "--embedding-dim", "8", "--val-fraction", "0.25", "--threads", "1", "--quiet")


def save_tiny_checkpoint(path: Path, seed: int) -> Path:
    """An untrained 16-d SmallCNN checkpoint; another seed gives another fingerprint."""
    model = build_embedder(TINY_EMBEDDER, pretrained=False, seed=seed)
    return save_checkpoint(path, model, class_names=["class_0", "class_1", "class_2"])


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny checkpoint (for indexing and search tests)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "a", seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model: same architecture, another fingerprint."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "b", seed=1)


def write_class_folder(root: Path, classes: int = 3, per_class: int = 16, size: int = 28,
                       seed: int = 0) -> Path:
    """A folder of class sub-folders whose images are told apart by a bright bar's position.

    Class c draws a horizontal bar at a class-specific height on noise, so a small CNN can
    learn the classes in a few batches while every image still differs.
    """
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
            row = 3 + c * (size - 8) // max(classes - 1, 1)
            pixels[row:row + 4, 2:-2] = 230
            Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return root


def images_of(folder: Path) -> list[str]:
    """The .png files under ``folder``, sorted, as strings."""
    return sorted(str(p) for p in folder.rglob("*.png"))


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 16 RGB 28-px images (session-scoped: read-only for tests)."""
    return write_class_folder(tmp_path_factory.mktemp("tiny") / "images")


def fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command that must fail: exit status 1, one line on stderr, no traceback."""
    from lookalike.cli import main

    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: error:"), err
    return lines[0]


@pytest.fixture
def fashion_mnist_available() -> None:
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
