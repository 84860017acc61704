"""The objective: cross-entropy plus an auxiliary metric-learning loss on the model's embedding.

`loss.aux` names an entry of kerasclf.registry.AUX_LOSSES; training optimises
`compiled loss + loss.aux_weight * aux`, the auxiliary term computed on the embedding (the
input of the classification head, kerasclf.models.embedding_tensor). How:

- `AuxLossModel` wraps a network that returns (probabilities, embedding) and overrides
  `compute_loss` (Keras 3's backend-agnostic hook): compiled loss on the probabilities,
  plus the weighted auxiliary loss on the embedding and the labels. Metrics see the
  probabilities only. The aux loss is logged as `aux_loss` (and val_aux_loss); an entry
  that declares `logs` (triplet: `triplet_active`, the share of active triplets) has those
  logged too.
- An auxiliary loss with state (center loss: one centre per class, in a non-trainable
  variable its call updates by Wen et al.'s rule) is registered with `holder=True`: its
  factory returns a layer that holds it (`.aux`) inside the saved classifier, so a
  checkpoint carries the state (`KeepCenters`). Keras returns such updates from the
  compiled step on every backend (JAX included), as it does for BatchNormalization's
  moving mean.

The training glue (which model is saved, restoring centres, the sampler warning) is
kerasclf.training.aux.
"""

import keras
from keras import ops

from kerasclf.losses.metric import CenterLoss, TripletLoss
from kerasclf.registry import AUX_LOSSES


@AUX_LOSSES.register(
    "triplet", description="triplet loss on the L2-normalised embedding (loss.margin, mining, distance)",
    logs=("triplet_active",), needs_positives=True,
)
def _triplet(loss_cfg, num_classes):
    return TripletLoss(
        margin=loss_cfg.margin, mining=loss_cfg.mining, distance=loss_cfg.distance, report_active=True,
        name="aux_triplet",
    )


@AUX_LOSSES.register(
    "center", description="center loss, centres moved by Wen et al.'s rule (loss.center_alpha)", holder=True,
)
def _center(loss_cfg, num_classes):
    return KeepCenters(num_classes, alpha=loss_cfg.center_alpha, name="head_centers")


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

    @property
    def aux(self):
        """The auxiliary loss this layer holds (the holder protocol of AUX_LOSSES)."""
        return self.center_loss

    def build(self, input_shape):
        self.center_loss.build(input_shape[1])

    def call(self, inputs):
        return inputs[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "alpha": self.alpha}


class AuxLossModel(keras.Model):
    """Trains `network` (x -> [probabilities, embedding]) on compiled loss + weight * aux.

    `aux(embedding, labels, training=...)` returns the loss, or (loss, {name: value}) for the
    names in `logs`, which are logged as batch means.
    """

    def __init__(self, network, aux, weight, logs=(), **kwargs):
        super().__init__(name=kwargs.pop("name", f"{network.name}_aux"), **kwargs)
        self.network, self.aux, self.weight = network, aux, float(weight)
        self.aux_tracker = keras.metrics.Mean(name="aux_loss")
        self.log_trackers = {name: keras.metrics.Mean(name=name) for name in logs}
        self.built = network.built  # nothing of its own to build

    def call(self, x, training=False):
        probabilities, embedding = self.network(x, training=training)
        return probabilities, embedding

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        probabilities, embedding = y_pred
        loss = super().compute_loss(x, y, probabilities, sample_weight, training=training)
        labels = ops.argmax(y, axis=-1) if len(y.shape) == 2 else ops.reshape(y, (-1,))
        aux = self.aux(embedding, labels, training=training)
        if self.log_trackers:
            aux, logs = aux
            for name, tracker in self.log_trackers.items():
                tracker.update_state(logs[name])
        self.aux_tracker.update_state(aux)
        return loss + ops.cast(self.weight, loss.dtype) * ops.cast(aux, loss.dtype)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred[0], sample_weight)
