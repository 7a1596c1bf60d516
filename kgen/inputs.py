"""Checks of the data given to `fit` and `evaluate`, once, before the first step (and of the dtype policy at `compile`).

kgen's models take images (N, 28, 28, 1) as floats in [0, 1], channels last,
and the conditional GAN integer labels (N,) in 0..num_classes-1. Data that
breaks these rules often trains without an error, on garbage: channels-first
images broadcast against the reconstructions, uint8 images in [0, 255] drive
the losses to 1e30 or NaN. `CheckedInputs.fit` and `.evaluate` look at the data
once, before Keras's loop starts, and raise one `ValueError` that says what was
received and what to do. The steps themselves check nothing (no cost per
step).

What is looked at: a NumPy array or tensor in full (shape, dtype, and the
value range, one pass over the data); a `keras.utils.PyDataset` and a torch
`DataLoader` through their first batch; a `tf.data.Dataset` through its
`element_spec` (shape and dtype; no values are read). A Python generator is
not looked at (reading its first batch would consume it).

What is accepted as it is:

- images (N, 28, 28, 1), float16/32/64, values in [0, 1];
- cGAN labels as integers (N,) or (N, 1) (integer-valued floats too), or
  one-hot (N, num_classes), which the cGAN turns into integers in its step
  (what keras.io's conditional GAN feeds).

What is refused, with the fix in the message: (N, 28, 28) without the channel
axis (add it: `x[..., None]`), channels-first (N, 1, 28, 28) (transpose it:
`x.transpose(0, 2, 3, 1)`), integer images or values outside [0, 1] (divide by
255, or map [-1, 1] to [0, 1]), NaN or infinite values, and labels outside
0..num_classes-1. kgen converts nothing silently: a reshape or a rescaling is a
decision about the data that the user should see in their own code.
"""

import sys

import numpy as np

# keras.Model.compile's arguments, in order (Keras 3.15)
COMPILE_ARGUMENTS = (
    "optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly", "steps_per_execution",
    "jit_compile", "auto_scale_loss",
)
TOLERANCE = 1e-3  # values this far outside [0, 1] are rounding, not a different scale


class CheckedInputs:
    """Mixin of the kgen models: `fit` and `evaluate` check their data once, then run Keras's; `prepare` is a no-op.

    The model says what it takes through `image_shape` (default (28, 28, 1))
    and, for a conditional model, `num_classes`.
    """

    def prepare(self, x, y=None):
        """What the model does once with its training data before it trains: nothing here.

        `kgen train` calls it on a new model, before the first step (not on a
        resumed one, whose checkpoint holds what it made). The self-conditioned
        GAN clusters its training images here.
        """

    def prior_codes(self, eps):
        """Latent codes (n, latent_dim) that `generate` draws for standard-normal `eps`: `eps` itself here.

        A model whose prior is not N(0, I) (the autoencoder's Gaussian of its
        training codes) maps `eps` onto it, so that `generate(n, z=...)` of
        these codes draws as `generate(n)` does.
        """
        return eps

    def compile(self, *args, **kwargs):
        """`keras.Model.compile`, after the dtype policy's check, with loss scaling where float16 computes.

        Under `mixed_float16` Keras wraps a model's optimizer in a
        `keras.optimizers.LossScaleOptimizer` (`auto_scale_loss=True`, the
        default); kgen does the same, also when only your own networks compute
        in float16, and for a GAN wraps each player's optimizer, not the pair.
        """
        from kgen import optimizers

        kwargs.update(zip(COMPILE_ARGUMENTS, args))
        scale = check_precision(self) and kwargs.get("auto_scale_loss", True)
        if scale and kwargs.get("optimizer", "rmsprop") is not None:
            kwargs["optimizer"] = optimizers.loss_scaled(kwargs.get("optimizer", "rmsprop"))
        kwargs["auto_scale_loss"] = False  # done above, the pair's way for a GAN
        return super().compile(**kwargs)

    def compile_from_config(self, config):
        # what keras.Model's does; Keras skips its own for a model whose `compile` is overridden
        import keras

        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # before the saved state is loaded into it

    def fit(self, x=None, y=None, *args, **kwargs):
        check_data(self, x, y, "x", "y")
        validation = kwargs.get("validation_data", args[5] if len(args) > 5 else None)
        if validation is not None:
            if isinstance(validation, (tuple, list)):
                check_data(self, validation[0], validation[1] if len(validation) > 1 else None,
                           "validation_data[0]", "validation_data[1]")
            else:
                check_data(self, validation, None, "validation_data", "validation_data")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        check_data(self, x, y, "x", "y")
        return super().evaluate(x, y, *args, **kwargs)


