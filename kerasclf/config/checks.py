"""The one validation pass: every key's range or choices, then the rules that tie keys together.

`--dry-run` and a real run load the config through here, so both refuse the same values
before data is read or a run directory exists.
"""

import dataclasses
import os
import typing
from pathlib import Path
from typing import Optional

from kerasclf.backend import have_tensorflow, keras_backend
from kerasclf.config.coerce import coerce
from kerasclf.config.constraints import FOLDER_PREFIX
from kerasclf.config.schema import Config, ModelConfig
from kerasclf.errors import ConfigError, did_you_mean
from kerasclf.registry import DATASETS, DISTRIBUTIONS, HEADS, LOSSES, MODELS


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
        if path.is_file():
            _check_weights_file(path, weights)
        model.weights = str(path)


_WEIGHTS_MAGIC = {b"PK\x03\x04": "a .keras checkpoint (zip archive)", b"\x89HDF\r\n\x1a\n": "an HDF5 weights file"}
# torch's legacy .pth (a pickle, protocol 2): the ImageNet files of the mobile backbones
# (kerasclf.models.torch_file reads their tensors and nothing else)
_TORCH_LEGACY = b"\x80\x02"


def _check_weights_file(path, given):
    """A file in model.weights must be a .keras zip or an HDF5 file (.weights.h5, a keras.applications
    .h5): anything else would reach Keras, whose message ("file not found") is not what is wrong."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"model.weights {str(given)!r} cannot be read ({exc.strerror}).") from None
    kind = next((what for magic, what in _WEIGHTS_MAGIC.items() if head.startswith(magic)), None)
    if kind is None and path.suffix in (".pth", ".pt") and head.startswith(_TORCH_LEGACY):
        return
    if kind is None or (path.name.endswith(".keras") and not head.startswith(b"PK")):
        shown = head.decode("latin-1").encode("unicode_escape").decode()
        raise ConfigError(
            f"model.weights {str(given)!r} exists but is not a weights file: it is neither a .keras "
            f"checkpoint (a zip archive) nor an HDF5 weights file (.weights.h5 / .h5) nor a torch .pth of a "
            f"mobile backbone; it starts with "
            f"{shown!r}. Pass a file written by `kerasclf train` (best.keras) or model.save_weights, "
            "'imagenet', or 'none'."
        )


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
    entry, params = MODELS.lookup(cfg.model.name)  # from source for built-ins: no Keras import
    accepted = [p for p in params if p not in ("x", "weights")]
    own = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "kwargs"]
    for name in cfg.model.kwargs:
        if name not in accepted:
            raise ConfigError(
                f"Unknown config key '{name}' in section 'model' for model '{cfg.model.name}'."
                f"{did_you_mean(name, accepted + own)} Valid keys there: {', '.join(own + accepted)}."
            )
    if cfg.model.weights == "imagenet" and not entry.meta.get("pretrained"):
        pretrained = [n for n in MODELS.static_names() if MODELS.lookup(n)[0].meta.get("pretrained")]
        raise ConfigError(
            f"model.weights=imagenet: model '{cfg.model.name}' has no pretrained weights (it is trained from "
            f"scratch). Use model.weights=none, or a pretrained model: {', '.join(pretrained)}."
        )


# Keys that older versions wrote into every config.yaml with this default: still read, and
# dropped when they hold it, so that old run directories resume and compare.
RETIRED_DATA_KEYS = {"svhn_extra": False}


def without_retired_keys(raw: dict) -> dict:
    """A raw config (an older run's config.yaml) without the retired keys that hold their old
    default: what comparing it with a config of this version must ignore."""
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        return raw
    kept = {k: v for k, v in data.items() if not (k in RETIRED_DATA_KEYS and RETIRED_DATA_KEYS[k] is v)}
    return {**raw, "data": kept}


def data_set_options(source: str) -> dict:
    """The options a registered data set declares (registry meta `options`: name -> (default, help))."""
    if source.startswith(FOLDER_PREFIX):
        return {}
    return DATASETS.lookup(source, params=False)[0].meta.get("options", {})  # from source: no data modules imported


def _data_options(cfg):
    """Unknown keys of the data section are the data set's own options, checked against its declaration."""
    declared = data_set_options(cfg.data.source)
    own = [f.name for f in dataclasses.fields(type(cfg.data)) if f.name != "options"]
    for name, value in list(cfg.data.options.items()):
        if name not in declared and RETIRED_DATA_KEYS.get(name, object()) is value:
            del cfg.data.options[name]
            continue
        owners = [n for n in DATASETS.static_names() if name in DATASETS.lookup(n, params=False)[0].meta.get("options", {})]
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
    entry = LOSSES.lookup(cfg.loss.name)[0]
    if entry.meta.get("task", "multiclass") != "multiclass":
        return entry.meta["labels"][0]  # multi-hot vectors or masks, fed as they are
    accepted = entry.meta.get("labels", ("sparse",))
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


def data_task(data_cfg) -> str:
    """The task the data set declares (DATASETS meta `task`; folders are multiclass)."""
    if data_cfg.source.startswith(FOLDER_PREFIX):
        return "multiclass"
    return DATASETS.get(data_cfg.source).meta.get("task", "multiclass")


# Augmentations that move the image but not its mask: refused for segmentation data
# (augment.flip and augment.zoom move both, in kerasclf.layers.joint).
IMAGE_ONLY_AUGMENT = ("mixup", "cutmix", "cutout", "rotation", "translate", "crop_padding", "color_jitter")


def _task_rules(cfg):
    """The loss serves the data set's task; a multilabel or segmentation task takes none of the
    multiclass-only keys (mixing, auxiliary loss, smoothing, P x K batches, class subsets)."""
    task = data_task(cfg.data)
    serves = LOSSES.get(cfg.loss.name).meta.get("task", "multiclass")
    if serves != task:

        fitting = [e.name for e in LOSSES.entries() if e.meta.get("task", "multiclass") == task]
        raise ConfigError(
            f"data.source={cfg.data.source!r} is a {task} data set, but loss.name={cfg.loss.name!r} is a {serves} "
            f"loss: set loss.name={HEADS.get(task).meta.get('loss') or (fitting or ['?'])[0]}."
        )
    if task == "multiclass":
        return
    refused = IMAGE_ONLY_AUGMENT if task == "segmentation" else ("mixup", "cutmix")
    used = [f"augment.{k}" for k in refused if getattr(cfg.augment, k)]
    used += [k for k, on in (("loss.aux", cfg.loss.aux != "none"), ("loss.label_smoothing", cfg.loss.label_smoothing),
                             ("data.sampler", cfg.data.sampler.classes_per_batch),
                             ("data.limit_per_class", cfg.data.limit_per_class),
                             ("train.eval_test_each_epoch", cfg.train.eval_test_each_epoch)) if on]
    if cfg.data.classes is not None and cfg.data.source != "mosaic":  # mosaic: the classes of its tiles
        used.append("data.classes")
    if used:
        allowed = ("augment.flip and augment.zoom (they move image and mask together)" if task == "segmentation"
                   else "the image augmentations (not MixUp/CutMix)")
        raise ConfigError(
            f"data.source={cfg.data.source!r} is a {task} data set: turn off {', '.join(used)} "
            f"(multiclass-only, or they would move the image without its labels). It takes {allowed}."
        )
    for name, choices in DATASETS.get(cfg.data.source).meta.get("choices", {}).items():
        if cfg.data.options.get(name, choices[0]) not in choices:
            raise ConfigError(f"data.{name} must be one of {', '.join(choices)}; got {cfg.data.options[name]!r}.")


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


def _sampler_fits_batch(cfg):
    """P x K batches (kerasclf.data.sampler): both numbers or neither, and data.batch_size = P * K."""
    p, k = cfg.data.sampler.classes_per_batch, cfg.data.sampler.images_per_class
    if p is None and k is None:
        return
    if p is None or k is None:
        raise ConfigError(
            f"data.sampler needs both classes_per_batch (P) and images_per_class (K), each >= 2, got "
            f"classes_per_batch={p!r}, images_per_class={k!r}: with P = 1 a batch has no negatives, with "
            "K = 1 no positives. Example: data.sampler: {classes_per_batch: 16, images_per_class: 4}."
        )
    if cfg.data.batch_size != p * k:
        raise ConfigError(
            f"data.sampler gives training batches of P * K = {p} * {k} = {p * k} images but "
            f"data.batch_size is {cfg.data.batch_size}; set data.batch_size={p * k} (it also sizes "
            "evaluation batches and the schedule's steps per epoch)."
        )


def _device_table_from_memory(cfg):
    if cfg.train.data_on_device is True and cfg.data.stream is True:
        raise ConfigError(
            "train.data_on_device=true copies every image to the accelerator, but data.stream=true streams "
            "them from disk: set data.stream=false to decode them into memory, or train.data_on_device=auto."
        )


def _crop_padding_fits(cfg):
    """Known here when data.image_size is set; otherwise the image size comes from the data
    (kerasclf.layers.augment checks it when the model is built, which --dry-run does too)."""
    size = cfg.data.image_size
    if size is not None and cfg.augment.crop_padding >= min(size):
        raise ConfigError(
            f"augment.crop_padding={cfg.augment.crop_padding} is too large for {size[0]}x{size[1]} images "
            f"(data.image_size): reflect padding needs it below {min(size)} (4 is usual for 32x32)."
        )


PROCESS_ID_VARIABLES = ("KERAS_DISTRIBUTION_PROCESS_ID", "SLURM_PROCID")


def process_id(cfg: Config) -> Optional[int]:
    """This process's index among train.hosts: the config, else the launcher's variable."""
    if cfg.train.process_id is not None:
        return cfg.train.process_id
    for name in PROCESS_ID_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


def _distribution_fits(cfg):
    """train.distribute's engine runs on one backend; several hosts need data-parallel and an id."""
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
                f"train.hosts lists {len(cfg.train.hosts)} processes, so each needs its index "
                f"0..{len(cfg.train.hosts) - 1}: set train.process_id or one of {', '.join(PROCESS_ID_VARIABLES)}; "
                f"got {pid}."
            )
    entry = DISTRIBUTIONS.lookup(name, params=False)[0]  # read from source: no engine is imported here
    if entry.meta.get("unusable"):
        raise ConfigError(entry.meta["unusable"])
    needs = entry.meta.get("backend")
    if needs and needs != backend:
        raise ConfigError(
            f"train.distribute={name} runs on the {needs} backend, but Keras uses {backend}: "
            f"run with KERAS_BACKEND={needs}, or choose "
            f"{'data-parallel' if backend == 'jax' else 'mirrored or multi-worker'} for {backend}."
        )


