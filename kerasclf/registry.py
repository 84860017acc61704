"""Name -> factory registries, the way timm and keras-hub look models up by name.

Every registry of the package is created here, at the bottom layer, together with the
modules whose import fills it (`builtin_modules`). Those modules are imported the first
time a registry is asked for a name (a plugin-style lazy load), so that `config.py` can
check `model.name` or `optim.name` against the registry without importing Keras at
module import time, and without importing upwards.

Adding an entry is one decorator in one module:

    from kerasclf.registry import LOSSES

    @LOSSES.register("my_loss", labels=("sparse",))
    def my_loss(loss_cfg, labels): ...

and, for a module of the package, its name in the registry's `builtin_modules` below
(user code just imports its module before running; see README "Extending kerasclf").
"""

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from kerasclf.console import import_tensorflow_quietly
from kerasclf.errors import ConfigError, DataError, KerasclfError, ModelError, did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable
    description: str
    meta: dict


F = TypeVar("F", bound=Callable)


class Registry:
    def __init__(
        self, kind: str, error: type[KerasclfError] = KerasclfError, list_command: str | None = None,
        builtin_modules: Iterable[str] = (),
    ):
        self.kind = kind
        self.error = error
        self.list_command = list_command
        self.builtin_modules = tuple(builtin_modules)
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, description: str = "", **meta: Any) -> Callable[[F], F]:
        """Decorator; `meta` holds facts callers need before building (sizes, label formats)."""

        def decorator(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc_lines = (factory.__doc__ or "").strip().splitlines()
            text = description or (doc_lines[0] if doc_lines else "")
            self._entries[name] = Entry(name, factory, text, meta)
            return factory

        return decorator

    def load(self) -> "Registry":
        """Import the built-in modules (once). Optional dependencies (keras_hub) are imported
        inside builders, so a missing one fails only when that entry is used."""
        if not self._loaded:
            import_tensorflow_quietly()  # the modules import Keras, which imports TensorFlow: its start-up lines once
            for module in self.builtin_modules:
                importlib.import_module(module)
            self._loaded = True
        return self

    def get(self, name: str) -> Entry:
        self.load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            hint = f" Run `kerasclf {self.list_command}` to list them." if self.list_command else ""
            raise self.error(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
                f"Known: {', '.join(sorted(self._entries))}.{hint}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self.load()._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self.load()._entries


MODELS = Registry(
    "model", ModelError, list_command="models",
    builtin_modules=(
        "kerasclf.models.scratch",
        "kerasclf.models.applications",
        "kerasclf.models.hub",
        "kerasclf.models.vit",
        "kerasclf.models.mobile",
        "kerasclf.models.airbench",
        "kerasclf.models.studies",
    ),
)
DATASETS = Registry(
    "data set", DataError, list_command="datasets",
    builtin_modules=(
        "kerasclf.data.sources.digits",
        "kerasclf.data.sources.synthetic",
        "kerasclf.data.sources.cifar",
        "kerasclf.data.sources.stl10",
        "kerasclf.data.sources.svhn",
        "kerasclf.data.sources.catsdogs",
        "kerasclf.data.sources.tinyimagenet",
    ),
)
# The head that turns a model's embedding into its outputs, one per task (multiclass, ...).
HEADS = Registry("task", ConfigError, builtin_modules=("kerasclf.models.heads",))
LOSSES = Registry("loss", ConfigError, list_command="losses", builtin_modules=("kerasclf.losses.classification",))
# Auxiliary losses on the embedding (loss.aux), trained as CE + loss.aux_weight * aux. Each is
# registered as `factory(loss_cfg, num_classes) -> keras loss` called as aux(embedding, labels).
AUX_LOSSES = Registry("auxiliary loss", ConfigError, list_command="losses", builtin_modules=("kerasclf.losses.composite",))
OPTIMIZERS = Registry("optimizer", ConfigError, list_command="optimizers", builtin_modules=("kerasclf.training.optimizers",))
SCHEDULES = Registry("schedule", ConfigError, list_command="schedules", builtin_modules=("kerasclf.training.schedules",))
REPORT_SECTIONS = Registry(
    "report section", ConfigError, list_command="report-sections",
    builtin_modules=("kerasclf.evaluation.sections",),
)
