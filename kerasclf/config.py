"""Experiment config: YAML -> typed, validated dataclasses, with `--set a.b=c` overrides.

Every section is a dataclass whose fields declare a type (the annotation) and a range or
choice list (`key(default, check)`; names of models, losses, optimizers, schedules and data
sets are looked up in kerasclf.registry). `load_config` checks everything once, here: an
unknown key names its section and the closest valid key, a wrong type names the expected
one, a value out of range says what it must be. The `model` section also takes the keyword
arguments of the chosen model builder, checked against the builder's signature.

Why dataclasses and not pydantic: the checks are a few declarative constraint objects per
field and the messages stay one paragraph with "did you mean"; pydantic would add a
dependency whose error texts must be rewritten into that form anyway.
"""

import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from kerasclf.errors import ConfigError, did_you_mean, first_line


# ---------------------------------------------------------------------------------------
# Constraints: every key declares its type (the annotation) and its range or choices
# (`key(default, check)`); `validate` applies them all, once, when a config is loaded.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """lo <= value <= hi (open ends with lo_open / hi_open); None is allowed when the type is Optional."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False

    def __call__(self, value):
        low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        high_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return None if low_ok and high_ok else self.describe()

    def describe(self):
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"


def _num(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class OneOf:
    values: tuple

    def __call__(self, value):
        # `is` for booleans: 1 == True in Python, but verbose=1 is not jit_compile=true
        if any(value is v or (type(value) is type(v) and value == v) for v in self.values):
            return None
        shown = ", ".join("true" if v is True else "false" if v is False else str(v) for v in self.values)
        return f"one of {shown}", did_you_mean(value, [str(v) for v in self.values])


@dataclass(frozen=True)
class Registered:
    """A name in one of kerasclf.registry's registries (loaded on first use)."""

    registry: str  # attribute name in kerasclf.registry: MODELS, LOSSES, OPTIMIZERS, SCHEDULES

    def __call__(self, value):
        import kerasclf.registry as registries

        registry = getattr(registries, self.registry)
        names = registry.names()
        if value in names:
            return None
        listing = f" (`kerasclf {registry.list_command}` lists them)" if registry.list_command else ""
        return f"a registered {registry.kind}: one of {', '.join(names)}{listing}", did_you_mean(value, names)


def key(default=None, check=None, factory=None):
    """A config field with its constraint: a callable value -> None when valid, else what the
    value must be (text, or (text, ' Did you mean "x"?'))."""
    if factory is not None:
        return field(default_factory=factory, metadata={"check": check})
    return field(default=default, metadata={"check": check})


def _trainable_spec(value):
    return None if _parse_trainable_or_none(value) else TRAINABLE_HELP


def _image_size(value):
    if len(value) == 2 and all(1 <= s <= 8192 for s in value):
        return None
    return "[height, width] with both from 1 to 8192"


def _run_name(value):
    return None if value.strip() and "/" not in value and value not in (".", "..") else "a non-empty name without '/'"


def _source(value):
    if value.startswith(FOLDER_PREFIX):
        return None if value[len(FOLDER_PREFIX):].strip() else "folder:/path/to/images (the path is missing)"
    problem = Registered("DATASETS")(value)
    return problem and (f"{problem[0]}, or {FOLDER_PREFIX}/path/to/your/images", problem[1])


def _classes(value):
    if isinstance(value, str) and value.startswith("first:"):
        count = value.split(":", 1)[1].strip()
        return None if count.isdigit() and int(count) >= 1 else "'first:N' with N >= 1, or a list of class names"
    names = value if isinstance(value, list) else [n for n in str(value).split(",") if n.strip()]
    if not names:
        return "class names or 'first:N' (leave it out for all classes)"
    if len(set(map(str, names))) != len(names):
        return "class names without repeats"
    return None


FOLDER_PREFIX = "folder:"
TRAINABLE_HELP = (
    "full (train everything), head (only the new classification head), last:N (the last N "
    "weight layers, N >= 1) or from:<layer_name> (that layer and everything after it)"
)
UNIT = Range(0, 1, hi_open=True)  # a fraction or probability that must leave something
POSITIVE = Range(0, None, lo_open=True)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)


@dataclass
class SamplerConfig:
    """Balanced P x K training batches (kerasclf.data.sampler); both null: plain shuffled batches."""

    classes_per_batch: Optional[int] = key(None, Range(2))  # P, at most the number of classes
    images_per_class: Optional[int] = key(None, Range(2))  # K; data.batch_size must equal P * K


