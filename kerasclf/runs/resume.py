"""The resumable state of a run: written after every finished epoch, read by `train --resume`.

One file, `<run>/resume/state.npz`, written atomically (kerasclf.runs.atomic), holds everything
an uninterrupted run would carry from epoch k-1 into epoch k:
- every model variable, random-seed states included (Keras's SeedGenerator states drive
  augmentation and dropout, and `save_weights` does not store them);
- every optimizer variable (its `iterations` is the learning-rate schedule's position);
- the seed states outside the model (the MixUp/CutMix generator), numpy's and Python's
  global RNG state;
- next epoch, fine-tuning phase, the history rows (best-so-far and early-stopping patience
  are recomputed from them), the TensorBoard batch count and how far each event file is
  valid, wall time so far, and the resolved config it was written under.

keras.callbacks.BackupAndRestore covers model + optimizer + epoch, but it deletes its
backup when fit ends, rewrites it in place (a kill mid-write loses it), sets a sticky
`model._initial_epoch` that would leak into the fine-tuning phase's fit, and has no place
for seed states, best-so-far, phase or history; hence this callback instead of it.
The training order needs no state: it is a function of (seed, epoch) (data/order.py).
"""

import json
import random
from pathlib import Path

import keras
import numpy as np

from kerasclf.errors import CheckpointError
from kerasclf.runs.atomic import atomic_open

STATE_FILE = Path("resume") / "state.npz"
FORMAT = 1


def state_path(run_dir):
    return Path(run_dir) / STATE_FILE


def _numpy(variable):
    try:
        array = np.asarray(keras.ops.convert_to_numpy(variable.value))
    except ValueError:  # a tf.distribute variable read outside its replicas: Variable.numpy() reads it
        array = np.asarray(variable.numpy())
    return array.astype(np.float32) if array.dtype.kind not in "biufc" else array  # bfloat16 -> float32


def _generator_states(generators):
    return [g.state for g in generators]


def save_state(path, meta, model, optimizer, generators=()):
    """Write the state file atomically; `meta` gets the variable inventory added."""
    groups = {
        "model": list(model.variables),
        "optimizer": list(optimizer.variables) if optimizer is not None else [],
        "generators": _generator_states(generators),
    }
    arrays, inventory = {}, {}
    for group, variables in groups.items():
        inventory[group] = [[v.path, list(v.shape)] for v in variables]
        for i, v in enumerate(variables):
            arrays[f"{group}/{i:05d}"] = _numpy(v)
    np_state = np.random.get_state()
    arrays["numpy_rng"] = np_state[1]
    meta = {
        **meta,
        "format": FORMAT,
        "variables": inventory,
        "numpy_rng": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python_rng": _jsonable(random.getstate()),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class TrainingState:
    """A loaded state file: `meta` (dict) and the arrays, restored by `restore`."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                self.arrays = {k: npz[k] for k in npz.files}
            self.meta = json.loads(str(self.arrays.pop("meta")))
        except Exception as exc:  # a state file is only ever replaced whole; this is another tool's file
            raise CheckpointError(
                f"The resume state {str(self.path)!r} cannot be read ({type(exc).__name__}: {exc}). "
                "Delete the run's resume/ folder to start that run again from epoch 1, or start a new run."
            ) from None
        if self.meta.get("format") != FORMAT:
            raise CheckpointError(
                f"The resume state {str(self.path)!r} has format {self.meta.get('format')!r}; this kerasclf "
                f"reads format {FORMAT}. Resume it with the kerasclf version that wrote it."
            )

    next_epoch = property(lambda self: int(self.meta["next_epoch"]))
    phase = property(lambda self: int(self.meta["phase"]))
    rows = property(lambda self: list(self.meta["history"]))

    def restore(self, model, optimizer, generators=(), with_optimizer=True):
        """Assign the saved values; the optimizer's only when `with_optimizer` (same phase)."""
        self._assign("model", list(model.variables))
        if with_optimizer and optimizer is not None:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            self._assign("optimizer", list(optimizer.variables))
        self._assign("generators", _generator_states(generators))
        name, pos, has_gauss, cached = self.meta["numpy_rng"]
        np.random.set_state((name, self.arrays["numpy_rng"], pos, has_gauss, cached))
        random.setstate(_tuples(self.meta["python_rng"]))

    def _assign(self, group, variables):
        saved = self.meta["variables"][group]
        current = [[v.path, list(v.shape)] for v in variables]
        if [shape for _, shape in saved] != [shape for _, shape in current]:
            first = next(
                (f"{s} saved vs {c} now" for s, c in zip(saved, current) if s[1] != c[1]),
                f"{len(saved)} saved vs {len(current)} now",
            )
            raise CheckpointError(
                f"The resume state {str(self.path)!r} does not fit the {group} built from the run's "
                f"config.yaml ({first}). The config or kerasclf changed since the state was written; "
                "resume with the same version and config, or start a new run."
            )
        for i, v in enumerate(variables):
            v.assign(self.arrays[f"{group}/{i:05d}"])


def load_state(run_dir):
    """The run's TrainingState, or None when no epoch of it finished."""
    path = state_path(run_dir)
    return TrainingState(path) if path.is_file() else None


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves the state after every finished epoch; after an early stop, marks the phase done.

    Placed after every callback that writes an epoch's artefacts (checkpoints, history,
    TensorBoard), so a state for epoch k implies those files have epoch k too.
    `keeper` (training.keeper.RunKeeper) gives the run-level fields of `meta` (snapshot)
    and is told what was saved (saved).
    """

    def __init__(self, path, model, generators, phase, phase_end, keeper):
        super().__init__()
        self.path, self.inner, self.generators = path, model, list(generators)
        self.phase, self.phase_end, self.keeper = phase, phase_end, keeper

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

    def on_train_end(self, logs=None):
        if self.model.stop_training:  # EarlyStopping ended this phase: resume after it, not inside it
            self.save(self.phase_end)

    def save(self, next_epoch):
        meta = {**self.keeper.snapshot(), "next_epoch": int(next_epoch), "phase": self.phase}
        save_state(self.path, meta, self.inner, self.model.optimizer, self.generators)
        self.keeper.saved(int(next_epoch))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience also counts the phase's epochs from before a resume."""

    def __init__(self, earlier_values=(), **kwargs):
        super().__init__(**kwargs)
        self.earlier_values = [float(v) for v in earlier_values]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.earlier_values and self.monitor_op is None:
            self._set_monitor_op()
        for value in self.earlier_values:  # EarlyStopping.on_epoch_end's bookkeeping, replayed
            self.wait += 1
            if self._is_improvement(value, self.best):
                self.best, self.wait = value, 0
