"""Metric-learning losses on an embedding: triplet loss (with online mining) and center loss.

Written with `keras.ops` only, on whole batches (pairwise matrices, no Python loop over
samples), so they compile under TensorFlow (XLA) and JAX alike.

TripletLoss (Schroff et al. 2015, "FaceNet"; Hermans et al. 2017, "In defense of the
triplet loss"). Embeddings are L2-normalised first; distance `euclidean` (||a - b||),
`squared` (||a - b||^2) or `cosine` (1 - cos). A triplet (a, p, n) is valid when a != p,
label(a) == label(p) and label(n) != label(a); its loss is max(d(a,p) - d(a,n) + margin, 0).
Mining:
- `batch_all`: every valid triplet; the mean over those with a loss > 0 (Hermans' "BA!=0").
- `batch_hard`: per anchor, its farthest positive and closest negative; the mean over
  anchors that have both.
- `semi_hard`: per positive pair (a, p), the closest negative farther than p
  (d(a,n) > d(a,p)); when there is none, the farthest negative -- TensorFlow Addons'
  `TripletSemiHardLoss`; the mean over positive pairs whose anchor has a negative.
A batch without a valid triplet (one class only, or every class once) gives 0, not NaN
(TensorFlow Addons divided by zero there). The "active fraction" is the share of the
mined triplets (pairs, anchors) whose loss is > 0: it falls towards 0 as the embedding
separates the batch, and says when mining has run out of work.

CenterLoss (Wen et al. 2016, "A discriminative feature learning approach for deep face
recognition"): 0.5 * ||x_i - c_{y_i}||^2 averaged over the batch, with one centre per class
held in a non-trainable variable. The centres are not moved by the optimizer (whose
learning rate, e.g. 1e-5 for a fine-tuned ResNet, would freeze them) but by the paper's
rule, once per training call, with the batch's features:
    c_j <- c_j - alpha * sum_i [y_i = j] (c_j - x_i) / (1 + sum_i [y_i = j]).
A variable assigned inside a layer call while training is how BatchNormalization keeps its
moving mean, so the update works on every backend (JAX returns it as a new state).
"""

import keras
from keras import ops

DISTANCES = ("euclidean", "squared", "cosine")
MININGS = ("batch_all", "batch_hard", "semi_hard")

# A distance no pair of unit vectors reaches (their distances are at most 4): stands for
# "no such neighbour" in masked minimum/maximum reductions.
_FAR = 1e6
_TINY = 1e-16


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def l2_normalize(x, epsilon=1e-12):
    """Rows scaled to unit length (a zero row stays zero)."""
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), epsilon))


def _eye_like(labels):
    """(B, B) boolean identity for a batch of any (also unknown, symbolic) size."""
    position = ops.cumsum(ops.ones_like(labels, dtype="int32"))
    return ops.expand_dims(position, 1) == ops.expand_dims(position, 0)


def pairwise_distances(embeddings, distance="euclidean"):
    """(B, B) distances between the rows of `embeddings` (as given: normalise first if wanted).

    The diagonal is exactly 0. `euclidean` takes the square root where it is safe only, so
    that the gradient of identical rows is 0, not NaN.
    """
    _check_choice("distance", distance, DISTANCES)
    dot = ops.matmul(embeddings, ops.transpose(embeddings))
    if distance == "cosine":
        norms = ops.sqrt(ops.maximum(ops.sum(ops.square(embeddings), axis=-1), 1e-12))
        dist = 1.0 - dot / (ops.expand_dims(norms, 1) * ops.expand_dims(norms, 0))
    else:
        sq_norm = ops.sum(ops.square(embeddings), axis=-1)
        dist = ops.maximum(ops.expand_dims(sq_norm, 1) - 2.0 * dot + ops.expand_dims(sq_norm, 0), 0.0)
        if distance == "euclidean":
            zero = dist <= _TINY
            dist = ops.where(zero, 0.0, ops.sqrt(ops.where(zero, 1.0, dist)))
    eye = _eye_like(embeddings[:, 0])
    return ops.where(eye, 0.0, dist)


