"""The config schema: one dataclass per section; every key has a type (its annotation), a
range or choice list and a help text (`key(default, check, help=...)`).

Names of models, losses, optimizers, schedules, auxiliary losses and data sets are looked
up in kerasclf.registry. docs/config.md is generated from this file (`kerasclf config-reference`).
"""

from dataclasses import dataclass
from typing import Optional, Union

from kerasclf.config.constraints import (
    AT_LEAST_0,
    AT_LEAST_1,
    POSITIVE,
    SEED,
    UNIT,
    OneOf,
    Range,
    Registered,
    classes,
    host_ports,
    image_size,
    key,
    run_name,
    section,
    source,
    trainable_spec,
)


@dataclass
class SamplerConfig:
    """Balanced P x K training batches (kerasclf.data.sampler); both null: plain shuffled batches."""

    classes_per_batch: Optional[int] = key(None, Range(2), help="P: classes per batch, at most the number of classes")
    images_per_class: Optional[int] = key(
        None, Range(2), help="K: images of each class per batch; data.batch_size must equal P * K"
    )


@dataclass
class DataConfig:
    """Where the images come from, which of them, at what size, in what batches."""

    source: str = key("digits", source, help="a registered data set (`kerasclf datasets`), or folder:/path/to/root")
    data_dir: Optional[str] = key(None, help="download cache; null: $KERASCLF_DATA or ~/.cache/kerasclf")
    image_size: Optional[list[int]] = key(
        None, image_size, help="[height, width]; null: the source's size (folders: the median, data/sizing.py)"
    )
    resize: str = key(
        "crop", OneOf(("crop", "pad", "stretch")), help="how images are fitted to image_size (data/geometry.py)"
    )
    classes: Optional[Union[list[str], str]] = key(
        None, classes, help="a subset of the classes: a list of names, or 'first:N'; null: all"
    )
    batch_size: int = key(128, AT_LEAST_1, help="images per training (and evaluation) batch")
    val_fraction: float = key(
        0.1, UNIT, help="share of train carved off as validation (seeded, stratified) when the source has no val split"
    )
    test_fraction: float = key(0.0, UNIT, help="share carved off as test when the source has no test split")
    limit_per_class: Optional[int] = key(
        None, AT_LEAST_1, help="keep at most N training images per class (quick runs); null: all"
    )
    split_seed: Optional[int] = key(
        None, SEED, help="seed of the val/test carving and limit_per_class; null: the run's seed. Fix it to "
        "compare training seeds on the same held-out images"
    )
    shuffle_buffer: Optional[int] = key(None, AT_LEAST_1, help="tf.data shuffle buffer in images; null: the whole split")
    stream: Union[bool, str] = key(
        "auto", OneOf(("auto", True, False)),
        help="image files (folders, cats-vs-dogs): decode them all into memory (false), stream them from disk "
        "every epoch (true, needs TensorFlow), or stream when the decoded images would take more than "
        "memory_fraction of the available RAM (auto)",
    )
    memory_fraction: float = key(
        0.25, Range(0, 1, lo_open=True), help="share of the available RAM that stream=auto allows in memory"
    )
    decoded_cache: bool = key(
        True, help="keep the decoded images of image files in <data cache>/decoded/ for the next run on the "
        "same, unchanged files (docs/resume.md)"
    )
    sampler: SamplerConfig = section(SamplerConfig, help="P x K batches for metric learning (loss.aux)")
    options: dict = key(
        factory=dict, help="options a data set declares (`kerasclf datasets`), written as keys of this "
        "section, e.g. svhn_extra: true"
    )


@dataclass
class AugmentConfig:
    """Training-split augmentation, built from XLA-safe layers inside the model."""

    flip: bool = key(False, help="random horizontal flip")
    flip_mode: str = key(
        "random", OneOf(("random", "alternate")),
        help="random, or alternate: airbench's, each image mirrored every other epoch",
    )
    crop_padding: int = key(0, Range(0, 64), help="pad by N pixels (reflect), then crop back at random")
    translate: float = key(0.0, Range(0, 1, hi_open=True), help="random translation, fraction of height/width")
    rotation: float = key(0.0, Range(0, 180), help="largest random rotation, degrees")
    zoom: float = key(0.0, Range(0, 1, hi_open=True), help="largest random zoom in/out, fraction")
    cutout: int = key(0, AT_LEAST_0, help="side of a random square erased, pixels (0: off)")
    color_jitter: float = key(0.0, Range(0, 1), help="brightness/contrast/saturation jitter strength")
    mixup: float = key(0.0, AT_LEAST_0, help="MixUp alpha (0: off)")
    cutmix: float = key(0.0, AT_LEAST_0, help="CutMix alpha (0: off)")