def _several_processes_fit(cfg):
    """A multi-process run (train.hosts) feeds every process full batches of in-memory splits
    through tf.data (kerasclf.data.pipeline.fit_inputs, static_batches)."""
    hosts = len(cfg.train.hosts)
    if hosts <= 1:
        return
    if not have_tensorflow():
        raise ConfigError(
            f"A multi-process run (train.hosts lists {hosts} processes) feeds each process its share through "
            "tf.data, which needs TensorFlow: pip install 'kerasclf[tf]' (the model still runs on JAX)."
        )
    refused = {
        "data.stream=true": cfg.data.stream is True,
        "train.data_on_device=true": cfg.train.data_on_device is True,
        f"a {data_task(cfg.data)} data set": data_task(cfg.data) == "segmentation",
    }
    for what, refuse in refused.items():
        if refuse:
            raise ConfigError(
                f"A multi-process run (train.hosts lists {hosts} processes) feeds each process its share of full "
                f"batches of the in-memory splits through tf.data, which {what} does not allow: drop it "
                "(data.stream=false, train.data_on_device=auto) or train on one host (train.hosts=[])."
            )


def known_device_count(cfg) -> Optional[int]:
    """The run's device count when the config alone says it (no engine started): 1 without
    train.distribute, train.cpu_devices per process otherwise; None when the engine counts
    accelerators (known only once TensorFlow / JAX start, kerasclf.training.distribute)."""
    if cfg.train.distribute == "none":
        return 1
    if cfg.train.cpu_devices:
        return cfg.train.cpu_devices * max(1, len(cfg.train.hosts))
    return None