@dataclass
class DataConfig:
    source: str = key("digits", _source)  # registered name, or folder:/path/to/root
    data_dir: Optional[str] = None  # download cache; default $KERASCLF_DATA or ~/.cache/kerasclf
    image_size: Optional[list[int]] = key(None, _image_size)  # [height, width]; None: the source's size (folders: median, see data/sizing.py)
    resize: str = key("crop", OneOf(("crop", "pad", "stretch")))  # how images are fitted to image_size (data/geometry.py)
    classes: Optional[Union[list[str], str]] = key(None, _classes)  # subset: names, or "first:N"
    batch_size: int = key(128, AT_LEAST_1)
    val_fraction: float = key(0.1, UNIT)  # carved from train (seeded, stratified) when no val split exists
    test_fraction: float = key(0.0, UNIT)  # carved from the pool when the source has no test split
    limit_per_class: Optional[int] = key(None, AT_LEAST_1)  # keep at most N train images per class (quick runs)
    # seed of the val/test carving and limit_per_class; null: the run's `seed`. Fix it to
    # compare training seeds on the same held-out images.
    split_seed: Optional[int] = key(None, Range(0, 2**32 - 1))
    shuffle_buffer: Optional[int] = key(None, AT_LEAST_1)  # None: the whole split
    # Image files (folders, cats-vs-dogs): decode them all into memory (false), stream them
    # from disk through tf.data every epoch (true, needs TensorFlow), or "auto": stream when
    # the decoded images would take more than memory_fraction of the available RAM.
    stream: Union[bool, str] = key("auto", OneOf(("auto", True, False)))
    memory_fraction: float = key(0.25, Range(0, 1, lo_open=True))  # share of available RAM that "auto" allows
    svhn_extra: bool = False  # svhn: add the 531,131 "extra" images to train (downloads 1.3 GB)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # P x K batches for metric learning


@dataclass
class AugmentConfig:
    """Training-split augmentation, built from XLA-safe layers inside the model."""

    flip: bool = False  # random horizontal flip
    flip_mode: str = key("random", OneOf(("random", "alternate")))  # alternate: airbench's, each image mirrored every other epoch
    crop_padding: int = key(0, Range(0, 64))  # pad by N pixels (reflect) then random crop back
    translate: float = key(0.0, Range(0, 1, hi_open=True))  # random translation, fraction of height/width
    rotation: float = key(0.0, Range(0, 180))  # max rotation in degrees
    zoom: float = key(0.0, Range(0, 1, hi_open=True))  # max zoom in/out, fraction
    cutout: int = key(0, AT_LEAST_0)  # side of a random square erased (pixels)
    color_jitter: float = key(0.0, Range(0, 1))  # brightness/contrast/saturation strength
    mixup: float = key(0.0, AT_LEAST_0)  # MixUp alpha (0 = off)
    cutmix: float = key(0.0, AT_LEAST_0)  # CutMix alpha (0 = off)


@dataclass
class ModelConfig:
    name: str = key("cnn", Registered("MODELS"))
    weights: Optional[str] = None  # "imagenet", none, or a local file (see _check_weights)
    trainable: str = key("full", _trainable_spec)  # full | head | last:N | from:<layer_name>
    head_dropout: float = key(0.0, UNIT)
    kwargs: dict = field(default_factory=dict)  # builder-specific keys, flattened in YAML


