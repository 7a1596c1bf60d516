"""What jax and tensorflow do as Keras does, and the torch module falls back on."""

import contextlib


def forward(network, inputs, training=None):
    """`network(inputs, training=training)`: a traced step pays Keras's per-layer work once."""
    return network(inputs, training=training)


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
    own), and `--tensorboard` still imports TensorFlow's summary module itself.
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
