"""Balanced P x K training batches (`data.sampler`), for losses that mine within a batch.

A triplet loss learns only from anchors that have a positive (same class) and a negative
in their batch. Random batches of B images from C classes give an anchor a class mate
with probability about 1 - (1 - 1/C)^(B-1): 72% for 50 classes and B = 64, 27% for 200.
A P x K batch (Hermans et al. 2017) holds K images of each of P classes, so every anchor
has K - 1 positives and (P - 1) * K negatives.

`PKSampler.epoch()` draws one epoch of index batches (NumPy, seeded): each batch picks P
distinct classes uniformly at random and K images of each, taken from a per-class
shuffled queue so that an epoch sees a class's images before repeating any (a class with
fewer than K images repeats some within the batch). An epoch has ceil(N / (P * K)) batches,
as many steps as plain batches of P * K would give, so learning-rate schedules keep their
meaning. Both input paths use it: the tf.data pipeline (kerasclf.data.pipeline) and the
device-resident index path (kerasclf.training.resident), through `SampledBatches`.
"""

import math
import warnings

import keras
import numpy as np

from kerasclf.errors import ConfigError

# Below this expected share of anchors with a class mate in a random batch, aux=triplet warns.
MIN_ANCHORS_WITH_POSITIVE = 0.9


class PKSampler:
    def __init__(self, labels, classes_per_batch, images_per_class, seed=0):
        labels = np.asarray(labels).reshape(-1)
        self.p, self.k = int(classes_per_batch), int(images_per_class)
        self.classes = np.unique(labels)
        if self.p > len(self.classes):
            raise ConfigError(
                f"data.sampler.classes_per_batch={self.p} but the training split has only "
                f"{len(self.classes)} classes; choose at most {len(self.classes)}."
            )
        self.members = [np.flatnonzero(labels == c) for c in self.classes]
        self.batch_size = self.p * self.k
        self.batches_per_epoch = max(1, math.ceil(len(labels) / self.batch_size))
        self.rng = np.random.default_rng(seed)
        self._queues = [self.rng.permutation(m) for m in self.members]
        self._next = [0] * len(self.members)

    def _take(self, c):
        """K images of class index c from its queue, reshuffled when it runs out."""
        members = self.members[c]
        if len(members) < self.k:
            return self.rng.choice(members, self.k, replace=True)
        if self._next[c] + self.k > len(self._queues[c]):
            self._queues[c] = self.rng.permutation(members)
            self._next[c] = 0
        start = self._next[c]
        self._next[c] += self.k
        return self._queues[c][start:start + self.k]

    def epoch(self):
        """(batches_per_epoch, P * K) int64 indices into the labels given at construction."""
        out = np.empty((self.batches_per_epoch, self.batch_size), np.int64)
        for b in range(self.batches_per_epoch):
            chosen = self.rng.choice(len(self.members), self.p, replace=False)
            out[b] = np.concatenate([self._take(c) for c in chosen])
        return out


def build_sampler(data_cfg, train_labels, seed):
    """The configured PKSampler, or None when data.sampler is unset. P, K and batch_size = P * K
    were checked with the config (kerasclf.config, so --dry-run refuses them too)."""
    sampler = getattr(data_cfg, "sampler", None)
    p = getattr(sampler, "classes_per_batch", None)
    k = getattr(sampler, "images_per_class", None)
    if p is None and k is None:
        return None
    return PKSampler(train_labels, p, k, seed)


def anchors_with_positive(labels, batch_size):
    """Expected share of the images of a random batch that have a class mate in it."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    share = counts / counts.sum()
    return float(np.sum(share * (1.0 - (1.0 - share) ** (batch_size - 1))))


def warn_if_few_positives(labels, batch_size):
    """For aux=triplet without data.sampler: warn when random batches leave many anchors alone."""
    share = anchors_with_positive(labels, batch_size)
    if share < MIN_ANCHORS_WITH_POSITIVE:
        classes = len(np.unique(labels))
        k = 4
        p = max(2, batch_size // k)
        warnings.warn(
            f"loss.aux=triplet with random batches of {batch_size} images from {classes} classes: only about "
            f"{100 * share:.0f}% of the images have a class mate in their batch, and the others give the "
            f"triplet loss nothing to learn from. Balanced batches fix that: data.sampler: "
            f"{{classes_per_batch: {p}, images_per_class: {k}}} with data.batch_size={p * k}.",
            stacklevel=2,
        )
    return share


def sampled_batches(sampler, batch_fn):
    """A keras.utils.PyDataset of `batch_fn(indices)` over `sampler`'s batches, redrawn every epoch."""
    class SampledBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.batches = sampler.epoch()

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, i):
            return batch_fn(self.batches[i])

        def on_epoch_end(self):
            self.batches = sampler.epoch()

    return SampledBatches()
