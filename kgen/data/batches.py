"""Batches in an order fixed by (seed, epoch), so an interrupted run resumes exactly."""

import math

import keras
import numpy as np


class EpochBatches(keras.utils.PyDataset):
    """Shuffled batches of in-memory arrays whose order depends only on (seed, epoch).

    Keras shuffles arrays with the backend's own random state (torch's, NumPy's
    or TensorFlow's), which a checkpoint cannot carry. Here the order of epoch
    `e` is `default_rng([seed, e]).permutation(n)`, so a run resumed at epoch
    `e`, step `s` sees exactly the batches the uninterrupted run saw. Pass it
    to `fit` with `shuffle=False`, together with its `follow_epochs()`
    callback, which tells it the epoch Keras is in (Keras also draws a batch
    to build the model before the first epoch, so counting calls would drift).

    The arrays become backend tensors once, here (on the GPU when Keras uses
    one), and each batch is gathered from them with `keras.ops.take`: no
    batch is copied out of NumPy or from the host to the device in training.

    Args:
        arrays: a tuple of arrays with the same first dimension, e.g. `(x,)`
            or `(x, y)`; each batch is the same tuple sliced.
        batch_size: images per batch (the last batch may be smaller).
        seed: the run's seed.
        skip: batches of each epoch to leave out at its start; a resumed run
            uses it for the one epoch it finishes.

    Example:

    >>> batches = EpochBatches((x,), 32, seed=0)
    >>> model.fit(batches, epochs=10, shuffle=False, callbacks=[batches.follow_epochs()])
    """

    def __init__(self, arrays, batch_size, seed, skip=0):
        super().__init__()
        self.arrays = tuple(keras.ops.convert_to_tensor(a) for a in arrays)  # on the device, once
        self.size = int(self.arrays[0].shape[0])
        self.batch_size = batch_size
        self.seed = seed
        self.skip = skip
        self.set_epoch(0)

    @property
    def num_batches(self):
        return math.ceil(self.size / self.batch_size) - self.skip

    def __len__(self):
        return self.num_batches

    def set_epoch(self, epoch):
        """Orders the examples as epoch `epoch` does."""
        self._order = np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def follow_epochs(self):
        """A callback that calls `set_epoch` as each epoch of `fit` begins."""
        return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: self.set_epoch(epoch))

    def __getitem__(self, i):
        start = (i + self.skip) * self.batch_size
        index = np.sort(self._order[start : start + self.batch_size])  # sorted: faster gathers
        index = keras.ops.convert_to_tensor(index.astype("int32"))
        return tuple(keras.ops.take(a, index, axis=0) for a in self.arrays)  # (x,) or (x, y)
