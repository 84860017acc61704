"""Feeding in-memory splits to `model.fit`.

With TensorFlow: a tf.data pipeline over batch *indices* (shuffle, batch, a numpy gather,
optional MixUp/CutMix, prefetch). Gathering by index keeps the uint8 array out of the
TensorFlow graph (from_tensor_slices would embed it, and fails past 2 GB).
Without TensorFlow (JAX-only installs): numpy arrays straight to `fit`, which shuffles.
Splits kept on disk (data.stream) are streamed by kerasclf.data.stream instead.
"""

import keras
import numpy as np

from kerasclf import backend
from kerasclf.data.files import is_streamed
from kerasclf.data.order import epoch_batches
from kerasclf.data.sampler import sampled_batches
from kerasclf.data.stream import folder_dataset


def one_hot(y, num_classes):
    return np.eye(num_classes, dtype=np.float32)[y]


def fit_inputs(split, batch_size, *, training, num_classes, one_hot_labels, seed=0, mixing=None, shuffle_buffer=None,
               sampler=None, order=None, deterministic=False, static_batches=False):
    """Keyword arguments for model.fit / evaluate / predict: {x, y?, batch_size?, shuffle?}.

    `shuffle` is only given for training (model.evaluate rejects it); a tf.data pipeline
    shuffles itself, so fit gets shuffle=False (Keras warns when a Dataset gets shuffle=True).
    `sampler` (training only): a kerasclf.data.sampler.PKSampler whose index batches replace
    the shuffled ones.
    `order` (a data.order.EpochOrder, training only): batches in its per-epoch order, which
    a resumed run replays; without it, tf.data / Keras shuffle. `deterministic`: tf.data
    keeps batch order and runs stateful (random) maps one at a time.
    `static_batches` (a multi-process run: Keras shards tf.data per process only for batches
    of a static size): a tf.data pipeline whose every batch has `batch_size` rows. Training
    drops an epoch's last, partial batch (steps_per_epoch counts full batches); evaluation
    pads the last batch with copies of row 0 and gives each batch sample weights, 0 on the
    padding and padded/real on the real rows, so that the loss (Keras averages it over every
    row of a batch) and the weighted metrics are exactly those of the real images.
    """
    if static_batches:
        if is_streamed(split) or not backend.have_tensorflow():  # refused before (training.feeding.preflight)
            raise RuntimeError("static batches need an in-memory split and TensorFlow's tf.data")
        y = one_hot(split.y, num_classes) if one_hot_labels else split.y
        ds = _tf_dataset(split.x, y, batch_size, training, seed, mixing if training else None, shuffle_buffer,
                         sampler if training else None, order, deterministic, static_batches=True)
        return {"x": ds, "shuffle": False} if training else {"x": ds}
    if is_streamed(split):
        return _streamed_inputs(split, batch_size, training, num_classes if one_hot_labels else None, seed, mixing,
                                shuffle_buffer)
    y = one_hot(split.y, num_classes) if one_hot_labels else split.y
    if training and sampler is not None and not backend.have_tensorflow():
        return {"x": sampled_batches(sampler, lambda index: (split.x[index], y[index])), "shuffle": False}
    if not training:
        sampler = None
    if not backend.have_tensorflow() or (not training and mixing is None):
        if mixing:
            raise RuntimeError("MixUp/CutMix need TensorFlow's tf.data pipeline; install kerasclf[tf].")
        if training and order is not None:
            return {"x": epoch_batches(split.x, y, batch_size, order), "shuffle": False}
        inputs = {"x": split.x, "y": y, "batch_size": batch_size}
        return {**inputs, "shuffle": True} if training else inputs
    inputs = {"x": _tf_dataset(split.x, y, batch_size, training, seed, mixing, shuffle_buffer, sampler, order,
                             deterministic)}
    return {**inputs, "shuffle": False} if training else inputs


def predict_inputs(split, batch_size):
    """Keyword arguments for model.predict over a split, in order (in memory or streamed)."""
    if is_streamed(split):
        return {"x": _streamed_inputs(split, batch_size, False, None, 0, None, None)["x"]}
    return {"x": split.x, "batch_size": batch_size}