@dataclass
class ModelConfig:
    """The network; the chosen builder's own keyword arguments go into this section too."""

    name: str = key("cnn", Registered("MODELS"), help="the network: a builder by name")
    weights: Optional[str] = key(
        None, help="imagenet (pretrained backbones), none (random initialisation), or a local weights file "
        "(.weights.h5, a keras.applications .h5, a KerasHub preset folder, a kerasclf .keras checkpoint)"
    )
    trainable: str = key("full", trainable_spec, help="what trains: full | head | last:N | from:<layer_name>")
    head_dropout: float = key(0.0, UNIT, help="dropout before the classification head")
    kwargs: dict = key(
        factory=dict, help="the model builder's own keywords, written as keys of this section (`kerasclf models`)"
    )


@dataclass
class OptimConfig:
    """Optimizer, learning-rate schedule and Lookahead."""

    name: str = key("adam", Registered("OPTIMIZERS"), help="the optimizer")
    lr: float = key(1e-3, POSITIVE, help="(peak) learning rate")
    momentum: float = key(0.0, UNIT, help="SGD momentum")
    nesterov: bool = key(False, help="Nesterov momentum (needs momentum > 0)")
    beta_1: float = key(0.9, UNIT, help="Adam/AdamW first-moment decay")
    beta_2: float = key(0.999, UNIT, help="Adam/AdamW second-moment decay")
    weight_decay: float = key(0.0, AT_LEAST_0, help="weight decay (decoupled for adamw)")
    clipnorm: Optional[float] = key(None, POSITIVE, help="clip each gradient to this norm; null: off")
    schedule: str = key("constant", Registered("SCHEDULES"), help="the learning-rate schedule")
    warmup_epochs: float = key(0.0, AT_LEAST_0, help="linear warm-up length, epochs (not with schedule=step)")
    step_epochs: int = key(30, AT_LEAST_1, help="step schedule: decay every N epochs")
    gamma: float = key(0.1, Range(0, 1, lo_open=True), help="step schedule: decay factor")
    min_lr_fraction: float = key(0.0, Range(0, 1), help="cosine/onecycle floor, as a fraction of lr")
    start_lr_fraction: Optional[float] = key(
        None, Range(0, 1),
        help="onecycle/constant warm-up start, fraction of lr; null: 0.04 (onecycle), 0 (constant); airbench94: 0.2",
    )
    lookahead_every: int = key(
        0, AT_LEAST_0, help="Lookahead (airbench94: 5): every N steps the weights are averaged into a slow copy "
        "and reset to it; 0: off"
    )
    lookahead_decay: float = key(0.7737809375, Range(0, 1), help="Lookahead: the slow copy's final weight (0.95**5)")
    lookahead_power: float = key(3.0, AT_LEAST_0, help="Lookahead: weight = decay * (step / total_steps) ** power")
    scale_lr_with_batch: Optional[int] = key(
        None, AT_LEAST_1, help="the batch size optim.lr was tuned for; set: the rate used is lr x data.batch_size / "
        "this (the linear scaling rule, Goyal et al. 2017); null: lr as given, whatever the batch or device count"
    )


@dataclass
class LossConfig:
    """The classification loss and an optional auxiliary metric-learning loss."""

    name: str = key("crossentropy", Registered("LOSSES"), help="the classification loss")
    label_smoothing: float = key(0.0, UNIT, help="label smoothing of the one-hot targets")
    focal_gamma: float = key(2.0, AT_LEAST_0, help="loss.name=focal: down-weighting of easy examples")
    aux: str = key(
        "none", Registered("AUX_LOSSES", also=("none",)),
        help="auxiliary loss on the embedding (the input of the classification head), trained as "
        "loss + aux_weight * aux",
    )
    aux_weight: float = key(1.0, AT_LEAST_0, help="weight of the auxiliary loss")
    margin: float = key(
        0.2, AT_LEAST_0, help="triplet margin (distances of unit vectors: at most 2, or 4 squared)"
    )
    mining: str = key(
        "semi_hard", OneOf(("batch_all", "batch_hard", "semi_hard")), help="triplet mining within a batch"
    )
    distance: str = key("euclidean", OneOf(("euclidean", "squared", "cosine")), help="triplet distance")
    center_alpha: float = key(0.5, Range(0, 1), help="rate of the centre update (Wen et al. 2016)")


MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss", "test_accuracy", "test_loss")


