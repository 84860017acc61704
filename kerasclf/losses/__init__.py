"""Losses by name (`loss.name`), each declaring the label format it takes.

A loss is registered as `factory(loss_cfg, labels) -> keras loss`, where `labels` is the
label format the input pipeline will feed ("sparse": class indices, "one_hot": class
probability vectors, needed by label smoothing and MixUp/CutMix). Registration meta:
  labels:          the formats the loss accepts, e.g. ("sparse", "one_hot")
  needs_embedding: the loss reads the model's `embedding` output (metric learning)
  task:            the task it serves ("multiclass")
"""

import keras

from kerasclf.config import Config, label_format
from kerasclf.registry import LOSSES

register_loss = LOSSES.register


def build_loss(cfg: Config) -> tuple[keras.losses.Loss, str]:
    """The configured loss object and the label format it expects."""
    labels = label_format(cfg)
    return LOSSES.get(cfg.loss.name).factory(cfg.loss, labels), labels
