"""A self-conditioned GAN: unconditional, its labels are k-means clusters of the training images."""

import keras
import numpy as np
from keras import ops

from kgen import specs
from kgen.models.cgan import ConditionalGAN
from kgen.models.gan import GAN, check_count, labels_array

DEFAULTS = specs.SPECS["scgan"].constructor_defaults()  # declared once in kgen.specs


def kmeans(images, clusters, seed=None):
    """k-means of images in pixel space (`sklearn.cluster.KMeans`, one k-means++ start).

    Args:
        images: (N, 28, 28, 1) in [0, 1].
        clusters: number of clusters, at most N.
        seed: seed of the k-means++ start.

    Returns:
        `(centres, shares)`: float32 arrays (clusters, pixels) and
        (clusters,), the shares of the images nearest each centre.
    """
    from sklearn.cluster import KMeans

    flat = np.asarray(images, np.float32).reshape(len(images), -1)  # (N, 784)
    if len(flat) < clusters:
        raise ValueError(
            f"k-means needs at least as many images as clusters ({clusters}); train on more images or "
            f"ask for fewer clusters. Received: {len(flat)} images"
        )
    fitted = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(flat)
    shares = np.bincount(fitted.labels_, minlength=clusters) / len(flat)
    return fitted.cluster_centers_.astype("float32"), shares.astype("float32")


@keras.saving.register_keras_serializable(package="kgen")
class SelfConditionedGAN(ConditionalGAN):
    """An unconditional GAN that conditions on clusters of its own training images.

    No labels are used. Before training, k-means splits the training images
    into `clusters` groups in pixel space (`cluster`); during training each
    real image gets the label of its nearest cluster centre, and the model is
    then the `ConditionalGAN` on those labels: the generator draws for a
    cluster, and the discriminator's auxiliary classifier learns the real
    images' clusters and asks the generator's images to match theirs. The
    generated images are drawn for the batch's clusters while training, and
    by `generate` for clusters drawn with the clusters' shares of the
    training images, so every mode of the data keeps its weight. This is the
    self-conditioned GAN of Liu et al. (2020) with the clusters computed once,
    on pixels, instead of on the discriminator's features; Sage et al. (2018)
    cluster once, on features.

    On the full MNIST, clusters make the unconditional GAN draw from every
    part of the data in its share: see docs/gan.md for the measurements.

    Args:
        clusters: number of k-means clusters (labels of the conditional model).
        latent_dim, arch, loss, d_dropout, ema, spectral_norm, diffaugment,
            seed, generator, discriminator, image_shape: as for
            `kgen.models.GAN`.
        aux_weight, projection: as for `kgen.models.ConditionalGAN`, with the
            clusters as its labels; `aux_weight` defaults to 0.25 here.

    Example:

    >>> gan = SelfConditionedGAN(clusters=50, aux_weight=0.25)
    >>> gan.compile(d_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
    ...             g_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.5))
    >>> gan.fit(x_train, epochs=5, batch_size=64)  # clusters x_train first
    >>> gan.generate(16).shape
    (16, 28, 28, 1)
    """

    capabilities = GAN.capabilities  # unconditional: no labels in, none asked for

    def __init__(self, clusters=DEFAULTS["clusters"], aux_weight=DEFAULTS["aux_weight"], **kwargs):
        specs.check(clusters=clusters)
        kwargs.pop("num_classes", None)  # it is `clusters`
        super().__init__(num_classes=int(clusters), aux_weight=aux_weight, **kwargs)
        self.clusters = int(clusters)
        pixels = int(np.prod(self.image_shape))
        # set by `cluster`, saved in model.keras: the centres (clusters, pixels) and their shares (clusters,)
        self.centres = self.add_weight(shape=(self.clusters, pixels), initializer="zeros", trainable=False,
                                       name="cluster_centres")
        self.shares = self.add_weight(shape=(self.clusters,), initializer="zeros", trainable=False,
                                      name="cluster_shares")

    @property
    def clustered(self):
        """Whether `cluster` has set the centres."""
        return float(ops.convert_to_numpy(ops.sum(self.shares))) > 0

    def cluster(self, images):
        """Sets the cluster centres and shares by k-means of `images` (N, 28, 28, 1) in [0, 1]."""
        centres, shares = kmeans(images, self.clusters, self.seed)
        self.centres.assign(centres)
        self.shares.assign(shares)

    def prepare(self, x, y=None):
        """Clusters the training images `x` (N, 28, 28, 1), unless the model has its clusters already.

        `kgen train` calls it once before training; `fit` calls it on its
        `x` when the model has no clusters yet. `y` is ignored.
        """
        if not self.clustered:
            self.cluster(ops.convert_to_numpy(x))

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit`, clustering `x` first (`prepare`) when the model has no clusters yet.

        `y` is ignored: the model takes no labels. With `x` a dataset or a
        generator, call `cluster(images)` first.
        """
        if not self.clustered and (not hasattr(x, "shape") or len(x.shape) != 4):
            raise ValueError(
                "SelfConditionedGAN clusters its training images before it trains: call "
                f"model.cluster(images) first, or fit on an array (N, 28, 28, 1). Received: x of type "
                f"{type(x).__name__}"
            )
        self.prepare(x)
        return super().fit(x, None, **kwargs)

    def unpack(self, data):
        """The batch's images and the cluster of each: the nearest centre in pixel space."""
        real = ops.convert_to_tensor(keras.utils.unpack_x_y_sample_weight(data)[0])  # (batch, 28, 28, 1)
        flat = ops.reshape(ops.cast(real, "float32"), (ops.shape(real)[0], -1))  # (batch, 784)
        # |x - c|^2 less |x|^2, the same for every centre
        distances = ops.sum(self.centres**2, axis=1)[None, :] - 2.0 * ops.matmul(flat, ops.transpose(self.centres))
        return real, ops.cast(ops.argmin(distances, axis=1), "int32")  # (batch,)

    def generate(self, n, seed=None, z=None, clusters=None):
        """Generates `n` images from noise drawn from N(0, I), each for a cluster.

        Args:
            n: number of images.
            seed: integer seed of the noise and of the clusters.
            z: optional noise (n, latent_dim) to use instead.
            clusters: one cluster for all or `n` clusters. Default: drawn
                with the clusters' shares of the training images, one for
                all images when `z` is given (so that a path through the
                noise keeps its cluster).

        Returns:
            A NumPy array (n, 28, 28, 1) in [0, 1].
        """
        n = check_count(n)
        if clusters is None:  # from a stream of its own (seed + 1, away from the noise's)
            rng = np.random.default_rng(None if seed is None else seed + 1)
            shares = ops.convert_to_numpy(self.shares).astype("float64")
            shares = shares / shares.sum() if shares.sum() > 0 else np.full(self.clusters, 1 / self.clusters)
            clusters = rng.choice(self.clusters, size=None if z is not None else n, p=shares)
        return self.draw(n, labels_array(clusters, n, self.clusters, "clusters"), seed, z)

    def get_config(self):
        config = {**super().get_config(), "clusters": self.clusters}
        del config["num_classes"]
        return config
