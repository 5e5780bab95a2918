"""The Embedder (normalise -> backbone -> head) and ``embed``, which runs it over a dataset.

Everything that turns [0, 1] pixels into model input lives inside the module (channel
conversion, resizing, mean/std), so a checkpoint embeds query images exactly as it
embedded its training images, whoever calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lookalike.errors import ConfigError, DataError
from lookalike.models.config import EmbedderConfig
from lookalike.models.factory import create_backbone
from lookalike.models.head import EmbeddingHead
from lookalike.models.split import BackboneSplit, split_backbone

# ITU-R 601-2 luma, the weights Pillow's convert("L") uses, so both paths agree.
_LUMA = (0.299, 0.587, 0.114)


class BatchDataset(Protocol):
    """What ``embed`` needs from a dataset (``lookalike.data``'s ImageDataset has it)."""

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class Embedder(nn.Module):
    """Images (B, C, H, W) in [0, 1] -> embeddings (B, D).

    Args:
        config: the architecture; kept as ``self.config`` and saved with checkpoints.
        backbone: a module honouring the backbone contract (``feature_dim``, ``in_channels``).
        head: the EmbeddingHead on top of it.
    """

    mean: torch.Tensor  # (1, C, 1, 1) buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, config: EmbedderConfig, backbone: nn.Module, head: EmbeddingHead) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = head
        self.model_channels = int(getattr(backbone, "in_channels", None) or config.in_channels)
        if not _convertible(config.in_channels, self.model_channels):
            raise ConfigError(f"cannot feed {config.in_channels}-channel data to backbone "
                              f"{config.backbone!r}, which takes {self.model_channels} channels")
        if len(config.mean) not in (1, self.model_channels):
            raise ConfigError(f"mean/std need 1 or {self.model_channels} values for backbone "
                              f"{config.backbone!r}, got {len(config.mean)}")
        # Not persistent: the config is the one source of truth for the normalisation.
        self.register_buffer("mean", torch.tensor(config.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, -1, 1, 1), persistent=False)
        self._backbone_frozen = False
        self._train_blocks: int | None = None
        # the frozen prefix of --train-blocks; a tuple, so it is no registered submodule
        # (its parameters are the backbone's own, and the state dict stays as it is)
        self._frozen_parts: tuple[nn.Module, ...] = ()

    @property
    def backbone_frozen(self) -> bool:
        return self._backbone_frozen

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Train only the head: no gradients for the backbone, and its batch-norm statistics
        stay as they are (the backbone stays in eval mode) until unfrozen. Unfreezing keeps
        the prefix that :meth:`set_train_blocks` froze."""
        self._backbone_frozen = frozen
        self._apply_freezing()

    @property
    def train_blocks(self) -> int | None:
        """How many last backbone blocks train (None: the whole backbone)."""
        return self._train_blocks

    def set_train_blocks(self, blocks: int | None) -> None:
        """Train only the last ``blocks`` blocks of the backbone (and what follows them:
        EfficientNet's head conv, the pooling, the embedding head); the part before them gets
        no gradients and stays in eval mode, so its batch-norm statistics do not move, as
        under :meth:`freeze_backbone`. 0 freezes the whole backbone; None trains all of it.

        Raises:
            ConfigError: the backbone has fewer blocks, or blocks it cannot name (models/split.py).
        """
        prefix = None if blocks is None else split_backbone(self.backbone, blocks).prefix
        self._train_blocks = blocks
        self._frozen_parts = () if prefix is None else (prefix,)
        self._apply_freezing()

    def _apply_freezing(self) -> None:
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(not self._backbone_frozen)
        for part in self._frozen_parts:
            for parameter in part.parameters():
                parameter.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> Embedder:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        for part in self._frozen_parts:
            part.eval()
        return self

    def split_backbone(self, blocks: int) -> BackboneSplit:
        """The backbone as (prefix, tail) with its last ``blocks`` blocks in the tail, sharing
        its parameters: ``tail(prefix(x)) == backbone(x)`` (models/split.py)."""
        return split_backbone(self.backbone, blocks)

    def split(self, blocks: int) -> BackboneSplit:
        """The whole model as (prefix: [0, 1] images -> the features before the backbone's
        last ``blocks`` blocks, tail: those features -> embeddings), sharing this model's
        parameters: ``tail(prefix(images)) == self(images)`` for one view (in training mode,
        or without ``mirror_average``, whose eval-mode mean of two views is ``forward``'s).
        The feature cache runs the prefix once and trains the tail (training/feature_cache.py)."""
        parts = self.split_backbone(blocks)
        c = self.config
        inputs = (f"{c.input_size}px, {self.model_channels} channels, mean {tuple(c.mean)}, "
                  f"std {tuple(c.std)}")
        return BackboneSplit(_Preprocessed(self.preprocess, parts.prefix, inputs),
                             nn.Sequential(parts.tail, self.head))

    @property
    def embedding_dim(self) -> int:
        """Size D of the embeddings."""
        return self.config.embedding_dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, C, H, W) -> normalised backbone input (B, C', S, S)."""
        if images.dim() != 4:
            shape = tuple(images.shape)
            raise DataError(f"the embedder takes (B, C, H, W) images, got shape {shape}")
        x = images.to(self.mean.dtype)
        channels = x.shape[1]
        if channels != self.model_channels:
            if not _convertible(channels, self.model_channels):
                raise DataError(f"cannot convert {channels}-channel images to the "
                                f"{self.model_channels} channels the backbone takes")
            if channels == 1:  # grayscale -> RGB: repeat the one channel
                x = x.expand(-1, self.model_channels, -1, -1)
            else:  # RGB -> grayscale: luma
                luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                x = (x * luma).sum(dim=1, keepdim=True)
        size = self.config.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [0, 1] -> (B, D) embeddings (unit-norm if configured)."""
        x = self.preprocess(images)
        if self.training or not self.config.mirror_average:
            embeddings: torch.Tensor = self.head(self.backbone(x))
            return embeddings
        # one pass over the images and their mirror images (reversed width), then the mean
        both = self.head(self.backbone(torch.cat([x, x.flip(-1)])))
        mean = both.unflatten(0, (2, -1)).mean(dim=0)  # no len(x): the export keeps B dynamic
        return F.normalize(mean, dim=1) if self.config.normalize else mean


class _Preprocessed(nn.Module):
    """``body(preprocess(images))``; ``preprocess`` is the Embedder's, held as a plain
    callable so the Embedder does not become a submodule of its own prefix."""

    def __init__(self, preprocess: Callable[[torch.Tensor], torch.Tensor], body: nn.Module,
                 inputs: str) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.body = body
        self.inputs = inputs  # what ``preprocess`` makes, for the repr (a cache key part)

    def extra_repr(self) -> str:
        return self.inputs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(self.preprocess(images))
        return out


def _convertible(data_channels: int, model_channels: int) -> bool:
    return data_channels == model_channels or {data_channels, model_channels} == {1, 3}


def build_embedder(config: EmbedderConfig, *, pretrained: bool = True,
                   backbone: nn.Module | None = None, seed: int = 0) -> Embedder:
    """Build an Embedder from its config, with a seeded init that leaves the global RNG alone.

    Args:
        config: the architecture.
        pretrained: load pretrained backbone weights where there are any; False when the
            weights will come from a checkpoint anyway.
        backbone: a user's module to use instead of the registered ``config.backbone``.
        seed: seed of the random initialisation (backbone and head).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        options: dict[str, Any] = {} if backbone is not None else dict(config.backbone_options)
        net = create_backbone(backbone if backbone is not None else config.backbone,
                              in_channels=config.in_channels, pretrained=pretrained,
                              input_size=config.input_size, **options)
        # the backbone contract guarantees an int ``feature_dim``; nn.Module's attribute
        # lookup is typed Tensor | Module, which hides it from the type checker
        feature_dim = cast(int, net.feature_dim)
        head = EmbeddingHead(int(feature_dim), config.embedding_dim,
                             normalize=config.normalize, batchnorm=config.head_batchnorm)
    return Embedder(config, net, head)


def embed(model: nn.Module, dataset: BatchDataset, batch_size: int = 256,
          device: str | torch.device = "cpu", progress: bool = True,
          on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Embed every item of ``dataset`` in order: (N, D) float32, row i for item i.

    Runs in eval mode under ``torch.inference_mode`` (batch-norm statistics frozen, no
    autograd graph) and restores the model's train/eval mode afterwards. The model is moved
    to ``device``.

    Args:
        model: an Embedder, or any module mapping (B, C, H, W) to (B, D).
        dataset: has ``len()`` and ``batch(indices) -> (images, labels, indices)``.
        batch_size: images per forward pass.
        device: where to run, e.g. "cpu" or "cuda".
        progress: show a tqdm bar.
        on_batch: called with the batch's size after each batch (an outer progress bar).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)
    chunks: list[np.ndarray] = []
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode(), tqdm(total=n, unit="img", desc="embed",
                                          disable=not progress) as bar:
            for start in range(0, n, batch_size):
                indices = torch.arange(start, min(start + batch_size, n))
                images = dataset.batch(indices)[0]
                out = model(images.to(device, non_blocking=True))  # (B, D)
                chunks.append(out.float().cpu().numpy())
                bar.update(len(indices))
                if on_batch is not None:
                    on_batch(len(indices))
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, int(getattr(model, "embedding_dim", 0))), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
