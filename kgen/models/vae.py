"""A variational autoencoder with a Gaussian posterior and a N(0, I) prior."""

import math

import keras
import numpy as np
from keras import ops

from kgen import capabilities as caps
from kgen import backend, nets, specs
from kgen.inputs import CheckedInputs
from kgen.models import own_networks as own
from kgen.models.common import PortableCompileConfig, check_count

DEFAULTS = specs.SPECS["vae"].constructor_defaults()  # declared once in kgen.specs


@keras.saving.register_keras_serializable(package="kgen")
class VAE(PortableCompileConfig, CheckedInputs, own.OwnNetworks, keras.Model):
    """Variational autoencoder of 28x28 images.

    The encoder gives the mean and log-variance of q(z|x); a code is drawn
    with the reparameterization trick from the model's own `SeedGenerator`;
    the decoder gives Bernoulli logits of the pixels. The loss per image is
    reconstruction (summed over the 784 pixels) plus `kl_weight` times the KL
    divergence to N(0, I), so with the default `"bce"` and `kl_weight=1` the
    reported `loss` is the negative ELBO in nats. `kl_weight=0` is the no-KL
    ablation: an autoencoder with noise whose latent space has no prior.

    With `iwae_k=k > 1` the model trains on the importance-weighted bound of
    Burda et al. (2016), log (1/k) sum_i p(x, z_i) / q(z_i|x) over k posterior
    draws: the IWAE. The same class, networks and saved format; k = 1 is the
    VAE (its KL term computed in closed form). The reported `loss` is then the
    negative k-sample bound, and `recon_loss` and `kl_loss` are the means over
    the k draws of -log p(x|z) and of log q(z|x) - log p(z).

    Args:
        latent_dim: size of the latent code.
        arch: `"mlp"` or `"conv"` networks (see `kgen.nets`).
        recon_loss: `"bce"` (Bernoulli likelihood) or `"mse"` (squared error
            summed over pixels).
        kl_weight: weight of the KL term; 0 turns it off.
        binarize: train on dynamically binarized images (each pixel drawn as
            Bernoulli of its grey level at every step).
        iwae_k: importance samples in the training bound (1: the VAE's ELBO;
            more: the IWAE bound). Needs `recon_loss="bce"` and `kl_weight=1`.
        seed: seed of the model's random generator.
        encoder: your own encoder (a built Keras model: images to
            2 * latent_dim values, the mean then the log-variance), with
            `decoder` (latent_dim values to image logits). Default: kgen's
            `arch` networks. Saved inside `model.keras`.
        decoder: see `encoder`.
        image_shape: (height, width, channels) of the images; with your own
            networks, default their input shape; kgen's networks take
            (28, 28, 1) only.

    Example:

    >>> vae = VAE(latent_dim=2)
    >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> vae.fit(x_train, epochs=10, batch_size=128)  # (N, 28, 28, 1) in [0, 1]
    >>> vae.generate(16).shape
    (16, 28, 28, 1)
    """

    capabilities = frozenset({caps.LATENT, caps.ENCODES, caps.RECONSTRUCTS, caps.LIKELIHOOD})  # what it can do (kgen.capabilities)
    network_names = ("encoder", "decoder")  # your own networks, saved in model.keras (own_networks.OwnNetworks)

    def __init__(
        self,
        latent_dim=DEFAULTS["latent_dim"],
        arch=DEFAULTS["arch"],
        recon_loss=DEFAULTS["recon_loss"],
        kl_weight=DEFAULTS["kl_weight"],
        binarize=DEFAULTS["binarize"],
        iwae_k=DEFAULTS["iwae_k"],
        seed=None,
        encoder=None,
        decoder=None,
        image_shape=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        specs.check(latent_dim=latent_dim, arch=arch, recon_loss=recon_loss, kl_weight=kl_weight, binarize=binarize,
                    iwae_k=iwae_k)
        if iwae_k > 1 and (recon_loss != "bce" or kl_weight != 1):
            raise ValueError(
                "The IWAE bound needs the Bernoulli likelihood and the full KL term: use "
                f"recon_loss='bce' and kl_weight=1. Received: recon_loss={recon_loss!r}, kl_weight={kl_weight}"
            )
        self.latent_dim = int(latent_dim)
        self.iwae_k = int(iwae_k)
        self.arch = arch
        self.recon_loss = recon_loss
        self.kl_weight = float(kl_weight)
        self.binarize = bool(binarize)
        self.seed = seed
        self.custom_networks = encoder is not None or decoder is not None
        if self.custom_networks:
            self.image_shape = own.check_autoencoder(encoder, decoder, image_shape, self.latent_dim, 2)
            self.encoder, self.decoder = encoder, decoder
        else:
            self.image_shape = own.check_default_shape(image_shape, "encoder=, decoder=")
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

        # encode, sample, decode: negative ELBO (k = 1) or negative IWAE bound
        out = backend.gradient_step(lambda: self.batch_losses(x), self.trainable_variables, self.optimizer)
        return backend.update_metrics(self.metrics, out)

    @backend.test_step
    def test_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        return backend.update_metrics(self.metrics, self.batch_losses(x))

    def batch_losses(self, x):
        """The batch's mean loss (negative ELBO, or negative IWAE bound) and its two terms."""
        if self.iwae_k > 1:
            return self.iwae_losses(x, self.iwae_k)
        recon, kl = self.losses_per_image(x)
        recon, kl = ops.mean(recon), ops.mean(kl)
        return {"loss": recon + self.kl_weight * kl, "recon_loss": recon, "kl_loss": kl}

    def log_weights(self, x, mean, log_var, k):
        """log p(x, z_i) - log q(z_i|x) of `k` posterior draws per image (k, batch), and its two parts.

        `x` is the Bernoulli target; returns (log_w, log_px, log_qz - log_pz), each (k, batch).
        """
        batch = ops.shape(mean)[0]
        eps = keras.random.normal((k, batch, self.latent_dim), seed=self.seed_generator)
        z = mean[None] + ops.exp(0.5 * log_var)[None] * eps  # (k, batch, latent)
        logits = backend.forward(self.decoder, ops.reshape(z, (k * batch, self.latent_dim)))
        logits = ops.reshape(logits, (k, batch, -1))  # (k, batch, 784)
        target = ops.reshape(x, (1, batch, -1))
        log_px = -ops.sum(self.pixel_loss(target, logits), axis=2)  # (k, batch)
        # log q(z|x) - log p(z): the 2 pi terms cancel
        log_qz = -0.5 * ops.sum(ops.square(eps) + log_var[None], axis=2)
        log_pz = -0.5 * ops.sum(ops.square(z), axis=2)
        return log_px + log_pz - log_qz, log_px, log_qz - log_pz

    def iwae_losses(self, x, k):
        """The negative k-sample importance-weighted bound, averaged over the batch."""
        mean, log_var = self.encode(x)
        log_w, log_px, kl = self.log_weights(x, mean, log_var, k)
        bound = ops.logsumexp(log_w, axis=0) - math.log(k)  # (batch,)
        return {"loss": -ops.mean(bound), "recon_loss": -ops.mean(log_px), "kl_loss": ops.mean(kl)}

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
            z = keras.random.normal((check_count(n), self.latent_dim), seed=seed)
        return ops.convert_to_numpy(self.decode(z))

    def log_likelihood(self, x, k=100, chunk=None):
        """Importance-sampled log p(x) per image in nats, with `k` posterior draws.

        log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,
        z_i ~ q(z|x): the k-sample IWAE bound, which tightens toward log p(x)
        as k grows (Burda et al. measure test likelihoods with k = 5,000).
        Meaningful for the Bernoulli (`"bce"`) decoder; `x` is the target in
        [0, 1] (binary for a true likelihood).

        Args:
            x: images (batch, 28, 28, 1).
            k: importance samples per image.
            chunk: draws decoded at once per image (default: as many as keep
                one decoder call near 50,000 codes); the log-weights of the
                chunks are combined exactly.

        Returns:
            A NumPy array (batch,) of log-likelihoods in nats.
        """
        x = ops.convert_to_tensor(x, "float32")
        mean, log_var = self.encode(x)
        batch = int(ops.shape(x)[0])
        chunk = chunk or max(1, min(k, 50000 // max(batch, 1)))
        parts = []
        for start in range(0, k, chunk):
            log_w = self.log_weights(x, mean, log_var, min(chunk, k - start))[0]
            parts.append(np.asarray(ops.convert_to_numpy(log_w), np.float64))
        log_w = np.concatenate(parts)  # (k, batch)
        top = log_w.max(axis=0)
        return top + np.log(np.mean(np.exp(log_w - top), axis=0))

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "arch": self.arch,
            "recon_loss": self.recon_loss,
            "kl_weight": self.kl_weight,
            "binarize": self.binarize,
            "iwae_k": self.iwae_k,
            "seed": self.seed,
            "image_shape": list(self.image_shape),
            **own.serialize_networks(self, self.network_names),
        }
