"""Feeding in-memory splits to `model.fit`.

With TensorFlow: a tf.data pipeline over batch *indices* (shuffle, batch, a numpy gather,
optional MixUp/CutMix, prefetch). Gathering by index keeps the uint8 array out of the
TensorFlow graph (from_tensor_slices would embed it, and fails past 2 GB).
Without TensorFlow (JAX-only installs): numpy arrays straight to `fit`, which shuffles.
"""

import importlib.util

import numpy as np


def have_tensorflow():
    return importlib.util.find_spec("tensorflow") is not None


def one_hot(y, num_classes):
    return np.eye(num_classes, dtype=np.float32)[y]


def fit_inputs(split, batch_size, *, training, num_classes, one_hot_labels, seed=0, mixing=None, shuffle_buffer=None,
               order=None, deterministic=False):
    """Keyword arguments for model.fit / evaluate / predict: {x, y?, batch_size?, shuffle?}.

    `shuffle` is only given for training (model.evaluate rejects it); a tf.data pipeline
    shuffles itself, so fit gets shuffle=False (Keras warns when a Dataset gets shuffle=True).
    `order` (a data.order.EpochOrder, training only): batches in its per-epoch order, which
    a resumed run replays; without it, tf.data / Keras shuffle. `deterministic`: tf.data
    keeps batch order and runs stateful (random) maps one at a time.
    """
    y = one_hot(split.y, num_classes) if one_hot_labels else split.y
    if not have_tensorflow() or (not training and mixing is None):
        if mixing:
            raise RuntimeError("MixUp/CutMix need TensorFlow's tf.data pipeline; install kerasclf[tf].")
        if training and order is not None:
            from kerasclf.data.order import epoch_batches

            return {"x": epoch_batches(split.x, y, batch_size, order), "shuffle": False}
        inputs = {"x": split.x, "y": y, "batch_size": batch_size}
        return {**inputs, "shuffle": True} if training else inputs
    inputs = {"x": _tf_dataset(split.x, y, batch_size, training, seed, mixing, shuffle_buffer, order, deterministic)}
    return {**inputs, "shuffle": False} if training else inputs


def _tf_dataset(x, y, batch_size, training, seed, mixing, shuffle_buffer, order=None, deterministic=False):
    import tensorflow as tf

    n = len(x)
    rows_of = None
    if training and order is not None:
        # elements are batch numbers; gather() turns one into that batch's rows of the current epoch
        ds = tf.data.Dataset.range(-(-n // batch_size))
        rows_of = lambda i: order.batch(i, batch_size)  # noqa: E731
    else:
        ds = tf.data.Dataset.range(n)
        if training:
            ds = ds.shuffle(shuffle_buffer or n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)

    # MixUp/CutMix are keras.ops code: in the graph map under the TensorFlow backend; under
    # another backend its ops cannot take tf.data's symbolic tensors, so they run eagerly
    # on each gathered numpy batch instead.
    import keras

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
        images.set_shape((None, *x.shape[1:]))
        labels.set_shape((None, *y.shape[1:]))
        return images, labels

    ds = ds.map(gather_tf, num_parallel_calls=1 if eager_mixing is not None else tf.data.AUTOTUNE)
    if mixing is not None and eager_mixing is None:
        # parallel calls would draw the mixing RNG in thread order: one at a time when deterministic
        ds = ds.map(mixing, num_parallel_calls=1 if deterministic else tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic or not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
