"""Gradient step on the torch backend: `backward` and `optimizer.apply`."""

import torch


def gradient_step(loss_fn, variables, optimizer):
    """Takes one optimizer step on `variables` to lower `loss_fn()["loss"]`."""
    for v in variables:
        v.value.grad = None
    out = loss_fn()
    out["loss"].backward()
    grads = [v.value.grad for v in variables]
    with torch.no_grad():
        optimizer.apply(grads, variables)
    return {k: v.detach() for k, v in out.items()}


def train_step(fn):
    """Keras's torch trainer calls `train_step(self, data)` as written."""
    return fn
