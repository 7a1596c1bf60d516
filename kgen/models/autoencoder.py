"""A deterministic autoencoder: encoder to a small latent code, decoder, MSE loss."""

import keras
from keras import ops

from kgen import capabilities as caps
from kgen import backend, nets, specs
from kgen.inputs import CheckedInputs
from kgen.models import own_networks as own
from kgen.models.common import PortableCompileConfig, check_count

DEFAULTS = specs.SPECS["ae"].constructor_defaults()  # declared once in kgen.specs


@keras.saving.register_keras_serializable(package="kgen")
class AutoEncoder(PortableCompileConfig, CheckedInputs, own.OwnNetworks, keras.Model):
    """Autoencoder of images (28x28 digits by default) with a small latent code (2 by default).

    Trained on reconstruction MSE. It also keeps a running mean and standard
    deviation of the codes it sees in training, so that `generate` can decode
    codes drawn from that Gaussian (an autoencoder has no prior of its own;
    expect worse samples than a VAE's, which is the point of the comparison).

    Args:
        latent_dim: size of the latent code.
        arch: `"mlp"` or `"conv"` networks (see `kgen.nets`).
        seed: seed of the model's random generator.
        encoder: your own encoder (a built Keras model: images to
            `latent_dim` values), with `decoder` (`latent_dim` values to
            image logits; `decode` applies the sigmoid). Default: kgen's
            `arch` networks. Saved inside `model.keras`.
        decoder: see `encoder`.
        image_shape: (height, width, channels) of the images; with your own
            networks, default the encoder's input shape; kgen's networks take
            (28, 28, 1) only.

    Example:

    >>> model = AutoEncoder(latent_dim=2)
    >>> model.compile(optimizer="adam")
    >>> model.fit(x_train, epochs=5, batch_size=128)  # x: (N, 28, 28, 1) in [0, 1]
    >>> model.generate(16).shape
    (16, 28, 28, 1)
    """

    capabilities = frozenset({caps.LATENT, caps.ENCODES, caps.RECONSTRUCTS})  # what it can do (kgen.capabilities)
    network_names = ("encoder", "decoder")  # your own networks, saved in model.keras (own_networks.OwnNetworks)

    def __init__(self, latent_dim=DEFAULTS["latent_dim"], arch=DEFAULTS["arch"], seed=None, encoder=None, decoder=None,
                 image_shape=None, **kwargs):
        super().__init__(**kwargs)
        specs.check(latent_dim=latent_dim, arch=arch)
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.seed = seed
        self.custom_networks = encoder is not None or decoder is not None
        if self.custom_networks:
            self.image_shape = own.check_autoencoder(encoder, decoder, image_shape, self.latent_dim)
            self.encoder, self.decoder = encoder, decoder
        else:
            self.image_shape = own.check_default_shape(image_shape, "encoder=, decoder=")
            self.encoder = nets.encoder(arch, self.latent_dim)
            self.decoder = nets.decoder(arch, self.latent_dim)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.code_mean = self.add_weight(
            shape=(self.latent_dim,), initializer="zeros", trainable=False, name="code_mean"
        )
        self.code_std = self.add_weight(
            shape=(self.latent_dim,), initializer="ones", trainable=False, name="code_std"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True  # every network is built above

    @property
    def metrics(self):
        return [self.loss_tracker]

    def encode(self, x):
        """Images (batch, *image_shape) to codes (batch, latent_dim)."""
        return backend.forward(self.encoder, x)

    def decode(self, z):
        """Codes (batch, latent_dim) to images in [0, 1]."""
        return ops.sigmoid(backend.forward(self.decoder, z))

    def call(self, x, training=False):
        return self.decode(self.encode(x))

    def reconstruct(self, x):
        """Reconstructions of images, as a NumPy array."""
        return ops.convert_to_numpy(self(x))

    @backend.train_step
    def train_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]

        # reconstruct the batch through the latent code
        def loss_fn():
            z = self.encode(x)
            x_hat = self.decode(z)
            return {"loss": ops.mean(ops.square(x - x_hat)), "z": ops.stop_gradient(z)}

        out = backend.gradient_step(loss_fn, self.trainable_variables, self.optimizer)

        # track the spread of the codes, for sampling
        z = out["z"]
        self.code_mean.assign(0.99 * self.code_mean + 0.01 * ops.mean(z, axis=0))
        self.code_std.assign(0.99 * self.code_std + 0.01 * ops.std(z, axis=0))
        return backend.update_metrics(self.metrics, out)

    @backend.test_step
    def test_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        self.loss_tracker.update_state(ops.mean(ops.square(x - self(x))))
        return {m.name: m.result() for m in self.metrics}

    def generate(self, n, seed=None, z=None):
        """Decodes `n` codes drawn from the Gaussian of the training codes.

        Args:
            n: number of images.
            seed: integer seed of the draw (default: the global generator).
            z: optional codes (n, latent_dim) to decode instead.

        Returns:
            A NumPy array (n, *image_shape) in [0, 1].
        """
        if z is None:
            z = self.prior_codes(keras.random.normal((check_count(n), self.latent_dim), seed=seed))
        return ops.convert_to_numpy(self.decode(z))

    def prior_codes(self, eps):
        """The Gaussian of the training codes (their running mean and standard deviation) for standard-normal `eps`."""
        return self.code_mean + self.code_std * eps

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "arch": self.arch,
            "seed": self.seed,
            "image_shape": list(self.image_shape),
            **own.serialize_networks(self, self.network_names),
        }
