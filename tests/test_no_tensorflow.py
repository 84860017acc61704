"""kerasclf imports, trains and evaluates with KERAS_BACKEND=jax and TensorFlow absent.

TensorFlow is hidden by `sys.modules["tensorflow"] = None` (import fails and
importlib.util.find_spec returns None, exactly as when it is not installed).
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None
sys.modules["tensorboard"] = None
from kerasclf.cli import main
main(["train", "--set", "data.source=synthetic", "--set", "model.filters=[8]", "--set", "model.dense=[16]",
      "--set", "train.epochs=2", "--set", "train.verbose=0", "--set", "train.log_dir={log_dir}"],
     standalone_mode=False)
leaked = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] == "tensorflow" and mod is not None)
print(json.dumps({{"tensorflow_modules": leaked}}))
"""


@pytest.mark.slow
def test_trains_and_evaluates_on_jax_without_tensorflow(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(log_dir=tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"tensorflow_modules": []}
    (run_dir,) = list(tmp_path.iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data_on_device"] is True  # "auto" picks the device-resident path on JAX
    assert metrics["epochs_run"] == 2 and metrics["test_accuracy"] is not None
    assert (run_dir / "best.keras").is_file()
    assert (run_dir / "eval" / "test" / "report.md").is_file()
    assert not (run_dir / "tensorboard").exists()  # TensorBoard needs TensorFlow; nothing half-written
