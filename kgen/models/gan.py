"""A GAN: a generator of digits from noise against a discriminator, two optimizers."""

import keras
import numpy as np
from keras import ops

from kgen import backend, nets
from kgen.optimizers import GANOptimizer, portable

LOSSES = ("bce", "hinge")


def discriminator_loss(loss, real_logits, fake_logits):
    """The discriminator's loss: real images scored high, generated ones low.

    `"bce"`: -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit), written with
    softplus so that it is stable for any logit. `"hinge"`: relu(1 - real) +
    relu(1 + fake). Each half is a mean over its images; the loss is their sum.
    """
    if loss == "bce":
        return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
    return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))


def generator_loss(loss, fake_logits):
    """The generator's loss: its images scored as real.

    `"bce"` is the non-saturating loss -log D(G(z)), whose gradient stays
    strong while the discriminator wins; `"hinge"` is -mean(logit).
    """
    if loss == "bce":
        return ops.mean(ops.softplus(-fake_logits))
    return -ops.mean(fake_logits)


def accuracies(real_logits, fake_logits):
    """Shares of real images scored real (logit > 0) and of generated ones scored fake."""
    return (
        ops.mean(ops.cast(real_logits > 0, "float32")),
        ops.mean(ops.cast(fake_logits < 0, "float32")),
    )


def step_values(d_out, g_out):
    """The values a GAN step tracks, by tracker name, from its two phases' outputs."""
    return {
        "d_loss": d_out["loss"],
        "g_loss": g_out["loss"],
        "d_acc_real": d_out["d_acc_real"],
        "d_acc_fake": d_out["d_acc_fake"],
    }


def check_options(latent_dim, arch, loss, d_dropout):
    nets.check_arch(arch)
    if not 0 <= d_dropout < 1:
        raise ValueError(f"d_dropout must be in [0, 1). Received: d_dropout={d_dropout}")
    if int(latent_dim) < 1:
        raise ValueError(f"latent_dim must be at least 1. Received: latent_dim={latent_dim}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}. Received: loss={loss!r}")


def check_count(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer. Received: n={n!r}")
    return int(n)


@keras.saving.register_keras_serializable(package="kgen")
class GAN(keras.Model):
    """Generative adversarial network of 28x28 images in [0, 1].

    Each `train_step` takes two optimizer steps: the discriminator learns to
    tell the batch's real images from generated ones (the generator frozen),
    then the generator learns to make the discriminator call its images real
    (the discriminator frozen). `compile` takes one optimizer per network; the
    model holds both in one `kgen.optimizers.GANOptimizer`, so both Adam states
    survive Keras's jax trainer and `model.keras`.

    Logged per epoch: `d_loss`, `g_loss`, and the discriminator's accuracy on
    the real images (`d_acc_real`) and on the generated ones (`d_acc_fake`).
    With the BCE loss, a balanced game sits near d_loss = 2 ln 2 = 1.39,
    g_loss = ln 2 = 0.69 and accuracies near 0.5; accuracies stuck at 1.0 mean
    the discriminator has won and the generator learns little.

    Args:
        latent_dim: size of the noise vector.
        arch: `"mlp"` or `"conv"` networks (see `kgen.nets.generator` and
            `kgen.nets.discriminator`).
        loss: `"bce"` (non-saturating binary cross-entropy) or `"hinge"`.
        d_dropout: dropout rate after each hidden layer of the discriminator
            (0: none, the classic MLP pair exactly).
        seed: seed of the model's random generator.

    Example:

    >>> gan = GAN(latent_dim=64, arch="mlp")
    >>> gan.compile(
    ...     d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    ...     g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    ... )
    >>> gan.fit(x_train, epochs=50, batch_size=128)  # (N, 28, 28, 1) in [0, 1]
    >>> gan.generate(16).shape
    (16, 28, 28, 1)
    """

    def __init__(self, latent_dim=64, arch="mlp", loss="bce", d_dropout=0.3, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_options(latent_dim, arch, loss, d_dropout)
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.loss_name = loss
        self.seed = seed
        self.generator = nets.generator(arch, self.latent_dim)
        self.d_dropout = float(d_dropout)
        self.discriminator = nets.discriminator(arch, dropout=self.d_dropout, seed=seed)
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
            **kwargs: other arguments of `keras.Model.compile`, such as
                `jit_compile`.
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

    def call(self, z, training=False):
        """Noise (batch, latent_dim) to images (batch, 28, 28, 1) in [0, 1]."""
        return self.generator(z, training=training)

    def sample_noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def discriminator_step(self, real):
        """One optimizer step of the discriminator on `real` and as many generated images."""
        n = ops.shape(real)[0]
        with backend.no_grad():  # the generator is frozen: no graph for it
            fake = backend.forward(self.generator, self.sample_noise(n), training=True)

        def loss_fn():
            # one pass over both halves: the discriminator keeps no batch statistics
            logits = backend.forward(self.discriminator, ops.concatenate([real, fake]), training=True)  # (2 * batch, 1)
            real_logits, fake_logits = logits[:n], logits[n:]
            acc_real, acc_fake = accuracies(real_logits, fake_logits)
            loss = discriminator_loss(self.loss_name, real_logits, fake_logits)
            return {"loss": loss, "d_acc_real": acc_real, "d_acc_fake": acc_fake}

        variables = self.discriminator.trainable_variables
        return backend.gradient_step(loss_fn, variables, self.optimizer.d_optimizer)

    def generator_step(self, batch_size):
        """One optimizer step of the generator against the current discriminator."""
        z = self.sample_noise(batch_size)

        def loss_fn():
            fake = backend.forward(self.generator, z, training=True)
            fake_logits = backend.forward(self.discriminator, fake, training=True)
            return {"loss": generator_loss(self.loss_name, fake_logits)}

        variables = self.generator.trainable_variables
        return backend.gradient_step(loss_fn, variables, self.optimizer.g_optimizer)

    @backend.train_step
    def train_step(self, data):
        real = keras.utils.unpack_x_y_sample_weight(data)[0]  # (batch, 28, 28, 1)

        # discriminator: real images vs generated ones, generator frozen
        d_out = self.discriminator_step(real)

        # generator: make the discriminator call its images real, discriminator frozen
        g_out = self.generator_step(ops.shape(real)[0])

        return backend.update_metrics(self.metrics, step_values(d_out, g_out))

    def generate(self, n, seed=None, z=None):
        """Generates `n` images from noise drawn from N(0, I).

        Args:
            n: number of images.
            seed: integer seed of the noise (default: the global generator).
            z: optional noise (n, latent_dim) to use instead.

        Returns:
            A NumPy array (n, 28, 28, 1) in [0, 1].
        """
        n = check_count(n)
        if z is None:
            z = keras.random.normal((n, self.latent_dim), seed=seed)
        chunks = [self.generator(z[i : i + 1000], training=False) for i in range(0, n, 1000)]
        return np.concatenate([ops.convert_to_numpy(c) for c in chunks])

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "arch": self.arch,
            "loss": self.loss_name,
            "d_dropout": self.d_dropout,
            "seed": self.seed,
        }
