"""Builders of the sub-networks the models are made of.

Every builder returns a `keras.Sequential` with a known input shape, so that
its weights exist as soon as the model is constructed. Images are
(batch, 28, 28, 1) floats in [0, 1]; decoders return logits of that shape (the
model applies the sigmoid, which keeps the Bernoulli loss numerically stable).
"""

import keras
from keras import layers

ARCHS = ("mlp", "conv")
IMAGE_SHAPE = (28, 28, 1)


def check_arch(arch):
    if arch not in ARCHS:
        raise ValueError(
            f"Unknown architecture; use one of {', '.join(ARCHS)}. Received: arch={arch!r}"
        )


def encoder(arch, out_dim, name="encoder"):
    """Image to a vector of `out_dim` values (latent code, or mean and log-variance).

    Args:
        arch: `"mlp"` (784 -> 512 -> 256) or `"conv"` (two strided 3x3
            convolutions, 28 -> 14 -> 7, then 128 units).
        out_dim: size of the output vector.
        name: name of the network.

    Example:

    >>> encoder("conv", 4)(keras.ops.zeros((2, 28, 28, 1))).shape
    (2, 4)
    """
    check_arch(arch)
    if arch == "mlp":
        body = [
            layers.Flatten(),  # (batch, 784)
            layers.Dense(512, activation="relu"),
            layers.Dense(256, activation="relu"),
        ]
    else:
        body = [
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),  # (batch, 14, 14, 32)
            layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),  # (batch, 7, 7, 64)
            layers.Flatten(),  # (batch, 3136)
            layers.Dense(128, activation="relu"),
        ]
    return keras.Sequential(
        [keras.Input(IMAGE_SHAPE), *body, layers.Dense(out_dim)], name=name
    )


def decoder(arch, latent_dim, name="decoder"):
    """Latent vector to image logits (batch, 28, 28, 1); the mirror of `encoder`.

    Example:

    >>> decoder("mlp", 2)(keras.ops.zeros((3, 2))).shape
    (3, 28, 28, 1)
    """
    check_arch(arch)
    if arch == "mlp":
        body = [
            layers.Dense(256, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(784),  # (batch, 784)
            layers.Reshape(IMAGE_SHAPE),
        ]
    else:
        body = [
            layers.Dense(7 * 7 * 64, activation="relu"),
            layers.Reshape((7, 7, 64)),
            layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu"),  # (batch, 14, 14, 64)
            layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),  # (batch, 28, 28, 32)
            layers.Conv2D(1, 3, padding="same"),  # (batch, 28, 28, 1)
        ]
    return keras.Sequential([keras.Input((latent_dim,)), *body], name=name)
