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


@HEADS.register("multilabel", description="dense layer sized to the classes + sigmoid (float32): one yes/no per class",
                loss="binary_crossentropy")
def multilabel_head(x, num_classes, dropout=0.0, use_bias=True, name="head"):
    """Independent per-class probabilities: an image may hold several classes, or none."""
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(num_classes, use_bias=use_bias, name=f"{name}_dense")(x)
    return layers.Activation("sigmoid", dtype="float32", name=PROBABILITIES)(x)


@HEADS.register("segmentation", description="FCN head on the encoder's last feature map, fused with a full-resolution "
                "image branch; per-pixel softmax (float32)", loss="segmentation_crossentropy", spatial=True)
def segmentation_head(features, num_classes, image, dropout=0.0, use_bias=True, name="head", width=32):
    """features: the encoder's last (B, h, w, F) map; image: the preprocessed (B, H, W, 3) input.

    FCN-style (Long et al. 2015) rather than KerasHub's DeepLabV3: it takes any registered
    backbone's last feature map without knowing its layer names, costs a few conv layers on
    a CPU, and is plain Conv2D / UpSampling2D (XLA-safe). The encoder's map is reduced by a
    1x1 conv, upsampled bilinearly to the input size and fused with two 3x3 convs on the
    image itself, which restore the boundaries that a stride-8..32 map has lost.
    """
    height, width_px = int(image.shape[1]), int(image.shape[2])
    fh, fw = int(features.shape[1]), int(features.shape[2])
    f = layers.Conv2D(width, 1, activation="relu", name=f"{name}_reduce")(features)
    if height % fh == 0 and width_px % fw == 0:
        f = layers.UpSampling2D((height // fh, width_px // fw), interpolation="bilinear", name=f"{name}_upsample")(f)
    else:
        f = layers.Resizing(height, width_px, interpolation="bilinear", name=f"{name}_upsample")(f)
    s = layers.Conv2D(width // 2, 3, padding="same", activation="relu", name=f"{name}_stem1")(image)
    s = layers.Conv2D(width // 2, 3, padding="same", activation="relu", name=f"{name}_stem2")(s)
    z = layers.Concatenate(name=f"{name}_concat")([f, s])
    z = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_fuse")(z)
    if dropout:
        z = layers.Dropout(dropout, name=f"{name}_dropout")(z)
    z = layers.Conv2D(num_classes, 1, use_bias=use_bias, name=f"{name}_classes")(z)
    return layers.Activation("softmax", dtype="float32", name=PROBABILITIES)(z)
