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
    "conv decoder": (lambda: nets.decoder("conv", 4), (16, 4)),
    "conv discriminator": (lambda: nets.discriminator("conv"), (16, 28, 28, 1)),
}
CONV = [name for name in NETWORKS if name.startswith("conv")]
# batch norm runs as torch's fused kernel and an evenly cropped transposed convolution as torch's padded
# one: the same math as Keras's operations, summed in another order, so equal to float32 rounding only
ROUNDED = {"mlp generator (batch norm)", "conv generator (batch norm)"}


def _assert_same(got, want, name):
    if name in ROUNDED:  # within 1e-4 of the largest value (rounding of sums over the batch)
        got, want = (np.asarray(v.detach() if torch.is_tensor(v) else v) for v in (got, want))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1e-3, np.abs(want).max()))
    else:
        assert torch.equal(got, want) if torch.is_tensor(got) else np.array_equal(got, want)


def _states(network):
    return [np.array(v.numpy()) for v in network.non_trainable_weights]


def _keras_then_fast(network, inputs, training, with_input_grads=False):
    """`(outputs, gradients of sum(out**2), statistics after)` by Keras's call, then by `backend.forward`, from the same state."""
    weights = [v.value for v in network.trainable_variables]
    before = _states(network)
    results = []
    for fast in (False, True):
        for variable, value in zip(network.non_trainable_weights, before):
            variable.assign(value)
        x = inputs.clone().requires_grad_(True) if with_input_grads else inputs
        out = backend.forward(network, x, training=training) if fast else network(x, training=training)
        grads = torch.autograd.grad((out * out).sum(), weights + ([x] if with_input_grads else []), allow_unused=True)
        results.append((out, grads, _states(network)))
    return results


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
    _assert_same(out, expected, name)
    for got, want in zip(_states(network), expected_states):
        _assert_same(got, want, name)
    if training and "batch norm" in name:
        assert any(not np.array_equal(a, b) for a, b in zip(before, expected_states))  # stats did move


@pytest.mark.parametrize("name", CONV)
def test_forward_gives_the_networks_gradients_through_convolutions(name):
    make, shape = NETWORKS[name]
    keras.utils.set_random_seed(0)
    network = make()
    assert any(torch_backend._plain_conv(layer, torch.zeros(1, 1, 1, 1)) for layer in network.layers)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    assert torch_backend._direct(network, x)
    (want, want_grads, _), (got, got_grads, _) = _keras_then_fast(network, x, True, with_input_grads=True)
    _assert_same(got, want, name)
    for g, w in zip(got_grads, want_grads):  # weights and inputs: the same bits backwards too (or to rounding)
        _assert_same(g, w, name)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.Conv2D(4, 3, dilation_rate=2),
        lambda: keras.layers.Conv2D(4, 3, groups=2),
        lambda: keras.layers.Conv2D(4, 3, data_format="channels_first"),
        lambda: keras.layers.Conv2DTranspose(4, 3, strides=2, output_padding=1),
        lambda: keras.layers.Conv1D(4, 3),
        lambda: keras.layers.SeparableConv2D(4, 3),
    ],
    ids=["dilated", "grouped", "channels_first", "output_padding", "conv1d", "separable"],
)
def test_other_convolutions_take_their_own_call(layer):
    assert not torch_backend._plain_conv(layer(), torch.zeros(2, 8, 8, 4))


def test_forward_takes_kerass_path_where_the_fast_one_does_not_apply():
    network = nets.generator("mlp", 8)
    assert not torch_backend._direct(network, np.zeros((2, 8), "float32"))  # not a tensor
    assert not torch_backend._direct(network, torch.zeros((2, 8), dtype=torch.float64))
    cgan_generator = nets.generator("mlp", 8, num_classes=10)  # a functional model
    assert not torch_backend._direct(cgan_generator, torch.zeros((2, 8)))  # one input of two
    assert not torch_backend._direct(cgan_generator, [np.zeros((2, 8), "float32"), torch.tensor([1, 2])])
    masked = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(5, 4, mask_zero=True)])
    assert not torch_backend._direct(masked, torch.tensor([[1, 0, 2]]))
    # and the fallback still computes
    out = backend.forward(cgan_generator, [torch.zeros((2, 8)), torch.tensor([1, 2])], training=False)
    assert tuple(out.shape) == (2, 28, 28, 1)


FUNCTIONAL = {
    "conditional conv generator": lambda: nets.generator("conv", 8, num_classes=10),
    "conditional conv discriminator (projection, classifier, spectral norm)": lambda: nets.discriminator(
        "conv", num_classes=10, spectral_norm=True, aux_classifier=True, projection=True
    ),
}


