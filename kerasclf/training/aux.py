"""Training with an auxiliary loss (loss.aux): which model is fitted, which is saved, and
the state carried over from a checkpoint. The objective itself is kerasclf.losses.composite.

What is saved (best.keras, last.keras) is the plain classifier, images in and
probabilities out; an auxiliary loss registered with `holder=True` (center loss) adds its
holder layer to it, so a checkpoint carries its state: `model.weights: <run>/best.keras`
restores it when the classes are the same.
"""

from pathlib import Path

import keras

from kerasclf.checkpoint import load_checkpoint
from kerasclf.data.sampler import warn_if_few_positives
from kerasclf.losses.composite import AuxLossModel
from kerasclf.models import embedding_tensor
from kerasclf.registry import AUX_LOSSES


def aux_name(cfg) -> str:
    return getattr(cfg.loss, "aux", "none") or "none"


class AuxTraining:
    """What run.train needs: the model to save, the model to fit, and the checkpoint class."""

    def __init__(self, cfg, classifier, num_classes):
        self.name = aux_name(cfg)
        entry = AUX_LOSSES.get(self.name)
        self.entry = entry
        embedding = embedding_tensor(classifier)
        made = entry.factory(cfg.loss, num_classes)
        if entry.meta.get("holder"):
            self.holder, aux = made, made.aux
            self.saved = keras.Model(classifier.input, made([classifier.output, embedding]), name=classifier.name)
        else:
            self.holder, aux = None, made
            self.saved = classifier
        self.features = keras.Model(self.saved.input, [self.saved.output, embedding], name=f"{classifier.name}_features")
        self.aux, self.weight = aux, cfg.loss.aux_weight

    def fit_model(self, wrap=None):
        """The model to compile and fit; `wrap` (the resident feeder's) turns the features
        network into one that takes indices."""
        network = wrap(self.features) if wrap is not None else self.features
        return AuxLossModel(network, self.aux, self.weight, logs=self.entry.meta.get("logs", ()))

    def checkpoint_class(self):
        saved = self.saved

        class SaveClassifier(keras.callbacks.ModelCheckpoint):
            """Saves the plain classifier (with its auxiliary loss's holder), not the training wrapper."""

            def set_model(self, model):
                super().set_model(saved)

        return SaveClassifier

    def restore_state(self, path, class_names) -> bool:
        """The holder's state (center loss: the centres) from a kerasclf checkpoint of the same
        classes and shapes (model.weights: run/best.keras); False when there is none to take."""
        if self.holder is None:
            return False
        source, labels = load_checkpoint(path)
        if list(labels.class_names) != list(class_names):
            return False
        shapes = [tuple(w.shape) for w in self.holder.weights]
        for layer in source.layers:
            if type(layer) is type(self.holder) and [tuple(w.shape) for w in layer.weights] == shapes:
                self.holder.set_weights(layer.get_weights())
                return True
        return False


def setup(cfg, classifier, data):
    """An AuxTraining for cfg.loss.aux, or None for aux=none (kerasclf.config checked the name)."""
    if aux_name(cfg) == "none":
        return None
    training = AuxTraining(cfg, classifier, data.info.num_classes)
    weights = cfg.model.weights
    if isinstance(weights, str) and weights.endswith(".keras") and Path(weights).expanduser().is_file():
        training.restore_state(Path(weights).expanduser(), data.info.class_names)
    if training.entry.meta.get("needs_positives") and getattr(cfg.data.sampler, "classes_per_batch", None) is None:
        warn_if_few_positives(data.train.y, cfg.data.batch_size)
    return training
