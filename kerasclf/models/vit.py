"""ViT-B/16 (KerasHub preset weights) as a plain functional model of pure-Keras layers.

KerasHub's ViTBackbone keeps all encoder blocks inside one layer, its layers do not
round-trip through get_config/from_config, and a KerasHub backbone reloads with its inner
`trainable` flags lost. So the ViT here is a plain functional model of the two layers
below (`PatchEmbedding`, `TransformerBlock`) -- the same computation and variable order as
KerasHub's ViTPatchingAndEmbedding and ViTEncoderBlock, in pure Keras -- one layer per
encoder block. Blocks can be frozen one by one, the flags survive a save/load, and a
checkpoint loads without keras-hub.

`weights` as described in kerasclf.models.pretrained: "imagenet" is the KerasHub preset
vit_base_patch16_224_imagenet, a path a preset directory or a backbone .weights.h5 file
(saved from our `backbone` or from KerasHub's ViTBackbone).
"""

from pathlib import Path

import keras
from keras import layers, ops

from kerasclf.errors import ModelError
from kerasclf.models.hub import from_preset, import_keras_hub, load_backbone_file
from kerasclf.models.pretrained import existing_file, weights_source
from kerasclf.models.registry import register_model

# The KerasHub preset and the constructor arguments that rebuild its architecture offline
# (checked against the preset's published parameter count: 85,798,656).
VIT_B16_PRESET = "vit_base_patch16_224_imagenet"
VIT_B16_ARCH = {
    "patch_size": 16,
    "num_layers": 12,
    "num_heads": 12,
    "hidden_dim": 768,
    "mlp_dim": 3072,
}


@register_model(
    "vit_b16",
    description="ViT-B/16 (KerasHub vit_base_patch16_224_imagenet); CIFAR-10 ref full 97.9%, head 96.4%",
    preprocessing="tf",
    input_size=(224, 224),
    pretrained=True,
)
def vit_b16(
    x,
    weights=None,
    image_size=None,
    patch_size=16,
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    mlp_dim=3072,
    dropout_rate=0.0,
    attention_dropout=0.0,
    pooling="token",
):
    """ViT-B/16; the preset's converter scales pixels to [-1, 1] ("tf").

    image_size (side or [h, w]) replaces the 224x224 input (build_model resizes to it); with
    the size arguments it builds a smaller ViT from scratch (tests use a tiny one). ImageNet
    weights need the B/16 defaults. pooling: token (the class token) | gap (mean of tokens).
    """
    if pooling not in ("token", "gap"):
        raise ModelError(f"vit_b16: pooling must be 'token' or 'gap', got {pooling!r}.")
    source = weights_source(weights)
    image_shape = tuple(int(d) for d in x.shape[1:])
    arch = {
        "patch_size": patch_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "hidden_dim": hidden_dim,
        "mlp_dim": mlp_dim,
    }
    dropout = {"dropout_rate": dropout_rate, "attention_dropout": attention_dropout}
    if source is None:
        backbone = vit_functional({"image_shape": image_shape, **arch, **dropout})
    elif source == "imagenet" or Path(source).expanduser().is_dir():
        if source == "imagenet" and (arch != VIT_B16_ARCH or image_shape[:2] != (224, 224)):
            raise ModelError(
                "vit_b16 with ImageNet weights is the ViT-B/16 preset at 224x224: remove the size "
                f"overrides (got image {image_shape[:2]}, {arch}) or use model.weights=none."
            )
        cls = import_keras_hub("vit_b16").models.ViTBackbone
        hub = from_preset("vit_b16", cls, VIT_B16_PRESET if source == "imagenet" else source, **dropout)
        if tuple(hub.image_shape[:2]) != image_shape[:2]:
            raise ModelError(
                f"The ViT preset {source!r} takes {tuple(hub.image_shape[:2])} images but the network input "
                f"is {image_shape[:2]}; set model.image_size={list(hub.image_shape[:2])}."
            )
        backbone = vit_functional(hub.get_config(), source=hub)
    else:
        path = existing_file(source, "vit_b16", preset_dir=True)
        backbone = vit_functional({"image_shape": image_shape, **arch, **dropout})
        load_backbone_file(
            backbone,
            path,
            "vit_b16",
            hub_factory=lambda: import_keras_hub("vit_b16").models.ViTBackbone(
                image_shape=image_shape, **arch, **dropout
            ),
            copy_weights=copy_vit_weights,
        )
    features = backbone(x)
    if pooling == "token":
        features = features[:, 0]
    else:
        features = layers.GlobalAveragePooling1D(name="pool")(features)
    return features


