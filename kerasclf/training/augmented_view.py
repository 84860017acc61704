"""augmented_batch.png: training images as the model sees them after its augmentation layers.

The model's own layers (preprocessing, then every `aug_*` layer in training mode) are applied
to a few training images drawn across the classes, and each is shown beside its original:
what the network is fed, not a re-implementation of the policy. Batch-level mixing (mixup,
cutmix) happens in the input pipeline and is not shown.
"""

import keras
import numpy as np

from kerasclf.evaluation.figures import RIGHT, image_grid
from kerasclf.evaluation.metrics import sample_across_classes
from kerasclf.layers.augment import LAYER_NAMES


def augmented_images(model, images):
    """(augmented images as float arrays, names of the augmentation layers); None when the
    model has no augmentation layer."""

    names = set(LAYER_NAMES.values())
    layers = [layer for layer in model.layers if layer.name in names]
    if not layers:
        return None, []
    x = model.get_layer("preprocess")(keras.ops.convert_to_tensor(np.asarray(images)))
    for layer in layers:
        x = layer(x, training=True)
    return keras.ops.convert_to_numpy(x), [layer.name for layer in layers]


def to_display(batch):
    """Each image stretched to 0..255 on its own (the preprocessing's scale varies by model)."""
    batch = np.asarray(batch, np.float64)
    low = batch.min(axis=(1, 2, 3), keepdims=True)
    high = batch.max(axis=(1, 2, 3), keepdims=True)
    return np.clip((batch - low) / np.maximum(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)


def write_augmented_batch(model, split, class_names, path, count=8, seed=0):
    """The figure (pairs: original, augmented) or None without augmentation layers."""
    index = sample_across_classes(split.y, count, seed)
    originals = np.stack([np.asarray(split.x[int(i)]) for i in index])
    augmented, names = augmented_images(model, originals)
    if augmented is None:
        return None
    shown = to_display(augmented)
    images, titles = [], []
    for k, i in enumerate(index):
        images += [originals[k], shown[k]]
        titles += [f"{class_names[split.y[i]]}\noriginal", f"{class_names[split.y[i]]}\naugmented"]
    title = f"Training images as the model sees them: {', '.join(n.removeprefix('aug_') for n in names)}"
    return image_grid(images, titles, ["black", RIGHT] * len(index), path, title)
