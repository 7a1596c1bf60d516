"""A conditional GAN: the generator draws the digit it is asked for, the discriminator checks it."""

import keras
import numpy as np
from keras import ops

from kgen import backend, nets
from kgen.models.gan import (
    accuracies,
    check_count,
    check_options,
    discriminator_loss,
    generator_loss,
    step_values,
)
from kgen.optimizers import GANOptimizer, portable


@keras.saving.register_keras_serializable(package="kgen")
class ConditionalGAN(keras.Model):
    """Class-conditional GAN of 28x28 images in [0, 1], trained on (images, labels).

    The generator takes noise and a label, embeds the label and concatenates it
    to the noise. The discriminator is a projection discriminator (see
    `kgen.nets.discriminator`): its logit is an image-only realness term plus
    the inner product of a label embedding with the image's features. We chose
    projection over concatenating the label to the discriminator's input
    because it makes the label an explicit test on the image's features: a
    real-looking 3 presented as a 7 scores low through the second term, so the
    generator is pushed to draw the digit it was asked for, not just any digit.

    Each `train_step` steps the discriminator on the batch's real
    (image, label) pairs against generated images for the same labels, then the
    generator, each through its own optimizer (both held in one
    `kgen.optimizers.GANOptimizer`). Logged: `d_loss`, `g_loss`, `d_acc_real`,
    `d_acc_fake`, as for `kgen.models.GAN`.

    Args:
        latent_dim: size of the noise vector.
        arch: `"mlp"` or `"conv"` networks.
        loss: `"bce"` (non-saturating binary cross-entropy) or `"hinge"`.
        num_classes: number of labels (10 digits).
        d_dropout: dropout rate after each hidden layer of the discriminator.
        seed: seed of the model's random generator.

    Example:

    >>> cgan = ConditionalGAN(latent_dim=64)
    >>> cgan.compile(
    ...     d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    ...     g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    ... )
    >>> cgan.fit(x_train, y_train, epochs=50, batch_size=128)
    >>> cgan.generate(8, labels=7).shape  # eight sevens
    (8, 28, 28, 1)
    """

    def __init__(
        self, latent_dim=64, arch="mlp", loss="bce", num_classes=10, d_dropout=0.3, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        check_options(latent_dim, arch, loss, d_dropout)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.loss_name = loss
        self.num_classes = int(num_classes)
        self.seed = seed
        self.generator = nets.generator(arch, self.latent_dim, num_classes=self.num_classes)
        self.d_dropout = float(d_dropout)
        self.discriminator = nets.discriminator(arch, num_classes=self.num_classes, dropout=self.d_dropout, seed=seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_acc_real_tracker = keras.metrics.Mean(name="d_acc_real")
        self.d_acc_fake_tracker = keras.metrics.Mean(name="d_acc_fake")
        self.built = True  # every network is built above

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_acc_real_tracker, self.d_acc_fake_tracker]

    def compile(self, d_optimizer="adam", g_optimizer="adam", **kwargs):
        """Configures the model for training, with one optimizer per network.

        Args:
            d_optimizer: the discriminator's optimizer (instance or name).
            g_optimizer: the generator's optimizer (instance or name).
            **kwargs: other arguments of `keras.Model.compile`.
        """
        optimizer = GANOptimizer(d_optimizer, g_optimizer)
        super().compile(optimizer=optimizer, **kwargs)
        # create both optimizers' state now, so that loading restores it
        optimizer.build(self.discriminator.trainable_variables, self.generator.trainable_variables)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {
            "d_optimizer": portable(keras.optimizers.serialize(self.optimizer.d_optimizer)),
            "g_optimizer": portable(keras.optimizers.serialize(self.optimizer.g_optimizer)),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
        )

    def call(self, inputs, training=False):
        """`[noise (batch, latent_dim), labels (batch,)]` to images (batch, 28, 28, 1)."""
        return self.generator(inputs, training=training)

    def sample_noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def discriminator_step(self, real, labels):
        """One optimizer step of the discriminator on real pairs and generated ones."""
        n = ops.shape(real)[0]
        with backend.no_grad():  # the generator is frozen: no graph for it
            fake = self.generator([self.sample_noise(n), labels], training=True)
        images, both_labels = ops.concatenate([real, fake]), ops.concatenate([labels, labels])

        def loss_fn():
            # one pass over both halves: the discriminator keeps no batch statistics
            logits = self.discriminator([images, both_labels], training=True)  # (2 * batch, 1)
            real_logits, fake_logits = logits[:n], logits[n:]
            acc_real, acc_fake = accuracies(real_logits, fake_logits)
            loss = discriminator_loss(self.loss_name, real_logits, fake_logits)
            return {"loss": loss, "d_acc_real": acc_real, "d_acc_fake": acc_fake}

        variables = self.discriminator.trainable_variables
        return backend.gradient_step(loss_fn, variables, self.optimizer.d_optimizer)

    def generator_step(self, labels):
        """One optimizer step of the generator: images of `labels` the discriminator accepts."""
        z = self.sample_noise(ops.shape(labels)[0])

        def loss_fn():
            fake = self.generator([z, labels], training=True)
            fake_logits = self.discriminator([fake, labels], training=True)
            return {"loss": generator_loss(self.loss_name, fake_logits)}

        variables = self.generator.trainable_variables
        return backend.gradient_step(loss_fn, variables, self.optimizer.g_optimizer)

    @backend.train_step
    def train_step(self, data):
        real, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None:
            raise ValueError(
                "ConditionalGAN trains on images and their labels: call "
                "`fit(x, y)` with integer labels y. Received: y=None"
            )
        real = ops.convert_to_tensor(real)  # (batch, 28, 28, 1), a tensor even from train_on_batch
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")  # (batch,)

        # discriminator: real (image, label) pairs vs generated images for the same labels
        d_out = self.discriminator_step(real, labels)

        # generator: draw those labels so that the discriminator accepts them
        g_out = self.generator_step(labels)

        return backend.update_metrics(self.metrics, step_values(d_out, g_out))

    def check_labels(self, labels, n):
        """`labels` (None, one int, or n ints) as an int32 array (n,); raises on bad ones."""
        if labels is None:
            return np.arange(n, dtype="int32") % self.num_classes
        array = np.asarray(labels)
        if array.ndim == 0:
            array = np.full(n, array)
        if array.shape != (n,) or array.dtype.kind not in "iuf" or np.any(array != np.round(array)):
            raise ValueError(f"labels must be one integer or {n} integers. Received: labels={labels!r}")
        bad = array[(array < 0) | (array >= self.num_classes)]
        if len(bad):
            raise ValueError(
                f"labels must be in 0..{self.num_classes - 1}. Received: label={bad[0]:g}"
            )
        return array.astype("int32")

    def generate(self, n, labels=None, seed=None, z=None):
        """Generates `n` images of the given labels from noise drawn from N(0, I).

        Args:
            n: number of images.
            labels: one label for all, or `n` labels, in 0..num_classes-1
                (default: 0, 1, ..., 9, 0, 1, ... in turn).
            seed: integer seed of the noise (default: the global generator).
            z: optional noise (n, latent_dim) to use instead.

        Returns:
            A NumPy array (n, 28, 28, 1) in [0, 1].
        """
        n = check_count(n)
        labels = self.check_labels(labels, n)
        if z is None:
            z = keras.random.normal((n, self.latent_dim), seed=seed)
        z, labels = ops.convert_to_tensor(z), ops.convert_to_tensor(labels)
        chunks = [
            self.generator([z[i : i + 1000], labels[i : i + 1000]], training=False)
            for i in range(0, n, 1000)
        ]
        return np.concatenate([ops.convert_to_numpy(c) for c in chunks])

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "arch": self.arch,
            "loss": self.loss_name,
            "d_dropout": self.d_dropout,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }
