"""Experiment config: YAML -> typed, validated dataclasses, with `--set a.b=c` overrides.

Every section is a dataclass; an unknown key names its section and the closest valid key,
a wrong type names the expected one. The `model` section also takes the keyword arguments
of the chosen model builder (checked against its signature when the model is built).
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from kerasclf.errors import ConfigError, did_you_mean


@dataclass
class DataConfig:
    source: str = "digits"  # registered name, or folder:/path/to/root
    data_dir: Optional[str] = None  # download cache; default $KERASCLF_DATA or ~/.cache/kerasclf
    image_size: Optional[list[int]] = None  # [height, width]; None keeps the source's size
    classes: Optional[Union[list[str], str]] = None  # subset: names, or "first:N"
    batch_size: int = 128
    val_fraction: float = 0.1  # carved from train (seeded, stratified) when no val split exists
    test_fraction: float = 0.0  # carved from the pool when the source has no test split
    limit_per_class: Optional[int] = None  # keep at most N train images per class (quick runs)
    # int >= 0 or None: seed of the val/test carving and limit_per_class; None uses the run's
    # `seed`. Fix it to compare training seeds on the same held-out images.
    split_seed: Optional[int] = None
    shuffle_buffer: Optional[int] = None  # None: the whole split
    cache: bool = True  # keep decoded images in memory after the first epoch


@dataclass
class AugmentConfig:
    """Training-split augmentation, built from XLA-safe layers inside the model."""

    flip: bool = False  # random horizontal flip
    flip_mode: str = "random"  # random | alternate (airbench: each image mirrored every other epoch)
    crop_padding: int = 0  # pad by N pixels (reflect) then random crop back
    translate: float = 0.0  # random translation, fraction of height/width
    rotation: float = 0.0  # max rotation in degrees
    zoom: float = 0.0  # max zoom in/out, fraction
    cutout: int = 0  # side of a random square erased (pixels)
    color_jitter: float = 0.0  # brightness/contrast/saturation strength
    mixup: float = 0.0  # MixUp alpha (0 = off)
    cutmix: float = 0.0  # CutMix alpha (0 = off)


@dataclass
class ModelConfig:
    name: str = "cnn"
    weights: Optional[str] = None  # "imagenet", "none", or a local file path
    trainable: str = "full"  # full | head | last:N | from:<layer_name>
    head_dropout: float = 0.0
    kwargs: dict = field(default_factory=dict)  # builder-specific keys, flattened in YAML


@dataclass
class OptimConfig:
    name: str = "adam"  # sgd | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 0.0
    clipnorm: Optional[float] = None
    schedule: str = "constant"  # constant | step | cosine | onecycle
    warmup_epochs: float = 0.0
    step_epochs: int = 30  # step schedule: decay every N epochs
    gamma: float = 0.1  # step schedule: decay factor
    min_lr_fraction: float = 0.0  # cosine/onecycle floor, as a fraction of lr
    start_lr_fraction: Optional[float] = None  # onecycle/constant warm-up start, fraction of lr in [0, 1]; None: 0.04 (onecycle), 0 (constant); airbench94: 0.2
    # Lookahead (kerasclf.training.lookahead; airbench94: 5, 0.95**5, 3): every N steps the
    # weights are averaged into a slow copy and reset to it. int >= 0, 0 = off.
    lookahead_every: int = 0
    lookahead_decay: float = 0.7737809375  # in [0, 1]: the slow copy's final weight (0.95**5)
    lookahead_power: float = 3.0  # >= 0: weight = decay * (step / total_steps) ** power


@dataclass
class LossConfig:
    name: str = "crossentropy"
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 10
    log_dir: str = "logs"
    run_name: Optional[str] = None  # default <dataset>-<model>-<timestamp>
    monitor: str = "val_accuracy"
    early_stop_patience: Optional[int] = None
    eval_test_each_epoch: bool = False
    finetune_epochs: int = 0  # > 0: a second phase with model.trainable -> finetune_trainable
    finetune_trainable: str = "full"
    finetune_lr_factor: float = 0.1
    evaluate_after: bool = True  # write eval/test (or eval/val) reports when training ends
    jit_compile: Union[bool, str] = "auto"
    steps_per_execution: int = 1
    data_on_device: Union[bool, str] = "auto"  # auto: on every backend but TensorFlow, when it fits
    mixed_precision: Optional[str] = None  # None | mixed_float16 | mixed_bfloat16
    verbose: Union[int, str] = "auto"


@dataclass
class Config:
    name: Optional[str] = None
    seed: int = 0
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
    cfg = _build(Config, raw, "")
    _check_ranges(cfg)
    return cfg


def _check_ranges(cfg):
    """Values of the right type but outside what they can mean (caught here, not deep in Keras)."""

    def need(ok, key, value, expected):
        if not ok:
            raise ConfigError(f"{key} must be {expected}, got {value!r}.")

    d, t = cfg.data, cfg.train
    need(0 <= cfg.seed < 2**32, "seed", cfg.seed, "from 0 to 2**32 - 1")
    need(d.batch_size >= 1, "data.batch_size", d.batch_size, ">= 1")
    need(
        d.image_size is None or (len(d.image_size) == 2 and min(d.image_size) >= 1),
        "data.image_size", d.image_size, "[height, width] with both >= 1, or null",
    )
    need(d.limit_per_class is None or d.limit_per_class >= 1, "data.limit_per_class", d.limit_per_class, ">= 1 or null")
    for key in ("val_fraction", "test_fraction"):
        value = getattr(d, key)
        need(0 <= value < 1, f"data.{key}", value, "in [0, 1)")
    need(t.epochs >= 1, "train.epochs", t.epochs, ">= 1 (use `kerasclf train --dry-run` to build without training)")
    need(t.steps_per_execution >= 1, "train.steps_per_execution", t.steps_per_execution, ">= 1")
    need(t.finetune_epochs >= 0, "train.finetune_epochs", t.finetune_epochs, ">= 0")
    need(t.finetune_lr_factor > 0, "train.finetune_lr_factor", t.finetune_lr_factor, "> 0")


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
    parsed = yaml.safe_load(value) if value.strip() else ""
    return [p for p in key.strip().split(".") if p], parsed


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
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"Config file {str(path)!r} must hold a mapping of sections, got {type(raw).__name__}.")
    raw = apply_overrides(raw, overrides)
    return from_dict(raw)


def dump_config(cfg, path):
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
