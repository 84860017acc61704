"""Classification losses: cross-entropy and focal cross-entropy (Keras's own)."""

import keras

from kerasclf.losses import register_loss


@register_loss("crossentropy", description="categorical cross-entropy (label smoothing: loss.label_smoothing)",
               labels=("sparse", "one_hot"), task="multiclass")
def crossentropy(loss_cfg, labels):
    if labels == "sparse":
        return keras.losses.SparseCategoricalCrossentropy()
    return keras.losses.CategoricalCrossentropy(label_smoothing=loss_cfg.label_smoothing)


@register_loss("focal", description="focal cross-entropy (Lin et al. 2017), down-weights easy examples: loss.focal_gamma",
               labels=("one_hot",), task="multiclass")
def focal(loss_cfg, labels):
    return keras.losses.CategoricalFocalCrossentropy(
        gamma=loss_cfg.focal_gamma, alpha=1.0, label_smoothing=loss_cfg.label_smoothing
    )