def check_precision(model):
    """Checks the dtype policy of `model` and its layers; returns whether any layer computes in float16.

    kgen's models train under `float32` and the mixed policies
    (`mixed_float16`, `mixed_bfloat16`): their variables are float32, the
    networks compute in the policy's compute dtype, every loss is computed in
    float32, and float16 steps are loss-scaled. A policy whose *variables* are
    not float32 (`float16`, `bfloat16`, `float64`) is refused with a
    `ValueError`: Adam's moments and the small updates of half-precision
    weights are lost to rounding (a `float16` VAE's loss is NaN after its
    first step). So is a combination the backend cannot differentiate
    (`kgen.backend.unsupported_precision`).
    """
    layers = list(_all_layers(model))
    bad = sorted({layer.dtype_policy.name for layer in layers if layer.dtype_policy.variable_dtype != "float32"})
    if bad:
        raise ValueError(
            f"kgen's {type(model).__name__} keeps its weights in float32: for half precision use the "
            "'mixed_float16' or 'mixed_bfloat16' policy (float32 weights, half-precision compute), "
            f"e.g. keras.config.set_dtype_policy('mixed_bfloat16') before building the model. Received: dtype_policy={bad[0]!r}"
        )
    from kgen import backend

    unsupported = backend.unsupported_precision(layers)  # what this backend cannot differentiate
    if unsupported:
        raise ValueError(unsupported)
    return any(layer.dtype_policy.compute_dtype == "float16" for layer in layers)


def _all_layers(layer):
    """`layer` and every layer inside it, through the public `layers` attributes."""
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from _all_layers(sub)


def check_data(model, x, y, x_name="x", y_name="y"):
    """Raises `ValueError` when `x` (and `y`, for a conditional model) is not what `model` takes."""
    image_shape = tuple(getattr(model, "image_shape", (28, 28, 1)))
    from kgen import capabilities as caps

    num_classes = getattr(model, "num_classes", None) if caps.has(model, caps.CONDITIONAL) else None  # labels taken
    x, y, whole = _first(x, y)
    if x is None:
        return
    check_images(x, image_shape, x_name, whole)
    if num_classes is not None and y is None and whole:
        raise ValueError(
            f"{type(model).__name__} trains on images and their labels: call `fit(x, y)` with integer "
            f"(or one-hot) labels y. Received: {y_name}=None"
        )
    if num_classes is not None and y is not None:
        check_fit_labels(y, num_classes, y_name)


def _first(x, y):
    """(images, labels, whether the values are all there) from what `fit` was given; (None, None, False) if unknown."""
    if isinstance(x, dict):
        return None, None, False
    torch = sys.modules.get("torch")
    tf = sys.modules.get("tensorflow")
    import keras

    if isinstance(x, keras.utils.PyDataset):
        return (*_split(x[0]), False)
    if torch is not None and isinstance(x, torch.utils.data.DataLoader):
        return (*_split(next(iter(x))), False)
    if tf is not None and isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        x_spec, y_spec = _split(spec)
        return _Spec(x_spec), None if y_spec is None else _Spec(y_spec), False
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x, y, True
    return None, None, False


def _split(batch):
    if isinstance(batch, (tuple, list)):
        return batch[0], batch[1] if len(batch) > 1 else None
    return batch, None


class _Spec:
    """The shape and dtype of a `tf.TensorSpec`, read like an array's (no values)."""

    def __init__(self, spec):
        self.shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype.as_numpy_dtype)


def _numpy(x):
    """`x` as a NumPy array, or None where that needs a device copy kgen does not make (e.g. a CUDA tensor)."""
    try:
        return np.asarray(x)
    except Exception:  # noqa: BLE001 - a tensor NumPy cannot read: shape and dtype checks only
        return None


