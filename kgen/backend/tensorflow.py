"""Gradient step on the tensorflow backend: `GradientTape` and `optimizer.apply`."""

import contextlib

import tensorflow as tf


def gradient_step(loss_fn, variables, optimizer):
    """Takes one optimizer step on `variables` to lower `loss_fn()["loss"]`."""
    with tf.GradientTape() as tape:
        out = loss_fn()
    grads = tape.gradient(out["loss"], variables)
    optimizer.apply(grads, variables)
    return out


def train_step(fn):
    """Keras's tensorflow trainer calls `train_step(self, data)` as written."""
    return fn


def test_step(fn):
    """Keras's tensorflow evaluator calls `test_step(self, data)` as written."""
    return fn


def forward(network, inputs, training=None):
    """`network(inputs, training=training)`: a traced step pays Keras's per-layer work once."""
    return network(inputs, training=training)


def no_grad():
    """Nothing to turn off: gradients exist only inside `gradient_step`."""
    return contextlib.nullcontext()
