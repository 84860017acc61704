"""`kerasclf lr-find`: the learning-rate range test (Smith, 2017; fastai's lr_find).

The experiment's model and data as `train` builds them, trained from its initial weights
with a learning rate that grows exponentially every batch from `start` to `end`; the loss
of each batch is smoothed (exponential moving average, bias-corrected) and the test stops
once it exceeds 4x its minimum. The suggested rate is where the smoothed loss falls fastest
(the steepest negative slope of loss against log lr) before its minimum; the minimum / 10
rule is reported too. Nothing of the run is kept but the curve: lr_find.png, lr_find.csv
and lr_find.json in logs/lr-find-<name>/.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from kerasclf.config import label_format
from kerasclf.errors import ConfigError
from kerasclf.plotting import new_figure, save_figure
from kerasclf.training.assemble import prepare
from kerasclf.training.feeding import choose_feeder
from kerasclf.training.run import _mixing_fn, compile_model

DIVERGED = 4.0  # stop once the smoothed loss exceeds this many times its minimum
SMOOTHING = 0.98  # fastai's beta


def smooth(losses, beta=SMOOTHING):
    """Bias-corrected exponential moving average of the batch losses."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta**i))
    return np.asarray(out)


def suggest(lrs, smoothed, skip_start=5):
    """{"steepest", "minimum", "min_over_10"}: the lr at the steepest descent of the smoothed
    loss (d loss / d log lr, before the minimum), at the minimum, and the minimum / 10."""
    lrs, smoothed = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    if len(lrs) < skip_start + 3:
        return {"steepest": None, "minimum": None, "min_over_10": None}
    low = int(np.argmin(smoothed[skip_start:])) + skip_start
    slope = np.gradient(smoothed, np.log(lrs))
    window = slice(skip_start, max(low, skip_start + 1))
    steepest = int(np.argmin(slope[window])) + skip_start
    return {"steepest": float(lrs[steepest]), "minimum": float(lrs[low]), "min_over_10": float(lrs[low] / 10)}


class RangeTest(keras.callbacks.Callback):
    """Sets the learning rate of each batch (exponential from start to end over `steps`),
    records its loss, stops after `steps` batches or once the loss diverges."""

    def __init__(self, start, end, steps):
        super().__init__()
        self.start, self.end, self.steps = float(start), float(end), int(steps)
        self.lrs, self.losses = [], []
        self.best = math.inf

    def lr_at(self, step):
        return self.start * (self.end / self.start) ** (step / max(self.steps - 1, 1))

    def on_train_batch_begin(self, batch, logs=None):
        lr = self.lr_at(len(self.lrs))
        self.model.optimizer.learning_rate.assign(lr)
        self.lrs.append(lr)

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.losses.append(loss)
        smoothed = smooth(self.losses)[-1]
        self.best = min(self.best, smoothed)
        if len(self.losses) >= self.steps or not math.isfinite(smoothed) or smoothed > DIVERGED * self.best:
            self.model.stop_training = True


def plot_lr_find(lrs, smoothed, suggestion, path, title):
    """Smoothed loss against the learning rate (log axis), the suggested rate marked."""
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    ax.plot(lrs, smoothed, color="tab:blue", label="loss (smoothed)")
    for key, colour, text in (("steepest", "tab:red", "suggested (steepest descent)"),
                              ("min_over_10", "tab:green", "minimum / 10")):
        if suggestion.get(key):
            ax.axvline(suggestion[key], color=colour, linestyle="--", linewidth=1.2,
                       label=f"{text}: {suggestion[key]:.2g}")
    ax.set_xscale("log")
    finite = np.asarray(smoothed)[np.isfinite(smoothed)]
    if finite.size:  # the divergence would flatten the interesting part
        ax.set_ylim(finite.min() - 0.05 * abs(finite.min()), min(finite.max(), DIVERGED * finite.min()) * 1.05)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def lr_find(cfg, start=1e-7, end=10.0, steps=100, out_dir=None):
    """Run the range test for `cfg`; returns {"out_dir", "suggestion", "lrs", "losses"}."""
    if not 0 < start < end:
        raise ConfigError(f"lr-find needs 0 < --start < --end. Received: start={start}, end={end}.")
    cfg.optim = replace(cfg.optim, schedule="constant", warmup_epochs=0.0, lookahead_every=0)
    prepared = prepare(cfg)
    data, model = prepared.data, prepared.model
    feeder = choose_feeder(cfg, data, label_format(cfg) == "one_hot", _mixing_fn(cfg))
    fit_model = feeder.model_to_fit(model)
    steps_per_epoch = math.ceil(len(data.train) / cfg.data.batch_size)
    compile_model(fit_model, cfg, steps_per_epoch)
    test = RangeTest(start, end, steps)
    fit_model.fit(epochs=math.ceil(steps / steps_per_epoch), callbacks=[test, *feeder.callbacks()], verbose=0,
                  **feeder.inputs("train", training=True))
    smoothed = smooth(test.losses)
    lrs = test.lrs[: len(smoothed)]
    suggestion = suggest(lrs, smoothed)
    out = Path(out_dir or Path(cfg.train.log_dir) / f"lr-find-{cfg.name}")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lr_find.csv", "w") as f:
        f.write("step,learning_rate,loss,smoothed_loss\n")
        f.writelines(f"{i},{lr:.6g},{loss:.6g},{sm:.6g}\n" for i, (lr, loss, sm) in enumerate(zip(lrs, test.losses, smoothed), start=1))
    plot_lr_find(lrs, smoothed, suggestion, out / "lr_find.png",
                 f"LR range test: {cfg.model.name}, {cfg.optim.name}, batch {cfg.data.batch_size} ({len(lrs)} batches)")
    (out / "lr_find.json").write_text(json.dumps({
        "suggestion": suggestion, "start": start, "end": end, "batches": len(lrs), "optimizer": cfg.optim.name,
        "batch_size": cfg.data.batch_size, "note": "the steepest descent of the smoothed training loss; the "
        "minimum / 10 rule alongside; a starting point for optim.lr, not a tuned value",
    }, indent=2) + "\n")
    return {"out_dir": str(out), "suggestion": suggestion, "lrs": lrs, "losses": list(smoothed)}
