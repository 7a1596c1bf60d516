"""A variational autoencoder with a Gaussian posterior and a N(0, I) prior."""

import math

import keras
from keras import ops

from kgen import backend, nets, optimizers

RECON_LOSSES = ("bce", "mse")


@keras.saving.register_keras_serializable(package="kgen")
class VAE(keras.Model):
    """Variational autoencoder of 28x28 images.

    The encoder gives the mean and log-variance of q(z|x); a code is drawn
    with the reparameterization trick from the model's own `SeedGenerator`;
    the decoder gives Bernoulli logits of the pixels. The loss per image is
    reconstruction (summed over the 784 pixels) plus `kl_weight` times the KL
    divergence to N(0, I), so with the default `"bce"` and `kl_weight=1` the
    reported `loss` is the negative ELBO in nats. `kl_weight=0` is the no-KL
    ablation: an autoencoder with noise whose latent space has no prior.

    Args:
        latent_dim: size of the latent code.
        arch: `"mlp"` or `"conv"` networks (see `kgen.nets`).
        recon_loss: `"bce"` (Bernoulli likelihood) or `"mse"` (squared error
            summed over pixels).
        kl_weight: weight of the KL term; 0 turns it off.
        binarize: train on dynamically binarized images (each pixel drawn as
            Bernoulli of its grey level at every step).
        seed: seed of the model's random generator.

    Example:

    >>> vae = VAE(latent_dim=2)
    >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> vae.fit(x_train, epochs=10, batch_size=128)  # (N, 28, 28, 1) in [0, 1]
    >>> vae.generate(16).shape
    (16, 28, 28, 1)
    """

    default_batch_size = 32  # what `kgen train` uses unless told otherwise

    def __init__(
        self,
        latent_dim=2,
        arch="mlp",
        recon_loss="bce",
        kl_weight=1.0,
        binarize=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be at least 1. Received: latent_dim={latent_dim}")
        if recon_loss not in RECON_LOSSES:
            raise ValueError(
                f"recon_loss must be one of {', '.join(RECON_LOSSES)}. "
                f"Received: recon_loss={recon_loss!r}"
            )
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be 0 or more. Received: kl_weight={kl_weight}")
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.recon_loss = recon_loss
        self.kl_weight = float(kl_weight)
        self.binarize = bool(binarize)
        self.seed = seed
        self.encoder = nets.encoder(arch, 2 * self.latent_dim)
        self.decoder = nets.decoder(arch, self.latent_dim)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recon_tracker = keras.metrics.Mean(name="recon_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.built = True  # every network is built above

    @property
    def metrics(self):
        return [self.loss_tracker, self.recon_tracker, self.kl_tracker]

    def encode(self, x):
        """Images (batch, 28, 28, 1) to the mean and log-variance of q(z|x)."""
        h = backend.forward(self.encoder, x)  # (batch, 2 * latent_dim)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def sample_posterior(self, mean, log_var):
        """Draws z = mean + sigma * eps with the model's seed generator."""
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def decode(self, z):
        """Codes (batch, latent_dim) to images (pixel means) in [0, 1]."""
        return ops.sigmoid(backend.forward(self.decoder, z))

    def call(self, x, training=False):
        mean, _ = self.encode(x)
        return self.decode(mean)

    def reconstruct(self, x):
        """Reconstructions from the posterior means, as a NumPy array."""
        return ops.convert_to_numpy(self(x))

    def losses_per_image(self, x, target=None):
        """Reconstruction and KL terms per image (batch,), one posterior draw."""
        target = x if target is None else target
        mean, log_var = self.encode(x)
        logits = backend.forward(self.decoder, self.sample_posterior(mean, log_var))
        recon = ops.sum(self.pixel_loss(target, logits), axis=(1, 2, 3))
        kl = -0.5 * ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=1)
        return recon, kl

    def pixel_loss(self, target, logits):
        """Per-pixel reconstruction loss of `target` under decoder `logits`."""
        if self.recon_loss == "bce":
            # softplus(l) - t * l is BCE(t, sigmoid(l)), stable for any logit
            return ops.softplus(logits) - ops.multiply(target, logits)
        return ops.square(ops.subtract(target, ops.sigmoid(logits)))

    @backend.train_step
    def train_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        if self.binarize:
            x = ops.cast(keras.random.uniform(ops.shape(x), seed=self.seed_generator) < x, x.dtype)

        # encode, sample, decode: negative ELBO
        def loss_fn():
            recon, kl = self.losses_per_image(x)
            recon, kl = ops.mean(recon), ops.mean(kl)
            return {"loss": recon + self.kl_weight * kl, "recon_loss": recon, "kl_loss": kl}

        out = backend.gradient_step(loss_fn, self.trainable_variables, self.optimizer)
        return backend.update_metrics(self.metrics, out)

    @backend.test_step
    def test_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        recon, kl = self.losses_per_image(x)
        recon, kl = ops.mean(recon), ops.mean(kl)
        self.loss_tracker.update_state(recon + self.kl_weight * kl)
        self.recon_tracker.update_state(recon)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def generate(self, n, seed=None, z=None):
        """Decodes `n` codes drawn from the prior N(0, I).

        Args:
            n: number of images.
            seed: integer seed of the draw (default: the global generator).
            z: optional codes (n, latent_dim) to decode instead.

        Returns:
            A NumPy array (n, 28, 28, 1) of pixel means in [0, 1].
        """
        if z is None:
            z = keras.random.normal((n, self.latent_dim), seed=seed)
        return ops.convert_to_numpy(self.decode(z))

    def log_likelihood(self, x, k=100):
        """Importance-sampled log p(x) per image in nats, with `k` posterior draws.

        log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,
        z_i ~ q(z|x). Meaningful for the Bernoulli (`"bce"`) decoder; `x` is the
        target in [0, 1].
        """
        x = ops.convert_to_tensor(x)
        mean, log_var = self.encode(x)
        terms = []
        for _ in range(k):
            z = self.sample_posterior(mean, log_var)
            log_px = -ops.sum(self.pixel_loss(x, backend.forward(self.decoder, z)), axis=(1, 2, 3))
            log_pz = -0.5 * ops.sum(ops.square(z) + math.log(2 * math.pi), axis=1)
            log_qz = -0.5 * ops.sum(
                ops.square(z - mean) / ops.exp(log_var) + log_var + math.log(2 * math.pi),
                axis=1,
            )
            terms.append(log_px + log_pz - log_qz)
        stacked = ops.stack(terms, axis=1)  # (batch, k)
        return ops.convert_to_numpy(ops.logsumexp(stacked, axis=1) - math.log(k))

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:  # the optimizer must load under any backend
            config["optimizer"] = optimizers.portable(config["optimizer"])
        return config

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "arch": self.arch,
            "recon_loss": self.recon_loss,
            "kl_weight": self.kl_weight,
            "binarize": self.binarize,
            "seed": self.seed,
        }
