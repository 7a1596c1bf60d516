"""What kgen's models share: a portable compile config, and their codes of many images."""

import keras
import numpy as np

from kgen.backend.common import portable_config


class PortableCompileConfig:
    """Mixin: the compile config saved in `model.keras` holds an optimizer that loads under any backend.

    The config is `keras.Model`'s own (same keys), with its `"optimizer"`
    entry made portable (`kgen.backend.common.portable_config`); loading goes
    through `kgen.inputs.CheckedInputs.compile_from_config`. The GAN saves two
    optimizers and has its own.
    """

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:  # the optimizer must load under any backend
            config["optimizer"] = portable_config(config["optimizer"])
        return config


def check_count(n):
    """`n` as an int: the number of images `generate` draws, a positive integer; else a one-line ValueError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer. Received: n={n!r}")
    return int(n)


def encode(model, x, batch_size=1000):
    """Codes (n, latent_dim) of images, as float64 NumPy: the posterior mean for a VAE.

    Args:
        model: a model that encodes (`kgen.capabilities.ENCODES`).
        x: float images (n, 28, 28, 1) in [0, 1].
        batch_size: images encoded at a time.
    """
    out = []
    for start in range(0, len(x), batch_size):
        z = model.encode(x[start : start + batch_size])
        z = z[0] if isinstance(z, (tuple, list)) else z
        out.append(keras.ops.convert_to_numpy(z))
    return np.concatenate(out).astype(np.float64)


def average_copy(network, name):
    """A non-trainable copy of `network` holding its weights: the start of their moving average.

    Non-trainable, so that Keras's jax trainer carries it in the state and
    `model.keras` saves it; its weights are copies (jax must not see one
    buffer twice).
    """
    average = keras.models.clone_model(network)
    average.name = name
    average.trainable = False
    for a, weight in zip(average.weights, network.weights):
        a.assign(keras.ops.convert_to_numpy(weight))
    return average


def update_average(average, network, ema, iterations):
    """One step of the moving average of `network`'s weights (batch-norm statistics too) in `average`.

    The decay at optimizer step t is min(ema, (1 + t) / (10 + t)): a
    warm-up in which early weights fade fast.
    """
    from kgen import backend

    step = keras.ops.cast(iterations, "float32")
    decay = keras.ops.minimum(ema, (1.0 + step) / (10.0 + step))
    with backend.no_grad():
        for a, weight in zip(average.weights, network.weights):
            a.assign(decay * a + (1.0 - decay) * weight)