@dataclass
class TrainConfig:
    """The fit loop: epochs, checkpoints, fine-tuning, compilation, diagnostics."""

    epochs: int = key(10, AT_LEAST_1, help="training epochs (the first phase when finetune_epochs > 0)")
    log_dir: str = key("logs", help="runs land in <log_dir>/<run_name>/")
    run_name: Optional[str] = key(None, run_name, help="the run directory's name; null: <name or dataset-model>-<timestamp>")
    monitor: str = key("val_accuracy", OneOf(MONITORS), help="metric that picks best.keras (and early stopping)")
    early_stop_patience: Optional[int] = key(None, AT_LEAST_1, help="epochs without improvement before stopping; null: off")
    eval_test_each_epoch: bool = key(False, help="also evaluate the test split every epoch (test_* in history)")
    finetune_epochs: int = key(0, AT_LEAST_0, help="> 0: a second phase with model.trainable -> finetune_trainable")
    finetune_trainable: str = key("full", trainable_spec, help="what trains in the second phase")
    finetune_lr_factor: float = key(0.1, POSITIVE, help="the second phase's learning rate, as a factor of optim.lr")
    evaluate_after: bool = key(True, help="write eval/test (or eval/val) reports when training ends")
    jit_compile: Union[bool, str] = key("auto", OneOf((True, False, "auto")), help="XLA compilation of the train step")
    steps_per_execution: int = key(1, AT_LEAST_1, help="train steps per compiled call")
    data_on_device: Union[bool, str] = key(
        "auto", OneOf((True, False, "auto")),
        help="keep the data on the accelerator; auto: every backend but TensorFlow, when it fits",
    )
    mixed_precision: Optional[str] = key(
        None, OneOf(("mixed_float16", "mixed_bfloat16")), help="Keras mixed-precision policy; null: float32"
    )
    verbose: Union[int, str] = key("auto", OneOf(("auto", 0, 1, 2)), help="Keras fit verbosity")
    gradient_flow_every: int = key(
        0, AT_LEAST_0, help="mean/max |gradient| per weight layer before training and every N epochs (0: off)"
    )
    gradient_flow_batch: int = key(
        64, AT_LEAST_1, help="images in the fixed gradient-flow probe batch (a seeded sample of the training split)"
    )
    deterministic: bool = key(
        False, help="same seed -> same metrics (op determinism, ordered tf.data; slower)"
    )
    distribute: str = key(
        "none", Registered("DISTRIBUTIONS"),
        help="none | mirrored | multi-worker (TensorFlow) | data-parallel (JAX): one run on N devices / hosts; "
        "data.batch_size is the global batch (docs/distributed.md)",
    )
    hosts: list[str] = key(
        factory=list, check=host_ports, help="data-parallel on several processes: host:port of each, process 0 (the coordinator) first"
    )
    process_id: Optional[int] = key(
        None, AT_LEAST_0,
        help="this process's index in train.hosts; null: $KERAS_DISTRIBUTION_PROCESS_ID or $SLURM_PROCID",
    )
    cpu_devices: Optional[int] = key(
        None, AT_LEAST_1, help="split the CPU into N logical devices (distribution without accelerators; no speed-up)"
    )


@dataclass
class EvalConfig:
    """How predictions become decisions in the reports."""

    threshold: float = key(
        0.5, Range(0, 1, lo_open=True, hi_open=True),
        help="multilabel data: a class is predicted when its probability is at least this",
    )


@dataclass
class Config:
    """One experiment."""

    name: Optional[str] = key(None, run_name, help="the experiment's name: run directories are <name>-<timestamp>")
    plugins: list[str] = key(
        factory=list, help="modules or .py files imported first: your own registry entries (docs/extending.md)"
    )
    seed: int = key(0, SEED, help="seed of initialisation, shuffling, augmentation and (by default) the splits")
    data: DataConfig = section(DataConfig, help="the data set and its batches")
    augment: AugmentConfig = section(AugmentConfig, help="training augmentation")
    model: ModelConfig = section(ModelConfig, help="the network")
    optim: OptimConfig = section(OptimConfig, help="optimizer and schedule")
    loss: LossConfig = section(LossConfig, help="the loss")
    train: TrainConfig = section(TrainConfig, help="the fit loop")
    eval: EvalConfig = section(EvalConfig, help="evaluation reports (multi-label threshold)")


# Sections whose unknown keys are collected into a dict instead of rejected (then checked
# against the model builder's signature / the data set's declared options).
OPEN_SECTIONS = {ModelConfig: "kwargs", DataConfig: "options"}
