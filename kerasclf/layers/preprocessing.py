"""Input scaling that travels inside the model, so a checkpoint needs nothing else."""

import keras
from keras import ops

# Per-channel constants of the preprocessing conventions used by pretrained models
# (keras.applications.imagenet_utils): "caffe" is BGR minus the ImageNet mean,
# "torch" is RGB scaled to [0, 1] then standardised, "tf" is [-1, 1], "lite" is (x - 127) / 128
# (Google's EfficientNet-Lite training convention).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

MODES = ("unit", "standardize", "caffe", "torch", "tf", "lite", "raw")


@keras.saving.register_keras_serializable(package="kerasclf")
class ImagePreprocess(keras.layers.Layer):
    """uint8 (or float 0..255) images -> float tensors in the network's convention.

    mode: unit ([0, 1]), standardize (per-channel mean/std given in 0..255 units, e.g. the
    training split's), caffe, torch, tf (as keras.applications), lite ((x - 127) / 128, as
    EfficientNet-Lite was trained), raw (cast only).
    """

    def __init__(self, mode="unit", mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"Unknown preprocessing mode {mode!r}; expected one of {MODES}.")
        if mode == "standardize" and (mean is None or std is None):
            raise ValueError("mode='standardize' needs mean and std.")
        self.mode = mode
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]

    def call(self, images):
        x = ops.cast(images, self.compute_dtype)
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        if self.mode == "torch":
            return (x / 255.0 - ops.array(_IMAGENET_MEAN, self.compute_dtype)) / ops.array(
                _IMAGENET_STD, self.compute_dtype
            )
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.array(_CAFFE_MEAN_BGR, self.compute_dtype)
        if self.mode == "standardize":
            mean = ops.array(self.mean, self.compute_dtype)
            std = ops.array(self.std, self.compute_dtype)
            return (x - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="kerasclf")
class LabelInfo(keras.layers.Layer):
    """Identity on the model's output that records what evaluation needs in the checkpoint.

    class_names, the data source spec the model was trained on, and the input image size
    travel inside `best.keras`, so `kerasclf evaluate` needs only the file.
    """

    def __init__(self, class_names=(), source=None, image_size=None, task="multiclass", **kwargs):
        super().__init__(**kwargs)
        self.class_names = [str(c) for c in class_names]
        self.source = source
        self.image_size = None if image_size is None else [int(s) for s in image_size]
        self.task = task

    def call(self, x):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "class_names": self.class_names,
            "source": self.source,
            "image_size": self.image_size,
            "task": self.task,
        }
