"""Batch-level MixUp and CutMix, written with `keras.ops` / `keras.random` only.

Apply them to TRAINING batches only (never validation / test / predict): they take a batch
of images and one-hot (or soft) labels and return mixed images and mixed labels, pairing
each image with another one of the same batch (a random permutation). The loss must take
soft labels (categorical cross-entropy, not the sparse one).

They are pure functions of their inputs and the seed, with no Python-dependent shapes, so
they run:
- inside a `tf.data` map under the TensorFlow backend (`ds.map(lambda x, y: mixup(x, y,
  0.2, seed=gen))` with `gen = keras.random.SeedGenerator(seed)` created once, outside the
  map: the generator's state variable advances on every batch);
- under JAX, eagerly or in a jitted function, where `seed` may also be a JAX PRNG key
  (uint32 array of shape (2,)), which keeps the function stateless.

`seed`: a `keras.random.SeedGenerator` (fresh draws on every call), an int (the same draws
on every call: tests only), a JAX key (JAX backend), or None (Keras's global generator: not
usable while JAX traces).

Lambdas are drawn per image from Beta(alpha, alpha). Integer images (e.g. the uint8 batches
the kerasclf models take, their scaling being a layer of the model) keep their dtype: mixed
values are rounded, an error of at most half a grey level; CutMix pastes exact pixels.
"""

import keras
from keras import ops


def _seeds(seed, n):
    """n seeds for n independent draws from one `seed` argument."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return [seed] * n  # the generator advances on each draw
    if isinstance(seed, int):
        # Hash-mixed, so nested derivations (mix_batch -> cutmix) never reuse a seed.
        return [(int(seed) * 1_000_003 + 7_919 * (i + 1) + 12_345) % (2**31 - 1) for i in range(n)]
    # A backend key (JAX): split it into n keys by drawing from it.
    keys = keras.random.randint((n, 2), 0, 2**31 - 1, dtype="int32", seed=seed)
    return [ops.cast(keys[i], seed.dtype) for i in range(n)]


def sample_beta(shape, alpha, seed=None):
    """Beta(alpha, alpha) samples in [0, 1] via two gammas (float32); alpha > 0."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}.")
    g = keras.random.gamma((2,) + tuple(shape), alpha=float(alpha), dtype="float32", seed=seed)
    total = g[0] + g[1]
    # Both gammas can underflow to 0 for a tiny alpha: fall back to 0.5 there.
    safe = ops.where(total > 0, total, ops.ones_like(total))
    return ops.clip(ops.where(total > 0, g[0] / safe, 0.5 * ops.ones_like(total)), 0.0, 1.0)


def _permutation(batch, seed):
    return keras.random.shuffle(ops.arange(batch, dtype="int32"), seed=seed)


def _restore_dtype(mixed, dtype):
    """float mixed images -> the input dtype (round and clip for integer types)."""
    name = keras.backend.standardize_dtype(dtype)
    if "int" in name:
        info = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}
        low, high = info.get(name, (None, None))
        mixed = ops.round(mixed)
        if low is not None:
            mixed = ops.clip(mixed, low, high)
    return ops.cast(mixed, dtype)


def _check_alpha(alpha):
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}.")


def mixup(images, onehot_labels, alpha, seed=None):
    """MixUp (Zhang et al. 2018): x = l*x_i + (1-l)*x_j, y = l*y_i + (1-l)*y_j, l ~ Beta(a, a).

    images: (B, H, W, C), any numeric dtype; onehot_labels: (B, K) one-hot or soft labels.
    Returns (mixed images in the images' dtype, mixed labels as float32). Training only.
    """
    _check_alpha(alpha)
    seed_perm, seed_lam = _seeds(seed, 2)
    dtype = images.dtype
    labels = ops.cast(onehot_labels, "float32")
    batch = ops.shape(images)[0]
    perm = _permutation(batch, seed_perm)
    lam = sample_beta((batch,), alpha, seed_lam)
    x = ops.cast(images, "float32")
    lam_x = ops.reshape(lam, (-1,) + (1,) * (len(images.shape) - 1))
    mixed = lam_x * x + (1.0 - lam_x) * ops.take(x, perm, axis=0)
    mixed_labels = lam[:, None] * labels + (1.0 - lam[:, None]) * ops.take(labels, perm, axis=0)
    return _restore_dtype(mixed, dtype), mixed_labels


