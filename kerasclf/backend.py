"""Which Keras backend runs, and whether TensorFlow is installed: asked here, in one place.

Nothing here imports Keras or TensorFlow at module import time (the CLI must start fast).
"""

import importlib.util
import json
import os
import sys
from pathlib import Path


def have_tensorflow():
    """TensorFlow is installed (tf.data input, TensorBoard summaries)."""
    return importlib.util.find_spec("tensorflow") is not None


def have_tensorboard():
    """keras.callbacks.TensorBoard writes through tf.summary: both packages are needed."""
    return have_tensorflow() and importlib.util.find_spec("tensorboard") is not None


def keras_backend():
    """The backend Keras runs (or will run) on, without importing Keras: KERAS_BACKEND, else
    the `backend` of $KERAS_HOME/keras.json (~/.keras), else tensorflow (Keras's own order)."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"
