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
(user code just imports its module before running; see docs/extending.md).
"""

import ast
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from kerasclf.console import import_tensorflow_quietly
from kerasclf.errors import ConfigError, DataError, KerasclfError, ModelError, did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Any  # the callable; None for an entry read from source (Registry.lookup) before loading
    description: str
    meta: dict


F = TypeVar("F", bound=Callable)


class NotLiteral(Exception):
    """A registration whose facts are not literals in the source (read_entries cannot read it)."""


def _module_source(module):
    if module.startswith("kerasclf."):  # find_spec would import the parent packages (and Keras with them)
        base = Path(__file__).resolve().parent.joinpath(*module.split(".")[1:])
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        return path.read_text(encoding="utf-8")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise NotLiteral(module)
    return Path(spec.origin).read_text(encoding="utf-8")


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise NotLiteral(ast.dump(node)) from None


def _meta(keywords):
    """A registration's keyword literals; a description computed at import (an f-string) is left
    empty: validation needs names and meta, and listings import the modules."""
    meta = {}
    for k in keywords:
        try:
            meta[k.arg] = _literal(k.value)
        except NotLiteral:
            if k.arg != "description":
                raise
            meta[k.arg] = ""
    return meta


def _dotted(node):
    """'register_model' or 'MODELS.register' for a decorator's callee, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _parameters(node):
    """Parameter names of a function (a class: of its __init__ without self), as inspect.signature gives them."""
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:
            raise NotLiteral(node.name)
        return _parameters(init)[1:]
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args]
    if a.vararg:
        names.append(a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append(a.kwarg.arg)
    return names


def read_entries(modules: Iterable[str], decorators: Iterable[str]) -> dict:
    """{name: (Entry(name, None, description, meta), parameter names)} of the registrations in
    `modules`, read from their source with `ast`, nothing imported. Raises NotLiteral (or
    OSError / SyntaxError) when a registration cannot be read that way; callers then import."""
    decorators = set(decorators)
    entries = {}
    for module in modules:
        tree = ast.parse(_module_source(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and _dotted(node.func.func) in decorators:
                # register("name", ...)(factory_expression): names and meta read; parameters unknown
                args = [_literal(a) for a in node.func.args]
                if len(args) != 1 or any(k.arg is None for k in node.func.keywords):
                    raise NotLiteral(module)
                meta = _meta(node.func.keywords)
                entries[args[0]] = (Entry(args[0], None, meta.pop("description", ""), meta), None)
                continue
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for decorator in node.decorator_list:
                if not (isinstance(decorator, ast.Call) and _dotted(decorator.func) in decorators):
                    continue
                args = [_literal(a) for a in decorator.args]
                if len(args) != 1 or any(k.arg is None for k in decorator.keywords):
                    raise NotLiteral(node.name)
                meta = _meta(decorator.keywords)
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                description = meta.pop("description", "") or (doc[0] if doc else "")
                entries[args[0]] = (Entry(args[0], None, description, meta), _parameters(node))
    return entries


class Registry:
    def __init__(
        self, kind: str, error: type[KerasclfError] = KerasclfError, list_command: str | None = None,
        builtin_modules: Iterable[str] = (), decorators: Iterable[str] = (), imports_keras: bool = True,
    ):
        """decorators: the names the built-in modules register with (e.g. "register_model"):
        `lookup` and `static_names` then read the built-in entries from source, without
        importing those modules (and Keras / TensorFlow with them). imports_keras=False: the
        built-in modules import neither Keras nor TensorFlow (no quiet TensorFlow import first)."""
        self.kind = kind
        self.error = error
        self.list_command = list_command
        self.builtin_modules = tuple(builtin_modules)
        self.decorators = frozenset(decorators)
        self.imports_keras = imports_keras
        self._entries: dict[str, Entry] = {}
        self._loaded = False
        self._static = None

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
            if self.imports_keras:
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

    def _static_entries(self):
        """{name: (Entry, parameter names)} without importing the built-in modules, or None
        when they cannot be read from source (then the caller loads the registry)."""
        if self._loaded or not self.decorators:
            return None
        if self._static is None:
            try:
                self._static = read_entries(self.builtin_modules, self.decorators)
            except (NotLiteral, OSError, SyntaxError):
                self._static = False
        return self._static or None

    def static_names(self) -> list[str]:
        """Every registered name (built-in and already registered by plugins); imports the
        built-in modules only when their source cannot be read (config validation uses it)."""
        static = self._static_entries()
        return sorted(set(self._entries) | set(static)) if static is not None else self.names()

    def lookup(self, name: str, params: bool = True) -> tuple[Entry, list[str] | None]:
        """(Entry, parameter names) of `name`, like get() but, for a built-in entry, read from
        source when the registry is not loaded yet: the entry's factory is then None.
        params=False: the parameter names are not needed (None when the source does not say)."""
        static = self._static_entries()
        if name in self._entries or static is None or name not in static or static[name][1] is None and params:
            entry = self._entries[name] if name in self._entries else self.get(name)
            return entry, list(inspect.signature(entry.factory).parameters)
        return static[name]

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self.load()._entries


MODELS = Registry(
    "model", ModelError, list_command="models", decorators=("register_model", "MODELS.register"),
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
    "data set", DataError, list_command="datasets", imports_keras=False,
    decorators=("register_dataset", "DATASETS.register"),
    builtin_modules=(
        "kerasclf.data.sources.digits",
        "kerasclf.data.sources.synthetic",
        "kerasclf.data.sources.cifar",
        "kerasclf.data.sources.stl10",
        "kerasclf.data.sources.svhn",
        "kerasclf.data.sources.catsdogs",
        "kerasclf.data.sources.tinyimagenet",
        "kerasclf.data.sources.voc",
        "kerasclf.data.sources.generated",
    ),
)
# The head that turns a model's embedding into its outputs, one per task (multiclass, ...).
HEADS = Registry("task", ConfigError, builtin_modules=("kerasclf.models.heads",))
LOSSES = Registry("loss", ConfigError, list_command="losses",
                  builtin_modules=("kerasclf.losses.classification", "kerasclf.losses.dense"),
                  decorators=("register_loss", "LOSSES.register"))
# Auxiliary losses on the embedding (loss.aux), trained as CE + loss.aux_weight * aux. Each is
# registered as `factory(loss_cfg, num_classes) -> keras loss` called as aux(embedding, labels).
AUX_LOSSES = Registry("auxiliary loss", ConfigError, list_command="losses", builtin_modules=("kerasclf.losses.composite",),
                      decorators=("AUX_LOSSES.register",))
OPTIMIZERS = Registry("optimizer", ConfigError, list_command="optimizers", builtin_modules=("kerasclf.training.optimizers",),
                      decorators=("register_optimizer", "OPTIMIZERS.register"))
SCHEDULES = Registry("schedule", ConfigError, list_command="schedules", builtin_modules=("kerasclf.training.schedules",),
                     decorators=("register_schedule", "SCHEDULES.register"))
REPORT_SECTIONS = Registry(
    "report section", ConfigError, list_command="report-sections",
    builtin_modules=("kerasclf.evaluation.sections",),
)
# How a run spreads over devices and hosts (train.distribute): one engine per entry.
DISTRIBUTIONS = Registry("distribution", ConfigError, builtin_modules=("kerasclf.training.distribute",), imports_keras=False,
                         decorators=("register_distribution", "DISTRIBUTIONS.register"))
