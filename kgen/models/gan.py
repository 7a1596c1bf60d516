"""A GAN: a generator of digits from noise against a discriminator, two optimizers."""

import keras
import numpy as np
from keras import ops

from kgen import capabilities as caps
from kgen import augment, backend, nets, specs
from kgen.inputs import CheckedInputs
from kgen.models import common
from kgen.models import own_networks as own
from kgen.models.common import check_count  # noqa: F401 - the cGAN and the scGAN import it from here
from kgen.backend.common import portable_config
from kgen.optimizers import GANOptimizer

DEFAULTS = specs.SPECS["gan"].constructor_defaults()  # GAN's defaults, declared once in kgen.specs


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
    """The values a GAN step tracks, by tracker name, from its two phases' outputs.

    `loss` is `d_loss + g_loss`: NaN or infinite as soon as either player's
    loss is, which is what Keras's `TerminateOnNaN` watches. It is not a
    measure of sample quality (the two players pull it opposite ways).
    """
    return {
        "d_loss": d_out["loss"],
        "g_loss": g_out["loss"],
        "d_acc_real": d_out["d_acc_real"],
        "d_acc_fake": d_out["d_acc_fake"],
        "loss": d_out["loss"] + g_out["loss"],
    }


def labels_array(labels, n, num_classes, name="labels"):
    """`labels` (one int, or n ints, in 0..num_classes-1) as an int32 array (n,); raises on bad ones."""
    array = np.asarray(labels)
    if array.ndim == 0:
        array = np.full(n, array)
    if array.shape != (n,) or array.dtype.kind not in "iuf" or np.any(array != np.round(array)):
        raise ValueError(f"{name} must be one integer or {n} integers. Received: {name}={labels!r}")
    bad = array[(array < 0) | (array >= num_classes)]
    if len(bad):
        raise ValueError(f"{name} must be in 0..{num_classes - 1}. Received: {name[:-1]}={bad[0]:g}")
    return array.astype("int32")


