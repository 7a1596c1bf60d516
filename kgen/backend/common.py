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