@pytest.mark.parametrize("name", FUNCTIONAL)
@pytest.mark.parametrize("training", [True, False])
def test_forward_walks_a_functional_network_as_keras_does(name, training):
    network = FUNCTIONAL[name]()
    first = (16, 8) if "generator" in name else (16, 28, 28, 1)
    inputs = [torch.rand(first, generator=torch.Generator().manual_seed(0)), torch.arange(16, dtype=torch.int32) % 10]
    assert torch_backend._direct(network, inputs)
    (want, want_grads, want_states), (got, got_grads, got_states) = _keras_then_fast(network, inputs, training)
    # the generator's batch norm and transposed convolutions: equal to rounding (see ROUNDED)
    _assert_same(got, want, "conv generator (batch norm)")
    for g, w in zip(got_grads, want_grads):
        if w is None:
            assert g is None
        else:
            _assert_same(g, w, "conv generator (batch norm)")
    for g, w in zip(got_states, want_states):
        _assert_same(g, w, "conv generator (batch norm)")


@pytest.mark.parametrize("options", [{"groups": 4}, {"groups": 1, "scale": False}, {"groups": 8, "center": False}])
def test_group_norm_is_torchs_kernel_with_kerass_statistics(options):
    layer = keras.layers.GroupNormalization(**options)
    x = torch.rand((3, 7, 7, 8), generator=torch.Generator().manual_seed(0)) * 4 - 1
    layer.build(x.shape)
    if layer.scale:  # weights away from their initial ones
        layer.gamma.assign(np.linspace(0.5, 2, 8))
    if layer.center:
        layer.beta.assign(np.linspace(-1, 1, 8))
    want = layer(x)
    assert torch_backend._plain_group_norm(layer, x) and torch_backend._plain_layer(layer, x)
    got = backend.forward(layer, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_the_flow_unet_through_its_blocks_equals_kerass_own_calls(monkeypatch):
    # the U-Net's residual blocks pass their layers (group norms, convolutions, dense) to `backend.forward`:
    # outputs and gradients as with every fast path off (Keras's calls throughout), to float32 rounding
    from kgen.models.flow import velocity_network

    keras.utils.set_random_seed(0)
    network = velocity_network(width=8, depth=1)
    for v in network.trainable_variables:  # the zero-initialized last convolutions would hide the blocks
        v.assign(np.random.default_rng(len(v.path)).normal(0, 0.2, v.shape))
    inputs = [torch.rand((4, 28, 28, 1)), torch.full((4, 1), 0.3), torch.tensor([0, 3, 9, 10], dtype=torch.int32)]
    weights = [v.value for v in network.trainable_variables]
    results = []
    for fast in (False, True):
        monkeypatch.setattr(torch_backend, "FAST_PATHS", fast)
        assert torch_backend._direct(network, inputs) == fast
        out = backend.forward(network, inputs, training=True)
        results.append((out, torch.autograd.grad((out * out).sum(), weights)))
    (want, want_grads), (got, got_grads) = results
    assert float(want.detach().abs().max()) > 0.1
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    scale = max(float(w.abs().max()) for w in want_grads)  # rounding, relative to the gradients' size
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-3, atol=1e-5 * scale)


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


# fused LSTM


