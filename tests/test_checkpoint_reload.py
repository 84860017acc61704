"""A checkpoint with every kind of custom object evaluates in a fresh process.

Within one process the classes are registered by training itself; a new `kerasclf evaluate`
process must register them on its own (augmentation layers, LR schedules, backbone layers).
"""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_fresh_process_evaluates_a_checkpoint_with_augmentation_and_schedule(tmp_path, cli):
    result = cli(
        "train", "--set", "data.source=synthetic", "--set", "model.filters=[8]", "--set", "model.dense=[16]",
        "--set", "augment.flip=true", "--set", "augment.crop_padding=2", "--set", "augment.rotation=10",
        "--set", "augment.color_jitter=0.2", "--set", "augment.cutout=4",
        "--set", "optim.warmup_epochs=1",  # constant + warm-up: kerasclf's own WarmupSchedule
        "--set", "train.epochs=2", "--set", "train.verbose=0", "--set", "train.evaluate_after=false",
        "--set", f"train.log_dir={tmp_path}",
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = list(tmp_path.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "kerasclf", "evaluate", "--checkpoint", str(run_dir / "best.keras")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test accuracy:" in done.stdout
    assert (run_dir / "eval" / "test" / "report.md").is_file()
