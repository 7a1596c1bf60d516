"""Flow matching: the velocity network, generate and its sampler settings, bad inputs, EMA, saving, the CLI.

Tiny settings throughout (a U-Net of width 8, 2 sampler steps, a few dozen
real digits): what is checked is behaviour, not image quality.
"""

import json
import os

import keras
import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from kgen import capabilities as caps
from kgen import specs
from kgen.cli.main import main
from kgen.models import MODELS, FlowMatching
from kgen.models.flow import velocity_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"width": 8, "depth": 1, "steps": 2, "seed": 0}
CLI_TINY = ["--width", "8", "--steps", "2", "--limit", "64", "--batch-size", "32", "--val-images", "32", "--offline"]


def compiled(**kwargs):
    model = FlowMatching(**{**TINY, **kwargs})
    model.compile(optimizer=keras.optimizers.Adam(1e-2))  # a large step: two steps make the labels matter
    return model


def values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits(real_digits):
    images, labels = real_digits
    return images[:32], labels[:32].astype("int32")


@pytest.fixture(scope="module")
def trained(digits):
    """A tiny flow after two steps of 16 digits (EMA on)."""
    model = compiled()
    model.fit(*digits, epochs=1, batch_size=16, verbose=0)
    return model


# what it declares


def test_declares_conditional_and_its_spec():
    assert caps.of(FlowMatching) == {caps.CONDITIONAL}
    assert FlowMatching(**TINY).num_classes == 10
    spec = specs.get("flow")
    assert MODELS["flow"] is FlowMatching and spec.batch_size == 128
    assert set(spec.options) == {
        "width", "depth", "label_dropout", "ema", "time_sampling", "guidance", "guidance_from", "steps", "sampler"
    }


def test_velocity_network_shapes_and_its_inputs_matter():
    net = velocity_network(width=8)
    rng = np.random.default_rng(0)
    for w in net.weights:  # kgen's last convolutions start at zero: random weights, so every input shows
        w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    x = rng.normal(size=(2, 28, 28, 1)).astype("float32")
    t, labels = np.full((2, 1), 0.5, "float32"), np.array([3, 10], "int32")
    out = keras.ops.convert_to_numpy(net([x, t, labels]))
    assert out.shape == (2, 28, 28, 1) and np.all(np.isfinite(out))
    other_t = keras.ops.convert_to_numpy(net([x, t + 0.25, labels]))
    other_label = keras.ops.convert_to_numpy(net([x, t, np.array([4, 10], "int32")]))
    assert not np.allclose(out, other_t)
    assert not np.allclose(out[0], other_label[0]) and np.allclose(out[1], other_label[1], atol=1e-6)


# generate


@pytest.mark.parametrize("labels", [None, 7, np.array([0, 1, 2, 3, 4, 5])])
@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_generate_is_seeded_in_range_and_of_shape(trained, labels, sampler):
    images = trained.generate(6, labels=labels, sampler=sampler, seed=1)
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images, trained.generate(6, labels=labels, sampler=sampler, seed=1))
    assert not np.allclose(images, trained.generate(6, labels=labels, sampler=sampler, seed=2))


def test_labels_guidance_steps_and_sampler_each_change_the_samples(trained):
    base = trained.generate(4, labels=3, seed=1)  # the model's defaults: heun, 2 steps, guidance 2
    np.testing.assert_array_equal(base, trained.generate(4, labels=3, seed=1, guidance=2.0, steps=2, sampler="heun"))
    for other in (
        trained.generate(4, labels=7, seed=1),
        trained.generate(4, labels=3, seed=1, guidance=1.0),
        trained.generate(4, labels=3, seed=1, guidance=4.0),
        trained.generate(4, labels=3, seed=1, guidance_from=0.0),  # guided from the noise on
        trained.generate(4, labels=3, seed=1, steps=3),
        trained.generate(4, labels=3, seed=1, sampler="euler"),
        trained.generate(4, seed=1),  # unconditional
    ):
        assert np.abs(other - base).max() > 1e-4
    # labels as a list are the same as an array; each image depends on its own label only
    mixed = trained.generate(4, labels=[3, 7, 3, 7], seed=1)
    np.testing.assert_array_equal(mixed[0], base[0])
    np.testing.assert_array_equal(mixed[2], base[2])