def _lstm(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    layer = keras.layers.LSTM(8, return_sequences=True, return_state=True, **kwargs)
    layer.build((None, 5, 6))
    with torch.no_grad():  # a non-zero bias, so that a misplaced one shows
        layer.cell.bias.value.copy_(torch.randn(32, generator=torch.Generator().manual_seed(seed)))
    return layer


def _lstm_inputs(batch=4, steps=5, features=6, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, features, generator=generator)
    states = [torch.randn(batch, 8, generator=generator) for _ in range(2)]
    return x, states


def _outputs_and_grads(call, layer, x, states):
    x = x.clone().requires_grad_(True)
    states = [s.clone().requires_grad_(True) for s in states] if states is not None else None
    outputs = call(x, states)
    # a loss that weighs every output differently, so that each element's gradient counts
    weights = torch.linspace(-1.0, 2.0, 8)
    loss = sum(((o * weights) ** 2).sum() * (i + 1) for i, o in enumerate(outputs))
    wrt = [x] + (states or []) + [v.value for v in layer.trainable_variables]
    grads = torch.autograd.grad(loss, wrt)
    return [o.detach() for o in outputs], grads


@pytest.mark.parametrize("given_states", [False, True], ids=["zero state", "given state"])
def test_fused_lstm_equals_the_keras_layer(given_states):
    layer = _lstm()
    x, states = _lstm_inputs()
    states = states if given_states else None
    assert torch_backend._fused_lstm_ok(layer, x, states, True)  # the fused path is the one tested
    fused = _outputs_and_grads(lambda x, s: backend.lstm(layer, x, s, training=True), layer, x, states)
    keras_ = _outputs_and_grads(lambda x, s: layer(x, initial_state=s, training=True), layer, x, states)
    for got, want in zip(fused[0], keras_[0]):  # sequence, h, c
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(fused[0][0][:, -1], fused[0][1])  # the last output is h
    for got, want in zip(fused[1], keras_[1]):  # inputs, (states,) kernel, recurrent kernel, bias
        assert got.shape == want.shape and want.abs().max() > 1e-3  # every gradient is there
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fused_lstm_follows_the_layers_return_options():
    x, _ = _lstm_inputs()
    for return_sequences in (False, True):
        for return_state in (False, True):
            keras.utils.set_random_seed(0)
            layer = keras.layers.LSTM(8, return_sequences=return_sequences, return_state=return_state)
            layer.build((None, 5, 6))
            assert torch_backend._fused_lstm_ok(layer, x, None, None)
            got, want = backend.lstm(layer, x), layer(x)
            got, want = (list(got), list(want)) if return_state else ([got], [want])
            assert len(got) == len(want)
            for a, b in zip(got, want):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_lstm_step_equals_the_cell():
    layer = _lstm()
    x, states = _lstm_inputs()
    h, (h2, c) = backend.lstm_step(layer, x[:, 0], states)
    want_h, (_, want_c) = layer.cell(x[:, 0], states)
    assert h is h2
    torch.testing.assert_close(h, want_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c, want_c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu"},
        {"recurrent_activation": "hard_sigmoid"},
        {"use_bias": False},
        {"recurrent_dropout": 0.2},
        {"dropout": 0.2},
        {"go_backwards": True},
        {"unroll": True},
        {"use_cudnn": False},
        {"dtype": "float64"},
    ],
    ids=lambda o: next(iter(o)),
)
def test_unusual_lstm_layers_take_kerass_call(options):
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(8, return_sequences=True, return_state=True, **options)
    layer.build((None, 5, 6))
    x, states = _lstm_inputs()
    assert not torch_backend._fused_lstm_ok(layer, x, states, True)
    keras.utils.set_random_seed(1)
    got = backend.lstm(layer, x, states, training=True)
    keras.utils.set_random_seed(1)
    want = layer(x, initial_state=states, training=True)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_fused_lstm_falls_back_on_masks_other_inputs_versions_and_compiling(monkeypatch):
    layer = _lstm()
    x, states = _lstm_inputs()
    assert torch_backend._fused_lstm_ok(layer, x, states, False)
    masked = x.clone()
    masked._keras_mask = torch.ones(4, 5, dtype=torch.bool)
    assert not torch_backend._fused_lstm_ok(layer, masked, states, False)
    assert not torch_backend._fused_lstm_ok(layer, x.numpy(), states, False)
    assert not torch_backend._fused_lstm_ok(layer, x.double(), states, False)
    assert not torch_backend._fused_lstm_ok(layer, x, states[:1], False)
    assert not torch_backend._fused_lstm_ok(keras.layers.GRU(8), x, None, False)
    with monkeypatch.context() as patch:
        patch.setattr(keras, "__version__", "3.99.0")  # a Keras the fused path was not checked against
        assert not torch_backend._fused_lstm_ok(layer, x, states, False)
    with monkeypatch.context() as patch:
        patch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not torch_backend._fused_lstm_ok(layer, x, states, False)
    # dropout on the layer's inputs is Keras's unless known to be off
    keras.utils.set_random_seed(0)
    dropping = keras.layers.LSTM(8, dropout=0.5)
    dropping.build((None, 5, 6))
    assert torch_backend._fused_lstm_ok(dropping, x, None, False)
    assert not torch_backend._fused_lstm_ok(dropping, x, None, None)


