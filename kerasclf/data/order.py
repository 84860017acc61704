"""The training order as a function of (seed, epoch) only, so a resumed run replays it.

A run resumed at epoch k must feed epoch k the same batches an uninterrupted run would.
tf.data's `shuffle(reshuffle_each_iteration=True)` and Keras's array shuffling draw from
RNG state that advances with every epoch *of this process*, which cannot be restarted at
epoch k. Here epoch k's permutation comes from `numpy.random.default_rng([seed, k])`; a
callback (training.callbacks.EpochClock) sets `EpochOrder.epoch` at each epoch's start,
before Keras creates that epoch's iterator.
"""

import math
import threading

import keras
import numpy as np


class EpochOrder:
    """Permutations of range(n), one per epoch; `buffer` < n imitates a tf.data shuffle buffer."""

    def __init__(self, n, seed, buffer=None):
        self.n, self.seed = int(n), int(seed)
        self.buffer = int(buffer) if buffer and buffer < n else None
        self.epoch = 0
        self._lock = threading.Lock()  # tf.data's parallel map asks for batches from several threads
        self._cached = (None, None)

    def permutation(self, epoch=None):
        epoch = self.epoch if epoch is None else int(epoch)
        with self._lock:
            if self._cached[0] != epoch:
                rng = np.random.default_rng([self.seed, epoch])
                order = rng.permutation(self.n) if self.buffer is None else buffered_order(self.n, self.buffer, rng)
                self._cached = (epoch, order)
            return self._cached[1]

    def batch(self, index, batch_size):
        """Positions of batch `index` of the current epoch."""
        start = int(index) * batch_size
        return self.permutation()[start:start + batch_size]


def buffered_order(n, buffer, rng):
    """The order a shuffle buffer of `buffer` elements gives over range(n) (tf.data's algorithm:
    fill the buffer, emit a random slot, refill that slot with the next element)."""
    slots = list(range(min(buffer, n)))
    picks = rng.random(n)
    out, nxt = np.empty(n, dtype=np.int64), len(slots)
    for i in range(n):
        j = int(picks[i] * len(slots))
        out[i] = slots[j]
        if nxt < n:
            slots[j] = nxt
            nxt += 1
        else:
            slots[j] = slots[-1]
            slots.pop()
    return out


def epoch_batches(x, y, batch_size, order):
    """A keras.utils.PyDataset over in-memory arrays in `order` (the numpy and device-resident paths)."""
    class EpochBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()  # one worker, in the main thread: a batch is a single numpy gather

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, index):
            rows = order.batch(index, batch_size)
            return x[rows], y[rows]

    return EpochBatches()
