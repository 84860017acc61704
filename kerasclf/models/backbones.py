"""Pretrained backbones for transfer learning: VGG16 and ResNet-50 from keras.applications,
ResNet-18 and ViT-B/16 from KerasHub presets.

Each builder nests the network as a plain functional sub-model named `backbone` (so the
freeze flags of its layers are saved in the checkpoint, see kerasclf.models.freeze), pools
its features and adds `classification_head`.

`model.weights` (the builders' `weights` argument):
  "imagenet"   the ecosystem's own download, cached where that ecosystem caches it:
               keras.utils.get_file (~/.keras/models) for keras.applications, kagglehub
               (~/.cache/kagglehub) for KerasHub presets. A failed download (no network)
               raises a ModelError that names the file, its source, and how to pass a local
               copy; nothing is left half-written.
  None/"none"  random initialisation; the architecture is built from its constructor
               arguments, nothing is downloaded.
  a path       keras.applications: the "notop" .h5 file (or a backbone .weights.h5);
               KerasHub: a preset directory (config.json + model.weights.h5) or a backbone
               .weights.h5 file.
"""

import os
import warnings
from pathlib import Path

import keras
from keras import layers, ops

from kerasclf.errors import ModelError
from kerasclf.models.heads import classification_head
from kerasclf.models.registry import register_model