@dataclass
class OptimConfig:
    name: str = key("adam", Registered("OPTIMIZERS"))
    lr: float = key(1e-3, POSITIVE)
    momentum: float = key(0.0, UNIT)
    nesterov: bool = False
    beta_1: float = key(0.9, UNIT)
    beta_2: float = key(0.999, UNIT)
    weight_decay: float = key(0.0, AT_LEAST_0)
    clipnorm: Optional[float] = key(None, POSITIVE)
    schedule: str = key("constant", Registered("SCHEDULES"))
    warmup_epochs: float = key(0.0, AT_LEAST_0)
    step_epochs: int = key(30, AT_LEAST_1)  # step schedule: decay every N epochs
    gamma: float = key(0.1, Range(0, 1, lo_open=True))  # step schedule: decay factor
    min_lr_fraction: float = key(0.0, Range(0, 1))  # cosine/onecycle floor, as a fraction of lr
    # onecycle/constant warm-up start, fraction of lr; null: 0.04 (onecycle), 0 (constant); airbench94: 0.2
    start_lr_fraction: Optional[float] = key(None, Range(0, 1))
    # Lookahead (kerasclf.training.lookahead; airbench94: 5, 0.95**5, 3): every N steps the
    # weights are averaged into a slow copy and reset to it; 0 = off.
    lookahead_every: int = key(0, AT_LEAST_0)
    lookahead_decay: float = key(0.7737809375, Range(0, 1))  # the slow copy's final weight (0.95**5)
    lookahead_power: float = key(3.0, AT_LEAST_0)  # weight = decay * (step / total_steps) ** power
    # The batch size optim.lr was tuned for; set: lr x data.batch_size / this (the linear scaling
    # rule, Goyal et al. 2017). null: the rate is used as given, whatever the batch or device count.
    scale_lr_with_batch: Optional[int] = key(None, AT_LEAST_1)


@dataclass
class LossConfig:
    name: str = key("crossentropy", Registered("LOSSES"))
    label_smoothing: float = key(0.0, UNIT)
    focal_gamma: float = key(2.0, AT_LEAST_0)  # loss.name=focal: down-weighting of easy examples
    # Auxiliary metric-learning loss on the embedding (kerasclf.losses.composite): CE + aux_weight * aux
    aux: str = key("none", OneOf(("none", "triplet", "center")))
    aux_weight: float = key(1.0, AT_LEAST_0)
    margin: float = key(0.2, AT_LEAST_0)  # triplet margin (distances of unit vectors: at most 2, or 4 squared)
    mining: str = key("semi_hard", OneOf(("batch_all", "batch_hard", "semi_hard")))
    distance: str = key("euclidean", OneOf(("euclidean", "squared", "cosine")))
    center_alpha: float = key(0.5, Range(0, 1))  # rate of the centre update (Wen et al. 2016)


MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss", "test_accuracy", "test_loss")


@dataclass
class TrainConfig:
    epochs: int = key(10, AT_LEAST_1)
    log_dir: str = "logs"
    run_name: Optional[str] = key(None, _run_name)  # default <name or dataset-model>-<timestamp>
    monitor: str = key("val_accuracy", OneOf(MONITORS))
    early_stop_patience: Optional[int] = key(None, AT_LEAST_1)  # epochs without improvement; null: off
    eval_test_each_epoch: bool = False
    finetune_epochs: int = key(0, AT_LEAST_0)  # > 0: a second phase with model.trainable -> finetune_trainable
    finetune_trainable: str = key("full", _trainable_spec)
    finetune_lr_factor: float = key(0.1, POSITIVE)
    evaluate_after: bool = True  # write eval/test (or eval/val) reports when training ends
    jit_compile: Union[bool, str] = key("auto", OneOf((True, False, "auto")))
    steps_per_execution: int = key(1, AT_LEAST_1)
    data_on_device: Union[bool, str] = key("auto", OneOf((True, False, "auto")))  # auto: every backend but TensorFlow, when it fits
    mixed_precision: Optional[str] = key(None, OneOf(("mixed_float16", "mixed_bfloat16")))
    verbose: Union[int, str] = key("auto", OneOf(("auto", 0, 1, 2)))  # Keras fit verbosity
    gradient_flow_every: int = key(0, AT_LEAST_0)  # mean/max |gradient| per weight layer before training and every N epochs (0 = off)
    gradient_flow_batch: int = key(64, AT_LEAST_1)  # images in the fixed probe batch (a seeded sample of the training split)
    deterministic: bool = False  # true: same seed -> same metrics (op determinism, ordered tf.data; slower)
    # none | mirrored | multi-worker (TensorFlow) | data-parallel (JAX): kerasclf.training.distribute
    distribute: str = key("none", Registered("DISTRIBUTIONS"))
    hosts: list[str] = field(default_factory=list)  # data-parallel on several processes: host:port of each, process 0 first
    process_id: Optional[int] = key(None, AT_LEAST_0)  # this process's index in train.hosts (else $KERAS_DISTRIBUTION_PROCESS_ID or $SLURM_PROCID)
    cpu_devices: Optional[int] = key(None, AT_LEAST_1)  # split the CPU into N logical devices (distribution without accelerators)


