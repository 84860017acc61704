"""Shared fixtures: an isolated data cache, no network, image folders and the CLI runner."""

import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]

# A model small enough that one epoch on 400 images takes about a second on 2 CPU cores.
TINY_CNN = ("--set", "model.name=cnn", "--set", "model.filters=[8]", "--set", "model.dense=[16]")

# Distinct colours, so that a class can be told from its pixels after lossy formats (JPEG, GIF).
CLASS_COLOURS = {
    "a": (220, 30, 30),
    "b": (30, 220, 30),
    "c": (30, 30, 220),
    "d": (220, 220, 30),
}


@pytest.fixture(autouse=True)
def _no_leaked_determinism(monkeypatch):
    """train.deterministic switches TensorFlow's op determinism on for the process (and Keras
    then turns XLA off): undo it after each test so it cannot reach the next one."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    yield
    import sys

    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        if tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    """Every test: its own empty download cache, and any download attempt fails like no network."""
    monkeypatch.setenv("KERASCLF_DATA", str(tmp_path_factory.mktemp("kerasclf-cache")))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def class_image(name, size=(12, 12), seed=0):
    """uint8 HxWx3 image: the class colour with mild noise (so JPEG/GIF keep it recognisable)."""
    rng = np.random.default_rng(seed)
    colour = np.array(CLASS_COLOURS.get(name) or _colour_of(name), dtype=np.int16)
    noise = rng.integers(-20, 21, size=(*size, 3), dtype=np.int16)
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def _colour_of(name):
    import zlib

    return np.random.default_rng(zlib.crc32(name.encode())).integers(0, 256, 3)


def write_image(path, array, fmt=None):
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


@pytest.fixture
def make_image_folder():
    """make_image_folder(root, {"a": 5, "b": 3}, size=(12, 12), ext=".png") -> root (root/<class>/<i>.<ext>).

    `ext` may be a list, cycled over the files of each class; `sizes` (a list of (h, w)) cycles too.
    """

    def make(root, counts, size=(12, 12), ext=".png", sizes=None):
        root = Path(root)
        exts = [ext] if isinstance(ext, str) else list(ext)
        root.mkdir(parents=True, exist_ok=True)
        for name, count in counts.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                hw = sizes[i % len(sizes)] if sizes else size
                write_image(root / name / f"{name}{i:03d}{exts[i % len(exts)]}", class_image(name, hw, seed=i))
        return root

    return make


@pytest.fixture
def cli():
    """cli("train", "--dry-run", ...) -> click Result (stdout, stderr and exit_code kept apart)."""
    from click.testing import CliRunner

    from kerasclf.cli import main

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    return invoke


def assert_user_error(result, *fragments):
    """Exit code 2 and one 'Error: ...' paragraph on stderr naming every fragment; no traceback.
    'Note: ...' lines kerasclf printed before the error (the image size it chose) may precede it."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    while lines and lines[0].startswith("Note: "):
        lines.pop(0)
    err = "\n".join(lines)
    assert err.startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and "Traceback" not in err
    assert "\n\n" not in err, f"not one paragraph: {err!r}"
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


@pytest.fixture
def user_error():
    return assert_user_error


@pytest.fixture
def tiny_cnn():
    return list(TINY_CNN)
