"""Model assembly for a run: config -> data -> model (weights, data-derived layers, freezing).

What `--dry-run` prints and what `train` starts from; nothing here trains.
"""

from dataclasses import dataclass

import keras

from kerasclf.checkpoint import transfer_from_checkpoint
from kerasclf.config import Config
from kerasclf.config.checks import known_device_count
from kerasclf.console import Stage, import_tensorflow_quietly
from kerasclf.data import build_dataset
from kerasclf.data.provenance import resume_dataset
from kerasclf.models import build_model, is_checkpoint
from kerasclf.models.batchnorm import check_batch_of_one
from kerasclf.models.data_init import init_from_data
from kerasclf.models.freeze import apply_trainable
from kerasclf.registry import MODELS
from kerasclf.runs.writable import check_free_space, check_writable
from kerasclf.training.determinism import enable_determinism
from kerasclf.training.distribute import check_split_sizes
from kerasclf.training.feeding import memory_intent, preflight


@dataclass
class Prepared:
    cfg: object
    data: object
    model: object
    summary: dict


def setup_backend(cfg):
    if cfg.train.deterministic:  # first: XLA reads its flags when the backend starts
        enable_determinism()
    keras.utils.set_random_seed(cfg.seed)
    # Always set: the policy is process-wide, and a run after a mixed-precision run in the
    # same process must not inherit it.
    keras.mixed_precision.set_global_policy(cfg.train.mixed_precision or "float32")


def prepare(cfg: Config, recorded_splits: dict | None = None) -> Prepared:
    """Build data and model (no training). `recorded_splits` (a resumed run's splits.json):
    train, validate and test on exactly those images (kerasclf.data.provenance.resume_dataset)."""

    check_writable(cfg.train.log_dir, "train.log_dir", "Set train.log_dir (--set train.log_dir=DIR) to a folder you can write to.")
    check_free_space(cfg.train.log_dir, "train.log_dir")  # a full disk: said now, not after data and model are built
    import_tensorflow_quietly()  # before Keras imports it: start-up lines once, filtered
    setup_backend(cfg)
    # the memory budget counts the resident table too, before anything is decoded
    data = build_dataset(cfg.data, cfg.seed, training=memory_intent(cfg))
    if recorded_splits is not None:
        data = resume_dataset(data, recorded_splits, cfg.data.split_seed if cfg.data.split_seed is not None else cfg.seed)
    preflight(cfg, data)  # what the feeding would refuse after data loading, refused here for --dry-run too
    devices = known_device_count(cfg)  # None: the engine counts accelerators, and run.train checks then
    if devices:
        check_split_sizes(data, cfg.train.distribute, devices, multi_process=len(cfg.train.hosts) > 1)
    with Stage(f"building the model {cfg.model.name}"):
        model = build_model(cfg, data.info)
    if is_checkpoint(cfg.model.weights):
        transfer_from_checkpoint(model, cfg.model.weights)
    _init_from_data(cfg, model, data)
    trainable = apply_trainable(model, cfg.model.trainable)
    check_batch_of_one(model, cfg.data.batch_size, devices)  # frozen BatchNorm layers are fine
    summary = {
        "name": cfg.name,
        "dataset": cfg.data.source,
        "task": data.info.task,
        "class_names": data.info.class_names,
        "num_classes": data.info.num_classes,
        "image_size": list(data.info.image_size),
        **data.sizes(),
        **data.notes,  # "streamed", and source facts such as the list of skipped files
        "model": cfg.model.name,
        "loss": cfg.loss.name,
        **trainable,
    }
    return Prepared(cfg, data, model, summary)


def _init_from_data(cfg, model, data):
    """Models registered with needs_data (airbench's patch whitening) set layers from train images.

    Skipped when weights come from a file: the saved, data-derived values are already loaded.
    """
    if MODELS.get(cfg.model.name).meta.get("needs_data") and cfg.model.weights is None:
        init_from_data(model, data.train.x, seed=cfg.seed)
