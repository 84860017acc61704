"""`plugins:`: modules or .py files imported before a config's names are checked."""

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Iterable, Union

from kerasclf.errors import ConfigError


def import_plugins(plugins: Union[str, Iterable[str]]) -> None:
    """Import the config's `plugins` (module names or .py files) so their registrations exist
    before names are checked: how your own losses, auxiliary losses, optimizers, schedules,
    report sections, models and data sets reach a run (docs/extending.md)."""
    for plugin in [plugins] if isinstance(plugins, str) else plugins:
        plugin = str(plugin)
        try:
            if plugin.endswith(".py"):
                _import_file(plugin)
            else:
                importlib.import_module(plugin)
        except Exception as exc:  # the plugin's own error, reported as the config's problem
            sys.modules.pop(_module_name(Path(plugin).expanduser().resolve()), None)
            raise ConfigError(
                f"plugins: could not import {plugin!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Give an importable module name or the path of a .py file."
            ) from None


def _module_name(path):
    """One module per file: two plugins named my_aux.py in different folders are two modules."""
    return f"kerasclf_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def _import_file(plugin):
    path = Path(plugin).expanduser().resolve()
    name = _module_name(path)
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"no file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