def _streamed_inputs(split, batch_size, training, num_classes, seed, mixing, shuffle_buffer):
    """Files read and decoded by tf.data each epoch (no decoded cache: memory stays flat)."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    ds = folder_dataset(
        split.x.paths, split.y, split.x.image_size, batch_size, training, seed=seed, cache=False,
        shuffle_buffer=shuffle_buffer, num_classes=num_classes,
    )
    if mixing is not None:  # TensorFlow backend only: training.feeding.preflight refused the others
        ds = ds.map(mixing, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return {"x": ds, "shuffle": False} if training else {"x": ds}


def _tf_dataset(x, y, batch_size, training, seed, mixing, shuffle_buffer, sampler=None, order=None,
                deterministic=False, static_batches=False):
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    n = len(x)
    rows_of = None
    if static_batches and not training:
        return _padded_dataset(x, y, batch_size)
    if sampler is not None:  # the generator is called again for every epoch: new P x K batches
        ds = tf.data.Dataset.from_generator(
            lambda: iter(sampler.epoch()), output_signature=tf.TensorSpec((sampler.batch_size,), tf.int64)
        ).apply(tf.data.experimental.assert_cardinality(sampler.batches_per_epoch))
    elif training and order is not None:
        # elements are batch numbers; gather() turns one into that batch's rows of the current epoch
        ds = tf.data.Dataset.range(n // batch_size if static_batches else -(-n // batch_size))
        rows_of = lambda i: order.batch(i, batch_size)  # noqa: E731
    else:
        ds = tf.data.Dataset.range(n)
        if training:
            ds = ds.shuffle(shuffle_buffer or n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=static_batches)

    # MixUp/CutMix are keras.ops code: in the graph map under the TensorFlow backend; under
    # another backend its ops cannot take tf.data's symbolic tensors, so they run eagerly
    # on each gathered numpy batch instead.
    eager_mixing = mixing if mixing is not None and keras.backend.backend() != "tensorflow" else None

    def gather(index):
        if rows_of is not None:
            index = rows_of(index)
        images, labels = x[index], y[index]
        if eager_mixing is not None:
            images, labels = (keras.ops.convert_to_numpy(t) for t in eager_mixing(images, labels))
        return images, labels.astype(y.dtype, copy=False)

    def gather_tf(index):
        images, labels = tf.numpy_function(gather, [index], [tf.uint8, tf.as_dtype(y.dtype)])
        rows = (sampler.batch_size if sampler is not None else batch_size) if static_batches else None
        images.set_shape((rows, *x.shape[1:]))
        labels.set_shape((rows, *y.shape[1:]))
        return images, labels

    ds = ds.map(gather_tf, num_parallel_calls=1 if eager_mixing is not None else tf.data.AUTOTUNE)
    if mixing is not None and eager_mixing is None:
        # parallel calls would draw the mixing RNG in thread order: one at a time when deterministic
        ds = ds.map(mixing, num_parallel_calls=1 if deterministic else tf.data.AUTOTUNE)
    return _with_options(ds, deterministic or not training)


def _padded_dataset(x, y, batch_size):
    """Evaluation batches of exactly `batch_size` rows with sample weights (fit_inputs' static_batches)."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    n = len(x)
    padded = -(-n // batch_size) * batch_size
    real = np.float32(padded / n) if n else np.float32(0)

    def gather(index):
        rows = np.where(index < n, index, 0)
        weights = np.where(index < n, real, np.float32(0)).astype(np.float32)
        return x[rows], y[rows], weights

    def gather_tf(index):
        images, labels, weights = tf.numpy_function(gather, [index], [tf.uint8, tf.as_dtype(y.dtype), tf.float32])
        images.set_shape((batch_size, *x.shape[1:]))
        labels.set_shape((batch_size, *y.shape[1:]))
        weights.set_shape((batch_size,))
        return images, labels, weights

    ds = tf.data.Dataset.range(padded).batch(batch_size).map(gather_tf, num_parallel_calls=tf.data.AUTOTUNE)
    return _with_options(ds, True)


def _with_options(ds, deterministic):
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    options = tf.data.Options()
    options.deterministic = deterministic
    # An in-memory pipeline has no files to shard: a multi-worker run (train.distribute) gives
    # each worker every N-th batch element, instead of trying files first and warning.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
