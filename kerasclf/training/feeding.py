"""How batches reach the model: from the host (tf.data / numpy) or from a device-resident table.

Both feeders give `fit`/`evaluate` keyword arguments and the model to fit; the resident one
wraps the model so it takes indices (see resident.py).
"""

import keras

from kerasclf.errors import ConfigError

from kerasclf.data.pipeline import fit_inputs, one_hot

# Above this many bytes of uint8 images, "auto" keeps data on the host.
RESIDENT_LIMIT_BYTES = 4 * 2**30


class HostFeeder:
    resident = False
    checkpoint = keras.callbacks.ModelCheckpoint

    def __init__(self, data, batch_size, one_hot_labels, seed, mixing, shuffle_buffer, sampler=None):
        self.data, self.batch_size, self.one_hot = data, batch_size, one_hot_labels
        self.seed, self.mixing, self.shuffle_buffer = seed, mixing, shuffle_buffer
        self.sampler = sampler  # P x K training batches (kerasclf.data.sampler) or None

    def model_to_fit(self, model):
        return model

    def inputs(self, split_name, training=False):
        return fit_inputs(
            self.data.split(split_name), self.batch_size, training=training,
            num_classes=self.data.info.num_classes, one_hot_labels=self.one_hot, seed=self.seed,
            mixing=self.mixing if training else None, shuffle_buffer=self.shuffle_buffer,
            sampler=self.sampler if training else None,
        )


class ResidentFeeder:
    resident = True

    def __init__(self, data, batch_size, one_hot_labels, sampler=None):
        from kerasclf.training.resident import InnerModelCheckpoint, ResidentData

        n = data.info.num_classes
        self.checkpoint = InnerModelCheckpoint
        self.batch_size = batch_size
        self.sampler = sampler
        self.store = ResidentData(data, lambda s: one_hot(s.y, n) if one_hot_labels else s.y)

    def model_to_fit(self, model):
        return self.store.wrap(model)

    def inputs(self, split_name, training=False):
        return self.store.inputs(split_name, self.batch_size, training, self.sampler if training else None)


def choose_feeder(cfg, data, one_hot_labels, mixing):
    from kerasclf.backend import have_tensorflow
    from kerasclf.training.resident import table_bytes

    setting = cfg.train.data_on_device  # true | false | auto, and true without mixing (kerasclf.config)
    if setting is True and data.streamed:
        raise ConfigError(
            "train.data_on_device=true copies every image to the accelerator, but the data is streamed from "
            "disk (data.stream): set data.stream=false to decode it into memory, or train.data_on_device=auto."
        )
    if setting == "auto":
        setting = (
            mixing is None
            and not data.streamed
            and (keras.backend.backend() != "tensorflow" or not have_tensorflow())
            and table_bytes(data) <= RESIDENT_LIMIT_BYTES
        )
    from kerasclf.data.sampler import build_sampler

    sampler = build_sampler(cfg.data, data.train.y, cfg.seed)
    if setting:
        return ResidentFeeder(data, cfg.data.batch_size, one_hot_labels, sampler)
    return HostFeeder(data, cfg.data.batch_size, one_hot_labels, cfg.seed, mixing, cfg.data.shuffle_buffer, sampler)
