"""Small networks of the other seed studies that the `cnn` builder cannot express."""

from keras import layers

from kerasclf.models.batchnorm import BN_EPSILON, BN_MOMENTUM, bn_factory
from kerasclf.models.registry import register_model
from kerasclf.models.scratch import dense_stack


@register_model(
    "catsdogs_cnn",
    description="3 conv (BatchNorm after the first 2) + 3 dense CNN (Dogs vs Cats optimizer study, Adam ref 82.3%)",
    preprocessing="standardize",
)
def catsdogs_cnn(
    x, filters=(32, 64, 128), batch_norm_convs=2, dense=(512, 128), dropout=0.0,
    bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
):
    """conv 3x3 (+ BatchNorm for the first `batch_norm_convs`) + ReLU + 2x2 max-pool per filter
    count, flatten, the `dense` ReLU layers (`dropout` after each), then the classifier: with
    the defaults 3 conv, 2 BatchNorm and 3 dense layers (the head is the third), as in the study.

    bn_momentum, bn_epsilon: kerasclf's BatchNorm defaults (kerasclf.models.batchnorm); with
    Keras's 0.99 the real Dogs vs Cats copy (about 25 steps an epoch) ended at 65% test, the
    validation accuracy 40 points under the training accuracy."""
    bn = bn_factory(bn_momentum, bn_epsilon)
    for i, f in enumerate(filters, start=1):
        batch_norm = i <= batch_norm_convs
        x = layers.Conv2D(f, 3, padding="same", use_bias=not batch_norm, name=f"conv{i}")(x)
        if batch_norm:
            x = bn(f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return dense_stack(layers.Flatten(name="flatten")(x), dense, dropout)
