"""The torch backend's fast paths compute what Keras computes.

`backend.forward` skips `Layer.__call__` and must give the same tensors and
the same batch-norm statistics as calling the network; the fused Adam must
move the weights as Keras's `optimizer.apply` does (to rounding); anything
the fast paths do not cover must take Keras's own path.
"""

import keras
import numpy as np
import pytest
import torch

from kgen import backend, nets
from kgen.backend import torch as torch_backend

NETWORKS = {
    "mlp generator (batch norm)": (lambda: nets.generator("mlp", 8), (16, 8)),
    "conv generator (batch norm)": (lambda: nets.generator("conv", 8), (16, 8)),
    "mlp discriminator (dropout)": (lambda: nets.discriminator("mlp", dropout=0.3), (16, 28, 28, 1)),
    "conv encoder": (lambda: nets.encoder("conv", 4), (16, 28, 28, 1)),
}


def _states(network):
    return [np.array(v.numpy()) for v in network.non_trainable_weights]


# forward


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("training", [True, False, None])
def test_forward_gives_the_networks_outputs_and_statistics(name, training):
    make, shape = NETWORKS[name]
    network = make()
    x = torch.rand(shape)
    before = _states(network)
    keras.utils.set_random_seed(3)
    expected = network(x, training=training)
    expected_states = _states(network)
    for variable, value in zip(network.non_trainable_weights, before):
        variable.assign(value)
    keras.utils.set_random_seed(3)
    assert torch_backend._direct(network, x)  # the fast path is the one tested
    out = backend.forward(network, x, training=training)
    assert torch.equal(out, expected)
    for got, want in zip(_states(network), expected_states):
        np.testing.assert_array_equal(got, want)
    if training and "batch norm" in name:
        assert any(not np.array_equal(a, b) for a, b in zip(before, expected_states))  # stats did move


def test_forward_takes_kerass_path_where_the_fast_one_does_not_apply():
    network = nets.generator("mlp", 8)
    assert not torch_backend._direct(network, np.zeros((2, 8), "float32"))  # not a tensor
    assert not torch_backend._direct(network, torch.zeros((2, 8), dtype=torch.float64))
    cgan_generator = nets.generator("mlp", 8, num_classes=10)  # a functional model
    assert not torch_backend._direct(cgan_generator, torch.zeros((2, 8)))
    # and the fallback still computes
    out = backend.forward(cgan_generator, [torch.zeros((2, 8)), torch.tensor([1, 2])], training=False)
    assert tuple(out.shape) == (2, 28, 28, 1)


def test_forward_inherits_training_from_an_enclosing_call():
    network = nets.discriminator("mlp", dropout=0.5)

    class Outer(keras.Model):
        def call(self, x, training=None):
            return backend.forward(network, x)

    x = torch.ones((64, 28, 28, 1))
    outer = Outer()
    keras.utils.set_random_seed(0)
    train_out = outer(x, training=True)
    keras.utils.set_random_seed(0)
    assert torch.equal(train_out, network(x, training=True))
    assert torch.equal(outer(x, training=False), network(x, training=False))
    assert not torch.equal(train_out, network(x, training=False))  # dropout was on


# fused Adam


def _compiled(optimizer):
    keras.utils.set_random_seed(0)
    network = nets.encoder("mlp", 4)
    optimizer.build(network.trainable_variables)
    return network, optimizer


def test_fused_adam_moves_weights_as_kerass_adam():
    fast, fast_opt = _compiled(keras.optimizers.Adam(1e-3))
    slow, slow_opt = _compiled(keras.optimizers.Adam(1e-3))
    start = [np.array(v.numpy()) for v in slow.trainable_variables]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(50):
            grads = [torch.randn(tuple(v.shape), generator=generator) * 1e-2 for v in fast.trainable_variables]
            assert torch_backend._plain_adam(fast_opt, fast.trainable_variables, grads)
            torch_backend._apply_adam(fast_opt, grads, fast.trainable_variables)
            slow_opt.apply([g.clone() for g in grads], slow.trainable_variables)
    assert int(fast_opt.iterations) == int(slow_opt.iterations) == 50
    moved = max(np.abs(v.numpy() - s).max() for v, s in zip(slow.trainable_variables, start))
    diff = max(np.abs(a.numpy() - b.numpy()).max() for a, b in zip(fast.trainable_variables, slow.trainable_variables))
    assert moved > 1e-2  # the weights moved ...
    assert diff < 1e-5 * moved  # ... and the same way, to float32 rounding
    for a, b in zip(fast_opt.variables, slow_opt.variables):  # moments and iterations too
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize(
    "optimizer",
    [
        keras.optimizers.Adam(1e-3, clipnorm=1.0),
        keras.optimizers.Adam(1e-3, amsgrad=True),
        keras.optimizers.Adam(1e-3, weight_decay=0.01),
        keras.optimizers.SGD(1e-2),
    ],
    ids=["clipnorm", "amsgrad", "weight_decay", "sgd"],
)
def test_other_optimizers_go_through_keras(optimizer):
    network, optimizer = _compiled(optimizer)
    grads = [torch.ones(tuple(v.shape)) for v in network.trainable_variables]
    assert not torch_backend._plain_adam(optimizer, network.trainable_variables, grads)


def test_gradient_step_lowers_the_loss_of_only_the_given_variables():
    keras.utils.set_random_seed(0)
    first, second = nets.encoder("mlp", 1), nets.encoder("mlp", 1)
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(first.trainable_variables)
    x = torch.rand((8, 28, 28, 1))
    untouched = [np.array(v.numpy()) for v in second.trainable_variables]

    def loss_fn():
        return {"loss": keras.ops.mean(keras.ops.square(backend.forward(first, x) + backend.forward(second, x)))}

    losses = [float(backend.gradient_step(loss_fn, first.trainable_variables, optimizer)["loss"]) for _ in range(5)]
    assert losses[-1] < losses[0]
    for v, u in zip(second.trainable_variables, untouched):
        np.testing.assert_array_equal(v.numpy(), u)


# metrics


def test_update_metrics_gives_kerass_means():
    fast = [keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="kl")]
    slow = [keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="kl")]
    values = [{"loss": torch.tensor(v), "kl": torch.tensor(v / 3)} for v in (2.5, 0.1, 7.0, 1e-3)]
    for step in values:
        got = backend.update_metrics(fast, step)
        for metric in slow:
            metric.update_state(step[metric.name])
        for metric in slow:
            assert float(got[metric.name]) == float(metric.result())  # the same float32 number
    for a, b in zip(fast, slow):
        assert float(a.count.numpy()) == float(b.count.numpy()) == 4
        a.reset_state()
        assert float(a.result()) == 0.0  # still an ordinary Keras metric


def test_update_metrics_leaves_other_metrics_and_values_to_keras():
    total = keras.metrics.Sum(name="images")
    mean = keras.metrics.Mean(name="loss")
    got = backend.update_metrics([total, mean], {"images": torch.tensor(32.0), "loss": torch.tensor([1.0, 3.0])})
    assert float(got["images"]) == 32.0  # a Sum, not a Mean
    assert float(got["loss"]) == 2.0 and float(mean.count.numpy()) == 2  # a vector: two samples
