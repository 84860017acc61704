"""The model registry: `@register_model("name", preprocessing=..., input_size=...)`.

A builder is `fn(x, **kwargs) -> embedding`: called on the float tensor that
`ImagePreprocess` (and, when `input_size` is set, a resize) produced, it returns the pooled
features that the task head (kerasclf.models.heads) turns into outputs. Its keyword
arguments are the `model` section's builder-specific config keys.
Registration meta:
  preprocessing: how raw 0..255 pixels are scaled ("standardize" uses the train split's
                 per-channel mean/std); see kerasclf.layers.preprocessing.MODES
  input_size:    (height, width) the network needs; smaller inputs are resized in-model
  min_size:      smallest input side the network accepts without resizing
  pretrained:    whether `model.weights: imagenet` is meaningful
  needs_data:    layers initialised from training images; the run calls
                 kerasclf.models.data_init.init_from_data(model, train_x) after building
  head_bias:     whether the head's dense layer has a bias (default True)
"""

from kerasclf.registry import MODELS

register_model = MODELS.register
