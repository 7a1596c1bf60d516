"""A conditional GAN: the generator draws the digit it is asked for, the discriminator checks it."""

import keras
import numpy as np
from keras import ops

from kgen import capabilities as caps
from kgen import nets, specs
from kgen.models.gan import GAN, check_count, labels_array

DEFAULTS = specs.SPECS["cgan"].constructor_defaults()  # declared once in kgen.specs


@keras.saving.register_keras_serializable(package="kgen")
class ConditionalGAN(GAN):
    """Class-conditional GAN of 28x28 images in [0, 1], trained on (images, labels).

    Labels are integers (N,) in 0..num_classes-1, or one-hot (N, num_classes)
    (turned into integers in the step).

    A `kgen.models.GAN` whose networks also take labels: the training step,
    losses, optimizers, moving average, augmentation and saving are the GAN's.
    Only the hooks differ: a batch holds labels (`unpack`), the generator takes
    `[noise, labels]` and the discriminator `[images, labels]`, and with
    `aux_weight` above 0 the discriminator also classifies.

    The generator embeds the label and concatenates it to the noise. The
    discriminator has an auxiliary classifier (AC-GAN): besides its realness
    logit it classifies the image, learning to classify the real digits,
    while the generator learns to make its digits classified as their labels.
    With `projection=True` its logit also gets a projection term (the inner
    product of a label embedding with the image's features, see
    `kgen.nets.discriminator`). Projection is off by default: measured on
    the full MNIST at the same steps, with it the evaluator read the asked-for
    digit in about 70 % of samples (the projection term ended up favouring
    the wrong labels), without it 92 % (docs/gan.md).

    Args:
        latent_dim, arch, loss, d_dropout, ema, spectral_norm, diffaugment,
            seed: as for `kgen.models.GAN`.
        num_classes: number of labels (10 digits).
        aux_weight: weight of the auxiliary classifier's cross-entropy in
            both players' losses (0: no classifier head).
        projection: add the projection term to the discriminator's logit.
            At least one of `aux_weight` > 0 and `projection` must hold, or
            the discriminator would not see the labels.

    Example:

    >>> cgan = ConditionalGAN(latent_dim=64)
    >>> cgan.compile(
    ...     d_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9),
    ...     g_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9),
    ... )
    >>> cgan.fit(x_train, y_train, epochs=5, batch_size=64)
    >>> cgan.generate(8, labels=7).shape  # eight sevens
    (8, 28, 28, 1)
    """

    capabilities = GAN.capabilities | {caps.CONDITIONAL}  # what it can do (kgen.capabilities)

    def __init__(self, *args, num_classes=10, aux_weight=DEFAULTS["aux_weight"], projection=DEFAULTS["projection"],
                 **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
        specs.check(aux_weight=aux_weight, projection=projection)
        if not aux_weight and not projection:
            raise ValueError(
                "With aux_weight=0 and projection=False the discriminator never sees the labels; "
                "set aux_weight above 0 or projection=True. Received: aux_weight=0, projection=False"
            )
        self.num_classes = int(num_classes)
        self.aux_weight = float(aux_weight)
        self.projection = bool(projection)
        if kwargs.get("codes"):
            raise ValueError(f"A ConditionalGAN takes labels, not InfoGAN codes. Received: codes={kwargs['codes']}")
        super().__init__(*args, **kwargs)

    # the hooks: labels in every batch, and into both networks

    def build_generator(self):
        return nets.generator(self.arch, self.latent_dim, num_classes=self.num_classes)

    def build_discriminator(self):
        return nets.discriminator(
            self.arch,
            num_classes=self.num_classes,
            dropout=self.d_dropout,
            seed=self.seed,
            spectral_norm=self.spectral_norm,
            aux_classifier=self.aux_weight > 0,
            projection=self.projection,
        )

    def unpack(self, data):
        real, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None:
            raise ValueError(
                "ConditionalGAN trains on images and their labels: call "
                "`fit(x, y)` with integer (or one-hot) labels y. Received: y=None"
            )
        real = ops.convert_to_tensor(real)  # (batch, 28, 28, 1), a tensor even from train_on_batch
        labels = ops.convert_to_tensor(labels)
        if len(labels.shape) == 2 and labels.shape[-1] == self.num_classes:  # one-hot (batch, num_classes)
            labels = ops.argmax(labels, axis=-1)
        return real, ops.cast(ops.reshape(labels, (-1,)), "int32")  # (batch,)

    def fake_labels(self, labels, n):
        return labels  # the generator draws the batch's labels

    def generator_inputs(self, z, labels):
        return [z, labels]

    def discriminator_inputs(self, images, labels):
        return [images, labels]

    def discriminator_width(self):
        if self.aux_weight:
            return (
                1 + self.num_classes,
                f"one realness logit, then {self.num_classes} class logits for the auxiliary classifier "
                f"(aux_weight={self.aux_weight:g})",
                f"give it a final Dense({1 + self.num_classes}), or pass aux_weight=0 with projection=True "
                "for a discriminator of one logit that takes the labels as input",
            )
        return 1, "one realness logit (aux_weight=0: no classifier)", "give it a final Dense(1)"

    def class_loss(self, outputs, labels):
        """`aux_weight` x the auxiliary classifier's cross-entropy on `labels` (0 without one)."""
        if not self.aux_weight:
            return 0.0
        class_logits = outputs[:, 1:]  # (batch, num_classes)
        return self.aux_weight * ops.mean(
            ops.sparse_categorical_crossentropy(labels, class_logits, from_logits=True)
        )

    def draw_labels(self, labels, n):
        """The labels that `generate(n, labels)` draws: `labels` (None: 0, 1, ..., 9 in turn) as int32 (n,)."""
        if labels is None:
            return np.arange(n, dtype="int32") % self.num_classes
        return labels_array(labels, n, self.num_classes)

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
        return self.draw(n, self.draw_labels(labels, n), seed, z)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "aux_weight": self.aux_weight,
                "projection": self.projection}
