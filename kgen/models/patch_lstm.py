"""An LSTM that reads a digit as 16 patches of 7x7 and writes it patch by patch."""

import keras
import numpy as np
from keras import ops

from kgen import capabilities as caps
from kgen import backend, specs
from kgen.data.patches import NUM_PATCHES, PATCH_DIM, from_patches, to_patches
from kgen.nets import IMAGE_SHAPE
from kgen.inputs import CheckedInputs, check_images
from kgen.models import own_networks as own
from kgen.models.common import PortableCompileConfig, check_count

SAMPLINGS = ("bernoulli", "mean", "best", "average")
DEFAULTS = specs.SPECS["lstm"].constructor_defaults()  # declared once in kgen.specs


@keras.saving.register_keras_serializable(package="kgen")
class PatchMADE(keras.layers.Layer):
    """Logits of a patch's 49 pixels, each given the LSTM's output and the pixels before it in the patch.

    A MADE (Germain et al., 2015) conditioned on the recurrent context: with
    `h` the LSTM output (batch, ..., context) and `x` the patch (batch, ...,
    49) in row-major pixel order,

        logit_i = A h + D_<i x + V relu(B h + W_<i x)

    where the masks keep pixel i's logit a function of `h` and of pixels
    0..i-1 only (`D` strictly lower-triangular; hidden unit k, of degree m_k
    in 1..48, reads pixels j < m_k and feeds pixels i >= m_k). The patch's
    likelihood is then the exact product of 49 Bernoullis, each conditioned
    on the pixels before it, where the `"dense"` head of the PatchLSTM draws
    the 49 pixels independently given `h`. One pass gives all 49 logits of a
    known patch (teacher forcing); writing a patch takes 49 passes.

    Args:
        units: hidden units of the masked layer.

    Example:

    >>> made = PatchMADE(64)
    >>> made(keras.ops.zeros((2, 256)), keras.ops.zeros((2, 49))).shape
    (2, 49)
    """

    def __init__(self, units=256, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"units must be at least 1. Received: units={units}")
        self.units = int(units)
        degrees = np.arange(self.units) % (PATCH_DIM - 1) + 1  # m_k in 1..48
        pixel = np.arange(PATCH_DIM)  # pixel i sees pixels j < i
        self.in_mask = (pixel[:, None] < degrees[None, :]).astype("float32")  # (49, units): pixel j -> unit k if j < m_k
        self.out_mask = (degrees[:, None] <= pixel[None, :]).astype("float32")  # (units, 49): unit k -> pixel i if m_k <= i
        self.direct_mask = (pixel[:, None] < pixel[None, :]).astype("float32")  # (49, 49): j -> i if j < i

    def build(self, context_shape, patch_shape=None):
        context = context_shape[-1]
        self.context_out = self.add_weight((context, PATCH_DIM), initializer="glorot_uniform", name="context_out")
        self.bias_out = self.add_weight((PATCH_DIM,), initializer="zeros", name="bias_out")
        self.direct = self.add_weight((PATCH_DIM, PATCH_DIM), initializer="zeros", name="direct")
        self.context_hidden = self.add_weight((context, self.units), initializer="glorot_uniform", name="context_hidden")
        self.bias_hidden = self.add_weight((self.units,), initializer="zeros", name="bias_hidden")
        self.pixels_hidden = self.add_weight((PATCH_DIM, self.units), initializer="glorot_uniform", name="pixels_hidden")
        self.hidden_out = self.add_weight((self.units, PATCH_DIM), initializer="glorot_uniform", name="hidden_out")

    def weight(self, variable):
        """A weight in the compute dtype (called outside `__call__` too, where Keras does not autocast)."""
        return ops.cast(variable, self.compute_dtype)

    def context_terms(self, h):
        """What does not change while a patch is written, computed once per patch.

        The parts of the logits that depend on `h` only, (..., 49) and
        (..., units), and the three masked weights.
        """
        h = ops.cast(h, self.compute_dtype)
        return (
            ops.matmul(h, self.weight(self.context_out)) + self.weight(self.bias_out),
            ops.matmul(h, self.weight(self.context_hidden)) + self.weight(self.bias_hidden),
            self.weight(self.pixels_hidden) * self.weight(self.in_mask),  # (49, units)
            self.weight(self.direct) * self.weight(self.direct_mask),  # (49, 49)
            self.weight(self.hidden_out) * self.weight(self.out_mask),  # (units, 49)
        )

    def pixel_logits(self, terms, x):
        """Logits (..., 49) from `context_terms(h)` and the patch `x` (..., 49)."""
        out, hidden, pixels_hidden, direct, hidden_out = terms
        x = ops.cast(x, self.compute_dtype)
        hidden = ops.relu(hidden + ops.matmul(x, pixels_hidden))
        return out + ops.matmul(x, direct) + ops.matmul(hidden, hidden_out)

    def call(self, h, x):
        return self.pixel_logits(self.context_terms(h), x)

    def compute_output_shape(self, context_shape, patch_shape=None):
        return (*context_shape[:-1], PATCH_DIM)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="kgen")