def test_guidance_applies_from_guidance_from_on(trained):
    # Euler's velocities are taken at t = 0 and 0.75 (2 steps): guided from 1.0 on is not guided at all,
    # guided from 0.5 on is guided at 0.75 only, and the first step alone differs from the fully guided one
    unguided = trained.generate(4, labels=3, seed=1, guidance=1.0, sampler="euler")
    np.testing.assert_array_equal(trained.generate(4, labels=3, seed=1, guidance_from=1.0, sampler="euler"), unguided)
    late = trained.generate(4, labels=3, seed=1, guidance_from=0.5, sampler="euler")
    full = trained.generate(4, labels=3, seed=1, guidance_from=0.0, sampler="euler")
    assert np.abs(late - unguided).max() > 1e-4 and np.abs(late - full).max() > 1e-4
    assert FlowMatching.from_config(trained.get_config()).guidance_from == trained.guidance_from == 0.3


def test_generate_in_batches_is_the_same_as_at_once(trained):
    np.testing.assert_allclose(
        trained.generate(5, labels=2, seed=4, batch_size=2), trained.generate(5, labels=2, seed=4), atol=1e-6
    )


def test_given_noise_is_used():
    model = FlowMatching(**TINY)  # untrained: the velocity is zero, so the sample is the noise itself
    z = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(model.generate(2, labels=1, z=z), (z + 1) / 2, atol=1e-6)


# bad inputs: one line each, ending in what was received


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"n": 0}, "n=0"),
        ({"n": -1}, "n=-1"),
        ({"labels": 10}, "label=10"),
        ({"labels": [1, 2]}, "labels=[1, 2]"),
        ({"guidance": float("nan")}, "guidance=nan"),
        ({"guidance": -1.0}, "guidance=-1.0"),
        ({"steps": 0}, "steps=0"),
        ({"guidance_from": 1.5}, "guidance_from=1.5"),
        ({"sampler": "rk4"}, "sampler='rk4'"),
        ({"z": np.zeros((2, 28, 28, 1))}, "z.shape=(2, 28, 28, 1)"),
    ],
)
def test_bad_generate_arguments(kwargs, received):
    name = next(iter(kwargs))
    with pytest.raises(ValueError) as info:
        FlowMatching(**TINY).generate(**{"n": 3, "labels": 1, **kwargs})
    text = str(info.value)
    assert text.startswith(f"{name} must ") and text.endswith(f". Received: {received}") and "\n" not in text, text


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"width": 12}, "width=12"),
        ({"width": 4}, "width=4"),
        ({"depth": 0}, "depth=0"),
        ({"time_sampling": "beta"}, "time_sampling='beta'"),
        ({"steps": 1001}, "steps=1001"),
        ({"guidance": float("inf")}, "guidance=inf"),
        ({"guidance_from": -0.1}, "guidance_from=-0.1"),
        ({"num_classes": 1}, "num_classes=1"),
    ],
)
def test_bad_options(kwargs, received):
    name = next(iter(kwargs))
    with pytest.raises(ValueError) as info:
        FlowMatching(**{**TINY, **kwargs})
    text = str(info.value)
    assert text.startswith(f"{name} must ") and text.endswith(f". Received: {received}") and "\n" not in text, text


