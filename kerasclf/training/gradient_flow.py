"""Gradient flow: mean and max |gradient| per trainable weight layer on a fixed probe batch.

`train.gradient_flow_every: N` (0 = off) probes before training and after every N-th epoch:
one forward/backward pass of the training loss on the same `train.gradient_flow_batch`
images (a seeded sample of the training split), with the current weights. Nothing is
updated: the pass is `model.stateless_call`, so BatchNorm statistics and dropout seeds stay
as they were. "Weight layer" is freeze.py's notion (normalization layers are not bars);
a layer's statistics cover all its trainable variables (kernel and bias).

Output: <run>/gradient_flow/epoch_NNN.png (the familiar bar chart: layers input to output,
max and mean |gradient| on a log scale), gradient_flow.csv, and TensorBoard histograms and
scalars under <run>/tensorboard/gradient_flow when TensorFlow is installed.
"""

import csv
import importlib.util
from pathlib import Path

import keras
import numpy as np

from kerasclf.errors import ConfigError
from kerasclf.models.freeze import weight_layers
from kerasclf.plotting import new_figure, save_figure

# --- gradients: the one backend-specific step -------------------------------------------

def _jax_gradient(loss):
    import jax  # lazy: JAX is optional

    return jax.jit(jax.grad(loss))  # compiled once per probe model: eager JAX compiles op by op


def _tensorflow_gradient(loss):
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    def gradient(values, non_trainable, x, y):
        values = [tf.convert_to_tensor(v) for v in values]
        with tf.GradientTape() as tape:
            tape.watch(values)
            value = loss(values, non_trainable, x, y)
        return tape.gradient(value, values)

    return gradient


GRADIENT_BUILDERS = {"jax": _jax_gradient, "tensorflow": _tensorflow_gradient}


def check_backend():
    """The Keras backend, when gradient flow can be probed on it (else a ConfigError)."""
    backend = keras.backend.backend()
    if backend not in GRADIENT_BUILDERS:
        raise ConfigError(
            f"train.gradient_flow_every works on the {' and '.join(GRADIENT_BUILDERS)} backends, not "
            f"{backend!r}: set KERAS_BACKEND, or train.gradient_flow_every=0."
        )
    return backend


class GradientProbe:
    """probe(x, y) -> {id(variable): numpy gradient} of loss_fn(y, model(x, training=True)).

    The forward pass is written once with keras.ops (`stateless_call`, which updates no
    variable); only taking the gradient differs between backends.
    """

    def __init__(self, model, loss_fn):
        backend = check_backend()
        self.model, self.loss_fn = model, loss_fn
        self._gradient = GRADIENT_BUILDERS[backend](self._loss)

    def _loss(self, values, non_trainable, x, y):
        y_pred, _ = self.model.stateless_call(values, non_trainable, x, training=True)
        return self.loss_fn(y, keras.ops.cast(y_pred, "float32"))

    def __call__(self, x, y):
        trainable = list(self.model.trainable_variables)
        grads = self._gradient(
            [v.value for v in trainable], [v.value for v in self.model.non_trainable_variables],
            keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y),
        )
        return {
            id(v): np.zeros(v.shape, "float32") if g is None else np.asarray(keras.ops.convert_to_numpy(g), "float32")
            for v, g in zip(trainable, grads)
        }


def layer_gradient_stats(model, grads):
    """[{layer, mean_abs, max_abs, size, values}] per trainable weight layer, input to output,
    from GradientProbe's {id(variable): gradient}."""
    stats = []
    for path, layer in weight_layers(model):
        own = [grads[id(v)].ravel() for v in layer.trainable_variables if id(v) in grads]
        if not own:  # frozen: no gradient to show
            continue
        flat = np.abs(np.concatenate(own))
        stats.append({"layer": path, "mean_abs": float(flat.mean()), "max_abs": float(flat.max()),
                      "size": int(flat.size), "values": np.concatenate(own)})
    return stats


def probe_loss(cfg):
    """The training loss on integer labels (label smoothing kept; MixUp/CutMix are not part of a probe)."""
    if cfg.loss.label_smoothing > 0:
        smoothing = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.loss.label_smoothing)

        def loss(y, y_pred):
            return smoothing(keras.ops.one_hot(keras.ops.cast(y, "int32"), y_pred.shape[-1]), y_pred)

        return loss
    return keras.losses.SparseCategoricalCrossentropy()


def probe_batch(split, size, seed):
    """A seeded sample of `size` training images (not the first ones: folders are in class order)."""
    n = len(split.y)
    index = np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
    return split.x[index], np.asarray(split.y)[index]


# --- the chart ----------------------------------------------------------------------------