@dataclass
class Config:
    name: Optional[str] = key(None, _run_name)  # the experiment's name: run directories are <name>-<timestamp>
    plugins: list[str] = field(default_factory=list)  # modules or .py files imported first: your own registry entries
    seed: int = key(0, Range(0, 2**32 - 1))
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Sections whose unknown keys are collected into a dict instead of rejected.
_OPEN_SECTIONS = {ModelConfig: "kwargs"}


def _type_name(tp):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return {type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value, tp, where):
    """Coerce a YAML/--set value to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("null", "none", "~") and type(None) in args:
            return None
        if (
            isinstance(value, str) and str in args and any(typing.get_origin(a) is list for a in args)
            and "," not in value and not value.lstrip().startswith("[")
        ):
            # list-or-str fields (data.classes): one plain word stays a string, so that
            # "first:3" keeps its meaning instead of becoming the one-name list ["first:3"].
            return value
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.startswith("[") else value.split(",")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be int, got {value!r}.")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be int, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be float, got {value!r}.")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be str, got {value!r}.")
    if tp is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{where} must be a mapping, got {value!r}.")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    raise TypeError(f"unsupported config type {tp} at {where}")


def _build(cls, raw, where):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping of keys to values, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    open_field = _OPEN_SECTIONS.get(cls)
    values, extra = {}, {}
    for key, value in raw.items():
        if key in hints and key != open_field:
            values[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
        elif open_field:
            extra[key] = value
        else:
            section = f"section '{where}'" if where else "the top level"
            valid = [n for n in names]
            raise ConfigError(
                f"Unknown config key '{key}' in {section}.{did_you_mean(key, valid)} "
                f"Valid keys there: {', '.join(valid)}."
            )
    if open_field:
        values[open_field] = extra
    return cls(**values)


def from_dict(raw):
    if isinstance(raw, dict):
        import_plugins(raw.get("plugins") or [])
    cfg = _build(Config, raw, "")
    validate(cfg)
    return cfg


def import_plugins(plugins):
    """Import the config's `plugins` (module names or .py files) so their registrations exist
    before names are checked: how your own losses, optimizers, schedules, report sections,
    models and data sets reach a run (README, "Extending kerasclf")."""
    import importlib
    import importlib.util
    import sys

    for plugin in [plugins] if isinstance(plugins, str) else plugins:
        plugin = str(plugin)
        try:
            if plugin.endswith(".py"):
                path = Path(plugin).expanduser().resolve()
                name = f"kerasclf_plugin_{path.stem}"
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or not path.is_file():
                    raise FileNotFoundError(f"no file {str(path)!r}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except Exception as exc:  # the plugin's own error, reported as the config's problem
            sys.modules.pop(f"kerasclf_plugin_{Path(plugin).stem}", None)
            raise ConfigError(
                f"plugins: could not import {plugin!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Give an importable module name or the path of a .py file."
            ) from None


def validate(cfg):
    """Every key's range or choices, then the rules that tie keys together.

    The one place where config values are checked: `--dry-run` and a real run load the
    config through here, so both refuse the same values before data is read or a run
    directory exists.
    """
    _check_fields(cfg, "")
    _normalise_weights(cfg.model)
    for rule in CROSS_CHECKS:
        rule(cfg)


def _check_fields(obj, prefix):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{prefix}{f.name}.")
        else:
            _check_field(f, value, f"{prefix}{f.name}")


def _check_field(f, value, where):
    check = f.metadata.get("check")
    if check is None or value is None:
        return
    problem = check(value)  # None, what the value must be, or (that, a "did you mean" hint)
    if problem:
        expected, hint = problem if isinstance(problem, tuple) else (problem, "")
        optional = " or null" if type(None) in typing.get_args(f.type) else ""
        raise ConfigError(f"{where} must be {expected}{optional}; got {value!r}.{hint}")


def _normalise_weights(model):
    """model.weights: None (random init), "imagenet", or an existing local file/folder (expanded)."""
    weights = model.weights
    if weights is None or str(weights).strip().lower() in ("", "none", "null", "random"):
        model.weights = None
    elif str(weights).strip().lower() == "imagenet":
        model.weights = "imagenet"
    else:
        path = Path(str(weights)).expanduser()
        if not path.exists():
            raise ConfigError(
                f"model.weights points to {str(weights)!r}, which does not exist. Pass 'imagenet' (pretrained "
                "backbones, downloaded once), 'none' (random initialisation), or an existing weights file "
                "(.weights.h5, a keras.applications .h5, a KerasHub preset folder, or a kerasclf .keras checkpoint)."
            )
        model.weights = str(path)


# ---------------------------------------------------------------------------------------
# Rules over several keys (each: cfg -> None or ConfigError)
# ---------------------------------------------------------------------------------------


def _fractions_leave_training_data(cfg):
    d = cfg.data
    if d.val_fraction + d.test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction must be below 1 (nothing would be left to train on); "
            f"got {d.val_fraction} + {d.test_fraction}."
        )


def _model_keys_and_weights(cfg):
    """Builder keys exist in the builder's signature; 'imagenet' only where pretrained weights exist."""
    from kerasclf.registry import MODELS

    entry = MODELS.get(cfg.model.name)
    params = inspect.signature(entry.factory).parameters
    accepted = [p for p in params if p not in ("x", "weights")]
    own = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "kwargs"]
    for name in cfg.model.kwargs:
        if name not in accepted:
            raise ConfigError(
                f"Unknown config key '{name}' in section 'model' for model '{cfg.model.name}'."
                f"{did_you_mean(name, accepted + own)} Valid keys there: {', '.join(own + accepted)}."
            )
    if cfg.model.weights == "imagenet" and not entry.meta.get("pretrained"):
        pretrained = [e.name for e in MODELS.entries() if e.meta.get("pretrained")]
        raise ConfigError(
            f"model.weights=imagenet: model '{cfg.model.name}' has no pretrained weights (it is trained from "
            f"scratch). Use model.weights=none, or a pretrained model: {', '.join(pretrained)}."
        )