def test_bad_training_data_is_refused_before_a_step(digits):
    images, labels = digits
    model = compiled()
    with pytest.raises(ValueError, match=r"call `fit\(x, y\)` with integer \(or one-hot\) labels y\. Received: y=None$"):
        model.fit(images, epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"divide by 255.*Received: x=uint8 array of shape \(32, 28, 28, 1\)$"):
        model.fit((images * 255).astype("uint8"), labels, epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"received values in \[10, .*Received: y=int32 array of shape \(32,\)$"):
        model.fit(images, labels + 10, epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="Received: network="):
        FlowMatching(network=keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    assert int(model.optimizer.iterations) == 0


# training, evaluate, EMA


def test_train_steps_update_every_weight_and_one_hot_labels_train_alike(digits):
    images, labels = digits
    model = compiled()
    start = model.network.get_weights()
    before = values(model.network.trainable_variables)
    # three steps: the output convolution and each block's last start at zero, so each step reaches one layer deeper
    losses = [model.train_on_batch(images[:16], labels[:16], return_dict=True) for _ in range(3)]
    assert all(set(logs) == {"loss"} and np.isfinite(logs["loss"]) for logs in losses)
    after = values(model.network.trainable_variables)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    one_hot = compiled()
    one_hot.network.set_weights(start)
    for logs in losses:  # the same weights and seed: the same steps
        assert one_hot.train_on_batch(images[:16], np.eye(10)[labels[:16]], return_dict=True)["loss"] == pytest.approx(
            logs["loss"], rel=1e-5
        )


def test_uniform_times_and_no_label_dropout_train(digits):
    model = compiled(time_sampling="uniform", label_dropout=0.0, ema=0.0)
    history = model.fit(*digits, epochs=3, batch_size=16, verbose=0).history
    assert model.ema_network is None and model.sampler_network is model.network
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]


def test_evaluate_and_validation_data_report_the_loss_and_change_no_weight(digits):
    images, labels = digits
    model = compiled()
    history = model.fit(images, labels, validation_data=(images[:16], labels[:16]), epochs=1, batch_size=16, verbose=0)
    assert set(history.history) == {"loss", "val_loss"} and np.isfinite(history.history["val_loss"][0])
    before = values(model.weights) + values(model.optimizer.variables)
    result = model.evaluate(images[:16], labels[:16], batch_size=16, verbose=0, return_dict=True)
    assert set(result) == {"loss"} and np.isfinite(result["loss"])
    after = values(model.weights) + values(model.optimizer.variables)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_the_ema_network_trails_the_trained_one_and_draws_the_samples(trained):
    ema, net = values(trained.ema_network.weights), values(trained.network.weights)
    assert trained.sampler_network is trained.ema_network
    assert any(not np.array_equal(a, b) for a, b in zip(ema, net))
    # the same samples from a model without EMA whose network holds the average
    plain = FlowMatching(**{**TINY, "ema": 0.0})
    plain.network.set_weights(ema)
    np.testing.assert_array_equal(plain.generate(4, labels=5, seed=3), trained.generate(4, labels=5, seed=3))
    plain.network.set_weights(net)
    assert not np.allclose(plain.generate(4, labels=5, seed=3), trained.generate(4, labels=5, seed=3))


# saving


