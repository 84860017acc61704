"""airbench94's techniques in Keras: a small fast CIFAR-10 net (Jordan 2024, arXiv 2404.00498).

A re-implementation from the paper's description, not a port of its code. What transfers:
- a 2x2 "patch-whitening" first conv (`PatchWhitening`): its kernel holds the eigenvectors
  of the training images' 2x2-patch covariance, scaled by 1/sqrt(eigenvalue + eps), each
  filter also negated (so the GELU after it passes both signs); the kernel stays frozen,
  the bias trains;
- three blocks conv-pool-BN-GELU, conv-BN-GELU of widths 64/256/256, convs without bias,
  the first `in_channels` filters of each conv initialised as identity ("partial identity",
  `PartialIdentity`);
- BatchNorm with a low momentum (0.6: moving statistics follow the short run), no
  learned scale, and its bias trained with a 64x larger step (`ScaledBias`: b = 8 * b_raw);
- global max pooling, a bias-free dense layer, logits multiplied by 1/9 before the
  float32 softmax;
- optional test-time augmentation (`FlipTTA`): average the logits of the image and its
  mirror (level 1), plus 1-pixel translations of both (level 2, airbench94's default).
The training recipe (label smoothing 0.2, Nesterov SGD with a one-cycle schedule, batch
1024, flip + 2-pixel translation) is configs/cifar10/fast.yaml.
Elsewhere, each behind its own key (issue #13 measured them one at a time): Lookahead
(`optim.lookahead_every`, kerasclf.training.lookahead), the alternating flip
(`augment.flip_mode: alternate`, kerasclf.layers.alternating_flip), the whitening bias
trained only for the first epochs (`whiten_bias_epochs` here) and airbench's BatchNorm
epsilon (`bn_epsilon`: 1e-12 there, 1e-5 by default here).

The whitening layer and its kernel are kerasclf.models.whitening. The builder sees symbolic
tensors only, so the kernel is set from training images after the model is built: the
model is registered with `needs_data=True`, and the training run calls
kerasclf.models.data_init.init_from_data(model, train_x) once after `build_model`, unless
`model.weights` named a weights file (build_model loaded it, whitening kernel included).
"""

import keras
import numpy as np
from keras import layers, ops

from kerasclf.models.registry import register_model
from kerasclf.models.whitening import PatchWhitening

# ---------------------------------------------------------------------------------------
# Layers and initializer
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerasclf")
class ScaledBias(layers.Layer):
    """x + multiplier * b, b per channel: SGD on b moves the bias multiplier**2 times faster.

    Keras optimizers have one learning rate; this reparametrisation gives BatchNorm biases
    airbench's larger step (multiplier 8 -> 64x) while weight decay still shrinks the
    effective bias at the same relative rate as the other weights.
    """

    normalization_part = True  # kerasclf.models.freeze: counted with the BatchNorm it completes

    def __init__(self, multiplier=8.0, **kwargs):
        super().__init__(**kwargs)
        self.multiplier = float(multiplier)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(int(input_shape[-1]),), initializer="zeros", name="bias")

    def call(self, x):
        return x + ops.cast(self.multiplier, x.dtype) * ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "multiplier": self.multiplier}