def cutmix(images, onehot_labels, alpha, seed=None):
    """CutMix (Yun et al. 2019): paste a box of a partner image; labels weighted by area.

    l ~ Beta(a, a); the box has sides H*sqrt(1-l) x W*sqrt(1-l) around a uniform random
    centre, clipped to the image; the label weight of the pasted image is the exact pasted
    area fraction (after clipping). Same arguments and returns as `mixup`. Training only.
    """
    _check_alpha(alpha)
    seed_perm, seed_lam, seed_y, seed_x = _seeds(seed, 4)
    dtype = images.dtype
    labels = ops.cast(onehot_labels, "float32")
    shape = ops.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    perm = _permutation(batch, seed_perm)
    lam = sample_beta((batch,), alpha, seed_lam)
    h = ops.cast(height, "float32")
    w = ops.cast(width, "float32")
    ratio = ops.sqrt(1.0 - lam)
    cy = keras.random.uniform((batch,), 0.0, 1.0, dtype="float32", seed=seed_y) * h
    cx = keras.random.uniform((batch,), 0.0, 1.0, dtype="float32", seed=seed_x) * w
    y1 = ops.clip(ops.round(cy - h * ratio / 2), 0.0, h)
    y2 = ops.clip(ops.round(cy + h * ratio / 2), 0.0, h)
    x1 = ops.clip(ops.round(cx - w * ratio / 2), 0.0, w)
    x2 = ops.clip(ops.round(cx + w * ratio / 2), 0.0, w)
    rows = ops.arange(height, dtype="float32")[None, :]
    cols = ops.arange(width, dtype="float32")[None, :]
    in_rows = (rows >= y1[:, None]) & (rows < y2[:, None])
    in_cols = (cols >= x1[:, None]) & (cols < x2[:, None])
    box = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # (B, H, W, 1)
    pasted = ops.where(box, ops.take(images, perm, axis=0), images)
    area = (y2 - y1) * (x2 - x1) / (h * w)  # fraction taken from the partner
    mixed_labels = (1.0 - area)[:, None] * labels + area[:, None] * ops.take(labels, perm, axis=0)
    return ops.cast(pasted, dtype), mixed_labels


def mix_batch(images, onehot_labels, mixup_alpha=0.0, cutmix_alpha=0.0, seed=None, cutmix_prob=0.5):
    """MixUp and/or CutMix as configured (`augment.mixup` / `augment.cutmix` alphas; 0 = off).

    With both on, each batch gets CutMix with probability `cutmix_prob`, else MixUp (as in
    timm). With both off the batch is returned unchanged (labels cast to float32).
    """
    if mixup_alpha and cutmix_alpha:
        seed_mix, seed_cut, seed_switch = _seeds(seed, 3)
        mixed = mixup(images, onehot_labels, mixup_alpha, seed_mix)
        cut = cutmix(images, onehot_labels, cutmix_alpha, seed_cut)
        use_cut = keras.random.uniform((), 0.0, 1.0, dtype="float32", seed=seed_switch) < cutmix_prob
        return ops.where(use_cut, cut[0], mixed[0]), ops.where(use_cut, cut[1], mixed[1])
    if mixup_alpha:
        return mixup(images, onehot_labels, mixup_alpha, seed)
    if cutmix_alpha:
        return cutmix(images, onehot_labels, cutmix_alpha, seed)
    return images, ops.cast(onehot_labels, "float32")


def batch_mixer(mixup_alpha=0.0, cutmix_alpha=0.0, seed=None, cutmix_prob=0.5):
    """`fn(images, onehot_labels) -> (images, labels)` for a tf.data map over training batches.

    One `SeedGenerator` is made here, outside the map, so every batch gets fresh draws
    (seeded by `seed`) instead of the same ones.
    """
    for alpha in (mixup_alpha, cutmix_alpha):
        if alpha:
            _check_alpha(alpha)
    generator = keras.random.SeedGenerator(seed)

    def mix(images, onehot_labels):
        return mix_batch(images, onehot_labels, mixup_alpha, cutmix_alpha, seed=generator, cutmix_prob=cutmix_prob)

    mix.seed_generator = generator  # its state is part of a run's resumable state
    return mix
