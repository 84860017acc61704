"""TripletLoss and CenterLoss against plain NumPy references (loops over triplets, float64).

Every test here is backend_agnostic: also run it with KERAS_BACKEND=jax.
"""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from kerasclf.losses.metric import DISTANCES, MININGS, CenterLoss, TripletLoss

pytestmark = pytest.mark.backend_agnostic
BACKEND = keras.backend.backend()


# --- NumPy references: the definitions written out triplet by triplet -----------------------

def np_distances(x, distance):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    d = np.zeros((n, n))
    for i, j in itertools.product(range(n), range(n)):
        if i == j:
            continue
        if distance == "cosine":
            d[i, j] = 1 - x[i] @ x[j]
        else:
            sq = np.sum((x[i] - x[j]) ** 2)
            d[i, j] = sq if distance == "squared" else np.sqrt(sq)
    return d


def np_triplet(x, y, margin, mining, distance):
    d = np_distances(x.astype(np.float64), distance)
    n = len(y)
    pos = lambda a: [p for p in range(n) if p != a and y[p] == y[a]]  # noqa: E731
    neg = lambda a: [k for k in range(n) if y[k] != y[a]]  # noqa: E731
    hinge = lambda v: max(v + margin, 0.0)  # noqa: E731
    losses = []  # one entry per mined triplet (batch_all), anchor (batch_hard) or pair (semi_hard)
    for a in range(n):
        if not pos(a) or not neg(a):
            continue
        if mining == "batch_all":
            losses += [hinge(d[a, p] - d[a, k]) for p in pos(a) for k in neg(a)]
        elif mining == "batch_hard":
            losses.append(hinge(max(d[a, p] for p in pos(a)) - min(d[a, k] for k in neg(a))))
        else:  # semi_hard, as TensorFlow Addons' TripletSemiHardLoss
            for p in pos(a):
                farther = [d[a, k] for k in neg(a) if d[a, k] > d[a, p]]
                chosen = min(farther) if farther else max(d[a, k] for k in neg(a))
                losses.append(hinge(d[a, p] - chosen))
    losses = np.array(losses)
    if not len(losses):
        return 0.0, 0.0
    active = losses > 1e-16
    if mining == "batch_all":
        return (losses[active].mean() if active.any() else 0.0), active.mean()
    return losses.mean(), active.mean()


def np_center_step(x, y, centers, alpha):
    loss = 0.5 * np.mean([np.sum((x[i] - centers[y[i]]) ** 2) for i in range(len(y))])
    new = centers.copy()
    for j in range(len(centers)):
        members = [x[i] for i in range(len(y)) if y[i] == j]
        delta = sum((centers[j] - m for m in members), np.zeros_like(centers[j])) / (1 + len(members))
        new[j] = centers[j] - alpha * delta
    return loss, new


def batch(seed, size, classes, dim=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, dim)).astype(np.float32)
    y = rng.integers(0, classes, size).astype(np.int32)
    return x, y


def grad_of(fn, x):
    """d fn(x) / dx as numpy, on the active backend."""
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: fn(v))(x))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            out = fn(v)
        return tape.gradient(out, v).numpy()
    pytest.skip(f"no gradient helper for backend {BACKEND}")


# --- TripletLoss ----------------------------------------------------------------------------

CASES = [  # (seed, batch size, classes, margin)
    (0, 6, 2, 0.2), (1, 16, 4, 0.1), (2, 33, 5, 0.5), (3, 64, 10, 0.2), (4, 24, 3, 1.0),
]


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("seed,size,classes,margin", CASES)
def test_triplet_equals_numpy_reference(mining, distance, seed, size, classes, margin):
    x, y = batch(seed, size, classes)
    layer = TripletLoss(margin=margin, mining=mining, distance=distance)
    loss, active = layer(x, y, return_active_fraction=True)
    want_loss, want_active = np_triplet(x, y, margin, mining, distance)
    np.testing.assert_allclose(float(loss), want_loss, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(float(active), want_active, atol=1e-6)


def test_references_differ_between_mining_modes():
    """The three modes are different losses on the same batch (the reference is not one formula)."""
    x, y = batch(5, 32, 4)
    values = {m: float(TripletLoss(margin=0.3, mining=m)(x, y)) for m in MININGS}
    assert len({round(v, 6) for v in values.values()}) == 3, values
    assert values["batch_hard"] > values["semi_hard"]  # hardest triplets have the largest hinge


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("labels", [[3] * 8, list(range(8))], ids=["one-class", "every-class-once"])
def test_batches_without_valid_triplet_give_zero(mining, labels):
    x, _ = batch(6, 8, 1)
    loss, active = TripletLoss(mining=mining)(x, np.array(labels, np.int32), return_active_fraction=True)
    assert float(loss) == 0.0 and float(active) == 0.0
    grad = grad_of(lambda v: TripletLoss(mining=mining)(v, np.array(labels, np.int32)), x)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("distance", DISTANCES)
def test_triplet_gradient_reaches_embedding_and_lowers_loss(mining, distance):
    x, y = batch(7, 16, 4)
    layer = TripletLoss(margin=0.5, mining=mining, distance=distance)
    grad = grad_of(lambda v: layer(v, y), x)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    stepped = x - 0.05 * grad
    assert float(layer(stepped, y)) < float(layer(x, y))


def test_triplet_gradient_finite_with_duplicate_embeddings():
    """Identical rows (d = 0) must not give NaN through the square root."""
    x, y = batch(8, 8, 2)
    x[1] = x[0]
    y[1] = y[0]
    grad = grad_of(lambda v: TripletLoss(mining="batch_hard")(v, y), x)
    assert np.all(np.isfinite(grad))


def test_triplet_scale_invariant():
    """Embeddings are L2-normalised: scaling them changes nothing."""
    x, y = batch(9, 20, 4)
    layer = TripletLoss(mining="batch_all")
    np.testing.assert_allclose(float(layer(x, y)), float(layer(7.5 * x, y)), rtol=1e-5)


def test_triplet_inside_compiled_function():
    """Works on a symbolic batch of unknown size (the training step's case)."""
    x, y = batch(10, 12, 3)
    layer = TripletLoss(mining="semi_hard")
    want = float(layer(x, y))
    if BACKEND == "jax":
        import jax

        got = jax.jit(lambda a, b: layer(a, b))(x, y)
    else:
        import tensorflow as tf

        fn = tf.function(lambda a, b: layer(a, b), input_signature=[
            tf.TensorSpec((None, 8), tf.float32), tf.TensorSpec((None,), tf.int32)], jit_compile=True)
        got = fn(x, y)
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-6)


