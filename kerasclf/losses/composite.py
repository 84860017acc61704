"""Cross-entropy plus an auxiliary metric-learning loss on the model's embedding.

`loss.aux` (none | triplet | center) adds `loss.aux_weight * aux` to the compiled
cross-entropy, computed on the embedding: the input of the classification head (the
`embedding` layer where the model has one, else the head's input). How:

- `AuxLossModel` wraps a network that returns (probabilities, embedding) and overrides
  `compute_loss` (Keras 3's backend-agnostic hook): compiled loss on the probabilities,
  plus the weighted auxiliary loss on the embedding and the labels. Metrics see the
  probabilities only. The aux loss and, for triplet, the share of active triplets are
  logged as `aux_loss` / `triplet_active` (and val_*).
- Center loss keeps its centres in a non-trainable variable that its call updates
  (Wen et al.'s rule) during training; Keras returns such updates from the compiled step
  on every backend (JAX included), as it does for BatchNormalization's moving mean.
- What is saved (best.keras, last.keras) is the plain classifier, images in and
  probabilities out. With center loss, its output passes through `KeepCenters`, an
  identity layer that holds the CenterLoss (and so the centres) and marks the embedding,
  so a checkpoint carries its centres: `model.weights: <run>/best.keras` restores them
  when the classes are the same.
"""

from pathlib import Path

import keras
from keras import ops

from kerasclf.checkpoint import load_checkpoint
from kerasclf.data.sampler import warn_if_few_positives
from kerasclf.errors import CheckpointError
from kerasclf.losses.metric import CenterLoss, TripletLoss
from kerasclf.registry import AUX_LOSSES


@AUX_LOSSES.register("triplet", description="triplet loss on the L2-normalised embedding (loss.margin, mining, distance)")
def _triplet(loss_cfg, num_classes):
    return TripletLoss(margin=loss_cfg.margin, mining=loss_cfg.mining, distance=loss_cfg.distance, name="aux_triplet")


@AUX_LOSSES.register("center", description="center loss, centres moved by Wen et al.'s rule (loss.center_alpha)")
def _center(loss_cfg, num_classes):
    return CenterLoss(num_classes, alpha=loss_cfg.center_alpha, name="center_loss")


def aux_name(cfg):
    return getattr(cfg.loss, "aux", "none") or "none"


# --- the embedding ---------------------------------------------------------------------------

def embedding_tensor(model):
    """The symbolic embedding of a kerasclf classifier: the input of its classification head."""
    for layer in model.layers:
        if isinstance(layer, KeepCenters):
            return layer.input[1]
    for name, take in (("embedding", "output"), ("head_dropout", "input"), ("head_dense", "input")):
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        return getattr(layer, take)
    raise CheckpointError(
        f"Model '{model.name}' has no layer named 'embedding', 'head_dropout' or 'head_dense', so its "
        "embedding (the input of the classification head) cannot be found. Train it with `kerasclf train`."
    )


def embedding_model(model):
    """images -> embedding, sharing the classifier's layers (a feature extractor)."""
    return keras.Model(model.input, embedding_tensor(model), name=f"{model.name}_embedding")