@keras.saving.register_keras_serializable(package="kerasclf")
class PartialIdentity(keras.initializers.Initializer):
    """Conv kernel (kh, kw, in, out): filters i < min(in, out) are identity (a centre delta
    on input channel i), the others uniform with limit 1/sqrt(fan_in) (PyTorch's default)."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = (int(s) for s in shape)
        base = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed=self.seed)(shape, dtype)
        n = min(cin, cout)
        delta = np.zeros(shape, np.float32)
        delta[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
        is_identity = np.arange(cout) < n
        return ops.where(is_identity, ops.convert_to_tensor(delta, dtype=dtype), base)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasclf")
class FlipTTA(layers.Wrapper):
    """Test-time augmentation around a network that maps images to embeddings (or logits).

    Training: the network alone. Inference (training False or None): level 1 averages the
    outputs of the images and their mirror images; level 2 gives those weight 1/2 and the
    mirrored pairs of the images translated by one pixel (reflect padding) up-left and
    down-right 1/4 each. Costs 2 (level 1) or 6 (level 2) forward passes per prediction.
    """

    def __init__(self, layer, level=1, **kwargs):
        super().__init__(layer, **kwargs)
        if level not in (1, 2):
            raise ValueError(f"level must be 1 or 2, got {level!r}.")
        self.level = int(level)

    def call(self, x, training=None):
        if training:
            return self.layer(x, training=True)

        def mirrored(images):
            return 0.5 * (self.layer(images, training=False) + self.layer(ops.flip(images, axis=2), training=False))

        logits = mirrored(x)
        if self.level == 1:
            return logits
        height, width = int(x.shape[1]), int(x.shape[2])
        padded = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        shifted_in = padded[:, :height, :width]  # content moved one pixel down and right
        shifted_out = padded[:, 2 : height + 2, 2 : width + 2]  # one pixel up and left
        return 0.5 * logits + 0.25 * (mirrored(shifted_in) + mirrored(shifted_out))

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "level": self.level}


# ---------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------


def _bn_gelu(x, name, momentum, bias_scale, epsilon):
    x = layers.BatchNormalization(
        momentum=momentum, epsilon=epsilon, scale=False, center=bias_scale == 1, name=f"{name}_bn"
    )(x)
    if bias_scale != 1:
        x = ScaledBias(bias_scale, name=f"{name}_bias")(x)
    return layers.Activation("gelu", name=f"{name}_gelu")(x)


def _block(x, filters, name, momentum, bias_scale, epsilon):
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU."""
    conv = dict(kernel_size=3, padding="same", use_bias=False, kernel_initializer=PartialIdentity())
    x = layers.Conv2D(filters, name=f"{name}_conv1", **conv)(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = _bn_gelu(x, f"{name}_1", momentum, bias_scale, epsilon)
    x = layers.Conv2D(filters, name=f"{name}_conv2", **conv)(x)
    return _bn_gelu(x, f"{name}_2", momentum, bias_scale, epsilon)


def _embedding(x, widths, whitening, bn_momentum, bias_scale, logit_scale, bn_epsilon):
    """The network up to the head. The head is a bias-free dense layer, so scaling its input
    by `logit_scale` gives exactly airbench's scaled logits (and the same gradients), and
    averaging embeddings under TTA is averaging logits."""
    x = whitening(x)
    x = layers.Activation("gelu", name="whiten_gelu")(x)
    for i, width in enumerate(widths, start=1):
        x = _block(x, int(width), f"block{i}", bn_momentum, bias_scale, bn_epsilon)
    x = layers.GlobalMaxPooling2D(name="global_pool")(x)
    return layers.Rescaling(logit_scale, name="logit_scale")(x)


@register_model(
    "airbench",
    description="airbench94-style fast CIFAR-10 net: frozen 2x2 patch-whitening conv, "
    "conv-pool-BN-GELU blocks 64/256/256, logits x 1/9 (ref 94% in ~10 epochs on a GPU)",
    preprocessing="standardize",
    needs_data=True,
    head_bias=False,
    bn_momentum_reason="airbench94 (Jordan 2024) uses BatchNorm momentum 0.6 in Keras's convention "
    "(PyTorch 0.4): on its ~10-epoch schedule the moving statistics must follow the weights closely",
)
def airbench(
    x,
    widths=(64, 256, 256),
    whiten_eps=5e-4,
    whiten_from="train",
    bn_momentum=0.6,
    bn_epsilon=1e-5,
    bias_scale=8.0,
    logit_scale=1.0 / 9.0,
    tta=0,
    whiten_bias_epochs=None,
):
    """The airbench94 network on `x` (standardised images).

    whiten_from: where the whitening kernel comes from. "train": the training run calls
      `init_from_data` after building (registry meta needs_data); "none": keep the
      data-free identity basis (an ablation); an array of images (or a callable returning
      one) in the units of `x`, i.e. after preprocessing: set now (notebooks, tests).
    bias_scale: BatchNorm bias reparametrisation (`ScaledBias`); 1 keeps Keras's own beta.
    tta: 0 off, 1 mirror, 2 mirror + 1-pixel translations (`FlipTTA`), at inference only.
    whiten_bias_epochs: int >= 0 or None; the whitening bias trains for the first N epochs
      only (airbench94: 3), None: throughout.
    bn_epsilon: > 0; BatchNorm's epsilon (airbench94: 1e-12).
    """
    if float(bn_epsilon) <= 0:
        raise ValueError(f"bn_epsilon must be > 0, got {bn_epsilon}.")
    if isinstance(whiten_from, str) and whiten_from.lower() not in ("train", "none"):
        raise ValueError(f"whiten_from must be 'train', 'none' or an image array, got {whiten_from!r}.")
    from_array = not isinstance(whiten_from, str) and whiten_from is not None
    whitening = PatchWhitening(
        2, whiten_eps, data_init=isinstance(whiten_from, str) and whiten_from.lower() == "train",
        bias_epochs=whiten_bias_epochs, name="whiten",
    )
    args = (widths, whitening, bn_momentum, bias_scale, logit_scale, float(bn_epsilon))
    if tta:
        inner_in = keras.Input(shape=tuple(x.shape[1:]), name="airbench_input")
        net = keras.Model(inner_in, _embedding(inner_in, *args), name="airbench_net")
        embedding = FlipTTA(net, level=int(tta), name="tta")(x)
    else:
        embedding = _embedding(x, *args)
    if from_array:
        images = whiten_from() if callable(whiten_from) else whiten_from
        whitening.init_from_data(np.asarray(images))
    return embedding
