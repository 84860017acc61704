"""Pieces shared by builders: the classification head."""

from keras import layers


def classification_head(x, num_classes, dropout=0.0, name="head"):
    """Optional dropout, a dense layer sized to the data set, softmax kept in float32.

    The softmax runs in float32 so mixed-precision runs still produce stable probabilities.
    """
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(num_classes, name=f"{name}_dense")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)
