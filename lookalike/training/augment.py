"""The run's augmentation, from its config: ``--augment`` and the knobs of each preset."""

from __future__ import annotations

from lookalike.data.augment import Augmentation, AugmentSettings, create_augmentation
from lookalike.models import pretrained_normalization
from lookalike.training.config import TrainConfig


def augment_name(config: TrainConfig) -> str:
    """``--augment``, with ``auto`` resolved: ``photo`` for a backbone that has pretrained
    ImageNet weights (the EfficientNet-Lite family: photos and renderings), ``digits`` for
    the others (small-cnn, trained from scratch on small centred images such as
    Fashion-MNIST, whose runs this keeps exactly as they were)."""
    if config.data.augment != "auto":
        return config.data.augment
    return "photo" if pretrained_normalization(config.model.backbone) is not None else "digits"


def build_augment(config: TrainConfig) -> Augmentation:
    """The callable ``(images (B, C, H, W), generator) -> images`` the fit loop applies."""
    data = config.data
    settings = AugmentSettings(crop_padding=data.crop_padding, flip=data.flip,
                               crop_scale=data.crop_scale, color_jitter=data.color_jitter)
    return create_augmentation(augment_name(config), settings)