def _schedule_options(cfg):
    o = cfg.optim
    if o.schedule == "step" and o.warmup_epochs:
        raise ConfigError("optim.schedule=step does not take optim.warmup_epochs; use cosine or onecycle, or set it to 0.")
    if o.warmup_epochs >= cfg.train.epochs:
        raise ConfigError(
            f"optim.warmup_epochs ({o.warmup_epochs}) must be shorter than train.epochs ({cfg.train.epochs})."
        )
    if o.lookahead_every and o.name not in ("sgd", "adam", "adamw"):
        raise ConfigError(f"optim.lookahead_every works with optim.name sgd, adam or adamw, not {o.name!r}.")
    if o.nesterov and not o.momentum:
        raise ConfigError("optim.nesterov=true needs optim.momentum > 0 (Nesterov is a kind of momentum).")


def _monitor_is_logged(cfg):
    if cfg.train.monitor.startswith("test_") and not cfg.train.eval_test_each_epoch:
        raise ConfigError(
            f"train.monitor={cfg.train.monitor!r} is logged only with train.eval_test_each_epoch=true; "
            "set that, or monitor val_accuracy / val_loss."
        )


def label_format(cfg):
    """The label format the run feeds: one-hot when smoothing or batch mixing needs it, or
    when the loss takes nothing else; class indices otherwise (cheaper)."""
    from kerasclf.registry import LOSSES

    accepted = LOSSES.get(cfg.loss.name).meta.get("labels", ("sparse",))
    wants_one_hot = cfg.loss.label_smoothing > 0 or cfg.augment.mixup > 0 or cfg.augment.cutmix > 0
    if wants_one_hot or "sparse" not in accepted:
        if "one_hot" not in accepted:
            raise ConfigError(
                f"loss.name={cfg.loss.name!r} takes class indices only, but label smoothing / MixUp / CutMix "
                "need one-hot targets: set loss.label_smoothing=0 and augment.mixup=augment.cutmix=0, "
                "or choose loss.name=crossentropy."
            )
        return "one_hot"
    return "sparse"


def _aux_without_mixing(cfg):
    if cfg.loss.aux != "none" and (cfg.augment.mixup or cfg.augment.cutmix):
        raise ConfigError(
            f"loss.aux={cfg.loss.aux} needs each image's own class, but MixUp/CutMix mix images of two classes: "
            "turn augment.mixup / augment.cutmix off, or set loss.aux=none."
        )


def _mixing_on_host(cfg):
    if cfg.train.data_on_device is True and (cfg.augment.mixup or cfg.augment.cutmix):
        raise ConfigError(
            "MixUp/CutMix run in the tf.data pipeline, not on the device-resident path: "
            "set train.data_on_device=false (or auto), or turn augment.mixup/cutmix off."
        )


