"""Placeholder: replaced by the XLA-safe augmentation layers."""


def build_augmentation(cfg, image_size):
    return []