def test_save_load_round_trip(trained, digits, tmp_path):
    path = tmp_path / "model.keras"
    trained.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is FlowMatching and loaded.get_config() == trained.get_config()
    for a, b in zip(values(loaded.weights) + values(loaded.optimizer.variables),
                    values(trained.weights) + values(trained.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.generate(6, labels=[0, 1, 2, 3, 4, 5], seed=2),
                                  trained.generate(6, labels=[0, 1, 2, 3, 4, 5], seed=2))
    assert int(loaded.optimizer.iterations) == 2
    loaded.fit(*digits, epochs=1, batch_size=16, verbose=0)
    assert int(loaded.optimizer.iterations) == 4


def own_network():
    """A velocity network of my own: t and the label as extra channels, two convolutions."""
    layers = keras.layers
    x, t, label = keras.Input((28, 28, 1)), keras.Input((1,)), keras.Input((), dtype="int32")
    cond = layers.Concatenate()([layers.Dense(4)(t), layers.Embedding(11, 4)(label)])  # (batch, 8)
    cond = layers.UpSampling2D(28)(layers.Reshape((1, 1, 8))(cond))  # (batch, 28, 28, 8)
    h = layers.Conv2D(8, 3, padding="same", activation="silu")(layers.Concatenate()([x, cond]))
    return keras.Model([x, t, label], layers.Conv2D(1, 3, padding="same")(h), name="my_velocity")


def test_own_network_trains_saves_and_loads(digits, tmp_path):
    model = FlowMatching(network=own_network(), steps=2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = values(model.network.trainable_variables)
    history = model.fit(*digits, epochs=1, batch_size=16, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert all(not np.array_equal(a, b) for a, b in zip(before, values(model.network.trainable_variables)))
    assert model.ema_network.name == "ema_velocity" and model.image_shape == (28, 28, 1)
    path = tmp_path / "own.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.network.name == "my_velocity" and loaded.custom_networks
    assert len(loaded.network.layers) == len(model.network.layers)
    np.testing.assert_array_equal(loaded.generate(3, labels=4, seed=0), model.generate(3, labels=4, seed=0))


def test_mixed_bfloat16_trains_with_float32_weights(digits):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = compiled()
        history = model.fit(*digits, epochs=2, batch_size=16, verbose=0).history
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.network.layers[-1].compute_dtype == "float32"  # the velocity comes out in float32
    assert any(layer.compute_dtype == "bfloat16" for layer in model.network.layers)
    assert {v.dtype for v in model.weights} == {"float32"}
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    images = model.generate(3, labels=1, seed=0)
    assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])  # marked `backends` (conftest.py): a subprocess each
def test_save_load_round_trip_on_other_backends(backend, run_on_backend, tmp_path):
    out = run_on_backend(backend, f"""
        import json, keras, numpy as np
        from kgen.data import load_bundled
        from kgen.models import MODELS, FlowMatching

        images, labels = load_bundled("train")
        x, y = (images[:32, :, :, None] / 255.0).astype("float32"), labels[:32].astype("int32")
        model = FlowMatching(width=8, steps=2, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        loss = model.fit(x, y, epochs=1, batch_size=16, verbose=0).history["loss"]
        path = {str(tmp_path / "model.keras")!r}
        model.save(path)
        loaded = keras.saving.load_model(path)
        state = lambda m: m.get_weights() + [keras.ops.convert_to_numpy(v) for v in m.optimizer.variables]
        a, b = model.generate(4, labels=[1, 2, 3, 4], seed=0), loaded.generate(4, labels=[1, 2, 3, 4], seed=0)
        print(json.dumps({{
            "loss": loss,
            "same_state": all(np.array_equal(u, v) for u, v in zip(state(model), state(loaded))),
            "same_samples": bool(np.array_equal(a, b)),
            "in_range": bool(a.min() >= 0 and a.max() <= 1),
            "ema_differs": any(not np.array_equal(u, v) for u, v in zip(model.ema_network.get_weights(),
                                                                     model.network.get_weights())),
        }}))
    """)
    result = json.loads(out.strip().splitlines()[-1])
    assert np.isfinite(result["loss"][0]) and result["ema_differs"]
    assert result["same_state"] and result["same_samples"] and result["in_range"], result


# the CLI


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    """`kgen train flow` for 2 epochs of 2 steps, tiny, on one torch thread like the tests that resume it.

    A module's fixture is made before the tests' `one_torch_thread`: without
    its own one thread, its reductions would be summed in another order than
    the resumed run's, a last-bit difference in the weights.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("artifacts")
        result = invoke("train", "flow", "--epochs", 2, *CLI_TINY, "--out", out, "--name", "straight")
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def run_state(run):
    model = keras.saving.load_model(os.path.join(run, "model.keras"))
    return values(model.weights) + values(model.optimizer.variables)


def test_cli_trains_a_run_with_a_grid_of_each_label_per_epoch(flow_run):
    config = json.load(open(os.path.join(flow_run, "config.json")))
    assert config["model"] == "flow" and config["model_config"]["width"] == 8 and config["model_config"]["steps"] == 2
    lines = open(os.path.join(flow_run, "history.csv")).read().splitlines()
    assert lines[0] == "epoch,loss,val_loss" and len(lines) == 3
    # ten rows (one per digit) of ten, each cell 28 + 2 pixels, drawn at 2x
    grid = matplotlib.image.imread(os.path.join(flow_run, "samples", "epoch_002.png"))
    assert grid.shape[:2] == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))


def test_cli_resume_is_exact(flow_run, tmp_path):
    result = invoke("train", "flow", "--epochs", 1, *CLI_TINY, "--out", tmp_path, "--name", "resumed")
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    result = invoke("train", "--resume", run, "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert open(os.path.join(run, "history.csv")).read() == open(os.path.join(flow_run, "history.csv")).read()
    for a, b in zip(run_state(run), run_state(flow_run)):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(os.path.join(run, "samples"))) == ["epoch_001.png", "epoch_002.png"]


def test_cli_sample_with_guidance_and_steps(flow_run, tmp_path):
    def drawn(*options):
        out = tmp_path / "sevens.npy"
        result = invoke("sample", flow_run, "--label", 7, "-n", 4, "--seed", 1, "--out", out, *options)
        assert result.exit_code == 0, result.output
        return np.load(out)

    model = keras.saving.load_model(os.path.join(flow_run, "model.keras"))
    np.testing.assert_array_equal(drawn(), model.generate(4, labels=7, seed=1))
    np.testing.assert_array_equal(drawn("--guidance", 1.5, "--steps", 3),
                                  model.generate(4, labels=7, seed=1, guidance=1.5, steps=3))
    np.testing.assert_array_equal(drawn("--guidance-from", 0.5), model.generate(4, labels=7, seed=1, guidance_from=0.5))
    png = tmp_path / "sevens.png"
    result = invoke("sample", flow_run, "--label", 7, "-n", 16, "--guidance", 3, "--out", png)
    assert result.exit_code == 0 and os.path.isfile(png), result.output
    for option, value, words in [("--guidance", "nan", "'nan' is not a finite number"), ("--guidance", "-1", "-1"),
                                 ("--steps", "0", "0 is not in the range"), ("--guidance-from", "2", "2")]:
        result = invoke("sample", flow_run, option, value, "--out", tmp_path / "x.png")
        assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output, result.output


def test_cli_evaluate_with_guidance_and_steps(flow_run):
    result = invoke("evaluate", flow_run, "-n", 20, "--guidance", 1.5, "--steps", 1)
    assert result.exit_code == 0, result.output
    assert "20 samples, guidance 1.5, steps 1," in result.output and "conditional accuracy" in result.output
    metrics = json.load(open(os.path.join(flow_run, "metrics.json")))
    assert metrics["generate_options"] == {"guidance": 1.5, "steps": 1} and metrics["generate_seconds"] >= 0
    assert "class_interpolation.png" in metrics["figures"]  # one noise, every class: the flow has no latent code
    assert os.path.isfile(os.path.join(flow_run, "plots", "class_interpolation.png"))


def test_guidance_and_steps_are_usage_errors_for_other_models(tmp_path):
    result = invoke("train", "vae", "--epochs", 1, "--limit", 32, "--offline", "--val-images", 0, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    vae_run = result.output.strip().splitlines()[-1]
    for command in (("sample", vae_run, "--out", tmp_path / "x.png"), ("evaluate", vae_run, "-n", 10)):
        for option, value in (("--guidance", 2), ("--steps", 4)):
            result = invoke(*command, option, value)
            assert result.exit_code == 2, result.output
            assert f"{option} applies to flow runs only" in result.output and "is a VAE run" in result.output
            assert "Traceback" not in result.output
    assert not os.path.exists(tmp_path / "x.png") and not os.path.exists(os.path.join(vae_run, "metrics.json"))
