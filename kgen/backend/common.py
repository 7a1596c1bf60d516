"""What jax and tensorflow do as Keras does, and the torch module falls back on."""

import contextlib
import warnings

import keras

# the prefix of the private, backend-specific module Keras records in an optimizer's config
# (see `portable_config`)
KERAS_BACKEND_MODULES = "keras.src.backend."


def forward(network, inputs, training=None):
    """`network(inputs, training=training)` with float32 outputs: a traced step pays Keras's per-layer work once.

    Under a mixed-precision policy a network computes, and returns, float16 or
    bfloat16; its outputs are cast to float32 here, so that every kgen loss is
    computed in float32, as Keras's own losses cast `y_pred` (see `float32`).
    """
    return float32(network(inputs, training=training))


def float32(outputs):
    """`outputs` (a tensor or a nest of them) with every floating tensor cast to float32.

    A float32 tensor comes back as it is; so does an integer one. Under a
    `mixed_float16` or `mixed_bfloat16` policy Keras layers return their
    compute dtype; losses in float16 lose the small differences that training
    follows, and on tensorflow a float32 tensor cannot meet a bfloat16 one in
    an operator. Example:

    >>> float32(keras.ops.ones((2,), dtype="float16")).dtype  # float32 on every backend
    """

    if isinstance(outputs, (list, tuple, dict)):
        return keras.tree.map_structure(_cast_float32, outputs)
    return _cast_float32(outputs)  # one tensor: no walk over a structure


def _cast_float32(x):
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return x
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype == "float32" or not keras.backend.is_float_dtype(dtype):
        return x
    return keras.ops.cast(x, "float32")


def no_grad():
    """Nothing to turn off: gradients exist only inside `gradient_step`."""
    return contextlib.nullcontext()


def update_metrics(metrics, values):
    """`metric.update_state(values[metric.name])` for each of `metrics`; returns their results by name."""
    for metric in metrics:
        metric.update_state(values[metric.name])
    return {metric.name: metric.result() for metric in metrics}


def lstm(layer, inputs, initial_state=None, training=None):
    """`layer(inputs, initial_state=initial_state, training=training)` for a Keras `LSTM` layer."""
    return layer(inputs, initial_state=initial_state, training=training)


def lstm_step(layer, inputs, states):
    """One time step of the `LSTM` `layer`: `layer.cell(inputs, states)`, i.e. `(h, [h, c])`."""
    return layer.cell(inputs, states)


def unsupported_precision(layers):
    """Nothing this backend cannot train under the mixed policies: None."""
    return None


# Keras 3.15 implements keras.distribution (DataParallel over several devices) for jax only
DATA_PARALLEL = False


def process_index():
    """This process's index in a multi-host job: always 0 where there is no such job."""
    return 0


def hide_tensorflow():
    """Keeps Keras on torch and jax from importing TensorFlow, and its log lines off the screen; True when done.

    Keras imports TensorFlow whenever it is installed, on every backend: to
    seed it (`keras.utils.set_random_seed`) and to check for its types when
    serializing (every `get_config` and save). The import prints TensorFlow's
    and absl's start-up lines, which no setting silences. This marks Keras's
    lazy TensorFlow module as absent, unless the backend is tensorflow or
    TensorFlow is already loaded. That module is private Keras
    (`keras.src.utils.module_utils`, Keras 3.15); where it has changed, the
    fallback is public: `TF_CPP_MIN_LOG_LEVEL=3` quiets TensorFlow's own log
    lines (not absl's first one), and the function returns False.

    The `kgen` command calls it before any model is built. From Python, call
    it after choosing the backend; then `keras.utils.set_random_seed` no
    longer seeds TensorFlow in that process (a `tf.data` pipeline of your
    own), and `--tensorboard` and TFDS's data sets still import TensorFlow,
    through `kgen.data.load.import_tensorflow`, which keeps its start-up
    lines off the screen.
    """
    import importlib
    import os
    import sys

    import keras

    if keras.config.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return False
    try:
        lazy = importlib.import_module("keras.src.utils.module_utils").tensorflow
    except (ImportError, AttributeError):
        lazy = None
    if lazy is None or "_available" not in vars(lazy):  # not the Keras this was written for
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return False
    lazy._available = False  # what LazyModule.available caches after a failed import
    return True