def _label_masks(labels):
    labels = ops.reshape(labels, (-1,))
    same = ops.expand_dims(labels, 1) == ops.expand_dims(labels, 0)
    eye = _eye_like(labels)
    positive = ops.logical_and(same, ops.logical_not(eye))
    negative = ops.logical_not(same)
    return positive, negative


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (no valid triplet: no loss)."""
    numerator = ops.cast(numerator, "float32")
    denominator = ops.cast(denominator, "float32")
    return numerator / ops.maximum(denominator, 1.0)


def triplet_loss(embeddings, labels, margin=0.2, mining="semi_hard", distance="euclidean"):
    """(loss, active_fraction) of a batch: embeddings (B, D), integer labels (B,)."""
    _check_choice("mining", mining, MININGS)
    x = l2_normalize(ops.cast(embeddings, "float32"))
    dist = pairwise_distances(x, distance)
    positive, negative = _label_masks(labels)
    return _MINERS[mining](dist, positive, negative, float(margin))


def _batch_all(dist, positive, negative, margin):
    # [a, p, n]: d(a, p) - d(a, n) + margin over every valid triplet
    valid = ops.logical_and(ops.expand_dims(positive, 2), ops.expand_dims(negative, 1))
    losses = ops.relu(ops.expand_dims(dist, 2) - ops.expand_dims(dist, 1) + margin)
    losses = ops.where(valid, losses, 0.0)
    active = ops.sum(ops.cast(losses > _TINY, "float32"))
    return _ratio(ops.sum(losses), active), _ratio(active, ops.sum(ops.cast(valid, "float32")))


def _batch_hard(dist, positive, negative, margin):
    hardest_positive = ops.max(ops.where(positive, dist, 0.0), axis=1)
    hardest_negative = ops.min(ops.where(negative, dist, _FAR), axis=1)
    valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    losses = ops.where(valid, ops.relu(hardest_positive - hardest_negative + margin), 0.0)
    n_valid = ops.sum(ops.cast(valid, "float32"))
    return _ratio(ops.sum(losses), n_valid), _ratio(ops.sum(ops.cast(losses > _TINY, "float32")), n_valid)


def _semi_hard(dist, positive, negative, margin):
    # Which negative each pair (a, p) uses is found without gradient over [a, p, n]
    # (compare, select, argmin), then its distance is gathered from `dist` (B x B), so the
    # backward pass never touches a B x B x B tensor.
    d = ops.stop_gradient(dist)
    negatives = ops.where(negative, d, _FAR)  # [a, n]; non-negatives are never "farther"
    candidates = ops.where(ops.expand_dims(negatives, 1) > ops.expand_dims(d, 2), ops.expand_dims(negatives, 1), _FAR)
    closest_outside = ops.argmin(candidates, axis=2)  # [a, p]: closest negative farther than p
    picked = ops.take_along_axis(negatives, closest_outside, axis=1)
    has_outside = ops.logical_and(picked > d, picked < _FAR)
    farthest = ops.expand_dims(ops.argmax(ops.where(negative, d, -1.0), axis=1), 1)  # [a, 1]
    chosen = ops.take_along_axis(dist, ops.where(has_outside, closest_outside, farthest), axis=1)
    valid = ops.logical_and(positive, ops.any(negative, axis=1, keepdims=True))
    losses = ops.where(valid, ops.relu(dist - chosen + margin), 0.0)
    n_valid = ops.sum(ops.cast(valid, "float32"))
    return _ratio(ops.sum(losses), n_valid), _ratio(ops.sum(ops.cast(losses > _TINY, "float32")), n_valid)


_MINERS = {"batch_all": _batch_all, "batch_hard": _batch_hard, "semi_hard": _semi_hard}


def center_loss(embeddings, labels, centers):
    """0.5 * ||x_i - c_{y_i}||^2 averaged over the batch (the centres get no gradient)."""
    x = ops.cast(embeddings, "float32")
    own = ops.take(ops.stop_gradient(centers), ops.cast(ops.reshape(labels, (-1,)), "int32"), axis=0)
    return 0.5 * ops.mean(ops.sum(ops.square(x - own), axis=-1))


def center_update(embeddings, labels, centers, alpha):
    """Wen et al.'s rule: the centres after one step of rate `alpha` towards the batch's features."""
    x = ops.stop_gradient(ops.cast(embeddings, "float32"))
    onehot = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), ops.shape(centers)[0], dtype="float32")
    counts = ops.expand_dims(ops.sum(onehot, axis=0), 1)  # (C, 1) images of each class in the batch
    sums = ops.matmul(ops.transpose(onehot), x)  # (C, D) their feature sums
    delta = (counts * centers - sums) / (1.0 + counts)
    return centers - alpha * delta


@keras.saving.register_keras_serializable(package="kerasclf")
class TripletLoss(keras.layers.Layer):
    """`layer(embeddings, labels)` -> the batch's triplet loss (a scalar); see the module doc.

    `return_active_fraction=True` returns (loss, active_fraction); built with report_active=True
    it returns (loss, {"triplet_active": active_fraction}), the auxiliary-loss protocol
    (kerasclf.registry.AUX_LOSSES) for a loss with logs.
    """

    def __init__(self, margin=0.2, mining="semi_hard", distance="euclidean", report_active=False, **kwargs):
        kwargs.setdefault("dtype", "float32")  # distances in float32 under mixed precision too
        super().__init__(**kwargs)
        _check_choice("mining", mining, MININGS)
        _check_choice("distance", distance, DISTANCES)
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.margin, self.mining, self.distance = float(margin), mining, distance
        self.report_active = bool(report_active)
        self.built = True  # no weights to create

    def call(self, embeddings, labels, training=None, return_active_fraction=False):
        loss, active = triplet_loss(embeddings, labels, self.margin, self.mining, self.distance)
        if self.report_active:
            return loss, {"triplet_active": active}
        return (loss, active) if return_active_fraction else loss

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        return ()

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining, "distance": self.distance,
                "report_active": self.report_active}


@keras.saving.register_keras_serializable(package="kerasclf")
class CenterLoss(keras.layers.Layer):
    """`layer(embeddings, labels, training=...)` -> the batch's center loss (a scalar).

    With training=True the centres (`self.centers`, non-trainable, (num_classes, dim))
    then move by Wen et al.'s rule with rate `alpha`; the loss uses the centres before
    that step.
    """

    def __init__(self, num_classes, alpha=0.5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.num_classes, self.alpha = int(num_classes), float(alpha)

    def build(self, embeddings_shape, labels_shape=None):
        self.centers = self.add_weight(
            shape=(self.num_classes, int(embeddings_shape[-1])), initializer="zeros",
            trainable=False, dtype="float32", name="centers",
        )

    def call(self, embeddings, labels, training=None):
        centers = ops.convert_to_tensor(self.centers)
        loss = center_loss(embeddings, labels, centers)
        if training:
            self.centers.assign(center_update(embeddings, labels, centers, self.alpha))
        return loss

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        return ()

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "alpha": self.alpha}
