"""Task heads: a model's embedding -> its outputs, one registered head per task.

A builder returns the embedding (the backbone's pooled features); `build_model` marks it
with an identity layer named `embedding` and adds the head of the data set's task, so every
model has the same two named outputs: `embedding` (what auxiliary losses and feature
extractors use) and `probabilities` (what the checkpoint predicts).
"""

from keras import layers

from kerasclf.registry import HEADS

EMBEDDING = "embedding"
PROBABILITIES = "probabilities"


@HEADS.register("multiclass", description="dense layer sized to the classes + softmax (float32)", loss="crossentropy")
def classification_head(x, num_classes, dropout=0.0, use_bias=True, name="head"):
    """Optional dropout, a dense layer sized to the data set, softmax kept in float32.

    Layers that train with the head are named `head_*` (what `model.trainable: head` keeps).
    The softmax runs in float32 so mixed-precision runs still produce stable probabilities.
    """
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(num_classes, use_bias=use_bias, name=f"{name}_dense")(x)
    return layers.Activation("softmax", dtype="float32", name=PROBABILITIES)(x)
