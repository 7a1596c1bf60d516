"""Flow matching: a U-Net learns the velocity that carries noise to digits along straight paths."""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend, specs
from kgen import capabilities as caps
from kgen.inputs import CheckedInputs
from kgen.models import common
from kgen.models.common import PortableCompileConfig, check_count
from kgen.models.gan import labels_array
from kgen.nets import IMAGE_SHAPE

DEFAULTS = specs.SPECS["flow"].constructor_defaults()  # declared once in kgen.specs


# the velocity network: a small U-Net, 28 -> 14 -> 7 and back


@keras.saving.register_keras_serializable(package="kgen")
class TimeEmbedding(layers.Layer):
    """Sinusoidal features of a time t in [0, 1] (batch, 1) -> (batch, dim), as in the Transformer and DDPM.

    Args:
        dim: number of features (even): dim / 2 frequencies from 1 to
            1 / 10000, each giving a sine and a cosine of 1000 t.
    """

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        if int(dim) < 2 or int(dim) % 2:
            raise ValueError(f"dim must be an even number of at least 2. Received: dim={dim!r}")
        self.dim = int(dim)

    def call(self, t):
        half = self.dim // 2
        freqs = ops.exp(-math.log(10000.0) * ops.arange(half, dtype="float32") / half)  # (half,)
        args = 1000.0 * ops.cast(t, "float32") * freqs[None, :]  # (batch, half)
        return ops.cast(ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package="kgen")
class ResBlock(layers.Layer):
    """Residual block of the U-Net: norm, SiLU, conv, plus the time-and-label embedding, norm, SiLU, conv.

    Takes `[x (batch, h, w, c_in), emb (batch, e)]` to (batch, h, w, channels);
    a 1x1 convolution matches the skip path when c_in != channels. The last
    convolution starts at zero, so each block starts as the identity.

    Args:
        channels: output channels.
        groups: groups of the group normalizations.
    """

    def __init__(self, channels, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.groups = int(groups)

    def build(self, input_shape):
        x_shape, emb_shape = input_shape
        c_in = x_shape[-1]
        self.norm1 = layers.GroupNormalization(min(self.groups, c_in), dtype=self.dtype_policy)
        self.conv1 = layers.Conv2D(self.channels, 3, padding="same", dtype=self.dtype_policy)
        self.emb = layers.Dense(self.channels, dtype=self.dtype_policy)
        self.norm2 = layers.GroupNormalization(self.groups, dtype=self.dtype_policy)
        self.conv2 = layers.Conv2D(self.channels, 3, padding="same", kernel_initializer="zeros", dtype=self.dtype_policy)
        self.skip = None if c_in == self.channels else layers.Conv2D(self.channels, 1, dtype=self.dtype_policy)
        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        self.emb.build(emb_shape)
        inner = (*x_shape[:-1], self.channels)
        self.norm2.build(inner)
        self.conv2.build(inner)
        if self.skip is not None:
            self.skip.build(x_shape)

    def call(self, inputs):
        # each layer through `backend.forward`: on torch, without Keras's per-call work (the same outputs)
        x, emb = inputs
        h = backend.forward(self.conv1, ops.silu(backend.forward(self.norm1, x)))  # (batch, h, w, channels)
        h = h + backend.forward(self.emb, emb)[:, None, None, :]  # the time and the label, added to every pixel
        h = backend.forward(self.conv2, ops.silu(backend.forward(self.norm2, h)))
        return h + (x if self.skip is None else backend.forward(self.skip, x))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "groups": self.groups}