def test_triplet_serialises():
    layer = TripletLoss(margin=0.3, mining="batch_hard", distance="cosine", name="trip")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert (clone.margin, clone.mining, clone.distance, clone.name) == (0.3, "batch_hard", "cosine", "trip")


@pytest.mark.parametrize("kwargs", [{"mining": "hardest"}, {"distance": "manhattan"}, {"margin": -0.1}])
def test_triplet_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        TripletLoss(**kwargs)


# --- CenterLoss -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed,size,classes,alpha", [(0, 8, 3, 0.5), (1, 32, 10, 0.1), (2, 5, 7, 1.0)])
def test_center_loss_and_update_equal_numpy_reference(seed, size, classes, alpha):
    x, y = batch(seed, size, classes)
    layer = CenterLoss(classes, alpha=alpha)
    layer.build(x.shape)
    start = np.random.default_rng(seed + 100).normal(size=(classes, x.shape[1])).astype(np.float32)
    layer.centers.assign(start)
    want_loss, want_centers = np_center_step(x.astype(np.float64), y, start.astype(np.float64), alpha)
    np.testing.assert_allclose(float(layer(x, y, training=True)), want_loss, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.centers), want_centers, rtol=1e-5, atol=1e-6)


def test_center_update_hand_computed():
    """Two classes, 1-D features: class 0 has x = 1 and 3, class 1 has x = 10, centres 0 and 4.

    Class 0: delta = ((0 - 1) + (0 - 3)) / (1 + 2) = -4/3; c0 = 0 - 0.5 * -4/3 = 2/3.
    Class 1: delta = (4 - 10) / (1 + 1) = -3;              c1 = 4 - 0.5 * -3   = 5.5.
    Class 2 is absent: delta = 0, c2 stays 7.
    Loss (old centres): 0.5 * mean(1^2, 3^2, 6^2) = 0.5 * 46 / 3.
    """
    layer = CenterLoss(3, alpha=0.5)
    layer.build((None, 1))
    layer.centers.assign(np.array([[0.0], [4.0], [7.0]], np.float32))
    loss = layer(np.array([[1.0], [3.0], [10.0]], np.float32), np.array([0, 0, 1]), training=True)
    np.testing.assert_allclose(float(loss), 0.5 * 46 / 3, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.centers)[:, 0], [2 / 3, 5.5, 7.0], rtol=1e-6)


def test_center_loss_not_training_keeps_centres():
    x, y = batch(3, 10, 4)
    layer = CenterLoss(4)
    layer(x, y, training=False)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.centers), 0)


def test_center_gradient_reaches_embedding_only():
    x, y = batch(4, 12, 3)
    layer = CenterLoss(3, alpha=0.0)
    layer.build(x.shape)
    centers = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    layer.centers.assign(centers)
    grad = grad_of(lambda v: layer(v, y), x)
    # d/dx_i of 0.5 * mean ||x - c||^2 is (x_i - c_{y_i}) / B
    np.testing.assert_allclose(grad, (x - centers[y]) / len(y), rtol=1e-5, atol=1e-7)
    assert not layer.trainable_weights  # the optimizer never sees the centres


@pytest.mark.parametrize("labels", [[2] * 6, list(range(6))], ids=["one-class", "every-class-once"])
def test_center_loss_finite_on_degenerate_batches(labels):
    x, _ = batch(5, 6, 1)
    layer = CenterLoss(6)
    loss = layer(x, np.array(labels), training=True)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(ops.convert_to_numpy(layer.centers)))


def test_center_converges_to_class_means():
    """Repeated updates on the same batch move each centre to its class's mean feature."""
    x, y = batch(6, 30, 3)
    layer = CenterLoss(3, alpha=0.5)
    for _ in range(60):
        layer(x, y, training=True)
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(ops.convert_to_numpy(layer.centers), means, atol=1e-4)


def test_center_loss_serialises():
    layer = CenterLoss(5, alpha=0.25, name="centres")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert (clone.num_classes, clone.alpha, clone.name) == (5, 0.25, "centres")