def keep_freed_memory():
    """Has glibc's malloc keep freed blocks of up to 32 MiB for reuse, instead of returning them to the system.

    glibc serves each allocation above its mmap threshold (128 KiB at start,
    raised by the frees it sees, at most 32 MiB) with fresh pages from the
    system and hands them back when the block is freed; so does the top of
    its heap beyond the trim threshold. A torch step on the CPU allocates
    and frees activations of megabytes at every layer, and each comes back
    as zeroed pages, one page fault per 4 KiB: the PatchLSTM's training and
    the flow model's sampler lost much of their time to it (docs/performance.md,
    "Memory: freed blocks kept for reuse"). This fixes
    both thresholds at 32 MiB and 1 GiB with glibc's public `mallopt`, as
    the environment variables `MALLOC_MMAP_THRESHOLD_=33554432
    MALLOC_TRIM_THRESHOLD_=1073741824` would at start; the price is up to
    1 GiB of freed memory the process keeps until it exits.

    The `kgen` command calls it on the torch backend; scripts may call it, or
    set those variables. Nothing is done, and False is returned, where the C
    library is not glibc or where the environment already sets either
    variable (the user's choice stands). Returns True when set.

    Example:

    >>> keep_freed_memory()  # True on Linux with glibc
    """
    import ctypes
    import os

    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl without it)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 2**30))


def portable_config(config):
    """A serialized Keras optimizer config (`keras.optimizers.serialize`) that loads under every backend.

    Private API: on torch, Keras records its backend-specific class's module,
    `keras.src.backend.torch.optimizers.torch_adam` for an `Adam`, and
    `keras.saving.load_model` under jax or tensorflow would import that torch
    class. The public module `keras.optimizers` resolves to the loading
    backend's own class, so the `module` is rewritten to it, here and in the
    configs nested in it (the inner optimizer of a
    `keras.optimizers.LossScaleOptimizer`). Guarded: a class that
    `keras.optimizers` does not export keeps Keras's module, with a warning
    (the saved model then loads on its own backend only).

    Example:

    >>> config = portable_config(keras.optimizers.serialize(keras.optimizers.Adam()))
    >>> config["module"]
    'keras.optimizers'
    """
    if isinstance(config, list):
        return [portable_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    config = {key: portable_config(value) for key, value in config.items()}
    module = config.get("module")
    if isinstance(module, str) and module.startswith(KERAS_BACKEND_MODULES) and "class_name" in config:
        if hasattr(keras.optimizers, config["class_name"]):
            config["module"] = "keras.optimizers"
        else:
            warnings.warn(
                f"kgen cannot make the optimizer {config['class_name']!r} portable: keras.optimizers does not "
                f"export it; the saved model loads on this backend only. Received: module={module!r}",
                stacklevel=2,
            )
    return config



def save_weights_skipping(model, path, objects_to_skip):
    """`model.save_weights(path)` without the weights of `objects_to_skip` (layers, optimizers).

    `keras.Model.load_weights` takes `objects_to_skip`, `save_weights` does
    not (Keras 3.15); the function it calls, the private
    `keras.src.saving.saving_lib.save_weights_only`, does. Where that has
    changed, every weight is saved with the public `save_weights` (a larger
    file that loads the same way: the skipped objects' weights are read past).
    """
    try:
        from keras.src.saving import saving_lib

        saving_lib.save_weights_only(model, path, objects_to_skip=objects_to_skip)
    except (ImportError, AttributeError, TypeError):
        model.save_weights(path)
