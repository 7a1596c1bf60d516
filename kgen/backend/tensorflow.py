"""Gradient step on the tensorflow backend: `GradientTape` and `optimizer.apply`."""

import tensorflow as tf

from kgen.backend.common import (  # noqa: F401
    DATA_PARALLEL, forward, lstm, lstm_step, no_grad, process_index, unsupported_precision, update_metrics,
)


def gradient_step(loss_fn, variables, optimizer):
    """Takes one optimizer step on `variables` to lower `loss_fn()["loss"]`.

    As Keras's own tensorflow `train_step`: the tape differentiates
    `optimizer.scale_loss(loss)` (multiplied by the loss scale of a
    `LossScaleOptimizer`, what `compile` wraps the optimizer in under
    `mixed_float16`), and `optimizer.apply` unscales the gradients.
    """
    with tf.GradientTape() as tape:
        out = loss_fn()
        scaled = optimizer.scale_loss(out["loss"])
    grads = tape.gradient(scaled, variables)
    optimizer.apply(grads, variables)
    return out


def train_step(fn):
    """Keras's tensorflow trainer calls `train_step(self, data)` as written."""
    return fn


def test_step(fn):
    """Keras's tensorflow evaluator calls `test_step(self, data)` as written."""
    return fn