@keras.saving.register_keras_serializable(package="kerasclf")
class KeepCenters(keras.layers.Layer):
    """[probabilities, embedding] -> probabilities, unchanged; holds the CenterLoss and its centres.

    Its only job is to put the centres into the saved classifier (a functional model saves
    the layers of its graph) and to mark which tensor they belong to.
    """

    def __init__(self, num_classes, alpha=0.5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes, self.alpha = int(num_classes), float(alpha)
        self.center_loss = CenterLoss(self.num_classes, alpha=self.alpha, name="center_loss")

    def build(self, input_shape):
        self.center_loss.build(input_shape[1])

    def call(self, inputs):
        return inputs[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "alpha": self.alpha}


# --- the training model ----------------------------------------------------------------------

class AuxLossModel(keras.Model):
    """Trains `network` (x -> [probabilities, embedding]) on compiled loss + weight * aux."""

    def __init__(self, network, aux, weight, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{network.name}_aux"), **kwargs)
        self.network, self.aux, self.weight = network, aux, float(weight)
        self.aux_tracker = keras.metrics.Mean(name="aux_loss")
        self.active_tracker = keras.metrics.Mean(name="triplet_active") if isinstance(aux, TripletLoss) else None
        self.built = network.built  # nothing of its own to build

    def call(self, x, training=False):
        probabilities, embedding = self.network(x, training=training)
        return probabilities, embedding

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        probabilities, embedding = y_pred
        loss = super().compute_loss(x, y, probabilities, sample_weight, training=training)
        labels = ops.argmax(y, axis=-1) if len(y.shape) == 2 else ops.reshape(y, (-1,))
        if isinstance(self.aux, TripletLoss):
            aux, active = self.aux(embedding, labels, return_active_fraction=True)
            self.active_tracker.update_state(active)
        else:
            aux = self.aux(embedding, labels, training=training)
        self.aux_tracker.update_state(aux)
        return loss + ops.cast(self.weight, loss.dtype) * ops.cast(aux, loss.dtype)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred[0], sample_weight)


class AuxTraining:
    """What run.train needs: the model to save, the model to fit, and the checkpoint class."""

    def __init__(self, cfg, classifier, num_classes):
        self.name = aux_name(cfg)
        embedding = embedding_tensor(classifier)
        aux = AUX_LOSSES.get(self.name).factory(cfg.loss, num_classes)
        if isinstance(aux, CenterLoss):
            keep = KeepCenters(num_classes, alpha=cfg.loss.center_alpha, name="head_centers")
            self.saved = keras.Model(classifier.input, keep([classifier.output, embedding]), name=classifier.name)
            aux = keep.center_loss
            self.centers = keep.center_loss.centers
        else:
            self.saved, self.centers = classifier, None
        self.features = keras.Model(self.saved.input, [self.saved.output, embedding], name=f"{classifier.name}_features")
        self.aux, self.weight = aux, cfg.loss.aux_weight

    def fit_model(self, wrap=None):
        """The model to compile and fit; `wrap` (the resident feeder's) turns the features
        network into one that takes indices."""
        network = wrap(self.features) if wrap is not None else self.features
        return AuxLossModel(network, self.aux, self.weight)

    def checkpoint_class(self):
        saved = self.saved

        class SaveClassifier(keras.callbacks.ModelCheckpoint):
            """Saves the plain classifier (with its centres), not the training wrapper."""

            def set_model(self, model):
                super().set_model(saved)

        return SaveClassifier

    def restore_centers(self, path, class_names):
        """Centres from a kerasclf checkpoint of the same classes (model.weights: run/best.keras)."""
        if self.centers is None:
            return False
        source, labels = load_checkpoint(path)
        if list(labels.class_names) != list(class_names):
            return False
        for layer in source.layers:
            if isinstance(layer, KeepCenters) and tuple(layer.center_loss.centers.shape) == tuple(self.centers.shape):
                self.centers.assign(layer.center_loss.centers.value)
                return True
        return False


def setup(cfg, classifier, data):
    """An AuxTraining for cfg.loss.aux, or None for aux=none (kerasclf.config checked its keys)."""
    if aux_name(cfg) == "none":
        return None
    training = AuxTraining(cfg, classifier, data.info.num_classes)
    weights = cfg.model.weights
    if isinstance(weights, str) and weights.endswith(".keras") and Path(weights).expanduser().is_file():
        training.restore_centers(Path(weights).expanduser(), data.info.class_names)
    if training.name == "triplet" and getattr(cfg.data.sampler, "classes_per_batch", None) is None:
        warn_if_few_positives(data.train.y, cfg.data.batch_size)
    return training