def _describe(shape, dtype):
    return f"{np.dtype(dtype).name} array of shape {tuple(None if d is None else int(d) for d in shape)}"


def check_images(x, image_shape, name="x", whole=True):
    """Raises `ValueError` unless `x` holds images `image_shape` as floats in [0, 1].

    Args:
        x: an array or tensor (all the images, or a first batch).
        image_shape: (height, width, channels) the model takes.
        name: the argument's name in the message.
        whole: whether `x` is all the data (else the message says "first batch").
    """
    shape, dtype = tuple(x.shape), _dtype(x)
    h, w, c = image_shape
    want = f"images must be (N, {h}, {w}, {c}) floats in [0, 1], channels last"
    received = f"Received: {name}={_describe(shape, dtype)}"
    if len(shape) == 3 and tuple(shape[1:]) == (h, w) and c == 1:
        raise ValueError(f"{want}; the channel axis is missing: add it with x[..., None]. {received}")
    if len(shape) == 4 and tuple(shape[1:]) == (c, h, w) and c != w:
        raise ValueError(
            f"{want}; these are channels first (N, {c}, {h}, {w}), torchvision's layout: "
            f"use x.transpose(0, 2, 3, 1) (or x.permute(0, 2, 3, 1) for a torch tensor). {received}"
        )
    if len(shape) != 4 or tuple(shape[1:]) != (h, w, c):
        raise ValueError(f"{want}. {received}")
    if dtype.kind not in "f":
        values = _numpy(x) if not isinstance(x, _Spec) else None
        top = "" if values is None or values.size == 0 else f" in [{values.min():g}, {values.max():g}]"
        fix = "divide by 255: x.astype('float32') / 255" if values is None or values.size == 0 or values.max() > 1 \
            else "convert them: x.astype('float32')"
        raise ValueError(f"{want}; received {dtype.name} values{top}: {fix}. {received}")
    values = None if isinstance(x, _Spec) else _numpy(x)
    if values is None or values.size == 0:
        return
    low, high = float(np.min(values)), float(np.max(values))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{want}; received NaN or infinite values. {received}")
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        if high > 1 + TOLERANCE and low >= -TOLERANCE:
            fix = "divide by 255" if high <= 255 + TOLERANCE else "scale them to [0, 1]"
        elif low >= -1 - TOLERANCE and high <= 1 + TOLERANCE:
            fix = "map [-1, 1] to [0, 1]: (x + 1) / 2"
        else:
            fix = "scale them to [0, 1]"
        where = "" if whole else " (first batch)"
        raise ValueError(f"{want}; received values in [{low:g}, {high:g}]{where}: {fix}. {received}")


def _dtype(x):
    dtype = x.dtype
    if hasattr(dtype, "as_numpy_dtype"):  # tensorflow
        dtype = dtype.as_numpy_dtype
    try:
        return np.dtype(dtype)
    except TypeError:  # a torch dtype
        return np.dtype(str(dtype).replace("torch.", ""))


def check_fit_labels(y, num_classes, name="y"):
    """Raises `ValueError` unless `y` holds integer labels (N,) or (N, 1), or one-hot (N, num_classes)."""
    shape, dtype = tuple(y.shape), _dtype(y)
    want = f"labels must be integers (N,) in 0..{num_classes - 1} or one-hot (N, {num_classes})"
    received = f"Received: {name}={_describe(shape, dtype)}"
    one_hot = len(shape) == 2 and shape[1] == num_classes and num_classes > 1
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1) or one_hot):
        raise ValueError(f"{want}. {received}")
    if dtype.kind not in "iuf":
        raise ValueError(f"{want}. {received}")
    values = None if isinstance(y, _Spec) else _numpy(y)
    if values is None or values.size == 0:
        return
    if one_hot:
        if np.any((values != 0) & (values != 1)) or np.any(values.sum(axis=1) != 1):
            raise ValueError(f"{want}; these (N, {num_classes}) rows are not one-hot (one 1, the rest 0). {received}")
        return
    if np.any(values != np.round(values)):
        raise ValueError(f"{want}; received fractional values. {received}")
    low, high = values.min(), values.max()
    if low < 0 or high >= num_classes:
        raise ValueError(f"{want}; received values in [{low:g}, {high:g}]. {received}")
