"""How batches reach the model: from the host (tf.data / numpy) or from a device-resident table.

Both feeders give `fit`/`evaluate` keyword arguments and the model to fit; the resident one
wraps the model so it takes indices (see resident.py).
"""

import math

import keras

from kerasclf.backend import have_tensorflow
from kerasclf.config import data_task
from kerasclf.data.budget import RESIDENT_LIMIT_BYTES, Training
from kerasclf.data.order import EpochOrder
from kerasclf.data.pipeline import fit_inputs, one_hot
from kerasclf.data.sampler import build_sampler
from kerasclf.errors import ConfigError
from kerasclf.runs.artefacts import AtomicModelCheckpoint
from kerasclf.training.callbacks import EpochClock
from kerasclf.training.gradient_flow import check_backend
from kerasclf.training.resident import InnerModelCheckpoint, ResidentData, device_is_host, table_bytes


class _EpochOrdered:
    """Training batches in an order keyed by (seed, epoch) (data/order.py), so a resumed run
    replays them. P x K batches (data.sampler) draw their own order instead."""

    def _order(self, split_name, buffer=None):
        if self.sampler is not None:
            return None
        order = EpochOrder(len(self.data.split(split_name)), self.seed, buffer)
        self.orders.append(order)
        return order

    def callbacks(self):
        """Callbacks the feeding needs in `fit`: EpochClock tells the orders which epoch runs."""
        return [EpochClock(self.orders)]

    def seed_generators(self):
        """RNG state outside the model (the MixUp/CutMix generator) that the resume state keeps."""
        generator = getattr(getattr(self, "mixing", None), "seed_generator", None)
        return [] if generator is None else [generator]


class HostFeeder(_EpochOrdered):
    resident = False
    checkpoint = AtomicModelCheckpoint

    def __init__(self, data, batch_size, one_hot_labels, seed, mixing, shuffle_buffer, sampler=None,
                 deterministic=False, static_batches=False):
        self.data, self.batch_size, self.one_hot = data, batch_size, one_hot_labels
        self.static_batches = static_batches  # a multi-process run: every batch full (data.pipeline.fit_inputs)
        self.seed, self.mixing, self.shuffle_buffer = seed, mixing, shuffle_buffer
        self.sampler = sampler  # P x K training batches (kerasclf.data.sampler) or None
        self.deterministic, self.orders = deterministic, []

    def model_to_fit(self, model):
        return model

    def inputs(self, split_name, training=False):
        return fit_inputs(
            self.data.split(split_name), self.batch_size, training=training,
            num_classes=self.data.info.num_classes, one_hot_labels=self.one_hot, seed=self.seed,
            mixing=self.mixing if training else None, shuffle_buffer=self.shuffle_buffer,
            sampler=self.sampler if training else None,
            order=self._order(split_name, self.shuffle_buffer) if training else None, deterministic=self.deterministic,
            static_batches=self.static_batches,
        )

    def steps_per_epoch(self):
        n = len(self.data.train)
        return n // self.batch_size if self.static_batches else math.ceil(n / self.batch_size)

    def train_images_dropped_per_epoch(self):
        return len(self.data.train) % self.batch_size if self.static_batches else 0


class ResidentFeeder(_EpochOrdered):
    resident = True

    def __init__(self, data, batch_size, one_hot_labels, seed=0, sampler=None):
        n = data.info.num_classes
        self.checkpoint = InnerModelCheckpoint
        self.batch_size = batch_size
        self.sampler = sampler
        self.data, self.seed, self.orders = data, seed, []
        self.store = ResidentData(data, lambda s: one_hot(s.y, n) if one_hot_labels else s.y)

    def model_to_fit(self, model):
        return self.store.wrap(model)

    def steps_per_epoch(self):
        return math.ceil(len(self.data.train) / self.batch_size)

    def inputs(self, split_name, training=False):
        return self.store.inputs(
            split_name, self.batch_size, training, self.sampler if training else None,
            order=self._order(split_name) if training else None,
        )


def preflight(cfg, data):
    """The refusals of training's set-up that need the built data (or the Keras backend) but not
    a feeder, a compiled model or a run directory: run by assemble.prepare, so `--dry-run`
    refuses what the real run would refuse after data loading."""
    if cfg.train.data_on_device is True and data.streamed:
        raise ConfigError(
            "train.data_on_device=true copies every image to the accelerator, but the data is streamed from "
            "disk (data.stream): set data.stream=false to decode it into memory, or train.data_on_device=auto."
        )
    if data.streamed and (cfg.augment.mixup or cfg.augment.cutmix) and keras.backend.backend() != "tensorflow":
        raise ConfigError(
            "MixUp/CutMix on streamed data (data.stream) run in tf.data and need the TensorFlow backend: "
            "use KERAS_BACKEND=tensorflow, set data.stream=false, or turn augment.mixup/cutmix off."
        )
    if len(cfg.train.hosts) > 1 and data.streamed:
        raise ConfigError(
            "A multi-process run (train.hosts) feeds every process full batches of the in-memory splits, but the "
            "data is streamed from disk (data.stream): set data.stream=false, or train on one host."
        )
    if cfg.train.gradient_flow_every:
        check_backend()
    build_sampler(cfg.data, data.train.y, cfg.seed)  # P larger than the training split's class count


def memory_intent(cfg):
    """What choose_feeder will hold, known before the data exist (for the memory budget,
    kerasclf.data.budget): resident True / False / "auto" (resident up to RESIDENT_LIMIT_BYTES),
    and whether the resident table's "device" is host memory."""
    setting = cfg.train.data_on_device
    mixing = bool(cfg.augment.mixup or cfg.augment.cutmix)
    if setting == "auto" and (mixing or (keras.backend.backend() == "tensorflow" and have_tensorflow())):
        setting = False
    if cfg.data.stream is True or data_task(cfg.data) == "segmentation":
        setting = False
    return Training(resident=setting, on_host=device_is_host() if setting else True)


def choose_feeder(cfg, data, one_hot_labels, mixing, static_batches=False):
    if data.info.task == "segmentation":  # (image, mask) pairs from the host, augmented together in the step
        from kerasclf.training.segmentation import SegmentationFeeder  # imports this module: here, not at the top

        return SegmentationFeeder(data, cfg.data.batch_size, cfg.seed, cfg.data.shuffle_buffer, cfg.augment,
                                  deterministic=cfg.train.deterministic)
    preflight(cfg, data)  # prepare() ran it already; cheap, and this function may be called on its own
    setting = cfg.train.data_on_device  # true | false | auto, and true without mixing (kerasclf.config)
    if setting == "auto":
        setting = (
            mixing is None
            and not data.streamed
            and (keras.backend.backend() != "tensorflow" or not have_tensorflow())
            and table_bytes(data) <= RESIDENT_LIMIT_BYTES
            and not getattr(data, "resident_ruled_out", False)  # the memory budget found no room for it (kerasclf.data.budget)
        )
    sampler = build_sampler(cfg.data, data.train.y, cfg.seed)
    if setting:
        return ResidentFeeder(data, cfg.data.batch_size, one_hot_labels, cfg.seed, sampler)
    return HostFeeder(
        data, cfg.data.batch_size, one_hot_labels, cfg.seed, mixing, cfg.data.shuffle_buffer, sampler,
        deterministic=cfg.train.deterministic, static_batches=static_batches,
    )
