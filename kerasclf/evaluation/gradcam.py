"""Grad-CAM (Selvaraju et al., 2017) on the misclassified gallery: where the model looked.

The class-activation map of the predicted class on the model's last convolutional feature
map (the last layer before the embedding whose output is (N, H, W, C) with H, W > 1):
feature maps weighted by the spatial mean of the score's gradient, ReLU, scaled to 0..1 per
image and resized to the image.

The one backend-specific step is the gradient of the score with respect to an intermediate
tensor: TensorFlow's GradientTape watches it inside the whole model; JAX differentiates the
part of the model after the feature map (`jax.grad` of its `stateless_call`), which needs that
part to depend on the image through the feature map only (true of every registered classifier:
pooling, embedding, head). Other backends, such a model, and models without a feature map (an
MLP, a ViT's token sequence) get no Grad-CAM gallery.
"""

import keras
import numpy as np
from matplotlib import colormaps

from kerasclf.evaluation.figures import WRONG, image_grid, to_display
from kerasclf.evaluation.metrics import misclassified_indices
from kerasclf.keras_private import called_output
from kerasclf.models.heads import EMBEDDING

SKIPPED_LAYERS = ("image", "preprocess", "resize")  # 4-D too, but before the network


def feature_map_layer(model):
    """Name of the last layer before `embedding` with a spatial output, or None."""

    found = None
    for layer in model.layers:
        if layer.name == EMBEDDING:
            break
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if (shape is not None and len(shape) == 4 and (shape[1] or 0) > 1 and (shape[2] or 0) > 1
                and layer.name not in SKIPPED_LAYERS and not layer.name.startswith("aug_")):
            found = layer.name
    return found


def _image_input(model):
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with one array


def _tensorflow_cam_gradients(model, layer_name):
    """(images, classes) -> (feature maps, d score / d feature map), both numpy."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    grad_model = keras.Model(_image_input(model), [called_output(model.get_layer(layer_name)), model.outputs[0]])

    def gradients(images, classes):
        x, target = tf.convert_to_tensor(images), tf.convert_to_tensor(classes, tf.int32)
        with tf.GradientTape() as tape:
            fmap, probs = grad_model(x, training=False)
            score = tf.gather(probs, target, axis=1, batch_dims=1)
        return fmap.numpy(), tape.gradient(score, fmap).numpy()

    return gradients


def _jax_cam_gradients(model, layer_name):
    import jax  # lazy: JAX is optional

    tensor = called_output(model.get_layer(layer_name))
    try:  # the model from the feature map on; fails when the image reaches the head another way
        upper = keras.Model(tensor, model.outputs[0])
    except ValueError:
        return None
    lower = keras.Model(_image_input(model), tensor)
    trainable = [v.value for v in upper.trainable_variables]
    frozen = [v.value for v in upper.non_trainable_variables]

    def summed_score(fmap, classes):  # images are independent in inference mode: a sum's gradient is each one's
        probs, _ = upper.stateless_call(trainable, frozen, fmap, training=False)
        return keras.ops.sum(keras.ops.take_along_axis(probs, classes[:, None], axis=1))

    grad = jax.jit(jax.grad(summed_score))

    def gradients(images, classes):
        fmap = lower(images, training=False)
        return np.asarray(fmap), np.asarray(grad(fmap, keras.ops.convert_to_tensor(classes, "int32")))

    return gradients


CAM_GRADIENTS = {"tensorflow": _tensorflow_cam_gradients, "jax": _jax_cam_gradients}


def grad_cam(model, images, classes, layer_name=None, batch_size=64):
    """(N, H, W) maps in [0, 1] for `classes` (one per image), or None when not available."""

    builder = CAM_GRADIENTS.get(keras.backend.backend())
    layer_name = layer_name or feature_map_layer(model)
    if builder is None or layer_name is None:
        return None
    gradients = builder(model, layer_name)
    if gradients is None:
        return None
    images = np.asarray(images)
    height, width = images.shape[1:3]
    maps = []
    for start in range(0, len(images), batch_size):
        fmap, grads = gradients(images[start:start + batch_size], np.asarray(classes[start:start + batch_size]))
        fmap, grads = np.asarray(fmap, np.float32), np.asarray(grads, np.float32)  # mixed precision: bfloat16
        weights = grads.mean(axis=(1, 2))
        cam = np.maximum(np.einsum("nhwc,nc->nhw", fmap, weights), 0.0)
        cam = keras.ops.convert_to_numpy(keras.ops.image.resize(cam[..., None], (height, width),
                                                                 interpolation="bilinear"))[..., 0]
        top = cam.max(axis=(1, 2), keepdims=True)
        maps.append(np.divide(cam, top, out=np.zeros_like(cam), where=top > 0))
    return np.concatenate(maps) if maps else None


def plot_gradcam_gallery(model, images, y_true, y_prob, class_names, path, max_images=24):
    """The most confident mistakes with the predicted class's Grad-CAM over them; None when
    there is no mistake or no map (see the module docstring)."""

    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    y_pred = y_prob.argmax(axis=1)
    shown = misclassified_indices(y_true, y_pred, y_prob)[:max_images]
    if not len(shown):
        return None
    chosen = np.stack([np.asarray(images[int(i)]) for i in shown])
    cams = grad_cam(model, chosen, y_pred[shown])
    if cams is None:
        return None
    heat = colormaps["jet"](cams)[..., :3] * 255
    overlays = []
    for image, h in zip(chosen, heat):
        base = to_display(image).astype(np.float64)
        base = np.repeat(base[..., None], 3, axis=-1) if base.ndim == 2 else base
        overlays.append((0.55 * base + 0.45 * h).astype(np.uint8))
    names = [str(c) for c in class_names]
    titles = [f"{names[y_pred[i]]} ({names[y_true[i]]})" for i in shown]
    return image_grid(overlays, titles, [WRONG] * len(shown), path,
                       f"Grad-CAM of the predicted class on the misclassified images ({feature_map_layer(model)})")