def velocity_network(width=32, depth=1, num_classes=10, image_shape=IMAGE_SHAPE, name="velocity"):
    """The U-Net that predicts the velocity: `[x_t, t, label]` -> a velocity of x_t's shape.

    Levels of `width`, `2 * width` and `2 * width` channels at 28x28, 14x14
    and 7x7, `depth` residual blocks at each level on the way down and up,
    skips concatenated; a sinusoidal embedding of t and a learned embedding
    of the label (`num_classes` is "no label", for classifier-free guidance)
    are added inside every block.

    Args:
        width: channels at full resolution.
        depth: residual blocks per level and direction.
        num_classes: labels; the embedding has one more row, the null label.
        image_shape: (height, width, channels); height and width divisible by 4.
        name: the model's name.

    Returns:
        A functional `keras.Model` with inputs `x` (batch, *image_shape), `t`
        (batch, 1) and `label` (batch,) int, output (batch, *image_shape).

    Example:

    >>> net = velocity_network(width=32, depth=1)
    >>> net([np.zeros((2, 28, 28, 1)), np.full((2, 1), 0.5), np.array([3, 10])]).shape
    (2, 28, 28, 1)
    """
    emb_dim = 4 * width
    x_in = keras.Input(image_shape, name="x")
    t_in = keras.Input((1,), name="t")
    label_in = keras.Input((), dtype="int32", name="label")
    temb = layers.Dense(emb_dim, activation="silu")(TimeEmbedding(width)(t_in))
    emb = layers.Add()([layers.Dense(emb_dim)(temb), layers.Embedding(num_classes + 1, emb_dim)(label_in)])
    emb = layers.Activation("silu")(emb)  # (batch, 4 * width)

    h = layers.Conv2D(width, 3, padding="same")(x_in)  # (batch, 28, 28, width)
    skips = []
    for level, channels in enumerate((width, 2 * width)):
        for _ in range(depth):
            h = ResBlock(channels)([h, emb])
        skips.append(h)
        h = layers.Conv2D(channels if level else 2 * width, 3, strides=2, padding="same")(h)  # (batch, 14|7, ...)
    for _ in range(depth):  # the middle, at 7x7
        h = ResBlock(2 * width)([h, emb])
    for channels in (2 * width, width):
        h = layers.UpSampling2D(2)(h)
        h = layers.Conv2D(channels, 3, padding="same")(h)  # (batch, 14|28, ...)
        h = layers.Concatenate()([h, skips.pop()])
        for _ in range(depth):
            h = ResBlock(channels)([h, emb])
    h = layers.Activation("silu")(layers.GroupNormalization(8)(h))
    out = layers.Conv2D(image_shape[-1], 3, padding="same", kernel_initializer="zeros", dtype="float32")(h)
    return keras.Model([x_in, t_in, label_in], out, name=name)