def _global_batch_divides(cfg):
    """data.batch_size is the global batch: split evenly over the devices, and over the processes."""
    batch, devices, hosts = cfg.data.batch_size, known_device_count(cfg), len(cfg.train.hosts)
    if devices and batch % devices:
        raise ConfigError(
            f"data.batch_size={batch} is the global batch and must split evenly over the {devices} devices of "
            f"train.distribute={cfg.train.distribute} (train.cpu_devices={cfg.train.cpu_devices}"
            f"{f' on each of {hosts} processes' if hosts > 1 else ''}): use a multiple of {devices} "
            f"(e.g. {batch - batch % devices or devices})."
        )
    if hosts > 1 and batch % hosts:
        raise ConfigError(
            f"data.batch_size={batch} is the global batch and must split evenly over the {hosts} processes of "
            f"train.hosts (and their devices): use a multiple of {hosts} times the devices of each process."
        )


CROSS_CHECKS = [
    _distribution_fits,
    _several_processes_fit,
    _global_batch_divides,
    _fractions_leave_training_data,
    _sampler_fits_batch,
    _device_table_from_memory,
    _crop_padding_fits,
    _data_options,
    _model_keys_and_weights,
    _schedule_options,
    _monitor_is_logged,
    label_format,  # raises when the loss cannot take the labels that smoothing/mixing need
    _mixing_on_host,
    _aux_without_mixing,
    _task_rules,
]
