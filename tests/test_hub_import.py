"""How a KerasHub model says that KerasHub cannot be imported: absent vs installed but broken."""

import importlib.abc
import importlib.machinery
import sys

import pytest

from kerasclf.errors import ModelError
from kerasclf.models.hub import import_keras_hub


class _BrokenKerasHub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """keras_hub is found, but importing it fails on a dependency of its own (seen: urllib3)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "keras_hub" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ModuleNotFoundError("No module named 'urllib3'", name="urllib3")


def test_installed_but_broken_keras_hub_names_the_missing_dependency(monkeypatch):
    monkeypatch.delitem(sys.modules, "keras_hub", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenKerasHub(), *sys.meta_path])
    with pytest.raises(ModelError) as caught:
        import_keras_hub("resnet18")
    message = str(caught.value)
    assert "installed but failed to import" in message and "urllib3" in message
    assert "is not installed" not in message


def test_absent_keras_hub_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import fails and find_spec says "not there"
    with pytest.raises(ModelError, match=r"not installed: pip install 'kerasclf\[hub\]'"):
        import_keras_hub("resnet18")
