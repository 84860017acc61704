"""Networks trained from scratch in the CIFAR-10 studies: MLP, plain/BN+Dropout CNN, ResNet-9.

BatchNorm keys of the BN models: `bn_momentum` (Keras convention: the weight of the old
moving statistics, 0.9 = PyTorch's momentum 0.1) and `bn_epsilon`. Keras's own default,
0.99, makes the moving statistics follow the weights so slowly that on short runs the
validation accuracy (inference mode) lags the training accuracy by tens of points.
The defaults are kerasclf.models.batchnorm's, shared by every registered BN model.
"""

from keras import layers

from kerasclf.models.batchnorm import BN_EPSILON, BN_MOMENTUM, bn_factory
from kerasclf.models.registry import register_model


@register_model("mlp", description="3 dense layers (CIFAR-10 baseline, ref 51%)", preprocessing="standardize")
def mlp(x, units=(512, 256), dropout=0.0):
    return dense_stack(layers.Flatten(name="flatten")(x), units, dropout)


def dense_stack(x, units, dropout=0.0):
    """ReLU dense layers dense1, dense2, ... of `units`, each followed by Dropout when `dropout` > 0."""
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation="relu", name=f"dense{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    return x


@register_model(
    "cnn",
    description="VGG-style CNN, 6 conv + 3 dense; batch_norm/dropout toggles (CIFAR-10 ref 85% / 89%)",
    preprocessing="standardize",
)
def cnn(
    x,
    filters=(32, 64, 128),
    convs_per_block=2,
    dense=(512, 256),
    batch_norm=False,
    dropout=0.0,
    conv_dropout=0.0,
    bn_momentum=BN_MOMENTUM,
    bn_epsilon=BN_EPSILON,
):
    """`dropout` applies after dense layers, `conv_dropout` after each pooling (grown per block).

    bn_momentum, bn_epsilon: BatchNormalization's (used with batch_norm=true).
    """
    bn = bn_factory(bn_momentum, bn_epsilon)
    for b, f in enumerate(filters, start=1):
        for c in range(1, convs_per_block + 1):
            x = layers.Conv2D(f, 3, padding="same", use_bias=not batch_norm, name=f"conv{b}_{c}")(x)
            if batch_norm:
                x = bn(f"bn{b}_{c}")(x)
            x = layers.Activation("relu", name=f"relu{b}_{c}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{b}")(x)
        if conv_dropout:
            x = layers.Dropout(min(conv_dropout * b, 0.5), name=f"conv_dropout{b}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, n in enumerate(dense, start=1):
        x = layers.Dense(n, use_bias=not batch_norm, name=f"dense{i}")(x)
        if batch_norm:
            x = bn(f"dense_bn{i}")(x)
        x = layers.Activation("relu", name=f"dense_relu{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    return x


def _conv_bn(x, filters, name, bn, pool=False):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = bn(f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


def _residual(x, filters, name, bn):
    y = _conv_bn(x, filters, f"{name}a", bn)
    y = _conv_bn(y, filters, f"{name}b", bn)
    return layers.Add(name=f"{name}_add")([x, y])


@register_model(
    "resnet9",
    description="ResNet-9 (Myrtle/DAWNBench CIFAR-10 net, ref 88.5% in 20 epochs)",
    preprocessing="standardize",
)
def resnet9(x, width=64, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON):
    w = width
    bn = bn_factory(bn_momentum, bn_epsilon)
    x = _conv_bn(x, w, "prep", bn)
    x = _conv_bn(x, 2 * w, "layer1", bn, pool=True)
    x = _residual(x, 2 * w, "res1", bn)
    x = _conv_bn(x, 4 * w, "layer2", bn, pool=True)
    x = _conv_bn(x, 8 * w, "layer3", bn, pool=True)
    x = _residual(x, 8 * w, "res3", bn)
    return layers.GlobalMaxPooling2D(name="global_pool")(x)