PROCESS_ID_VARIABLES = ("KERAS_DISTRIBUTION_PROCESS_ID", "SLURM_PROCID")


def process_id(cfg):
    """This process's index among train.hosts: the config, else the launcher's variable."""
    import os

    if cfg.train.process_id is not None:
        return cfg.train.process_id
    for name in PROCESS_ID_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


def _distribution_fits(cfg):
    """train.distribute's engine runs on one backend; several hosts need data-parallel and an id."""
    from kerasclf.backend import keras_backend
    from kerasclf.registry import DISTRIBUTIONS

    name, backend = cfg.train.distribute, keras_backend()
    if cfg.train.hosts and name != "data-parallel":
        raise ConfigError(
            f"train.hosts starts a JAX multi-process run and needs train.distribute=data-parallel; got {name}. "
            "TensorFlow clusters are described by TF_CONFIG with train.distribute=multi-worker."
        )
    if len(cfg.train.hosts) > 1:
        pid = process_id(cfg)
        if pid is None or pid >= len(cfg.train.hosts):
            raise ConfigError(
                f"train.hosts lists {len(cfg.train.hosts)} processes, so each needs its index 0..{len(cfg.train.hosts) - 1}: "
                f"set train.process_id or one of {', '.join(PROCESS_ID_VARIABLES)}; got {pid}."
            )
    needs = DISTRIBUTIONS.get(name).meta.get("backend")
    if needs and needs != backend:
        raise ConfigError(
            f"train.distribute={name} runs on the {needs} backend, but Keras uses {backend}: "
            f"run with KERAS_BACKEND={needs}, or choose "
            f"{'data-parallel' if backend == 'jax' else 'mirrored or multi-worker'} for {backend}."
        )


CROSS_CHECKS = [
    _distribution_fits,
    _fractions_leave_training_data,
    _model_keys_and_weights,
    _schedule_options,
    _monitor_is_logged,
    label_format,  # raises when the loss cannot take the labels that smoothing/mixing need
    _mixing_on_host,
    _aux_without_mixing,
]


def parse_trainable(spec):
    """'last:3' -> ('last', 3); 'from:block5_conv1' -> ('from', 'block5_conv1'); ConfigError otherwise."""
    parsed = _parse_trainable_or_none(spec)
    if parsed is None:
        raise ConfigError(f"model.trainable = {spec!r} is not a freeze policy. Valid forms: {TRAINABLE_HELP}.")
    return parsed


def _parse_trainable_or_none(spec):
    text = "full" if spec is None else str(spec).strip()
    if text in ("full", "head"):
        return text, None
    match = re.fullmatch(r"last:\s*(\d+)", text)
    if match and int(match.group(1)) >= 1:
        return "last", int(match.group(1))
    match = re.fullmatch(r"from:\s*(\S.*)", text)
    if match:
        return "from", match.group(1).strip()
    return None


def to_dict(cfg):
    """Plain dict with the open sections flattened back, as a user would write it."""
    out = dataclasses.asdict(cfg)
    for cls, open_field in _OPEN_SECTIONS.items():
        for section in dataclasses.fields(Config):
            if section.type is cls or section.default_factory is cls:
                out[section.name].update(out[section.name].pop(open_field))
    return out


def parse_override(text):
    """'a.b=c' -> (['a', 'b'], parsed c). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (for example train.epochs=5), got {text!r}.")
    key, value = text.split("=", 1)
    path = key.strip().split(".")
    if not all(part.strip() for part in path):
        raise ConfigError(
            f"--set {text!r}: the key before '=' must be section.key with no empty part "
            "(for example train.epochs=5)."
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({first_line(exc)}); quote it.") from None
    return [p.strip() for p in path], parsed


def apply_overrides(raw, overrides):
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{part}' is not a section.")
            node = child
        node[path[-1]] = value
    return raw


def load_config(path=None, overrides=()):
    raw = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file {str(path)!r} does not exist. Configs live in configs/<dataset>/<name>.yaml.")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"Config file {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                f"position {exc.start}); save it as UTF-8 (most editors: 'Save with encoding')."
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"Config file {str(path)!r} must hold a mapping of sections, got {type(raw).__name__}.")
    raw = apply_overrides(raw, overrides)
    return from_dict(raw)


def dump_config(cfg, path):
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