@keras.saving.register_keras_serializable(package="kerasclf")
class PatchEmbedding(layers.Layer):
    """Images -> [class token] + linear patch embeddings + learned position embeddings."""

    def __init__(self, image_size, patch_size, hidden_dim, use_class_token=True, use_patch_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.image_size = tuple(int(s) for s in image_size)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.hidden_dim = int(hidden_dim)
        self.use_class_token = bool(use_class_token)
        self.use_patch_bias = bool(use_patch_bias)
        grid = [s // p for s, p in zip(self.image_size, self.patch_size)]
        self.num_positions = grid[0] * grid[1] + (1 if self.use_class_token else 0)

    def build(self, input_shape):
        # Same creation order as KerasHub: class token, patch conv, position embedding.
        if self.use_class_token:
            self.class_token = self.add_weight(
                shape=(1, 1, self.hidden_dim), initializer="random_normal", name="class_token"
            )
        self.patch_embedding = layers.Conv2D(
            self.hidden_dim,
            self.patch_size,
            strides=self.patch_size,
            padding="valid",
            use_bias=self.use_patch_bias,
            dtype=self.dtype_policy,
            name="patch_embedding",
        )
        self.patch_embedding.build(input_shape)
        self.position_embedding = layers.Embedding(
            self.num_positions,
            self.hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=self.dtype_policy,
            name="position_embedding",
        )
        self.position_embedding.build((1, self.num_positions))
        _refreeze(self)

    def call(self, images):
        x = self.patch_embedding(images)
        batch = ops.shape(x)[0]
        x = ops.reshape(x, (batch, -1, self.hidden_dim))
        if self.use_class_token:
            token = ops.tile(ops.cast(self.class_token, x.dtype), (batch, 1, 1))
            x = ops.concatenate([token, x], axis=1)
        positions = self.position_embedding(ops.expand_dims(ops.arange(self.num_positions), 0))
        return ops.add(x, ops.cast(positions, x.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_positions, self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": list(self.image_size),
            "patch_size": list(self.patch_size),
            "hidden_dim": self.hidden_dim,
            "use_class_token": self.use_class_token,
            "use_patch_bias": self.use_patch_bias,
        }


@keras.saving.register_keras_serializable(package="kerasclf")
class TransformerBlock(layers.Layer):
    """Pre-norm encoder block: x + MHA(LN(x)), then x + MLP(LN(x)) with a GELU MLP."""

    def __init__(
        self,
        num_heads,
        hidden_dim,
        mlp_dim,
        use_mha_bias=True,
        use_mlp_bias=True,
        dropout_rate=0.0,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.hidden_dim = int(hidden_dim)
        self.mlp_dim = int(mlp_dim)
        self.use_mha_bias = bool(use_mha_bias)
        self.use_mlp_bias = bool(use_mlp_bias)
        self.dropout_rate = float(dropout_rate)
        self.attention_dropout = float(attention_dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def build(self, input_shape):
        # Same sublayers and order as KerasHub's ViTEncoderBlock (its MLP's two dense layers
        # are direct sublayers here), so get_weights()/set_weights() line up.
        policy = self.dtype_policy
        hidden = (None, None, self.hidden_dim)
        self.layer_norm_1 = layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name="ln_1")
        self.layer_norm_1.build(hidden)
        self.mha = layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.hidden_dim // self.num_heads,
            use_bias=self.use_mha_bias,
            dropout=self.attention_dropout,
            dtype=policy,
            name="mha",
        )
        self.mha.build(hidden, hidden)
        self.dropout = layers.Dropout(self.dropout_rate, dtype=policy, name="dropout")
        self.layer_norm_2 = layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name="ln_2")
        self.layer_norm_2.build(hidden)
        bias_init = keras.initializers.RandomNormal(stddev=1e-6) if self.use_mlp_bias else "zeros"
        self.dense_1 = layers.Dense(
            self.mlp_dim,
            activation="gelu",
            use_bias=self.use_mlp_bias,
            bias_initializer=bias_init,
            dtype=policy,
            name="dense_1",
        )
        self.dense_1.build(hidden)
        self.dense_2 = layers.Dense(
            self.hidden_dim, use_bias=self.use_mlp_bias, bias_initializer=bias_init, dtype=policy, name="dense_2"
        )
        self.dense_2.build((None, None, self.mlp_dim))
        self.mlp_dropout = layers.Dropout(self.dropout_rate, dtype=policy, name="mlp_dropout")
        _refreeze(self)

    def call(self, inputs, training=None):
        x = self.layer_norm_1(inputs)
        x = self.mha(x, x, training=training)
        x = self.dropout(x, training=training)
        x = x + inputs
        y = self.layer_norm_2(x)
        y = self.mlp_dropout(self.dense_1(y), training=training)
        y = self.mlp_dropout(self.dense_2(y), training=training)
        return x + y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "mlp_dim": self.mlp_dim,
            "use_mha_bias": self.use_mha_bias,
            "use_mlp_bias": self.use_mlp_bias,
            "dropout_rate": self.dropout_rate,
            "attention_dropout": self.attention_dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }


def _refreeze(layer):
    """Sublayers created in build() start trainable even when `layer` was constructed frozen
    (as a reloaded checkpoint's frozen block is): push the layer's flag down to them."""
    if not layer.trainable:
        layers.Layer.trainable.fset(layer, False)  # the setter itself: `layer.trainable = False` is a no-op on TF here


def vit_functional(config, source=None):
    """Plain functional ViT from ViTBackbone config keys; weights copied from `source` (a
    KerasHub ViTBackbone) when given."""
    image_shape = tuple(int(d) for d in config["image_shape"])
    patch = config["patch_size"]
    patch = tuple(patch) if isinstance(patch, (list, tuple)) else (patch, patch)
    eps = config.get("layer_norm_epsilon", 1e-6)
    dropout_rate = config.get("dropout_rate", 0.0)
    inputs = keras.Input(image_shape, name="images")
    x = PatchEmbedding(
        image_size=image_shape[:2],
        patch_size=patch,
        hidden_dim=config["hidden_dim"],
        use_class_token=config.get("use_class_token", True),
        use_patch_bias=config.get("use_patch_bias", True),
        name="patch_embedding",
    )(inputs)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name="encoder_dropout")(x)
    for i in range(config["num_layers"]):
        x = TransformerBlock(
            num_heads=config["num_heads"],
            hidden_dim=config["hidden_dim"],
            mlp_dim=config["mlp_dim"],
            use_mha_bias=config.get("use_mha_bias", True),
            use_mlp_bias=config.get("use_mlp_bias", True),
            dropout_rate=dropout_rate,
            attention_dropout=config.get("attention_dropout", 0.0),
            layer_norm_epsilon=eps,
            name=f"transformer_block_{i + 1}",
        )(x)
    x = layers.LayerNormalization(epsilon=eps, name="encoder_norm")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    if source is not None:
        copy_vit_weights(source, backbone)
    return backbone


def copy_vit_weights(hub, backbone):
    """KerasHub ViTBackbone -> `vit_functional` model (same shapes, same variable order)."""
    encoder = hub.get_layer("vit_encoder")
    pairs = [(hub.get_layer("vit_patching_and_embedding"), backbone.get_layer("patch_embedding"))]
    pairs += [
        (block, backbone.get_layer(f"transformer_block_{i + 1}")) for i, block in enumerate(encoder.encoder_layers)
    ]
    pairs.append((encoder.layer_norm, backbone.get_layer("encoder_norm")))
    for src, dst in pairs:
        values = src.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in dst.weights]:
            raise ModelError(f"ViT weights of {src.name!r} do not match {dst.name!r}: different architecture.")
        dst.set_weights(values)

