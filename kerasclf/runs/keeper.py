"""RunKeeper: the run directory of one training session and everything that makes it safe to stop.

train() (run.py) asks it for the run directory (a new one, or the one `--resume` names,
locked either way), for the callbacks that make a run resumable and stoppable
(`guard`), and to restore the saved state before a fit (`restore`); `stopping()` turns
Ctrl-C / SIGTERM into a clean stop at the next step and adds the resume command to a
full-disk error. resume.py holds the state file; this module decides what a resume may
change.
"""

import contextlib
import json
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from kerasclf.config import dump_config, from_dict, load_config, to_dict
from kerasclf.errors import CheckpointError, ConfigError, NonFiniteLoss, RunInterrupted, StorageError
from kerasclf.runs.artefacts import ContinuingTensorBoard, HistoryCSV
from kerasclf.runs.atomic import remove_stale_temps
from kerasclf.runs.resume import ResumableEarlyStopping, ResumeCheckpoint, load_state, state_path
from kerasclf.runs.rundir import lock_run_dir, make_run_dir, unlock_run_dir
from kerasclf.runs.stops import CAUSES, SIGNAL_NAMES, StopOnNonFinite, StopOnSignal, StopRequest, graceful_signals

# --set keys a resume may change: they do not change what is trained.
# The device layout may change between sessions: data.batch_size stays the global batch.
HARMLESS_OVERRIDES = ("train.verbose", "train.evaluate_after", "data.data_dir", "train.distribute", "train.cpu_devices",
                      "train.hosts", "train.process_id")
# Schedules whose learning rate at step s does not depend on the total number of epochs.
EXTENDABLE_SCHEDULES = ("constant", "step")
TENSORBOARD_DIR = "tensorboard"


def resume_command(run_dir):
    return f"kerasclf train --resume {run_dir}"


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _changed(before, after):
    a, b = _flat(to_dict(before)), _flat(to_dict(after))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _may_extend(before, after):
    return (
        after.train.epochs > before.train.epochs
        and after.optim.schedule in EXTENDABLE_SCHEDULES
        and not after.train.finetune_epochs
    )


@dataclass
class Resume:
    """What `kerasclf train --resume RUN` continues: the run's config, its state (None when no
    epoch finished), the held lock, and whether config.yaml must be rewritten (epochs extended)."""

    run_dir: Path
    cfg: object
    state: object
    lock: object
    rewrite_config: bool = False
    changes: list = None  # [{"key", "from", "to", "from_epoch"}]: what this resume changed (optim.lr)


def open_resume(run_dir, overrides=(), data_dir=None):
    """Check and lock a run directory for `--resume`; refuses overrides that change the experiment."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(
            f"{str(run_dir)!r} is not a kerasclf run directory (no config.yaml in it). Pass the folder "
            "`kerasclf train` printed as 'Run directory: ...', e.g. --resume logs/<run>."
        )
    saved = load_config(config_path)
    cfg = load_config(config_path, overrides)
    if data_dir:
        cfg.data.data_dir = data_dir
    diverged = _stopped(run_dir / "metrics.json", "non-finite loss")
    lowered = diverged and cfg.optim.lr < saved.optim.lr  # the remedy the non-finite-loss stop names
    refused = [
        k for k in _changed(saved, cfg)
        if k not in HARMLESS_OVERRIDES and not (k == "train.epochs" and _may_extend(saved, cfg))
        and not (k == "optim.lr" and lowered)
    ]
    if refused:
        raise ConfigError(
            f"--resume continues the experiment in {str(run_dir)!r} as its config.yaml defines it; --set of "
            f"{', '.join(refused)} would change that experiment and is refused. With --resume you may set "
            f"{', '.join(HARMLESS_OVERRIDES)}, raise train.epochs when optim.schedule is "
            f"{' or '.join(EXTENDABLE_SCHEDULES)} and there is no fine-tuning phase, and lower optim.lr after "
            f"a stop on a non-finite loss{'' if diverged else ' (this run did not stop on one)'}. For anything "
            f"else start a new run: kerasclf train --config {config_path} --set ..."
        )
    lock = lock_run_dir(run_dir)
    state = load_state(run_dir)
    if state is not None:
        edited = [k for k in _changed(from_dict(state.meta["config"]), saved)
                  if k not in HARMLESS_OVERRIDES and k != "train.epochs"]
        if edited:
            raise CheckpointError(
                f"{str(config_path)!r} was edited after the run saved its state ({', '.join(edited)} differ). "
                "Undo the edit to resume, or start a new run with the edited config."
            )
        total = cfg.train.epochs + cfg.train.finetune_epochs
        metrics = run_dir / "metrics.json"
        if state.next_epoch >= total and metrics.is_file() and not _stopped(metrics):
            raise ConfigError(
                f"The run {str(run_dir)!r} already finished its {total} epochs; there is nothing to resume. "
                f"To train it further, raise train.epochs: {resume_command(run_dir)} --set train.epochs=N "
                f"(allowed when optim.schedule is {' or '.join(EXTENDABLE_SCHEDULES)} and there is no "
                "fine-tuning phase)."
            )
    changes = []
    if cfg.optim.lr != saved.optim.lr:
        start = state.next_epoch if state is not None else 0
        changes.append({"key": "optim.lr", "from": saved.optim.lr, "to": cfg.optim.lr, "from_epoch": start + 1})
    return Resume(run_dir, cfg, state, lock, rewrite_config=bool(changes) or cfg.train.epochs != saved.train.epochs,
                  changes=changes)


def _stopped(metrics_path, why=None):
    """Whether the run's metrics.json says it stopped early (for `why`, e.g. "non-finite loss", that reason)."""
    try:
        stopped = json.loads(Path(metrics_path).read_text()).get("stopped")
    except ValueError:
        return why is None
    except OSError:
        return False
    return stopped is not None if why is None else stopped == why