@keras.saving.register_keras_serializable(package="kgen")
class FlowMatching(PortableCompileConfig, CheckedInputs, keras.Model):
    """Class-conditional flow matching (rectified flow) of 28x28 images in [0, 1], trained on (images, labels).

    Training: an image x1 (scaled to [-1, 1]), a noise x0 ~ N(0, I) and a
    time t; the point x_t = (1 - t) x0 + t x1 moves on the straight path from
    noise to image with the constant velocity x1 - x0, and the network learns
    to predict that velocity from (x_t, t, label), a plain mean squared error
    (Lipman et al., 2023; Liu et al., 2023). t is drawn logit-normal,
    sigmoid(N(0, 1)), as Esser et al. (2024) found best for images: it
    spends the steps on the middle of the path, where the velocity is
    hardest to predict, rather than at the ends, where it is nearly the
    mean image or nearly the noise. With probability `label_dropout` a label
    is replaced by the null label, so one network learns the conditional and
    the unconditional velocity: classifier-free guidance (Ho & Salimans,
    2022).

    Sampling solves dx/dt = v(x, t) from noise at t = 0 to an image at t = 1
    with `steps` Euler or Heun steps (Heun: two network calls a step, a
    second-order method); with guidance w the velocity is
    v_uncond + w (v_cond - v_uncond) (w = 1: the conditional one alone, one
    call), from the time `guidance_from` on: guided from the noise itself,
    the samples lose variety (the guidance interval of Kynkäänniemi et al.,
    2024; docs/flow.md). An exponential moving average of the weights, `ema_network`,
    draws the samples, as in the GANs.

    Logged per epoch: `loss`, the velocity's mean squared error per pixel.
    `evaluate` and `validation_data` report the same loss on held-out images
    with their labels (no label dropout) in inference mode.

    Args:
        width: channels of the U-Net at full resolution (`velocity_network`).
        depth: residual blocks per level and direction.
        num_classes: number of labels (10 digits).
        label_dropout: probability that a training label is replaced by the
            null label (0: no unconditional velocity, no guidance).
        ema: decay of the weights' moving average that draws samples (0: off;
            warm-up as for the GANs).
        time_sampling: `"logit_normal"` or `"uniform"` times during training.
        guidance: default guidance weight of `generate` (1: none).
        guidance_from: default flow time of `generate` from which the
            guidance applies (0: all of the path).
        steps: default number of sampler steps of `generate`.
        sampler: default sampler of `generate`, `"heun"` or `"euler"`.
        seed: seed of the model's random generator.
        network: your own velocity network (a built Keras model with inputs
            `[x (batch, *image_shape), t (batch, 1), label (batch,)]`, labels
            0..num_classes, num_classes meaning none; output like x). Default:
            `velocity_network(width, depth, num_classes)`. Saved inside
            `model.keras`.
        image_shape: (height, width, channels) of the images; default the
            network's input shape, (28, 28, 1) for kgen's.

    Example:

    >>> flow = FlowMatching(width=32, depth=1)
    >>> flow.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> flow.fit(x_train, y_train, epochs=5, batch_size=128)  # images in [0, 1], labels 0..9
    >>> flow.generate(8, labels=7, guidance=2.0, steps=10, seed=0).shape  # eight sevens
    (8, 28, 28, 1)
    """

    capabilities = frozenset({caps.CONDITIONAL})  # what it can do (kgen.capabilities)

    def __init__(
        self,
        width=DEFAULTS["width"],
        depth=DEFAULTS["depth"],
        num_classes=10,
        label_dropout=DEFAULTS["label_dropout"],
        ema=DEFAULTS["ema"],
        time_sampling=DEFAULTS["time_sampling"],
        guidance=DEFAULTS["guidance"],
        guidance_from=DEFAULTS["guidance_from"],
        steps=DEFAULTS["steps"],
        sampler=DEFAULTS["sampler"],
        seed=None,
        network=None,
        image_shape=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        specs.check(width=width, depth=depth, label_dropout=label_dropout, ema=ema, time_sampling=time_sampling,
                    guidance=guidance, guidance_from=guidance_from, steps=steps, sampler=sampler)
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer of at least 2. Received: num_classes={num_classes!r}")
        self.width, self.depth, self.num_classes = int(width), int(depth), int(num_classes)
        self.label_dropout = float(label_dropout)
        self.ema = float(ema)
        self.time_sampling = time_sampling
        self.guidance, self.guidance_from = float(guidance), float(guidance_from)
        self.steps, self.sampler = int(steps), sampler
        self.seed = seed
        self.custom_networks = network is not None
        if self.custom_networks:
            if isinstance(network, dict):  # from model.keras
                network = keras.saving.deserialize_keras_object(network)
            if not isinstance(network, keras.Model) or not network.built or len(network.inputs) != 3:
                raise ValueError(
                    "network must be a built keras.Model with inputs [x, t, label]. Received: network="
                    f"{network!r}"
                )
            self.image_shape = tuple(image_shape or network.inputs[0].shape[1:])
            self.network = network
        else:
            if self.width % 8:
                raise ValueError(f"width must be a multiple of 8 (the group norm's groups). Received: width={width}")
            self.image_shape = tuple(image_shape or IMAGE_SHAPE)
            if self.image_shape[0] % 4 or self.image_shape[1] % 4:
                raise ValueError(f"image_shape's height and width must be multiples of 4. Received: image_shape={image_shape}")
            self.network = velocity_network(self.width, self.depth, self.num_classes, self.image_shape)
        self.ema_network = None
        if self.ema:
            # the moving average: a non-trainable copy, carried by Keras's jax trainer and saved in model.keras
            self.ema_network = common.average_copy(self.network, "ema_velocity")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True  # every network is built above

    @property
    def metrics(self):
        return [self.loss_tracker]

    @property
    def sampler_network(self):
        """The network that draws samples: the moving average when EMA is on."""
        return self.ema_network if self.ema_network is not None else self.network

    def call(self, inputs, training=False):
        """The velocity network: `[x_t, t (batch, 1), labels]` to velocities like x_t."""
        return self.network(inputs, training=training)

    def unpack(self, data):
        """A batch as `(images in [-1, 1], int32 labels (batch,))`."""
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None:
            raise ValueError(
                "FlowMatching trains on images and their labels: call `fit(x, y)` with integer "
                "(or one-hot) labels y. Received: y=None"
            )
        labels = ops.convert_to_tensor(labels)
        if len(labels.shape) == 2 and labels.shape[-1] == self.num_classes:  # one-hot (batch, num_classes)
            labels = ops.argmax(labels, axis=-1)
        return 2.0 * ops.convert_to_tensor(x, "float32") - 1.0, ops.cast(ops.reshape(labels, (-1,)), "int32")

    def sample_times(self, n):
        """Training times (n, 1) in (0, 1): logit-normal or uniform."""
        if self.time_sampling == "uniform":
            return keras.random.uniform((n, 1), seed=self.seed_generator)
        return ops.sigmoid(keras.random.normal((n, 1), seed=self.seed_generator))

    def flow_loss(self, x1, labels, training):
        """The mean squared error of the predicted velocity on straight paths from noise to `x1`."""
        n = ops.shape(x1)[0]
        x0 = keras.random.normal(ops.shape(x1), seed=self.seed_generator)  # (batch, 28, 28, 1)
        t = self.sample_times(n)  # (batch, 1)
        xt = (1.0 - t[:, :, None, None]) * x0 + t[:, :, None, None] * x1
        v = backend.forward(self.network, [xt, t, labels], training=training)
        return ops.mean(ops.square(v - (x1 - x0)))

    @backend.train_step
    def train_step(self, data):
        x1, labels = self.unpack(data)  # (batch, 28, 28, 1) in [-1, 1], (batch,)

        # classifier-free guidance: some labels become the null label
        if self.label_dropout:
            drop = keras.random.uniform(ops.shape(labels), seed=self.seed_generator) < self.label_dropout
            labels = ops.where(drop, self.num_classes, labels)

        # regress the straight path's velocity
        out = backend.gradient_step(
            lambda: {"loss": self.flow_loss(x1, labels, True)}, self.network.trainable_variables, self.optimizer
        )

        # moving average of the weights, the one that draws samples
        if self.ema_network is not None:
            self.update_average()
        return backend.update_metrics(self.metrics, out)

    @backend.test_step
    def test_step(self, data):
        x1, labels = self.unpack(data)
        return backend.update_metrics(self.metrics, {"loss": self.flow_loss(x1, labels, False)})

    def update_average(self):
        """One step of the weights' moving average."""
        common.update_average(self.ema_network, self.network, self.ema, self.optimizer.iterations)

    def velocity(self, x, t, labels, guidance):
        """The guided velocity at `x` (n, 28, 28, 1), time `t` (a float), for int labels (n,) (null: unconditional)."""
        n = ops.shape(x)[0]
        net = self.sampler_network
        times = ops.full((n, 1), t, "float32")
        if guidance == 1.0:
            return backend.forward(net, [x, times, labels], training=False)
        both = backend.forward(
            net,
            [ops.concatenate([x, x]), ops.concatenate([times, times]),
             ops.concatenate([labels, ops.full((n,), self.num_classes, "int32")])],
            training=False,
        )
        cond, uncond = ops.split(both, 2)
        return uncond + guidance * (cond - uncond)

    def solve(self, x, labels, guidance, steps, sampler, guidance_from=0.0):
        """Integrates dx/dt = v from t = 0 (noise `x`) to t = 1, in `steps` steps, guided from `guidance_from` on.

        The times are t_i = 1 - (1 - i / steps)^2: short steps near the
        image, long ones near the noise. With evenly spaced steps the last
        few leave a grain of noise in the black background (with 10 Heun
        steps a fifth of the pixels sat between 0.02 and 0.25); this grid
        removes it at the same cost (docs/flow.md, "Samplers").
        """
        times = [1.0 - (1.0 - i / steps) ** 2 for i in range(steps + 1)]

        def slope(x, t):  # the velocity, guided from `guidance_from` on
            return self.velocity(x, t, labels, guidance if t >= guidance_from else 1.0)

        for i in range(steps):
            t, dt = times[i], times[i + 1] - times[i]
            v = slope(x, t)
            if sampler == "heun":  # the average of the slopes at both ends of the Euler step
                v = 0.5 * (v + slope(x + dt * v, t + dt))
            x = x + dt * v
        return x

    def generate(self, n, labels=None, guidance=None, steps=None, seed=None, sampler=None, z=None, batch_size=64,
                 guidance_from=None):
        """Draws `n` images by solving the flow's ODE from seeded noise.

        Args:
            n: number of images.
            labels: None (unconditional: the null label, no guidance), one
                label for all, or `n` labels in 0..num_classes-1.
            guidance: classifier-free guidance weight w (default: the
                model's `guidance`; 1: the conditional velocity alone).
            guidance_from: the flow time (0: noise, 1: image) from which the
                guidance applies (default: the model's `guidance_from`).
            steps: sampler steps (default: the model's `steps`).
            seed: integer seed of the noise; the same seed gives the same
                images (default: the global generator).
            sampler: `"heun"` or `"euler"` (default: the model's `sampler`).
            z: optional starting noise (n, 28, 28, 1) instead of a draw.
            batch_size: images integrated at once. Small batches are faster on a
                CPU: the guided double batch's largest activations (64 channels at
                28x28) then stay below 32 MiB, which the C library reuses in place
                (`kgen.backend.common.keep_freed_memory`) and caches hold better.

        Returns:
            A NumPy array (n, 28, 28, 1) in [0, 1].
        """
        n = check_count(n)
        guidance = self.guidance if guidance is None else guidance
        guidance_from = self.guidance_from if guidance_from is None else guidance_from
        steps = self.steps if steps is None else steps
        sampler = self.sampler if sampler is None else sampler
        specs.check(guidance=guidance, guidance_from=guidance_from, steps=steps, sampler=sampler)
        if labels is None:
            labels, guidance = np.full(n, self.num_classes, "int32"), 1.0
        else:
            labels = labels_array(labels, n, self.num_classes)
        if z is None:
            z = keras.random.normal((n, *self.image_shape), seed=seed)
        z = ops.convert_to_tensor(z, "float32")
        if tuple(z.shape) != (n, *self.image_shape):
            raise ValueError(f"z must have shape {(n, *self.image_shape)}. Received: z.shape={tuple(z.shape)}")
        out = []
        with backend.no_grad():
            for i in range(0, n, batch_size):
                x = self.solve(z[i : i + batch_size], ops.convert_to_tensor(labels[i : i + batch_size]),
                               float(guidance), int(steps), sampler, float(guidance_from))
                out.append(np.clip((ops.convert_to_numpy(x) + 1.0) / 2.0, 0.0, 1.0))
        return np.concatenate(out).astype("float32")

    def get_config(self):
        config = {
            **super().get_config(),
            "width": self.width,
            "depth": self.depth,
            "num_classes": self.num_classes,
            "label_dropout": self.label_dropout,
            "ema": self.ema,
            "time_sampling": self.time_sampling,
            "guidance": self.guidance,
            "guidance_from": self.guidance_from,
            "steps": self.steps,
            "sampler": self.sampler,
            "seed": self.seed,
            "image_shape": list(self.image_shape),
        }
        if self.custom_networks:
            config["network"] = keras.saving.serialize_keras_object(self.network)
        return config