# keras.applications "notop" weights: the URLs and md5 hashes keras.applications uses, so the
# file lands in (and is found in) the same cache.
_APPS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
_APPS_WEIGHTS = {
    "vgg16": ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "resnet50": ("resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
}

# KerasHub presets and the constructor arguments that rebuild their architecture offline
# (checked against the presets' published parameter counts: 11,186,112 and 85,798,656).
RESNET18_PRESET = "resnet_18_imagenet"
RESNET18_ARCH = {
    "input_conv_filters": [64],
    "input_conv_kernel_sizes": [7],
    "stackwise_num_filters": [64, 128, 256, 512],
    "stackwise_num_blocks": [2, 2, 2, 2],
    "stackwise_num_strides": [1, 2, 2, 2],
    "block_type": "basic_block",
    "use_pre_activation": False,
}
VIT_B16_PRESET = "vit_base_patch16_224_imagenet"
VIT_B16_ARCH = {
    "patch_size": 16,
    "num_layers": 12,
    "num_heads": 12,
    "hidden_dim": 768,
    "mlp_dim": 3072,
}
_POOLING = ("avg", "max", "flatten")


# ---------------------------------------------------------------------------------------
# keras.applications
# ---------------------------------------------------------------------------------------


@register_model(
    "vgg16",
    description="VGG16 (keras.applications), ImageNet weights; CIFAR-10 last:2/3/5 ref 62/69/78%",
    preprocessing="caffe",
    min_size=32,
    pretrained=True,
)
def vgg16(x, num_classes, weights=None, head_dropout=0.0, pooling="avg"):
    """pooling: avg | max | flatten of the last conv block's features."""
    backbone = _application("vgg16", keras.applications.VGG16, x, weights)
    return _pool_and_head(backbone(x), num_classes, head_dropout, pooling)


@register_model(
    "resnet50",
    description="ResNet-50 (keras.applications), ImageNet weights; STL-10 fine-tune ref 91.6%",
    preprocessing="caffe",
    min_size=32,
    pretrained=True,
)
def resnet50(x, num_classes, weights=None, head_dropout=0.0, pooling="avg"):
    """pooling: avg | max | flatten of the last stage's features."""
    backbone = _application("resnet50", keras.applications.ResNet50, x, weights)
    return _pool_and_head(backbone(x), num_classes, head_dropout, pooling)


def _application(key, factory, x, weights):
    source = _weights_source(weights)
    path = _application_weights_file(key, source) if source else None
    try:
        return _strict_load(
            lambda: factory(include_top=False, weights=path, input_shape=tuple(x.shape[1:]), name="backbone")
        )
    except (ValueError, OSError, KeyError, TypeError) as exc:
        if path is None:
            raise
        raise ModelError(
            f"Could not load backbone weights from {path!r} into {key}: {_first_line(exc)}. The file must "
            f"hold {key} weights without the classifier (keras.applications' "
            f"{_APPS_WEIGHTS[key][0].rsplit('/', 1)[1]}), or be a .weights.h5 file saved from this "
            "model's 'backbone' layer."
        ) from None


def _application_weights_file(key, source):
    if source != "imagenet":
        return _existing_file(source, key)
    rel, md5 = _APPS_WEIGHTS[key]
    fname = rel.rsplit("/", 1)[1]
    url = _APPS_BASE + rel
    try:
        return keras.utils.get_file(fname, url, cache_subdir="models", file_hash=md5)
    except Exception as exc:  # keras raises a bare Exception("URL fetch failure ...") offline
        cache = os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models")
        raise ModelError(
            f"Model '{key}' needs its ImageNet weights file {fname}, and downloading it from {url} failed "
            f"({_first_line(exc)}). Run once with network access (the file is then cached in {cache}/), "
            f"or download that file on another machine and pass it with "
            f"`--set model.weights=/path/to/{fname}` (or put it in {cache}/); "
            "`--set model.weights=none` starts from random weights."
        ) from None


# ---------------------------------------------------------------------------------------
# KerasHub
# ---------------------------------------------------------------------------------------


@register_model(
    "resnet18",
    description="ResNet-18 (KerasHub resnet_18_imagenet); CIFAR-10 ref full 82.9% SGD, head-only 42.6%",
    preprocessing="torch",
    min_size=32,
    pretrained=True,
)
def resnet18(x, num_classes, weights=None, head_dropout=0.0, pooling="avg"):
    """ImageNet preprocessing of the preset's image converter: RGB / 255, ImageNet mean/std."""
    source = _weights_source(weights)
    cls = _keras_hub("resnet18").models.ResNetBackbone
    if source is None:
        hub = cls(**RESNET18_ARCH, image_shape=tuple(x.shape[1:]))
        backbone = _plain_functional(hub)
    elif source == "imagenet" or Path(source).expanduser().is_dir():
        hub = _from_preset("resnet18", cls, RESNET18_PRESET if source == "imagenet" else source)
        backbone = _plain_functional(hub)
    else:
        path = _existing_file(source, "resnet18")
        backbone = _plain_functional(cls(**RESNET18_ARCH, image_shape=tuple(x.shape[1:])))
        _load_backbone_file(backbone, path, "resnet18")
    return _pool_and_head(backbone(x), num_classes, head_dropout, pooling)


@register_model(
    "vit_b16",
    description="ViT-B/16 (KerasHub vit_base_patch16_224_imagenet); CIFAR-10 ref full 97.9%, head 96.4%",
    preprocessing="tf",
    input_size=(224, 224),
    pretrained=True,
)
def vit_b16(
    x,
    num_classes,
    weights=None,
    head_dropout=0.0,
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
    source = _weights_source(weights)
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
        cls = _keras_hub("vit_b16").models.ViTBackbone
        hub = _from_preset("vit_b16", cls, VIT_B16_PRESET if source == "imagenet" else source, **dropout)
        if tuple(hub.image_shape[:2]) != image_shape[:2]:
            raise ModelError(
                f"The ViT preset {source!r} takes {tuple(hub.image_shape[:2])} images but the network input "
                f"is {image_shape[:2]}; set model.image_size={list(hub.image_shape[:2])}."
            )
        backbone = vit_functional(hub.get_config(), source=hub)
    else:
        path = _existing_file(source, "vit_b16")
        backbone = vit_functional({"image_shape": image_shape, **arch, **dropout})
        _load_backbone_file(
            backbone,
            path,
            "vit_b16",
            hub_factory=lambda: _keras_hub("vit_b16").models.ViTBackbone(image_shape=image_shape, **arch, **dropout),
        )
    features = backbone(x)
    if pooling == "token":
        features = features[:, 0]
    else:
        features = layers.GlobalAveragePooling1D(name="pool")(features)
    return classification_head(features, num_classes, head_dropout)


def _keras_hub(key):
    try:
        import keras_hub
    except ImportError:
        raise ModelError(
            f"Model '{key}' comes from KerasHub, which is not installed: pip install 'kerasclf[hub]' "
            "(or pip install keras-hub)."
        ) from None
    return keras_hub


def _from_preset(key, cls, preset, **kwargs):
    """cls.from_preset, turning a failed download into a ModelError with the way out."""
    if Path(str(preset)).expanduser().is_dir():
        try:
            return cls.from_preset(str(Path(preset).expanduser()), **kwargs)
        except Exception as exc:
            raise ModelError(
                f"Could not load the KerasHub preset directory {str(preset)!r} for {key}: {_first_line(exc)}. "
                f"It must hold config.json and model.weights.h5 of a {cls.__name__} preset."
            ) from None
    handle = cls.presets.get(preset, {}).get("kaggle_handle", preset)
    created = _kaggle_cache_dirs(handle)
    try:
        return cls.from_preset(preset, **kwargs)
    except Exception as exc:  # requests/kagglehub errors when offline; the message says which
        _remove_new_empty_dirs(created)
        raise ModelError(
            f"Model '{key}' needs the KerasHub preset '{preset}' ({handle}, downloaded and cached by "
            f"kagglehub under {_kaggle_cache_root()}), and loading it "
            f"failed ({_first_line(exc)}). Run once with network access (the preset is then cached), or "
            "download the preset directory (config.json + model.weights.h5) on another machine, e.g. "
            f"kagglehub.model_download('{handle.removeprefix('kaggle://')}'), and pass it with "
            f"`--set model.weights=/path/to/{preset}`; a backbone .weights.h5 file works too, and "
            "`--set model.weights=none` starts from random weights."
        ) from None


def _kaggle_cache_root():
    try:
        from kagglehub.config import get_cache_folder

        return get_cache_folder()
    except ImportError:
        return os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")


def _kaggle_cache_dirs(handle):
    """The kagglehub cache directories a download of `handle` would create, and which exist."""
    try:
        from kagglehub.config import get_cache_folder
    except ImportError:
        return []
    parts = str(handle).removeprefix("kaggle://").split("/")
    root = Path(get_cache_folder()).expanduser()
    path = root / "models"
    dirs = [root, path]
    for part in parts:
        path = path / part
        dirs.append(path)
    return [(d, d.exists()) for d in dirs]


def _remove_new_empty_dirs(dirs):
    """A failed kagglehub download leaves empty cache folders; remove those it created."""
    for path, existed in reversed(dirs):
        if not existed:
            try:
                path.rmdir()  # only succeeds on an empty directory
            except OSError:
                pass


def _plain_functional(hub):
    """A KerasHub backbone as a plain functional model over the same layers.

    KerasHub backbones serialize by constructor arguments, which drops the `trainable`
    flags of their inner layers on reload; a plain functional model saves each layer's config.
    """
    return keras.Model(hub.input, hub.output, name="backbone")


def _load_backbone_file(backbone, path, key, hub_factory=None):
    """Load a .weights.h5 saved from our `backbone` sub-model, or from the KerasHub backbone."""
    errors = []
    try:
        _strict_load(lambda: backbone.load_weights(path))
        return
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError for a mismatch
        errors.append(exc)
    if hub_factory is not None:
        try:
            hub = hub_factory()
            _strict_load(lambda: hub.load_weights(path))
            copy_vit_weights(hub, backbone)
            return
        except Exception as exc:
            errors.append(exc)
    raise ModelError(
        f"Could not load backbone weights from {path!r} into {key}: {_first_line(errors[0])}. Pass a "
        ".weights.h5 file saved from this model's 'backbone' layer (or from the KerasHub backbone with the "
        "same architecture), a KerasHub preset directory, 'imagenet', or 'none'."
    ) from None


# ---------------------------------------------------------------------------------------
# ViT as a plain functional model
# ---------------------------------------------------------------------------------------
# KerasHub's ViTBackbone keeps all encoder blocks inside one layer, its layers do not
# round-trip through get_config/from_config, and a KerasHub backbone reloads with its inner
# `trainable` flags lost. So the ViT here is a plain functional model of the two layers
# below -- the same computation and variable order as KerasHub's ViTPatchingAndEmbedding
# and ViTEncoderBlock, in pure Keras -- one layer per encoder block. Blocks can be frozen
# one by one, the flags survive a save/load, and a checkpoint loads without keras-hub.


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
        name="embedding",
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
    pairs = [(hub.get_layer("vit_patching_and_embedding"), backbone.get_layer("embedding"))]
    pairs += [
        (block, backbone.get_layer(f"transformer_block_{i + 1}")) for i, block in enumerate(encoder.encoder_layers)
    ]
    pairs.append((encoder.layer_norm, backbone.get_layer("encoder_norm")))
    for src, dst in pairs:
        values = src.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in dst.weights]:
            raise ModelError(f"ViT weights of {src.name!r} do not match {dst.name!r}: different architecture.")
        dst.set_weights(values)


# ---------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------


def _pool_and_head(features, num_classes, head_dropout, pooling):
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="pool")(features)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="pool")(features)
    elif pooling == "flatten":
        x = layers.Flatten(name="flatten")(features)
    else:
        raise ModelError(f"pooling must be one of {', '.join(_POOLING)}; got {pooling!r}.")
    return classification_head(x, num_classes, head_dropout)


def _strict_load(load):
    """Run a Keras weights load; a file that only partly matches is an error, not a warning.

    Keras warns ("Skipping ... retain their freshly-initialized weights") and carries on
    when parts of the model are missing from a .weights.h5 file.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load()
    partial = [w for w in caught if "freshly-initialized" in str(w.message) or "Skipping" in str(w.message)]
    if partial:
        raise ValueError(f"the file does not match this architecture ({str(partial[0].message).splitlines()[0]})")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _weights_source(weights):
    """None for random init, "imagenet", or the local path as given."""
    if weights is None:
        return None
    text = str(weights).strip()
    if text.lower() in ("", "none", "null", "random"):
        return None
    if text.lower() == "imagenet":
        return "imagenet"
    return text


def _existing_file(path, key):
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ModelError(
            f"model.weights points to {path!r}, which is not a file (model '{key}'). Pass 'imagenet' "
            "(downloaded and cached), 'none' (random initialisation), or the path of an existing weights "
            "file" + (" or KerasHub preset directory." if key in ("resnet18", "vit_b16") else ".")
        )
    return str(resolved)


def _first_line(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