def event_files(run_dir):
    """{relative path: size} of the training TensorBoard event files (not eval/, written after training)."""
    root = Path(run_dir) / TENSORBOARD_DIR
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(run_dir)): p.stat().st_size
        for p in root.rglob("events.out.tfevents.*")
        if p.is_file() and p.relative_to(root).parts[0] != "eval"
    }


def trim_event_files(run_dir, valid):
    """Cut every training event file back to the size it had when the state was saved, and
    delete files started after it: what a killed epoch logged disappears from TensorBoard,
    so the resumed run's epochs are neither duplicated nor missing. Event files are
    append-only records, so a size recorded after a flush is a record boundary."""
    for rel, size in event_files(run_dir).items():
        path = Path(run_dir) / rel
        if rel not in valid:
            path.unlink()
        elif size > valid[rel]:
            with open(path, "r+b") as f:
                f.truncate(valid[rel])


def _discard_new_run_dir(run_dir, lock):
    """Remove a run folder this process just made, before anything of the run was written in it."""
    unlock_run_dir(lock)
    shutil.rmtree(run_dir, ignore_errors=True)


class RunKeeper:
    def __init__(self, cfg, model, feeder, resume=None):
        self.cfg, self.model, self.feeder = cfg, model, feeder
        if resume is None:
            self.run_dir = make_run_dir(cfg.train.log_dir, cfg.name, cfg.data.source, cfg.model.name, cfg.train.run_name)
            self.lock = lock_run_dir(self.run_dir)
            try:
                dump_config(cfg, self.run_dir / "config.yaml")
            except OSError as exc:  # a full disk: no run folder holding only .lock is left behind
                _discard_new_run_dir(self.run_dir, self.lock)
                raise StorageError(
                    f"The run folder {str(self.run_dir)!r} could not be started ({exc.strerror or exc}); it was "
                    "removed again. Free space on that disk, or set train.log_dir to a folder on another disk."
                ) from None
            state = None
        else:
            self.run_dir, self.lock, state = resume.run_dir, resume.lock, resume.state
            if resume.rewrite_config:
                dump_config(cfg, self.run_dir / "config.yaml")
            remove_stale_temps(self.run_dir)
            trim_event_files(self.run_dir, state.meta["tensorboard_files"] if state else {})
        meta = state.meta if state else {}
        self.state = state
        self.next_epoch = state.next_epoch if state else 0
        self.resumed_from = self.next_epoch if resume is not None else None
        self.tensorboard_batches = int(meta.get("tensorboard_batches", 0))
        self.wall_before = float(meta.get("wall_seconds", 0.0))
        self.sessions = int(meta.get("sessions", 0)) + 1
        # what resumes changed (a lowered optim.lr after a non-finite loss), kept in the state and metrics.json
        self.resume_changes = list(getattr(resume, "changes", None) or [])
        self.changes = list(meta.get("changes", [])) + self.resume_changes
        self.history = HistoryCSV(self.run_dir / "history.csv", meta.get("history", []))
        if resume is not None:
            self.history.write()  # drops rows of an epoch that finished after the state was saved
        self.request = StopRequest()
        self.started = time.perf_counter()
        self._tensorboard = None
        self._epoch = self.next_epoch

    # --- what the callbacks need
    def tensorboard(self, log_dir, **kwargs):
        self._tensorboard = ContinuingTensorBoard(log_dir, start_batch=self.tensorboard_batches, **kwargs)
        return self._tensorboard

    def early_stopping(self, phase_start, **kwargs):
        earlier = [row[kwargs["monitor"]] for row in self.history.rows
                   if row["epoch"] >= phase_start and kwargs["monitor"] in row]
        return ResumableEarlyStopping(earlier, **kwargs)

    def guard(self, callbacks, phase, phase_end, steps_per_epoch):
        """`callbacks` framed by the stops and the state save (order matters, see stops.py)."""
        return [
            StopOnNonFinite(steps_per_epoch),
            _EpochTracker(self),
            *callbacks,
            *self.feeder.callbacks(),
            ResumeCheckpoint(state_path(self.run_dir), self.model, self.feeder.seed_generators(), phase, phase_end, self),
            StopOnSignal(self.request, self._interrupted),
        ]

    def snapshot(self):
        """The run-level part of the state's meta (ResumeCheckpoint adds epoch and phase)."""
        if self._tensorboard is not None:
            self.tensorboard_batches = self._tensorboard.batches_done
        return {
            "history": self.history.rows,
            "tensorboard_batches": self.tensorboard_batches,
            "tensorboard_files": event_files(self.run_dir),
            "wall_seconds": self.wall_seconds(),
            "sessions": self.sessions,
            "changes": self.changes,
            "config": to_dict(self.cfg),
        }

    def saved(self, next_epoch):
        self.next_epoch = next_epoch

    def wall_seconds(self):
        return self.wall_before + time.perf_counter() - self.started

    # --- before a fit
    def restore(self, fit_model, phase):
        """Load the saved state into the model (once): the optimizer's too when it was saved in `phase`."""
        if self.state is None:
            return
        state, self.state = self.state, None
        if not fit_model.optimizer.built:
            fit_model.optimizer.build(fit_model.trainable_variables)
        rate = getattr(fit_model.optimizer, "_learning_rate", None)  # a variable when the schedule is a constant
        built = keras.ops.convert_to_numpy(rate) if isinstance(rate, keras.Variable) else None
        state.restore(self.model, fit_model.optimizer, self.feeder.seed_generators(), with_optimizer=state.phase == phase)
        if built is not None and any(c["key"] == "optim.lr" for c in self.resume_changes):
            rate.assign(built)  # the lowered rate this resume asked for, not the saved one

    # --- stopping
    @contextlib.contextmanager
    def stopping(self):
        with graceful_signals(self.request):
            try:
                yield
            except BaseException as exc:
                self._close_tensorboard()
                if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C, or one outside fit's callbacks
                    raise self._interrupted(signal.SIGINT) from None
                if isinstance(exc, StorageError):
                    raise StorageError(f"{exc} Then continue this run with: {resume_command(self.run_dir)}") from None
                if isinstance(exc, NonFiniteLoss) and not getattr(exc, "remedy_said", False):
                    raise self._diverged(exc) from None
                raise

    def _diverged(self, exc):
        """The non-finite-loss stop with what is true of this run now: which checkpoints exist,
        and the resume command that lowers the learning rate (open_resume allows it)."""
        text = str(exc).replace(CAUSES, "").strip()
        lower = f"{resume_command(self.run_dir)} --set optim.lr={self.cfg.optim.lr / 10:g}"
        kept = [name for name in ("last.keras", "best.keras") if (self.run_dir / name).is_file()]
        if self.next_epoch == 0:
            done = ("No epoch finished, so no checkpoint was written; start it again from epoch 1 with a lower "
                    f"learning rate: {lower}")
        else:
            done = (f"The {self.next_epoch} finished epoch(s) are saved in {self.run_dir}"
                    f"{' (' + ', '.join(kept) + ')' if kept else ''}; continue from epoch {self.next_epoch + 1} "
                    f"with a lower learning rate (recorded in metrics.json and history.csv): {lower}")
        error = NonFiniteLoss(f"{text} {done}. {CAUSES}", self.run_dir)
        error.remedy_said = True
        return error

    def _close_tensorboard(self):
        """A fit that raised never reaches TensorBoard's on_train_end: flush and close its files now,
        so nothing of the stopped epoch is appended after a resume has trimmed them."""
        if self._tensorboard is not None:
            try:
                self._tensorboard.on_train_end()  # what fit would have called: pops and closes its writers
            except IndexError:  # fit raised before on_train_begin opened them: nothing to close, and the
                pass  # error that stopped the run must reach the user, not this one

    def _interrupted(self, signum):
        name = SIGNAL_NAMES.get(signum, signum)
        if self.next_epoch > self._epoch:  # the signal came at the end of an epoch that was saved
            where = (f"Training stopped by {name} after epoch {self._epoch + 1} finished; {self.next_epoch} finished "
                     f"epoch(s) are saved in {self.run_dir} (nothing is lost: the run continues with epoch "
                     f"{self.next_epoch + 1}).")
        else:
            where = (f"Training stopped by {name} in epoch {self._epoch + 1}; {self.next_epoch} finished epoch(s) are "
                     f"saved in {self.run_dir} (the stopped epoch will run again from its start).")
        return RunInterrupted(f"{where} Continue with:\n  {resume_command(self.run_dir)}", signum, self.run_dir)


class _EpochTracker(keras.callbacks.Callback):
    """Keeps the RunKeeper told which epoch runs (for the interruption message)."""

    def __init__(self, keeper):
        super().__init__()
        self.keeper = keeper

    def on_epoch_begin(self, epoch, logs=None):
        self.keeper._epoch = epoch