def test_patch_lstm_trains_and_completes_through_the_fused_kernel(monkeypatch):
    from kgen.models import PatchLSTM

    calls = []
    fused = torch_backend._fused_lstm
    monkeypatch.setattr(torch_backend, "_fused_lstm", lambda *a: calls.append(a[1].shape[1]) or fused(*a))
    keras.utils.set_random_seed(0)
    model = PatchLSTM(num_layers=2, units=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    model.fit(images, epochs=1, batch_size=4, verbose=0)
    assert calls == [16, 16]  # both layers, the whole teacher-forced sequence at once
    calls.clear()
    model.complete(images, given=14)
    assert calls == [15, 15]  # the given patches in one pass (the steps after are fused cells)


def test_fused_adam_counts_steps_as_keras_when_other_updates_come_between():
    # torch's public functional Adam (fused=True) takes per-variable step counts, which kgen keeps
    # between calls; an update by Keras's own apply in between must not put them out of step
    fast, fast_opt = _compiled(keras.optimizers.Adam(1e-2))
    slow, slow_opt = _compiled(keras.optimizers.Adam(1e-2))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for i in range(12):
            grads = [torch.randn(tuple(v.shape), generator=generator) for v in fast.trainable_variables]
            if i % 3 == 2:  # e.g. a step where the fast path stepped aside
                fast_opt.apply([g.clone() for g in grads], fast.trainable_variables)
            else:
                torch_backend._apply_adam(fast_opt, grads, fast.trainable_variables)
            slow_opt.apply([g.clone() for g in grads], slow.trainable_variables)
    assert int(fast_opt.iterations) == int(slow_opt.iterations) == 12
    for a, b in zip(fast.trainable_variables, slow.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_fast_paths_step_aside_with_a_warning_on_an_untested_keras(run_on_backend):
    # the private API behind the fast paths is guarded: on a Keras version not tested (or where its
    # modules moved) kgen warns once and trains through Keras's public calls
    out = run_on_backend("torch", """
        import warnings
        from unittest import mock
        import keras, numpy as np, torch
        keras.__version__ = "3.99.0"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from kgen.backend import torch as torch_backend
        from kgen.models import VAE
        print("FAST", torch_backend.FAST_PATHS)
        print("WARNED", any("fast paths are off" in str(w.message) and "Received: keras==3.99.0" in str(w.message)
                            for w in caught))
        model = VAE(seed=0)
        model.compile(optimizer="adam")
        x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
        with mock.patch.object(torch, "_fused_adam_", side_effect=AssertionError("fused Adam")), \\
                mock.patch.object(torch_backend, "_dense", side_effect=AssertionError("direct Dense")):
            logs = model.train_on_batch(x, return_dict=True)
        print("LOSS", float(logs["loss"]))
    """)
    assert "FAST False" in out and "WARNED True" in out
    assert np.isfinite(float(out.split("LOSS ")[1].split()[0]))


# float16 on the CPU: torch's float16 convolution kernel cannot take the weight gradient of a
# one-filter Conv2D on channels-last input, the last layer of kgen's conv generators and decoders


def _one_filter_net():
    return keras.Sequential([
        keras.Input((7, 7, 8)),
        keras.layers.Conv2DTranspose(16, 4, strides=2, padding="same"),
        keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
    ])


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


def test_a_float16_one_filter_conv_trains_on_the_cpu(mixed_float16):
    from kgen.models import GAN, AutoEncoder

    network = _one_filter_net()
    x = torch.rand(4, 7, 7, 8)
    variables = [v.value for v in network.trainable_variables]
    with pytest.raises(RuntimeError, match="grad_weight must be contiguous"):  # Keras's own call: torch's kernel fails
        torch.autograd.grad(backend.float32(network(x)).sum(), variables)
    with torch.no_grad():
        want = network(x)  # Keras's forward pass, which works
    with torch_backend._half_conv():
        got = network(x)
        grads = torch.autograd.grad(backend.float32(got).sum(), variables)
    assert torch_backend.torch_nn.conv is torch_backend._KERAS_CONV  # Keras's own again after the step
    assert got.dtype == torch.float16 and all(torch.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(got.detach().float().numpy(), want.float().numpy(), atol=2e-3)  # float16 rounding
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    for model in (GAN(arch="conv", seed=0), AutoEncoder(arch="conv", seed=0)):
        model.compile()
        history = model.fit(images, epochs=1, batch_size=8, verbose=0).history
        assert all(np.isfinite(v[-1]) for v in history.values()), type(model).__name__


def test_without_the_fast_paths_compile_refuses_a_float16_one_filter_conv(mixed_float16, monkeypatch):
    from kgen.models import AutoEncoder

    monkeypatch.setattr(torch_backend, "FAST_PATHS", False)
    with pytest.raises(ValueError) as error:
        AutoEncoder(arch="conv", seed=0).compile()
    message = str(error.value)
    assert "\n" not in message and "'mixed_bfloat16'" in message and message.endswith("Received: dtype_policy='mixed_float16'")
    keras.config.set_dtype_policy("mixed_bfloat16")
    AutoEncoder(arch="conv", seed=0).compile()  # bfloat16 is differentiated by torch's kernels
