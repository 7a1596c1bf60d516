"""The evaluator: a small CNN digit classifier whose frozen weights ship with kgen.

Every sample-quality number in kgen is measured with it, so that numbers from
different models, backends and machines are comparable. Its penultimate layer
(128 units) gives the features of FID, KID and precision/recall; its softmax
gives the class probabilities of the inception-style score, class coverage
and conditional accuracy. `benchmarks/train_evaluator.py` trains it; the
SHA-256 hash and test accuracy of each shipped weights file are recorded in
`weights/evaluators.json` and checked when it loads.
"""

import functools
import hashlib
import json
import os

import keras
import numpy as np
from keras import layers

from kgen.errors import KgenError

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
MANIFEST = os.path.join(WEIGHTS_DIR, "evaluators.json")
FEATURE_DIM = 128


def build_network(num_classes=10):
    """The evaluator's network: 28x28x1 images in [0, 1] to (features, logits).

    Three 3x3 convolutions, each followed by 2x2 max pooling (28 -> 14 -> 7
    -> 3 pixels across), and a 128-unit layer whose output is the feature
    vector; about 131,000 weights.

    Example:

    >>> features, logits = build_network()(keras.ops.zeros((2, 28, 28, 1)))
    >>> features.shape, logits.shape
    ((2, 128), (2, 10))
    """
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters in (32, 64, 64):  # (batch, 14, 14, 32) -> (7, 7, 64) -> (3, 3, 64)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)  # (batch, 576)
    features = layers.Dense(FEATURE_DIM, activation="relu", name="features")(x)  # (batch, 128)
    logits = layers.Dense(num_classes, name="logits")(layers.Dropout(0.3)(features))
    return keras.Model(inputs, [features, logits], name="evaluator")


def sha256(path):
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest():
    """The recorded facts of the shipped evaluators, by data set name."""
    with open(MANIFEST, encoding="utf-8") as f:
        return json.load(f)


class Evaluator:
    """A frozen classifier of one data set, fed images in [0, 1].

    Args:
        dataset: `"mnist"` or `"fashion_mnist"`.

    Example:

    >>> ev = Evaluator("mnist")
    >>> features, probs = ev.embed(images)  # (n, 128), (n, 10)
    >>> ev.info["test_accuracy"]
    """

    def __init__(self, dataset="mnist"):
        entries = manifest()
        if dataset not in entries:
            raise KgenError(
                f"kgen ships evaluators for {', '.join(entries)} only; train on one "
                f"of those to measure sample quality. Received: dataset={dataset!r}"
            )
        self.dataset = dataset
        self.info = dict(entries[dataset])
        path = os.path.join(WEIGHTS_DIR, self.info["file"])
        if not os.path.isfile(path):
            raise KgenError(f"The {dataset} evaluator's weights are missing ({path}); reinstall kgen.")
        digest = sha256(path)
        if digest != self.info["sha256"]:
            raise KgenError(
                f"The {dataset} evaluator's weights do not match their recorded hash; "
                f"reinstall kgen. Received: sha256={digest}"
            )
        self.network = build_network(self.info.get("num_classes", 10))
        self.network.load_weights(path)
        self.network.trainable = False

    def embed(self, images, batch_size=500):
        """Features (n, 128) and class probabilities (n, classes), float64."""
        x = check_images(images)
        if len(x) == 0:
            raise ValueError("No images to evaluate. Received: images.shape=(0, 28, 28, 1)")
        features, logits = self.network.predict(x, batch_size=batch_size, verbose=0)
        logits = np.asarray(logits, np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(features, np.float64), probs / probs.sum(axis=1, keepdims=True)

    def predict(self, images, batch_size=500):
        """The predicted class of each image (n,)."""
        return self.embed(images, batch_size)[1].argmax(axis=1)


@functools.lru_cache(maxsize=2)
def load_evaluator(dataset="mnist"):
    """The shipped evaluator of `dataset`, loaded once per process."""
    return Evaluator(dataset)


def check_images(images):
    """Images as float32 (n, 28, 28, 1) in [0, 1]; a clear error otherwise."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise ValueError(f"The evaluator takes images (n, 28, 28[, 1]). Received: shape={np.shape(images)}")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(
            f"The evaluator takes finite pixel values in [0, 1]. "
            f"Received: min={np.nanmin(x):.3g}, max={np.nanmax(x):.3g}"
        )
    return np.clip(x, 0.0, 1.0)