@keras.saving.register_keras_serializable(package="kgen")
class GAN(CheckedInputs, own.OwnNetworks, keras.Model):
    """Generative adversarial network of 28x28 images in [0, 1].

    Each `train_step` takes two optimizer steps: the discriminator learns to
    tell the batch's real images from generated ones (the generator frozen),
    then the generator learns to make the discriminator call its images real
    (the discriminator frozen); then the moving average of the generator's
    weights takes a step. `compile` takes one optimizer per network; the
    model holds both in one `kgen.optimizers.GANOptimizer`, so both Adam
    states survive Keras's jax trainer and `model.keras`.

    `ConditionalGAN` is this model with labels: it overrides the hooks
    `unpack` (what a batch holds), `generator_inputs` and
    `discriminator_inputs` (what the networks take), `fake_labels` (what
    the generated images are drawn for) and `class_loss`.

    The objective is two overridable methods, the loss hooks `d_loss` and
    `g_loss` (adversarial, classifier and code terms): the training steps
    and `test_step` both call them, so an override (a least-squares GAN,
    see `d_loss`) is what `fit` trains and what `evaluate` reports.

    With `codes`, it is an InfoGAN (Chen et al., 2016): the generator also
    takes a categorical code, drawn uniformly, and the discriminator has a
    second head that reads the code back from generated images; both
    networks minimize that head's cross-entropy (a bound on the mutual
    information between code and image). No labels are used: the code
    learns by itself to separate the digits, so the generator draws ten
    separate families instead of one continuum with shapes between digits.

    Logged per epoch: `d_loss`, `g_loss`, the discriminator's accuracy on
    the real images (`d_acc_real`) and on the generated ones (`d_acc_fake`),
    and `loss`, the sum `d_loss + g_loss`, there so that Keras's
    `TerminateOnNaN` and `EarlyStopping` find a `loss` (it is NaN as soon as
    either player's loss is; it says nothing of sample quality).
    `evaluate`, `validation_split` and `validation_data` report the same
    values on held-out images (see `test_step`).
    With the BCE loss, a balanced game sits near d_loss = 2 ln 2 = 1.39,
    g_loss = ln 2 = 0.69 and accuracies near 0.5; accuracies stuck at 1.0 mean
    the discriminator has won and the generator learns little.

    Args:
        latent_dim: size of the noise vector.
        arch: `"conv"` or `"mlp"` networks (see `kgen.nets.generator` and
            `kgen.nets.discriminator`).
        loss: `"hinge"` or `"bce"` (non-saturating binary cross-entropy).
        d_dropout: dropout rate after each hidden layer of the discriminator
            (0: none).
        ema: decay of the exponential moving average of the generator's
            weights (0: none). With EMA on, a second generator,
            `ema_generator`, holds the average (with a warm-up: the decay at
            step t is min(ema, (1 + t) / (10 + t))); `generate`, the sample
            grids and `kgen evaluate` draw from it.
        spectral_norm: spectral normalization of every layer of the
            discriminator (off by default: on the full MNIST in 3 epochs
            it kept the discriminator too weak to teach the generator
            clean strokes; docs/gan.md).
        diffaugment: DiffAugment policy, a comma-separated list of
            `translation`, `cutout` applied to every image the discriminator
            sees, real and generated ("" for none; see `kgen.augment`).
        codes: number of values of the InfoGAN code (0: none; see above).
        code_weight: weight of the code head's cross-entropy in both
            players' losses (with `codes`).
        seed: seed of the model's random generator (noise, augmentations).
        generator: your own generator (a built Keras model: noise
            (batch, latent_dim) to images in [0, 1]; for the cGAN and with
            `codes`, inputs `[noise, labels]`), with `discriminator` (images
            to logits (batch, 1); with `codes`, (batch, 1 + codes); for the
            cGAN `[images, labels]` to (batch, 1) or, with `aux_weight`,
            (batch, 1 + num_classes); the width is checked when the model
            is made). Default: kgen's `arch` networks. Saved inside
            `model.keras`.
        discriminator: see `generator`.
        image_shape: (height, width, channels) of the images; with your own
            networks, default the generator's output shape; kgen's networks
            take (28, 28, 1) only.

    Example:

    >>> gan = GAN(latent_dim=64, arch="conv")
    >>> gan.compile(
    ...     d_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9),
    ...     g_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9),
    ... )
    >>> gan.fit(x_train, epochs=5, batch_size=64)  # (N, 28, 28, 1) in [0, 1]
    >>> gan.generate(16).shape
    (16, 28, 28, 1)
    """

    capabilities = frozenset({caps.LATENT, caps.ADVERSARIAL})  # what it can do (kgen.capabilities)
    network_names = ("generator", "discriminator")  # your own networks, saved in model.keras (own_networks.OwnNetworks)

    def __init__(
        self,
        latent_dim=DEFAULTS["latent_dim"],
        arch=DEFAULTS["arch"],
        loss=DEFAULTS["loss"],
        d_dropout=DEFAULTS["d_dropout"],
        ema=DEFAULTS["ema"],
        spectral_norm=DEFAULTS["spectral_norm"],
        diffaugment=DEFAULTS["diffaugment"],
        codes=DEFAULTS["codes"],
        code_weight=DEFAULTS["code_weight"],
        seed=None,
        generator=None,
        discriminator=None,
        image_shape=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        specs.check(latent_dim=latent_dim, arch=arch, loss=loss, d_dropout=d_dropout, ema=ema,
                    spectral_norm=spectral_norm, diffaugment=diffaugment, codes=codes, code_weight=code_weight)
        if codes == 1:
            raise ValueError(f"codes must be 0 (none) or an integer of at least 2. Received: codes={codes!r}")
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.loss_name = loss
        self.d_dropout = float(d_dropout)
        self.ema = float(ema)
        self.spectral_norm = bool(spectral_norm)
        self.diffaugment = ",".join(augment.parse_policy(diffaugment))
        self.codes = int(codes)
        self.code_weight = float(code_weight)
        self.seed = seed
        self.custom_networks = generator is not None or discriminator is not None
        if self.custom_networks:
            own.check_pair("generator", generator, "discriminator", discriminator)
            self.image_shape = own.check_image_shape(image_shape, generator.output_shape[1:], "generator")
            inputs = discriminator.input_shape if isinstance(discriminator.input_shape, tuple) else discriminator.input_shape[0]
            own.check_shape("discriminator input", inputs[1:], self.image_shape, "image_shape")
            width, holds, fix = self.discriminator_width()
            shape = discriminator.output_shape
            if not isinstance(shape, tuple) or tuple(shape[1:]) != (width,):
                raise ValueError(
                    f"The discriminator must output (batch, {width}): {holds}; {fix}. "
                    f"Received: discriminator.output_shape={shape}"
                )
            self.generator, self.discriminator = generator, discriminator
        else:
            self.image_shape = own.check_default_shape(image_shape, "generator=, discriminator=")
            self.generator = self.build_generator()
            self.discriminator = self.build_discriminator()
        self.ema_generator = None
        if self.ema:
            # the moving average: a copy of the generator, non-trainable, so that
            # Keras's jax trainer carries it in the state and model.keras saves it
            self.ema_generator = common.average_copy(self.generator, "ema_generator")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_acc_real_tracker = keras.metrics.Mean(name="d_acc_real")
        self.d_acc_fake_tracker = keras.metrics.Mean(name="d_acc_fake")
        self.loss_tracker = keras.metrics.Mean(name="loss")  # d_loss + g_loss
        self.built = True  # every network is built above

    # the networks and what they take: the hooks a conditional GAN overrides

    def build_generator(self):
        return nets.generator(self.arch, self.latent_dim, num_classes=self.codes or None)

    def build_discriminator(self):
        return nets.discriminator(
            self.arch, dropout=self.d_dropout, seed=self.seed, spectral_norm=self.spectral_norm,
            num_classes=self.codes or None, aux_classifier=bool(self.codes), projection=False, label_input=False,
        )

    def unpack(self, data):
        """A batch as `(images, labels)`; an unconditional GAN has no labels (None)."""
        return keras.utils.unpack_x_y_sample_weight(data)[0], None

    def fake_labels(self, labels, n):
        """What `n` generated images are drawn for: random codes (`codes`), else None; the cGAN's: `labels`."""
        if not self.codes:
            return None
        return keras.random.randint((n,), 0, self.codes, dtype="int32", seed=self.seed_generator)  # (n,)

    def generator_inputs(self, z, labels):
        return z if labels is None else [z, labels]

    def discriminator_inputs(self, images, labels):
        return images

    def class_loss(self, outputs, labels):
        """An extra loss on the discriminator's outputs for real images' labels (none here)."""
        return 0.0

    def code_loss(self, outputs, codes):
        """The InfoGAN term: cross-entropy of the code head on generated images' codes (0 without codes)."""
        if not self.codes:
            return 0.0
        return self.code_weight * ops.mean(ops.sparse_categorical_crossentropy(codes, outputs[:, 1:], from_logits=True))

    def discriminator_width(self):
        """The discriminator's output width the options need: `(width, what it holds, how to change it)`."""
        if self.codes:
            return (
                1 + self.codes,
                f"one realness logit, then {self.codes} code logits (codes={self.codes})",
                f"give it a final Dense({1 + self.codes}), or pass codes=0",
            )
        return 1, "one realness logit", "give it a final Dense(1)"

    # the objective: the loss hooks, used by the training steps and by `test_step`

    def d_loss(self, real_outputs, fake_outputs, labels=None, fake_labels=None):
        """The discriminator's loss, a scalar: the hook that the training step minimizes and `evaluate` reports.

        The adversarial term of `loss` ("hinge" or "bce") on the realness
        logits (column 0), plus `class_loss` on the real images' labels
        (the cGAN's auxiliary classifier) and `code_loss` on the generated
        images' codes (InfoGAN). `discriminator_step` (one pass over both
        halves, `training=True`) and `test_step` (`training=False`) both call
        it, so override it, with `g_loss`, to train another objective: `fit`,
        `validation_data` and `evaluate` then all report yours.

        Args:
            real_outputs: the discriminator's outputs on the real images,
                float32 (batch, 1 + heads): the realness logit, then the
                classifier's or the code's logits, if any.
            fake_outputs: its outputs on as many generated images.
            labels: the batch's labels (batch,) int32 (None for a GAN).
            fake_labels: what the generated images were drawn for (batch,)
                int32: the cGAN's labels, the InfoGAN's codes, else None.

        Returns:
            A float32 scalar tensor.

        Example: a least-squares GAN (Mao et al., 2017), keeping the
        classifier and code terms:

        >>> class LSGAN(GAN):
        ...     def d_loss(self, real_outputs, fake_outputs, labels=None, fake_labels=None):
        ...         real, fake = real_outputs[:, :1], fake_outputs[:, :1]
        ...         adversarial = ops.mean(ops.square(real - 1.0)) + ops.mean(ops.square(fake))
        ...         return adversarial + self.class_loss(real_outputs, labels) + self.code_loss(fake_outputs, fake_labels)
        ...     def g_loss(self, fake_outputs, labels=None, fake_labels=None):
        ...         adversarial = ops.mean(ops.square(fake_outputs[:, :1] - 1.0))
        ...         return adversarial + self.class_loss(fake_outputs, labels) + self.code_loss(fake_outputs, fake_labels)
        >>> gan = LSGAN(latent_dim=64)
        >>> gan.compile(d_optimizer="adam", g_optimizer="adam")
        >>> gan.fit(x_train, epochs=5)  # d_loss, g_loss and val_* are the LSGAN's

        (The accuracies stay the share of logits on the right side of 0.)
        """
        loss = discriminator_loss(self.loss_name, real_outputs[:, :1], fake_outputs[:, :1])
        return loss + self.class_loss(real_outputs, labels) + self.code_loss(fake_outputs, fake_labels)

    def g_loss(self, fake_outputs, labels=None, fake_labels=None):
        """The generator's loss, a scalar: the hook that the training step minimizes and `evaluate` reports.

        The adversarial term of `loss` on the realness logits of the generated
        images, plus `class_loss` (its images classified as the labels asked
        for) and `code_loss` (its codes read back). See `d_loss`, with an
        example of overriding both.

        Args:
            fake_outputs: the discriminator's outputs on the generated
                images, float32 (batch, 1 + heads).
            labels: the labels the discriminator was given with them
                (batch,) int32 (None for a GAN).
            fake_labels: what the images were drawn for (batch,) int32: the
                cGAN's labels, the InfoGAN's codes, else None.

        Returns:
            A float32 scalar tensor.
        """
        loss = generator_loss(self.loss_name, fake_outputs[:, :1])
        return loss + self.class_loss(fake_outputs, labels) + self.code_loss(fake_outputs, fake_labels)

    @property
    def sampler(self):
        """The generator that draws samples: the moving average when EMA is on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def metrics(self):
        return [
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.d_acc_real_tracker,
            self.d_acc_fake_tracker,
            self.loss_tracker,
        ]

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
            "d_optimizer": portable_config(keras.optimizers.serialize(self.optimizer.d_optimizer)),
            "g_optimizer": portable_config(keras.optimizers.serialize(self.optimizer.g_optimizer)),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
        )

    def call(self, inputs, training=False):
        """The generator's inputs (noise (batch, latent_dim)[, labels]) to images (batch, 28, 28, 1)."""
        return self.generator(inputs, training=training)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`: the generator's images of noise `x` (n, latent_dim) (with labels: `[noise, labels]`).

        Images given in its place are refused in one line (use `generate`).
        """
        noise = x[0] if isinstance(x, (list, tuple)) and x else x
        shape = getattr(noise, "shape", None)
        if shape is not None and (len(shape) != 2 or shape[-1] != self.latent_dim):
            two = len(getattr(self.generator, "inputs", None) or ()) > 1  # noise and labels (or InfoGAN codes)
            takes = f"[noise (n, {self.latent_dim}), labels (n,)]" if two else f"noise (n, {self.latent_dim})"
            raise ValueError(
                f"{type(self).__name__}.predict takes the generator's inputs, {takes}; to draw images use "
                f"generate(n). Received: x.shape={tuple(shape)}"
            )
        return super().predict(x, *args, **kwargs)

    def sample_noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def augment(self, images):
        """DiffAugment of the images the discriminator sees (identity without a policy)."""
        return augment.diff_augment(images, augment.parse_policy(self.diffaugment), self.seed_generator)

    def discriminator_step(self, real, labels=None):
        """One optimizer step of the discriminator on `real` (with `labels`) and as many generated images."""
        n = ops.shape(real)[0]
        fake_labels = self.fake_labels(labels, n)  # (batch,) or None
        with backend.no_grad():  # the generator is frozen: no graph for it
            fake = backend.forward(self.generator, self.generator_inputs(self.sample_noise(n), fake_labels), training=True)
        images = self.augment(ops.concatenate([real, fake]))  # (2 * batch, 28, 28, 1)
        both_labels = None if labels is None else ops.concatenate([labels, labels])

        def loss_fn():
            # one pass over both halves: the discriminator keeps no batch statistics
            outputs = backend.forward(self.discriminator, self.discriminator_inputs(images, both_labels), training=True)
            real_outputs, fake_outputs = outputs[:n], outputs[n:]  # (batch, 1 + heads) each
            acc_real, acc_fake = accuracies(real_outputs[:, :1], fake_outputs[:, :1])
            loss = self.d_loss(real_outputs, fake_outputs, labels, fake_labels)
            return {"loss": loss, "d_acc_real": acc_real, "d_acc_fake": acc_fake}

        variables = self.discriminator.trainable_variables
        return backend.gradient_step(loss_fn, variables, self.optimizer.d_optimizer)

    def generator_step(self, batch_size, labels=None):
        """One optimizer step of the generator against the current discriminator."""
        z = self.sample_noise(batch_size)
        fake_labels = self.fake_labels(labels, batch_size)  # (batch,) or None

        def loss_fn():
            fake = self.augment(backend.forward(self.generator, self.generator_inputs(z, fake_labels), training=True))
            outputs = backend.forward(self.discriminator, self.discriminator_inputs(fake, labels), training=True)
            return {"loss": self.g_loss(outputs, labels, fake_labels)}

        variables = self.generator.trainable_variables
        return backend.gradient_step(loss_fn, variables, self.optimizer.g_optimizer)

    def update_average(self):
        """One step of the generator's moving average (weights and batch-norm statistics)."""
        common.update_average(self.ema_generator, self.generator, self.ema, self.optimizer.g_optimizer.iterations)

    @backend.train_step
    def train_step(self, data):
        real, labels = self.unpack(data)  # (batch, 28, 28, 1)[, (batch,)]

        # discriminator: real images vs generated ones, generator frozen
        d_out = self.discriminator_step(real, labels)

        # generator: make the discriminator call its images real, discriminator frozen
        g_out = self.generator_step(ops.shape(real)[0], labels)

        # moving average of the generator's weights, the one that draws samples
        if self.ema_generator is not None:
            self.update_average()

        return backend.update_metrics(self.metrics, step_values(d_out, g_out))

    @backend.test_step
    def test_step(self, data):
        """Both players' losses and the discriminator's accuracies on held-out images.

        The generator draws as many images as the batch holds from fresh
        noise (with the batch's labels for a conditional GAN); the
        discriminator scores the real and the generated ones. Everything runs
        in inference mode (`training=False`: no dropout, no DiffAugment,
        batch-norm moving statistics, no spectral-norm power iteration), so
        evaluation changes no weight. The losses are the training losses of
        the networks being trained (`generator`, not the moving average),
        from the same hooks as the training step: `d_loss` and `g_loss`.
        """
        real, labels = self.unpack(data)  # (batch, 28, 28, 1)[, (batch,)]
        n = ops.shape(real)[0]
        fake_labels = self.fake_labels(labels, n)
        fake = self.generator(self.generator_inputs(self.sample_noise(n), fake_labels), training=False)
        # float32 logits, also under a mixed-precision policy
        real_outputs = backend.float32(self.discriminator(self.discriminator_inputs(real, labels), training=False))
        fake_outputs = backend.float32(self.discriminator(self.discriminator_inputs(fake, labels), training=False))
        acc_real, acc_fake = accuracies(real_outputs[:, :1], fake_outputs[:, :1])
        d_loss = self.d_loss(real_outputs, fake_outputs, labels, fake_labels)
        g_loss = self.g_loss(fake_outputs, labels, fake_labels)
        d_out = {"loss": d_loss, "d_acc_real": acc_real, "d_acc_fake": acc_fake}
        return backend.update_metrics(self.metrics, step_values(d_out, {"loss": g_loss}))

    def generate(self, n, seed=None, z=None, codes=None):
        """Generates `n` images from noise drawn from N(0, I).

        Args:
            n: number of images.
            seed: integer seed of the noise (default: the global generator).
            z: optional noise (n, latent_dim) to use instead.
            codes: with `codes` set on the model, the InfoGAN code of each
                image: one integer for all or `n` integers. Default: drawn
                uniformly with `seed`, one for all images when `z` is given
                (so that a path through the noise keeps its code).

        Returns:
            A NumPy array (n, 28, 28, 1) in [0, 1].
        """
        n = check_count(n)
        if not self.codes:
            if codes is not None:
                raise ValueError(f"This GAN has no codes (codes=0). Received: codes={codes!r}")
            return self.draw(n, None, seed, z)
        if codes is None:  # from a stream of its own (seed + 1, away from the noise's); one code for a given z
            rng = np.random.default_rng(None if seed is None else seed + 1)
            codes = rng.integers(self.codes) if z is not None else rng.integers(self.codes, size=n)
        return self.draw(n, labels_array(codes, n, self.codes, "codes"), seed, z)

    def draw(self, n, labels, seed, z):
        """Images from the sampler for noise `z` (drawn if None) and `labels`, 1,000 at a time."""
        if z is None:
            z = keras.random.normal((n, self.latent_dim), seed=seed)
        z = ops.convert_to_tensor(z)
        labels = None if labels is None else ops.convert_to_tensor(labels)
        chunks = [
            self.sampler(
                self.generator_inputs(z[i : i + 1000], None if labels is None else labels[i : i + 1000]),
                training=False,
            )
            for i in range(0, n, 1000)
        ]
        return np.concatenate([ops.convert_to_numpy(backend.float32(c)) for c in chunks])  # float32 under any policy

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "arch": self.arch,
            "loss": self.loss_name,
            "d_dropout": self.d_dropout,
            "ema": self.ema,
            "spectral_norm": self.spectral_norm,
            "diffaugment": self.diffaugment,
            "codes": self.codes,
            "code_weight": self.code_weight,
            "seed": self.seed,
            "image_shape": list(self.image_shape),
            **own.serialize_networks(self, self.network_names),
        }
