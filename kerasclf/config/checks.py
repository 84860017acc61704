"""The one validation pass: every key's range or choices, then the rules that tie keys together.

`--dry-run` and a real run load the config through here, so both refuse the same values
before data is read or a run directory exists.
"""

import dataclasses
import inspect
import typing
from pathlib import Path

from kerasclf.config.coerce import coerce
from kerasclf.config.constraints import FOLDER_PREFIX
from kerasclf.config.schema import Config, ModelConfig
from kerasclf.errors import ConfigError, did_you_mean
from kerasclf.registry import DATASETS, LOSSES, MODELS


def validate(cfg: Config) -> None:
    """Every key's range or choices, then the rules over several keys (CROSS_CHECKS)."""
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
    """model.weights: None (random init), "imagenet", or an existing local file/folder (expanded).

    The one place a missing weights file is reported: the builders get an existing path.
    """
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


# Keys that older versions wrote into every config.yaml with this default: still read, and
# dropped when they hold it, so that old run directories resume and compare.
RETIRED_DATA_KEYS = {"svhn_extra": False}


def data_set_options(source: str) -> dict:
    """The options a registered data set declares (registry meta `options`: name -> (default, help))."""
    if source.startswith(FOLDER_PREFIX):
        return {}
    return DATASETS.get(source).meta.get("options", {})


def _data_options(cfg):
    """Unknown keys of the data section are the data set's own options, checked against its declaration."""
    declared = data_set_options(cfg.data.source)
    own = [f.name for f in dataclasses.fields(type(cfg.data)) if f.name != "options"]
    for name, value in list(cfg.data.options.items()):
        if name not in declared and RETIRED_DATA_KEYS.get(name, object()) is value:
            del cfg.data.options[name]
            continue
        owners = [e.name for e in DATASETS.entries() if name in e.meta.get("options", {})]
        if name not in declared and owners:
            raise ConfigError(
                f"data.{name} is an option of data set {', '.join(owners)}, not of '{cfg.data.source}': "
                f"remove it, or set data.source={owners[0]}."
            )
        if name not in declared:
            for_source = f" for data set '{cfg.data.source}'" if declared else ""
            raise ConfigError(
                f"Unknown config key '{name}' in section 'data'{for_source}.{did_you_mean(name, own + list(declared))} "
                f"Valid keys there: {', '.join(own + list(declared))}."
            )
        default = declared[name][0]
        cfg.data.options[name] = coerce(value, type(default), f"data.{name}")


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


def label_format(cfg: Config) -> str:
    """The label format the run feeds: one-hot when smoothing or batch mixing needs it, or
    when the loss takes nothing else; class indices otherwise (cheaper)."""
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


CROSS_CHECKS = [
    _fractions_leave_training_data,
    _data_options,
    _model_keys_and_weights,
    _schedule_options,
    _monitor_is_logged,
    label_format,  # raises when the loss cannot take the labels that smoothing/mixing need
    _mixing_on_host,
    _aux_without_mixing,
]