class PatchLSTM(PortableCompileConfig, CheckedInputs, own.OwnNetworks, keras.Model):
    """Stacked LSTM over the 16 patches of a digit, predicting the next patch.

    An image is a sequence of 16 patches of 7x7 (a 4x4 grid read row-major,
    see `kgen.data.patches`). At step t the network reads patch t-1 (a blank
    patch at the first step) with a one-hot of its position t, and a dense
    head gives the 49 pixel logits of patch t, so it predicts patch t+1 from
    patches 1..t. Training is teacher forcing: the true previous patches are
    the inputs, and the loss is per-pixel binary cross-entropy (`"bce"`) or
    squared error (`"mse"`) of all 16 predicted patches, averaged over pixels.
    With `patch_head="made"` (the default) the head is a `PatchMADE`: each
    pixel's logit also depends on the pixels before it in its patch, so the
    49 pixels of a patch are not independent given the LSTM's state (on the
    full binarized MNIST the exact likelihood went from 129.8 nats with the
    dense head to 84.4, docs/likelihood.md).

    `complete` keeps the first K patches of an image and writes the rest one
    step at a time, each prediction fed back as the next input; `generate`
    writes whole digits from the start. Both carry the LSTM states from step
    to step (one cell call per layer and step, not a re-run of the sequence).

    Args:
        num_layers: number of stacked LSTM layers.
        units: units of each LSTM layer.
        dropout: dropout rate on the output of each LSTM layer in training.
        recon_loss: `"bce"` (per-pixel Bernoulli likelihood) or `"mse"`.
        binarize: train on dynamically binarized images (each pixel drawn as
            Bernoulli of its grey level at every step), the protocol of the
            binarized-MNIST likelihoods; the model then reads binary patches
            as it does when it writes them (default; `False` trains on the
            grey levels, on which the MADE head's samples were speckled).
        seed: seed of the dropout masks and of the binarization.
        patch_head: `"made"` (a `PatchMADE` of `units` hidden units: each
            pixel given the LSTM's output and the pixels before it; writing a
            patch takes 49 small passes) or `"dense"` (49 independent pixel
            logits from the LSTM's output in one pass, the model before
            the MADE head). Your own `head` replaces it (`"dense"`).
        recurrent: your own recurrent stack, a list of Keras RNN layers
            (`LSTM`, `GRU`, `SimpleRNN`, or `RNN` of a cell), each with
            `return_sequences=True` and `return_state=True`, the first taking
            65 features per step (the previous patch's 49 pixels and a
            one-hot of the 16 positions); with `head` (a Keras layer or model
            from the last layer's units to the 49 pixel logits of a patch).
            Replaces `num_layers` and `units`; `dropout` still applies after
            each layer. Default: kgen's stack of `LSTM` layers and its
            `patch_head`. Your head scores the 49 pixels of a patch
            independently, as the `"dense"` head does. Saved inside
            `model.keras`.
        head: see `recurrent`.
        image_shape: (28, 28, 1), the only shape the PatchLSTM takes (with
            kgen's networks or yours): it reads an image as 16 patches of 7x7
            (`kgen.data.patches`), and `complete` and `kgen evaluate` count
            in those patches.

    Example:

    >>> model = PatchLSTM(num_layers=2, units=256)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(x_train, epochs=10, batch_size=128)  # (N, 28, 28, 1) in [0, 1]
    >>> model.complete(x_test[:16], given=8).shape  # finish the top halves
    (16, 28, 28, 1)
    """

    capabilities = frozenset({caps.COMPLETES})  # what it can do (kgen.capabilities)
    network_names = ("recurrent", "head")  # your own networks, saved in model.keras (own_networks.OwnNetworks)

    def __init__(
        self,
        num_layers=DEFAULTS["num_layers"],
        units=DEFAULTS["units"],
        dropout=DEFAULTS["dropout"],
        recon_loss=DEFAULTS["recon_loss"],
        binarize=DEFAULTS["binarize"],
        seed=None,
        patch_head=DEFAULTS["patch_head"],
        recurrent=None,
        head=None,
        image_shape=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        specs.check(num_layers=num_layers, units=units, dropout=dropout, recon_loss=recon_loss, binarize=binarize,
                    patch_head=patch_head)
        if image_shape is not None and tuple(image_shape) != IMAGE_SHAPE:
            raise ValueError(
                f"The PatchLSTM reads {IMAGE_SHAPE} images as {NUM_PATCHES} patches of 7x7, with kgen's networks "
                f"or your own. Received: image_shape={tuple(image_shape)}"
            )
        self.image_shape = IMAGE_SHAPE
        self.custom_networks = recurrent is not None or head is not None
        if self.custom_networks:
            patch_head = "dense"  # your head gives the 49 logits of a patch at once
            own.check_given("recurrent", recurrent, "head", head)
            num_layers, units = own.check_recurrent(recurrent, head, NUM_PATCHES, PATCH_DIM + NUM_PATCHES, PATCH_DIM)
        self.num_layers = int(num_layers)
        self.units = int(units)
        self.dropout = float(dropout)
        self.recon_loss = recon_loss
        self.binarize = bool(binarize)
        self.seed = seed
        self.patch_head = patch_head
        self.seed_generator = keras.random.SeedGenerator(seed)
        if self.custom_networks:
            self.lstms, self.head = list(recurrent), head
        else:
            self.lstms = [
                keras.layers.LSTM(self.units, return_sequences=True, return_state=True, name=f"lstm_{i}")
                for i in range(self.num_layers)
            ]
            head_class = PatchMADE if patch_head == "made" else keras.layers.Dense
            self.head = head_class(self.units if patch_head == "made" else PATCH_DIM, name="head")
        self.drops = [
            keras.layers.Dropout(self.dropout, seed=None if seed is None else seed + i, name=f"dropout_{i}")
            for i in range(self.num_layers)
        ]
        dim = PATCH_DIM + NUM_PATCHES  # previous patch, one-hot position
        for lstm in self.lstms:
            if not lstm.built:
                lstm.build((None, NUM_PATCHES, dim))
            dim = lstm.compute_output_shape((None, NUM_PATCHES, dim))[0][-1]
        if not self.head.built:
            self.head.build((None, self.units))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self.built = True  # every layer is built above

    @property
    def metrics(self):
        return [self.loss_tracker, self.mse_tracker]

    @property
    def recurrent(self):
        """The recurrent stack: the list of RNN layers (kgen's LSTMs, or yours)."""
        return self.lstms

    def head_logits(self, h, patches=None):
        """The head on the recurrent outputs h (..., units): float32 logits (..., 49) of `patches` (..., 49).

        A dense head's logits depend on `h` only; a `PatchMADE`'s also on the
        pixels before each in `patches`, the patches being scored.
        """
        if self.patch_head == "made":
            return backend.float32(self.head(h, patches))
        if not self.custom_networks:  # kgen's Dense takes (batch, steps, units) as it is
            return backend.float32(self.head(h))
        shape = ops.shape(h)
        logits = backend.forward(self.head, ops.reshape(h, (-1, shape[-1])))  # your head sees (n, units)
        return ops.reshape(logits, (*shape[:-1], PATCH_DIM))

    def sequence_inputs(self, patches):
        """Patches (batch, 16, 49) to the LSTM inputs (batch, 16, 65) of teacher forcing.

        Step t gets patch t-1 (zeros at t=0) and the one-hot position t.
        """
        patches = ops.cast(patches, self.compute_dtype)
        shifted = ops.concatenate([ops.zeros_like(patches[:, :1]), patches[:, :-1]], axis=1)
        position = ops.eye(NUM_PATCHES, dtype=self.compute_dtype)[None]  # (1, 16, 16)
        position = ops.broadcast_to(position, (ops.shape(patches)[0], NUM_PATCHES, NUM_PATCHES))
        return ops.concatenate([shifted, position], axis=-1)  # (batch, 16, 65)

    def run_layers(self, inputs, states=None, training=False):
        """Runs the LSTM stack over a sequence (batch, steps, 65).

        Returns the last layer's outputs (batch, steps, units), the input of
        `head_logits`, and the final `[h, c]` of each layer.
        """
        h, final = inputs, []
        for i, (lstm, drop) in enumerate(zip(self.lstms, self.drops)):
            # lstm(h, ...); on torch's CPU one fused kernel call (see kgen.backend.lstm)
            h, *state = backend.lstm(lstm, h, None if states is None else states[i], training=training)
            h = drop(h, training=training)  # (batch, steps, units)
            final.append(list(state))  # [h, c] of an LSTM, [h] of a GRU
        return h, final

    def step(self, inputs, states):
        """One step of the stack: inputs (batch, 65) and states to outputs (batch, units) and new states."""
        h, new_states = inputs, []
        for lstm, state in zip(self.lstms, states):
            h, state = backend.lstm_step(lstm, h, state)  # lstm.cell(h, state): (batch, units), [h, c]
            new_states.append(state)
        return h, new_states

    def call(self, images, training=False):
        """Teacher-forced next-patch probabilities (batch, 16, 49) of images (batch, 28, 28, 1).

        With a `"made"` head each pixel's probability is given the image's
        own pixels before it in its patch.
        """
        patches = to_patches(images)
        h, _ = self.run_layers(self.sequence_inputs(patches), training=training)
        return ops.sigmoid(self.head_logits(h, patches))

    def pixel_loss(self, target, logits):
        """Per-pixel loss of `target` patches under the predicted `logits`."""
        if self.recon_loss == "bce":
            # softplus(l) - t * l is BCE(t, sigmoid(l)), stable for any logit
            return ops.softplus(logits) - target * logits
        return ops.square(target - ops.sigmoid(logits))

    def patch_losses(self, images, training=False):
        """Mean per-pixel training loss and next-patch MSE of a batch, teacher-forced."""
        patches = ops.cast(to_patches(images), "float32")  # (batch, 16, 49), the float32 target
        h, _ = self.run_layers(self.sequence_inputs(patches), training=training)  # (batch, 16, units)
        logits = self.head_logits(h, patches)  # (batch, 16, 49)
        loss = ops.mean(self.pixel_loss(patches, logits))
        mse = ops.mean(ops.square(patches - ops.sigmoid(logits)))
        return {"loss": loss, "mse": mse}

    @backend.train_step
    def train_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        if self.binarize:
            x = ops.cast(keras.random.uniform(ops.shape(x), seed=self.seed_generator) < x, x.dtype)

        # teacher forcing: the true patches 1..t in, patch t+1 out, all steps at once
        def loss_fn():
            return self.patch_losses(x, training=True)

        out = backend.gradient_step(loss_fn, self.trainable_variables, self.optimizer)
        return backend.update_metrics(self.metrics, out)

    @backend.test_step
    def test_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        # the teacher-forced loss on held-out images, as in training, without dropout
        return backend.update_metrics(self.metrics, self.patch_losses(x, training=False))

    def complete(self, images, given=8, sampling="mean", seed=None, batch_size=1000, candidates=16):
        """Keeps the first `given` patches of each image and writes the rest.

        The given patches are read in one pass of the LSTM stack; then each
        missing patch is predicted from the states and fed back as the next
        input. The given patches of the result are the input's, bit for bit.

        Args:
            images: (n, 28, 28[, 1]) images in [0, 1].
            given: how many leading patches to keep, 1 to 15 (8: the top half).
            sampling: `"mean"` (default) feeds back the predicted pixel means,
                a deterministic completion; `"bernoulli"` feeds back a draw
                (see `generate`); `"best"` draws `candidates` completions as
                `"bernoulli"` does and keeps the one the model finds most
                likely (the lowest NLL of the written patches given the kept
                ones); `"average"` draws `candidates` completions as
                `"bernoulli"` does and returns their pixel-wise average, a
                Monte Carlo estimate of the completion's posterior mean.
            seed: integer seed of the draws with `"bernoulli"`, `"best"` and
                `"average"`.
            batch_size: images per pass (with `"best"` and `"average"`,
                candidates included).
            candidates: completions drawn per image with `"best"` and
                `"average"`.

        Returns:
            A NumPy float32 array (n, 28, 28, 1): the given patches, then the
            predicted pixel means of the rest.
        """
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or not 1 <= given < NUM_PATCHES:
            raise ValueError(f"given must be a whole number of patches from 1 to 15. Received: given={given!r}")
        images = np.asarray(images)
        if images.shape[1:] not in ((28, 28), (28, 28, 1)) or len(images) == 0:
            raise ValueError(f"complete needs images (n, 28, 28[, 1]). Received: shape={images.shape}")
        images = images.reshape(-1, 28, 28, 1)
        check_images(images, (28, 28, 1), "images")  # floats in [0, 1], as fit takes: not uint8 in [0, 255]
        images = images.astype(np.float32)
        if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)) or candidates < 1:
            raise ValueError(f"candidates must be a whole number from 1. Received: candidates={candidates!r}")
        patches = to_patches(images)  # (n, 16, 49), a new array
        patches[:, given:] = self._rollout(patches, given, sampling, seed, batch_size, candidates)
        return from_patches(patches)

    def generate(self, n, seed=None, sampling="bernoulli", batch_size=1000):
        """Writes `n` whole digits patch by patch from the start.

        A deterministic model fed its own pixel means writes the same digit
        every time, so by default each patch is drawn pixel by pixel from the
        Bernoulli distribution that the model predicts (the likelihood it is
        trained on with `"bce"`) and the draw is fed back: the n digits take
        different strokes from the first uncertain pixel on. The image shows,
        for each patch, the predicted pixel means given the drawn patches
        before it, which reads as a clean digit rather than the speckle of a
        binary draw.

        Args:
            n: number of digits.
            seed: integer seed of the draws (default: a random one).
            sampling: `"bernoulli"` (default) or `"mean"` (deterministic: n
                copies of one digit).
            batch_size: images per pass.

        Returns:
            A NumPy array (n, 28, 28, 1) in [0, 1].
        """
        blank = np.zeros((check_count(n), NUM_PATCHES, PATCH_DIM), np.float32)
        return from_patches(self._rollout(blank, 0, sampling, seed, batch_size))

    def _rollout(self, patches, given, sampling, seed, batch_size, candidates=1):
        """Patches `given`..15 (NumPy, (n, 16 - given, 49)) written after the first `given` of `patches`."""
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}. Received: sampling={sampling!r}")
        seed_generator = keras.random.SeedGenerator(seed)
        weights = list(self.trainable_variables)
        for v in weights:  # no gradients needed: torch then records no graph (half the time)
            v.trainable = False
        try:
            if sampling in ("best", "average"):
                size = max(1, batch_size // candidates)
                pick = self._best_of if sampling == "best" else self._average_of
                out = [
                    pick(patches[start : start + size], given, candidates, seed_generator)
                    for start in range(0, len(patches), size)
                ]
            else:
                out = [
                    self._rollout_batch(patches[start : start + batch_size], given, sampling, seed_generator)[0]
                    for start in range(0, len(patches), batch_size)
                ]
        finally:
            for v in weights:
                v.trainable = True
        return np.concatenate(out).astype(np.float32)

    def _best_of(self, patches, given, candidates, seed_generator):
        """Of `candidates` drawn completions of each of `patches` (b, 16, 49), the written patches of the likeliest."""
        b = len(patches)
        tiled = np.repeat(np.asarray(patches, np.float32), candidates, axis=0)  # (b * candidates, 16, 49)
        shown, drawn = self._rollout_batch(tiled, given, "bernoulli", seed_generator)
        tiled[:, given:] = drawn  # the binary draws: what the model scores
        h, _ = self.run_layers(self.sequence_inputs(tiled))
        losses = self.pixel_loss(ops.convert_to_tensor(tiled), self.head_logits(h, tiled))  # (b * candidates, 16, 49)
        nll = ops.convert_to_numpy(ops.sum(losses[:, given:], axis=(1, 2))).reshape(b, candidates)
        best = np.arange(b) * candidates + nll.argmin(axis=1)
        return shown[best]  # (b, 16 - given, 49)

    def _average_of(self, patches, given, candidates, seed_generator):
        """The pixel-wise average of `candidates` drawn completions of each of `patches` (b, 16, 49)."""
        tiled = np.repeat(np.asarray(patches, np.float32), candidates, axis=0)  # (b * candidates, 16, 49)
        shown, _ = self._rollout_batch(tiled, given, "bernoulli", seed_generator)  # (b * candidates, 16 - given, 49)
        return shown.reshape(len(patches), candidates, *shown.shape[1:]).mean(axis=1)  # (b, 16 - given, 49)

    def _rollout_batch(self, patches, given, sampling, seed_generator):
        b = len(patches)
        position = np.eye(NUM_PATCHES, dtype=np.float32)
        # read the given patches in one pass: its last step predicts patch `given`
        inputs = self.sequence_inputs(patches)[:, : given + 1]  # (b, given + 1, 65)
        h, states = self.run_layers(inputs)
        h = h[:, -1]  # (b, units)
        written, fed_back = [], []
        for t in range(given, NUM_PATCHES):
            # write patch t, then feed it (or a draw from it) back with the next position
            u = keras.random.uniform((b, PATCH_DIM), seed=seed_generator) if sampling == "bernoulli" else None
            shown, fed = self._write_patch(h, u)
            written.append(shown)
            fed_back.append(fed)
            if t == NUM_PATCHES - 1:
                break
            pos = ops.convert_to_tensor(np.broadcast_to(position[t + 1], (b, NUM_PATCHES)))
            h, states = self.step(ops.concatenate([fed, pos], axis=-1), states)  # one step, states carried
        # what was shown (the probabilities) and what was fed back, each (b, 16 - given, 49)
        return ops.convert_to_numpy(ops.stack(written, axis=1)), ops.convert_to_numpy(ops.stack(fed_back, axis=1))

    def _write_patch(self, h, u=None):
        """One patch from the outputs h (b, units): its probabilities (b, 49) and what is fed back (b, 49).

        With uniforms `u` (b, 49) each pixel is drawn (u < p) and the draw fed
        back; without, the probabilities themselves. A dense head gives all
        49 probabilities at once; a `"made"` head one pixel per pass, each
        given the pixels written before it.
        """
        if self.patch_head != "made":
            probs = ops.sigmoid(self.head_logits(h))
            return probs, probs if u is None else ops.cast(u < probs, probs.dtype)
        terms = self.head.context_terms(h)  # the parts that depend on h, and the masked weights: once
        eye = ops.eye(PATCH_DIM, dtype="float32")
        probs = fed = ops.zeros((ops.shape(h)[0], PATCH_DIM), "float32")
        for i in range(PATCH_DIM):
            p = ops.sigmoid(backend.float32(self.head.pixel_logits(terms, fed))[:, i : i + 1])  # (b, 1)
            value = p if u is None else ops.cast(u[:, i : i + 1] < p, p.dtype)
            probs = probs + p * eye[i]
            fed = fed + value * eye[i]
        return probs, fed

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "units": self.units,
            "dropout": self.dropout,
            "recon_loss": self.recon_loss,
            "binarize": self.binarize,
            "seed": self.seed,
            "patch_head": self.patch_head,
            **own.serialize_networks(self, self.network_names),
        }
