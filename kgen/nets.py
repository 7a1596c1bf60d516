"""Builders of the sub-networks the models are made of.

Every builder returns a `keras.Sequential` with a known input shape, so that
its weights exist as soon as the model is constructed. Images are
(batch, 28, 28, 1) floats in [0, 1]; decoders return logits of that shape (the
model applies the sigmoid, which keeps the Bernoulli loss numerically stable).
"""

import keras
from keras import layers

from kgen import specs

ARCHS = specs.OPTIONS["arch"].choices
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


def generator(arch, latent_dim, num_classes=None, name="generator"):
    """A GAN's generator: noise (batch, latent_dim) to images (batch, 28, 28, 1) in [0, 1].

    Unlike `decoder`, it ends in a sigmoid: its output is the image itself.

    Args:
        arch: `"mlp"` (latent -> 256 -> 512 -> 1024 -> 784, each hidden layer
            with batch normalization and ReLU) or `"conv"` (DCGAN-style, sized
            for 28x28 and for a CPU: a dense layer to 7x7x128, then two 4x4
            transposed convolutions 7 -> 14 -> 28 with 64 and 32 channels,
            each followed by batch normalization and ReLU, and a 3x3
            convolution to one channel).
        latent_dim: size of the noise vector.
        num_classes: if set, the generator also takes integer labels
            (batch,), embeds each in 32 values and concatenates them to the
            noise: a `keras.Model` with inputs `[noise, label]`.
        name: name of the network.

    Example:

    >>> generator("mlp", 64)(keras.ops.zeros((2, 64))).shape
    (2, 28, 28, 1)
    >>> generator("conv", 64, num_classes=10)([keras.ops.zeros((2, 64)), keras.ops.array([3, 7])]).shape
    (2, 28, 28, 1)
    """
    check_arch(arch)
    if arch == "mlp":
        body = [
            layers.Dense(256, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
            layers.Dense(512, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
            layers.Dense(1024, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
            layers.Dense(784, activation="sigmoid"),  # (batch, 784)
            layers.Reshape(IMAGE_SHAPE),
        ]
    else:
        body = [
            layers.Dense(7 * 7 * 128, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
            layers.Reshape((7, 7, 128)),
            layers.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=False),  # (batch, 14, 14, 64)
            layers.BatchNormalization(), layers.ReLU(),
            layers.Conv2DTranspose(32, 4, strides=2, padding="same", use_bias=False),  # (batch, 28, 28, 32)
            layers.BatchNormalization(), layers.ReLU(),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid"),  # (batch, 28, 28, 1)
        ]
    if num_classes is None:
        return keras.Sequential([keras.Input((latent_dim,)), *body], name=name)
    noise = keras.Input((latent_dim,), name="noise")
    label = keras.Input((), dtype="int32", name="label")
    h = layers.Concatenate()([noise, layers.Embedding(num_classes, 32)(label)])  # (batch, latent_dim + 32)
    for layer in body:
        h = layer(h)
    return keras.Model([noise, label], h, name=name)


def discriminator(arch, num_classes=None, dropout=0.0, seed=None, spectral_norm=False, aux_classifier=False,
                  projection=True, label_input=True, name="discriminator"):
    """A GAN's discriminator: images (batch, 28, 28, 1) to one logit each (batch, 1).

    Args:
        arch: `"mlp"` (784 -> 1024 -> 512 -> 256 -> 1 with LeakyReLU(0.2)) or
            `"conv"` (DCGAN-style: two strided 4x4 convolutions 28 -> 14 -> 7,
            64 and 128 channels, LeakyReLU(0.2), then a logit).
        num_classes: if set, the discriminator also takes integer labels
            (batch,): a `keras.Model` with inputs `[image, label]`, whose
            label reaches the output through `projection` and/or
            `aux_classifier`.
        dropout: if above 0, a dropout layer of this rate after each hidden
            layer, which keeps the discriminator from memorizing a small
            training set and overpowering the generator.
        seed: seed of the dropout masks; with a seed they come from each
            layer's own seed generator, so a checkpoint resumes them exactly.
        spectral_norm: wrap every convolution and dense layer in
            `keras.layers.SpectralNormalization` (Miyato et al., 2018): each
            weight is divided by its largest singular value, estimated by one
            power iteration per training call, which keeps the
            discriminator 1-Lipschitz per layer and its gradients tame.
        aux_classifier: with `num_classes`, also a classifier head: the
            output is (batch, 1 + num_classes), the logit then the class
            logits of the image (an auxiliary-classifier term, as in AC-GAN).
            The head has no spectral normalization, which would bound its
            logits and keep the classifier unsure (it read 81 % of real test
            digits right with it, 88 % without, in the same short run).
        projection: with `num_classes`, a projection discriminator (Miyato
            and Koyama, 2018): with `h` the image's features, logit = w.h + b
            + embed(label).h, the second term scoring how well the image fits
            its label. Off, the logit is w.h + b and the label is used by the
            classifier head only.
        label_input: with `num_classes`, whether the network takes the
            labels at all; `False` (no `projection` then) gives images to
            (batch, 1 + num_classes) with `aux_classifier`: the head of an
            InfoGAN, which reads the generator's code back from the image.
        name: name of the network.

    Example:

    >>> discriminator("mlp")(keras.ops.zeros((2, 28, 28, 1))).shape
    (2, 1)
    """
    check_arch(arch)
    streams = iter(range(1, 8))

    def drop():
        if dropout <= 0:
            return []
        # seeded, the layer draws its masks from its own seed generator, whose state a
        # checkpoint carries (unseeded, Keras's torch dropout uses torch's global generator);
        # each layer's stream starts 2**28 draws from the last, away from the model's own
        layer_seed = None if seed is None else seed + next(streams) * 2**28
        return [layers.Dropout(dropout, seed=layer_seed)]

    def sn(layer):
        return layers.SpectralNormalization(layer) if spectral_norm else layer

    if arch == "mlp":
        features = [
            layers.Flatten(),  # (batch, 784)
            sn(layers.Dense(1024)), layers.LeakyReLU(0.2), *drop(),
            sn(layers.Dense(512)), layers.LeakyReLU(0.2), *drop(),
            sn(layers.Dense(256)), layers.LeakyReLU(0.2), *drop(),  # (batch, 256)
        ]
    else:
        features = [
            sn(layers.Conv2D(64, 4, strides=2, padding="same")), layers.LeakyReLU(0.2), *drop(),  # (batch, 14, 14, 64)
            sn(layers.Conv2D(128, 4, strides=2, padding="same")), layers.LeakyReLU(0.2), *drop(),  # (batch, 7, 7, 128)
            layers.Flatten(),  # (batch, 6272)
        ]
    if num_classes is None:
        return keras.Sequential([keras.Input(IMAGE_SHAPE), *features, sn(layers.Dense(1))], name=name)
    if projection and not label_input:
        raise ValueError("A projection discriminator takes labels. Received: projection=True, label_input=False")
    image = keras.Input(IMAGE_SHAPE, name="image")
    label = keras.Input((), dtype="int32", name="label")
    h = image
    for layer in features:
        h = layer(h)  # (batch, features)
    logit = sn(layers.Dense(1))(h)  # (batch, 1)
    if projection:
        embedded = layers.Embedding(num_classes, h.shape[-1])(label)  # (batch, features)
        logit = layers.Add()([logit, layers.Dot(axes=1)([embedded, h])])  # (batch, 1)
    if aux_classifier:
        logit = layers.Concatenate()([logit, layers.Dense(num_classes)(h)])  # (batch, 1 + num_classes)
    return keras.Model([image, label] if label_input else image, logit, name=name)