def plot_gradient_flow(stats, path, title):
    n = len(stats)
    fig = new_figure(max(6.0, 0.32 * n + 2.5), 4.8)
    ax = fig.add_subplot()
    pos = np.arange(n)
    tiny = 1e-30  # a zero gradient has no place on a log axis: drawn at the floor
    ax.bar(pos, [max(s["max_abs"], tiny) for s in stats], width=0.8, alpha=0.35, color="c", label="max |gradient|")
    ax.bar(pos, [max(s["mean_abs"], tiny) for s in stats], width=0.8, alpha=0.9, color="b", label="mean |gradient|")
    ax.set_yscale("log")
    positive = [v for s in stats for v in (s["mean_abs"], s["max_abs"]) if v > 0]
    if positive:
        ax.set_ylim(min(positive) / 3, max(positive) * 3)
    ax.set_xticks(pos)
    ax.set_xticklabels([s["layer"] for s in stats], rotation=90, fontsize=7 if n > 20 else 8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("weight layer (input → output)")
    ax.set_ylabel("|gradient| (log)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


# --- the callback -------------------------------------------------------------------------

class GradientFlow(keras.callbacks.Callback):
    """Probes `model` (the classification model, not a wrapper) every `every` epochs."""

    def __init__(self, model, x, y, loss_fn, every, out_dir, tensorboard_dir=None, start_epoch=0):
        super().__init__()
        self.probe_model, self.x, self.y = model, x, y
        self.gradients = GradientProbe(model, loss_fn)
        self.every, self.start_epoch = int(every), start_epoch
        self.out_dir = Path(out_dir)
        self.tensorboard_dir = tensorboard_dir
        self._writer = None
        self.history = []  # (epoch, stats) per probe

    def on_train_begin(self, logs=None):
        if self.start_epoch == 0:
            self.probe(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.probe(epoch + 1)

    def probe(self, epoch):
        stats = layer_gradient_stats(self.probe_model, self.gradients(self.x, self.y))
        # the figures' numbers only: the raw gradients (as large as the model; 68 MB an epoch
        # for the Dogs vs Cats CNN) go to TensorBoard below and are not kept
        self.history.append((epoch, [{k: v for k, v in s.items() if k != "values"} for s in stats]))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        when = "initial weights" if epoch == 0 else f"after epoch {epoch}"
        plot_gradient_flow(stats, self.out_dir / f"epoch_{epoch:03d}.png",
                           f"Gradient flow, {when} ({len(self.y)} probe images)")
        self._append_csv(epoch, stats)
        self._tensorboard(epoch, stats)
        return stats

    def _append_csv(self, epoch, stats):
        path = self.out_dir / "gradient_flow.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "layer", "mean_abs", "max_abs", "size"])
            for s in stats:
                writer.writerow([epoch, s["layer"], f"{s['mean_abs']:.6g}", f"{s['max_abs']:.6g}", s["size"]])

    def _tensorboard(self, epoch, stats):
        if self.tensorboard_dir is None or not _tensorboard_available():
            return
        import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))
        # record_if(True): Keras's TensorBoard callback records only every update_freq-th step meanwhile
        with self._writer.as_default(), tf.summary.record_if(True):
            for s in stats:
                write_histogram(f"gradients/{s['layer']}", s["values"], epoch)
                tf.summary.scalar(f"gradient_mean_abs/{s['layer']}", s["mean_abs"], step=epoch)
                tf.summary.scalar(f"gradient_max_abs/{s['layer']}", s["max_abs"], step=epoch)
        self._writer.flush()


def histogram_tensor(values, buckets=30):
    """TensorBoard's histogram tensor, (buckets, 3) rows of (left edge, right edge, count)."""
    counts, edges = np.histogram(np.asarray(values, np.float64).ravel(), bins=buckets)
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def write_histogram(name, values, step):
    """tf.summary.histogram's record, computed with numpy: tf.summary.histogram one-hot encodes
    every value into its bucket, about 230 bytes a value (3.9 GB for the Dogs vs Cats CNN's
    16.8M-weight dense layer, measured: the 7.6 GB gradient-flow run of issue 19); np.histogram
    takes the values once."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)
    from tensorboard.plugins.histogram import metadata  # lazy: with TensorFlow

    if np.size(values):
        tf.summary.write(name, histogram_tensor(values), step=step,
                         metadata=metadata.create_summary_metadata(display_name=name, description=""))


def _tensorboard_available():
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))


def gradient_flow_callbacks(cfg, model, data, run_dir, start_epoch=0):
    """[GradientFlow] when train.gradient_flow_every > 0, else []."""
    every = getattr(cfg.train, "gradient_flow_every", 0)
    if not every:
        return []
    x, y = probe_batch(data.train, cfg.train.gradient_flow_batch, cfg.seed)
    return [GradientFlow(model, x, y, probe_loss(cfg), every, Path(run_dir) / "gradient_flow",
                         Path(run_dir) / "tensorboard" / "gradient_flow", start_epoch=start_epoch)]
