"""Every kgen model behaves like a Keras model, on torch, jax and tensorflow.

One test per Keras feature (a row of `docs/keras.md`), each on every backend
where it applies. `report()` runs every row's check once on the current
backend and returns its findings: in this process for torch, in one
subprocess for each of jax and tensorflow (fixture `report_on`), so each
backend pays one start-up. A row's check that raises is recorded as its error
and fails that row's test only.
"""

import json
import traceback

import numpy as np
import pytest

BACKENDS = ["torch", "jax", "tensorflow"]


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 28, 28, 1)).astype("float32"), rng.integers(0, 10, n)


_gans = {}


def _gan(conditional):
    """A small compiled GAN or cGAN, one per kind for all rows (jax and tensorflow compile each once)."""
    import keras

    from kgen.models import GAN, ConditionalGAN

    if conditional not in _gans:
        cls = ConditionalGAN if conditional else GAN
        model = cls(latent_dim=8, arch="mlp", ema=0.0, spectral_norm=False, seed=0)
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
        _gans[conditional] = model
    return _gans[conditional]


def _weights(model):
    import keras

    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def row_evaluate():
    """GAN and cGAN: evaluate, validation_split and validation_data report both players on held-out images."""
    x, y = _data()
    out = {}
    for conditional in (False, True):
        model = _gan(conditional)
        args = (x, y) if conditional else (x,)
        split = model.fit(*args, batch_size=8, epochs=1, validation_split=0.5, verbose=0).history
        data = model.fit(*args, batch_size=8, epochs=1, validation_data=args, verbose=0).history
        before = _weights(model)
        evaluated = model.evaluate(*args, batch_size=8, verbose=0, return_dict=True)
        again = model.evaluate(*args, batch_size=8, verbose=0, return_dict=True)
        out["cgan" if conditional else "gan"] = {
            "split": {k: v[-1] for k, v in split.items()},
            "data": {k: v[-1] for k, v in data.items()},
            "evaluated": evaluated,
            "again": again,
            "weights_unchanged": all(np.array_equal(a, b) for a, b in zip(before, _weights(model))),
            "jit_compile": bool(model.jit_compile),
        }
    return out


def row_loss_entry():
    """GANs log `loss` (d_loss + g_loss): Keras's TerminateOnNaN and EarlyStopping act on it."""
    import keras

    x, y = _data()
    out = {}
    for conditional in (False, True):
        args = (x, y) if conditional else (x,)
        model = _gan(conditional)
        # EarlyStopping on `loss`, mode "auto": no improvement of 1e9 ends the run after epoch 2
        early = keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e9, patience=0)
        logs = model.fit(*args, batch_size=8, epochs=5, callbacks=[early], verbose=0).history
        # a NaN learning rate of the discriminator: its weights are NaN after its first update,
        # so the first batch's generator loss (taken after that update) is already NaN
        model.optimizer.d_optimizer.learning_rate.assign(float("nan"))
        seen = []
        stop = keras.callbacks.TerminateOnNaN()
        count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
        model.fit(*args, batch_size=8, epochs=4, callbacks=[count, stop], verbose=0)
        out["cgan" if conditional else "gan"] = {
            "logs": {k: v[-1] for k, v in logs.items()}, "steps": len(seen), "early_epochs": len(logs["loss"])
        }
    return out


def _small(name, **gan_options):
    """A small model of each kind (mlp networks), uncompiled, and its `fit` arguments."""
    from kgen.models import GAN, VAE, AutoEncoder, ConditionalGAN, PatchLSTM

    x, y = _data()
    return {
        "ae": lambda: (AutoEncoder(seed=0), (x,)),
        "vae": lambda: (VAE(seed=0), (x,)),
        "gan": lambda: (GAN(latent_dim=8, arch="mlp", seed=0, **gan_options), (x,)),
        "cgan": lambda: (ConditionalGAN(latent_dim=8, arch="mlp", seed=0, **gan_options), (x, y)),
        "lstm": lambda: (PatchLSTM(num_layers=1, units=16, seed=0), (x,)),
    }[name]()


def row_jit_compile():
    """`compile(jit_compile=True)`: every model trains and evaluates compiled (XLA on tensorflow).

    On jax every row runs jitted already. On torch, torch.compile takes
    minutes per model on 2 cores: that backend runs this row in the slow
    test below, and the default suite checks that
    kgen's torch fast paths step aside while torch compiles
    (`test_torch_fast_paths_step_aside_when_compiling`). The GANs here are
    without spectral norm and EMA, which halves the compile time; with them
    they compile and train as well (run by hand on all three backends).
    """
    out = {}
    for name in ("ae", "vae", "gan", "cgan", "lstm"):
        model, args = _small(name, spectral_norm=False, ema=0.0)
        model.compile(jit_compile=True)
        before = _weights(model)
        logs = model.fit(*args, batch_size=8, epochs=1, verbose=0).history
        evaluated = model.evaluate(*args, batch_size=8, verbose=0, return_dict=True)
        out[name] = {
            "jit_compile": bool(model.jit_compile),
            "logs": {k: v[-1] for k, v in logs.items()},
            "evaluated": evaluated,
            "trained": any(not np.array_equal(a, b) for a, b in zip(before, _weights(model))),
        }
    return out


def row_inputs():
    """Bad data is refused once, at the start of fit, with one ValueError naming the fix; one-hot labels train."""
    import keras

    x, y = _data()
    bad = {
        "uint8": ((x * 255).astype("uint8"),),
        "scale_255": (x * 255,),
        "minus_one_to_one": (x * 2 - 1,),
        "channels_first": (x.transpose(0, 3, 1, 2),),
        "no_channel": (x[..., 0],),
        "nan": (np.where(x > 0.5, np.nan, x).astype("float32"),),
        "wrong_size": (np.zeros((16, 32, 32, 1), "float32"),),
    }
    out = {}
    for name in ("vae", "gan", "lstm"):
        model, _ = _small(name)
        model.compile()
        out[name] = {}
        for case, args in bad.items():
            steps = []
            count = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: steps.append(batch))
            try:
                model.fit(*args, batch_size=8, epochs=1, callbacks=[count], verbose=0)
                out[name][case] = {"error": None}
            except ValueError as e:
                out[name][case] = {"error": str(e), "steps": len(steps)}
        try:
            model.evaluate((x * 255).astype("uint8"), verbose=0)
            out[name]["evaluate_uint8"] = None
        except ValueError as e:
            out[name]["evaluate_uint8"] = str(e)
    model, _ = _small("cgan")
    model.compile()
    labels = {"float_fraction": y + 0.5, "out_of_range": y + 10, "none": None, "two_columns": np.stack([y, y], 1)}
    out["cgan"] = {}
    for case, labels_ in labels.items():
        try:
            model.fit(x, labels_, batch_size=8, epochs=1, verbose=0)
            out["cgan"][case] = None
        except ValueError as e:
            out["cgan"][case] = str(e)
    one_hot = np.eye(10, dtype="float32")[y]
    d0 = _weights(model)
    logs = model.fit(x, one_hot, batch_size=8, epochs=1, verbose=0).history
    out["cgan"]["one_hot"] = {"logs": {k: v[-1] for k, v in logs.items()},
                              "trained": any(not np.array_equal(a, b) for a, b in zip(d0, _weights(model)))}
    # a PyDataset: its first batch is looked at
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return ((x[i * 8 : (i + 1) * 8] * 255).astype("uint8"),)

    try:
        model = _small("ae")[0]
        model.compile()
        model.fit(Batches(), epochs=1, verbose=0)
        out["pydataset_uint8"] = None
    except ValueError as e:
        out["pydataset_uint8"] = str(e)
    return out


def _digits(n=32):
    """`n` real training digits, float32 (n, 28, 28, 1) in [0, 1], and their labels: data a model learns from."""
    from kgen.data import load_bundled

    images, labels = load_bundled("train")
    return (images[:n, :, :, None] / 255.0).astype("float32"), labels[:n]


def _policy_run(name, policy, x, y):
    """Trains a small model of kind `name` built under `policy` for 3 epochs of 2 steps; its losses and dtypes."""
    import keras

    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model, _ = _small(name, spectral_norm=False, ema=0.0)
        if name in ("gan", "cgan"):
            model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
            optimizers = model.optimizer.optimizers
        else:
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
            optimizers = [model.optimizer]
    finally:
        keras.config.set_dtype_policy("float32")
    args = (x, y) if name == "cgan" else (x,)
    logs = model.fit(*args, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    samples = model.generate(2, seed=1) if name != "lstm" else model.complete(x[:2], given=8)
    return {
        "loss": logs["d_loss" if name in ("gan", "cgan") else "loss"],
        "all_losses": {k: v[-1] for k, v in logs.items()},
        "optimizers": [type(o).__name__ for o in optimizers],
        "weights": sorted({keras.backend.standardize_dtype(v.dtype) for v in model.weights}),
        "samples": str(samples.dtype),
        # steps that a LossScaleOptimizer skipped (gradients overflowed float16; it halves its scale)
        "skipped": max(6 - int(keras.ops.convert_to_numpy(o.iterations)) for o in optimizers),
    }, model


def row_mixed_precision():
    """mixed_float16 and mixed_bfloat16: every model trains as under float32 (losses fall alike); pure half refused."""
    import os
    import tempfile

    import keras

    x, y = _digits()
    out = {}
    # the cGAN is the GAN's step with labels (integers, whatever the policy): on torch only, where it is
    # cheap; jax and tensorflow compile each model's step once per policy (2 to 15 seconds each; running
    # them eagerly instead is no faster on tensorflow and slower on jax)
    names = ("ae", "vae", "gan", "cgan", "lstm") if keras.config.backend() == "torch" else ("ae", "vae", "gan", "lstm")
    for name in names:
        for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
            out[f"{name}-{policy}"], model = _policy_run(name, policy, x, y)
    # a loss-scaled GAN saves and loads with both loss scales (torch: the compile once more costs nothing)
    if keras.config.backend() == "torch":
        path = os.path.join(tempfile.mkdtemp(), "gan.keras")
        model.save(path)  # the last one: the mixed_float16 PatchLSTM
        loaded = keras.saving.load_model(path)
        out["lstm_loaded"] = type(loaded.optimizer).__name__
        _, gan = _policy_run("gan", "mixed_float16", x, y)
        gan.save(path)
        loaded = keras.saving.load_model(path)
        out["gan_loaded"] = {
            "optimizers": [type(o).__name__ for o in loaded.optimizer.optimizers],
            "scale": float(loaded.optimizer.g_optimizer.dynamic_scale.numpy()),
            "scale_before": float(gan.optimizer.g_optimizer.dynamic_scale.numpy()),
            "loss": loaded.fit(x, batch_size=16, epochs=1, verbose=0).history["loss"],
        }
    for policy in ("float16", "bfloat16"):  # half-precision weights: refused at compile
        keras.config.set_dtype_policy(policy)
        try:
            model, _ = _small("vae")
        finally:
            keras.config.set_dtype_policy("float32")
        try:
            model.compile()
            out[f"refused-{policy}"] = None
        except ValueError as e:
            out[f"refused-{policy}"] = str(e)
    return out


def row_own_networks():
    """Your own networks and image shape: a GAN, a VAE and an AE on 32x32x3 images, a PatchLSTM with a GRU: train, save, load."""
    import os
    import tempfile

    import keras
    from keras import layers

    from kgen.models import GAN, VAE, AutoEncoder, PatchLSTM

    x = np.random.default_rng(0).uniform(size=(16, 32, 32, 3)).astype("float32")
    shape = (32, 32, 3)
    vae = VAE(
        latent_dim=2,
        encoder=keras.Sequential([keras.Input(shape), layers.Flatten(), layers.Dense(16, activation="relu"), layers.Dense(4)]),
        decoder=keras.Sequential([keras.Input((2,)), layers.Dense(32 * 32 * 3), layers.Reshape(shape)]),
        seed=0,
    )
    gan = GAN(
        latent_dim=8,
        generator=keras.Sequential(
            [keras.Input((8,)), layers.Dense(32 * 32 * 3, activation="sigmoid"), layers.Reshape(shape)], name="my_generator"
        ),
        discriminator=keras.Sequential([keras.Input(shape), layers.Flatten(), layers.Dense(16), layers.Dense(1)]),
        seed=0,
    )
    ae = AutoEncoder(
        latent_dim=2,
        encoder=keras.Sequential([keras.Input(shape), layers.Flatten(), layers.Dense(2)], name="my_encoder"),
        decoder=keras.Sequential([keras.Input((2,)), layers.Dense(32 * 32 * 3), layers.Reshape(shape)]),
        seed=0,
    )
    lstm = PatchLSTM(
        recurrent=[
            layers.GRU(12, return_sequences=True, return_state=True, name="my_gru"),
            layers.LSTM(8, return_sequences=True, return_state=True),
        ],
        head=keras.Sequential([keras.Input((8,)), layers.Dense(49)]),
        seed=0,
    )
    digits = x[:, 2:30, 2:30, :1]  # (16, 28, 28, 1): what the PatchLSTM takes
    out = {}
    folder = tempfile.mkdtemp()
    for name, model in (("vae", vae), ("gan", gan), ("ae", ae), ("lstm", lstm)):
        data = digits if name == "lstm" else x
        model.compile()
        before = _weights(model)
        logs = model.fit(data, batch_size=8, epochs=2, verbose=0).history
        path = os.path.join(folder, f"{name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        more = loaded.fit(data, batch_size=8, epochs=1, verbose=0).history
        if name == "lstm":  # deterministic: the completion of two digits
            same = np.abs(model.complete(digits[:2], given=8) - keras.saving.load_model(path).complete(digits[:2], given=8))
        else:
            same = np.abs(model.generate(3, seed=1) - keras.saving.load_model(path).generate(3, seed=1))
        out[name] = {
            "loss": logs["loss"],
            "trained": all(not np.array_equal(a, b) for a, b in zip(before, _weights(model)) if a.ndim == 2),
            "more": more["loss"],
            "image_shape": list(loaded.image_shape),
            "samples": list(loaded.generate(2, seed=1).shape),
            "same": float(same.max()),
        }
    out["gan"]["generator_name"] = keras.saving.load_model(os.path.join(folder, "gan.keras")).generator.name
    out["ae"]["encoder_name"] = keras.saving.load_model(os.path.join(folder, "ae.keras")).encoder.name
    loaded = keras.saving.load_model(os.path.join(folder, "lstm.keras"))
    out["lstm"]["layers"] = [type(layer).__name__ for layer in loaded.recurrent] + [loaded.recurrent[0].name]
    for name, make in {
        "ae_other_shape": lambda: AutoEncoder(image_shape=(32, 32, 3)),
        "lstm_other_shape": lambda: PatchLSTM(image_shape=(32, 32, 3)),
        "lstm_half_pair": lambda: PatchLSTM(head=layers.Dense(49)),
        "lstm_no_state": lambda: PatchLSTM(recurrent=[layers.GRU(8, return_sequences=True)], head=layers.Dense(49)),
        "lstm_bad_head": lambda: PatchLSTM(recurrent=[layers.GRU(8, return_sequences=True, return_state=True)],
                                           head=layers.Dense(10)),
        "ae_bad_code": lambda: AutoEncoder(latent_dim=3, encoder=ae.encoder, decoder=ae.decoder),
    }.items():
        try:
            make()
            out[name] = None
        except ValueError as e:
            out[name] = str(e)
    try:
        VAE(image_shape=(32, 32, 3))
        out["default_nets_other_shape"] = None
    except ValueError as e:
        out["default_nets_other_shape"] = str(e)
    try:
        GAN(generator=gan.generator)
        out["half_pair"] = None
    except ValueError as e:
        out["half_pair"] = str(e)
    return out


def row_loss_hooks():
    """GAN and cGAN: a least-squares GAN written by overriding d_loss and g_loss is what fit logs and evaluate reports; an own one-logit cGAN discriminator is refused."""
    import keras
    from keras import layers, ops

    from kgen.models import GAN, ConditionalGAN

    def d_loss(self, real_outputs, fake_outputs, labels=None, fake_labels=None):
        adversarial = ops.mean(ops.square(real_outputs[:, :1] - 1.0)) + ops.mean(ops.square(fake_outputs[:, :1]))
        return adversarial + self.class_loss(real_outputs, labels) + self.code_loss(fake_outputs, fake_labels)

    def g_loss(self, fake_outputs, labels=None, fake_labels=None):
        adversarial = ops.mean(ops.square(fake_outputs[:, :1] - 1.0))
        return adversarial + self.class_loss(fake_outputs, labels) + self.code_loss(fake_outputs, fake_labels)

    def value(tensor):
        return float(ops.convert_to_numpy(tensor))

    x, y = _data()
    out = {}
    for base in (GAN, ConditionalGAN):
        conditional = base is ConditionalGAN
        args = (x, y) if conditional else (x,)
        models = []
        for cls in (type("LS" + base.__name__, (base,), {"d_loss": d_loss, "g_loss": g_loss}), base):
            model = cls(latent_dim=8, arch="mlp", ema=0.0, seed=0)
            model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
            models.append(model)
        least_squares, builtin = models
        builtin.set_weights(least_squares.get_weights())  # the same networks and seed state: only the hooks differ
        logs = [m.fit(*args, batch_size=16, epochs=1, verbose=0, shuffle=False).history for m in models]
        state = ops.convert_to_numpy(least_squares.seed_generator.state).copy()
        evaluated = least_squares.evaluate(*args, batch_size=16, verbose=0, return_dict=True)
        # the hooks by hand, from the same noise, in inference mode
        least_squares.seed_generator.state.assign(state)
        labels = ops.convert_to_tensor(y.astype("int32")) if conditional else None
        fake_labels = least_squares.fake_labels(labels, 16)
        noise = least_squares.sample_noise(16)
        fake = least_squares.generator(least_squares.generator_inputs(noise, fake_labels), training=False)
        real_out = least_squares.discriminator(least_squares.discriminator_inputs(ops.convert_to_tensor(x), labels))
        fake_out = least_squares.discriminator(least_squares.discriminator_inputs(fake, labels))
        out["cgan" if conditional else "gan"] = {
            "fit": {k: v[-1] for k, v in logs[0].items()},
            "fit_builtin": {k: v[-1] for k, v in logs[1].items()},
            "evaluated": evaluated,
            "d_hook": value(least_squares.d_loss(real_out, fake_out, labels, fake_labels)),
            "g_hook": value(least_squares.g_loss(fake_out, labels, fake_labels)),
            "d_builtin": value(base.d_loss(least_squares, real_out, fake_out, labels, fake_labels)),
            "g_builtin": value(base.g_loss(least_squares, fake_out, labels, fake_labels)),
        }
    z, labels, images = keras.Input((8,)), keras.Input((), dtype="int32"), keras.Input((28, 28, 1))
    generator = keras.Model([z, labels], layers.Reshape((28, 28, 1))(layers.Dense(784)(z)))
    one_logit = keras.Model([images, labels], layers.Dense(1)(layers.Flatten()(images)))  # the keras.io shape
    try:
        ConditionalGAN(latent_dim=8, generator=generator, discriminator=one_logit)
        out["one_logit"] = None
    except ValueError as e:
        out["one_logit"] = str(e)
    return out


ROWS = {name[4:]: fn for name, fn in dict(globals()).items() if name.startswith("row_")}
# rows a backend skips: torch.compile takes minutes per model on 2 cores (the slow test below
# runs it), and on jax every step of every row is jitted already (jit_compile="auto" is True)
SKIPPED = {"torch": {"jit_compile"}, "jax": {"jit_compile"}, "tensorflow": set()}


def report():
    """Every row's findings on the current backend: {row: result, or {"error": traceback}}."""
    import keras

    out = {"backend": keras.config.backend()}
    for name, fn in ROWS.items():
        if name in SKIPPED[out["backend"]]:
            continue
        try:
            out[name] = fn()
        except Exception:  # one broken row fails its own test only
            out[name] = {"error": traceback.format_exc()[-3000:]}
    return out


SCRIPT = """
import json
from tests.test_keras_citizen import report
print("REPORT " + json.dumps(report(), default=float))
"""

_reports = {}


@pytest.fixture
def report_on(run_on_backend):
    """The `report()` of a backend, computed once per session."""

    def get(backend):
        if backend not in _reports:
            if backend == "torch":  # this process
                _reports[backend] = json.loads(json.dumps(report(), default=float))
            else:
                lines = run_on_backend(backend, SCRIPT).splitlines()
                _reports[backend] = json.loads([l for l in lines if l.startswith("REPORT ")][-1][7:])
        assert _reports[backend]["backend"] == backend
        return _reports[backend]

    return get


def row(report_on, backend, name):
    result = report_on(backend)[name]
    assert "error" not in result, result["error"]
    return result


@pytest.mark.parametrize("backend", BACKENDS)
def test_gan_evaluate_and_validation(report_on, backend):
    result = row(report_on, backend, "evaluate")
    keys = {"d_loss", "g_loss", "d_acc_real", "d_acc_fake", "loss"}
    for name in ("gan", "cgan"):
        r = result[name]
        for logs in (r["split"], r["data"]):
            assert set(logs) == keys | {f"val_{k}" for k in keys}, name
            assert all(np.isfinite(v) for v in logs.values()), name
            assert 0 <= logs["val_d_acc_real"] <= 1 and 0 <= logs["val_d_acc_fake"] <= 1
            np.testing.assert_allclose(logs["val_loss"], logs["val_d_loss"] + logs["val_g_loss"], rtol=1e-5)
        assert set(r["evaluated"]) == keys, name
        assert all(np.isfinite(v) for v in r["evaluated"].values()), name
        assert r["weights_unchanged"], name  # evaluation trains nothing
        assert r["jit_compile"] == (backend == "jax"), name  # jax's "auto": every row above ran jitted
        # the held-out real images score the same twice (the noise differs, so the fake half may not)
        assert r["evaluated"]["d_acc_real"] == r["again"]["d_acc_real"], name


@pytest.mark.parametrize("backend", BACKENDS)
def test_gan_loss_entry_stops_on_nan_and_early(report_on, backend):
    result = row(report_on, backend, "loss_entry")
    for name in ("gan", "cgan"):
        r = result[name]
        np.testing.assert_allclose(r["logs"]["loss"], r["logs"]["d_loss"] + r["logs"]["g_loss"], rtol=1e-5)
        assert r["steps"] == 1, name  # TerminateOnNaN: stopped at the first NaN loss, of 8 steps
        assert r["early_epochs"] == 2, name  # EarlyStopping(monitor="loss") found it


def test_kgen_train_history_has_test_set_losses(artifacts):
    import os

    from kgen import files, runs, specs, training

    config = specs.TrainConfig(
        model="cgan", epochs=1, batch_size=16, limit=32, offline=True, out=str(artifacts),
        model_options={"arch": "mlp", "latent_dim": 8},
    )
    run = training.train(config, verbose=0)
    (row_,) = files.read_csv(os.path.join(run, "history.csv"))
    for key in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "loss"):
        assert np.isfinite(row_[f"val_{key}"]), key
    assert runs.load_run(run)["train"]["val_images"] == 1000  # evaluated on min(1000, limit) = 32 test digits


def check_jit_compile(result):
    for name in ("ae", "vae", "gan", "cgan", "lstm"):
        r = result[name]
        assert r["jit_compile"], name  # still on after fit: Keras did not fall back
        assert r["trained"], name
        assert r["logs"] and all(np.isfinite(v) for v in r["logs"].values()), name
        assert set(r["evaluated"]) == set(r["logs"]), name
        assert all(np.isfinite(v) for v in r["evaluated"].values()), name


@pytest.mark.parametrize("backend", ["tensorflow"])
def test_jit_compile(report_on, backend):
    check_jit_compile(row(report_on, backend, "jit_compile"))


@pytest.mark.slow
def test_jit_compile_on_torch():
    # torch.compile (inductor) of all five models: about 10 minutes on 2 cores
    check_jit_compile(json.loads(json.dumps(row_jit_compile(), default=float)))


def test_torch_fast_paths_step_aside_when_compiling(tiny_images):
    # while torch.compile traces, the fused Adam, the direct layer calls and the in-place metric
    # updates (which it cannot trace: 'mutating a non-functional tensor') give way to Keras's own
    from unittest import mock

    import torch

    from kgen.backend import torch as torch_backend

    model, _ = _small("vae")
    model.compile(optimizer="adam")
    with mock.patch.object(torch.compiler, "is_compiling", return_value=True), \
            mock.patch.object(torch, "_fused_adam_", side_effect=AssertionError("fused Adam while compiling")), \
            mock.patch.object(torch_backend, "_dense", side_effect=AssertionError("direct Dense while compiling")):
        logs = model.train_on_batch(tiny_images[:8], return_dict=True)
    assert np.isfinite(logs["loss"])
    with mock.patch.object(torch, "_fused_adam_", wraps=torch._fused_adam_) as fused:
        model.train_on_batch(tiny_images[:8])  # and they are back once it is done
    assert fused.called

@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_are_refused_at_the_start_of_fit(report_on, backend):
    result = row(report_on, backend, "inputs")
    fixes = {
        "uint8": "received uint8 values in [0, 254]: divide by 255",
        "scale_255": "divide by 255",
        "minus_one_to_one": "map [-1, 1] to [0, 1]: (x + 1) / 2",
        "channels_first": "channels first (N, 1, 28, 28), torchvision's layout: use x.transpose(0, 2, 3, 1)",
        "no_channel": "the channel axis is missing: add it with x[..., None]",
        "nan": "NaN or infinite",
        "wrong_size": "images must be (N, 28, 28, 1) floats in [0, 1], channels last. Received: x=float32 array of shape (16, 32, 32, 1)",
    }
    for name in ("vae", "gan", "lstm"):
        for case, fix in fixes.items():
            r = result[name][case]
            assert r["error"] is not None and fix in r["error"], (name, case, r)
            assert r["error"].startswith("images must be (N, 28, 28, 1) floats in [0, 1]"), (name, case)
            assert "Received: x=" in r["error"], (name, case)
            assert r["steps"] == 0, (name, case)  # refused before the first step
        assert "divide by 255" in result[name]["evaluate_uint8"], name
    cgan = result["cgan"]
    assert "received fractional values" in cgan["float_fraction"]
    assert "received values in [10, 19]" in cgan["out_of_range"]
    assert "call `fit(x, y)` with integer (or one-hot) labels y. Received: y=None" in cgan["none"]
    assert "Received: y=int64 array of shape (16, 2)" in cgan["two_columns"]
    assert cgan["one_hot"]["trained"] and all(np.isfinite(v) for v in cgan["one_hot"]["logs"].values())
    assert "divide by 255" in result["pydataset_uint8"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_precision_trains_as_float32(report_on, backend):
    result = row(report_on, backend, "mixed_precision")
    for name in ("ae", "vae", "gan", "cgan", "lstm") if backend == "torch" else ("ae", "vae", "gan", "lstm"):
        reference = result[f"{name}-float32"]
        drop = reference["loss"][0] - reference["loss"][-1]
        assert drop > 0, name  # the float32 run learns: the comparison means something
        for policy in ("mixed_bfloat16", "mixed_float16"):
            r = result[f"{name}-{policy}"]
            case = f"{name}-{policy}"
            assert all(np.isfinite(v) for v in r["all_losses"].values()), case
            assert r["weights"] == ["float32"], case  # float32 variables, half-precision compute
            assert r["samples"] == "float32", case
            scaled = policy == "mixed_float16"  # one loss scale per optimizer (both players' for a GAN)
            assert r["optimizers"] == ["LossScaleOptimizer" if scaled else "Adam"] * len(reference["optimizers"]), case
            assert r["skipped"] <= 3, case  # a few steps while the loss scale settles, at most
            if r["skipped"] == 0:  # the same steps as the float32 run: the same losses, to rounding
                assert abs(r["loss"][-1] - reference["loss"][-1]) <= 0.15 * drop, (case, r["loss"], reference["loss"])
            else:  # fewer steps applied, and a GAN's game goes its own way after a skipped step: it falls
                assert r["loss"][0] - r["loss"][-1] > 0.1 * drop, (case, r["loss"], reference["loss"])
    assert result["vae-mixed_bfloat16"]["skipped"] == 0
    for policy in ("float16", "bfloat16"):
        error = result[f"refused-{policy}"]
        assert error is not None and "keeps its weights in float32" in error and "'mixed_bfloat16'" in error, policy
        assert error.endswith(f"Received: dtype_policy='{policy}'"), policy
    if backend == "torch":
        assert result["lstm_loaded"] == "LossScaleOptimizer"
        loaded = result["gan_loaded"]
        assert loaded["optimizers"] == ["LossScaleOptimizer", "LossScaleOptimizer"]
        assert loaded["scale"] == loaded["scale_before"]  # the loss scale is optimizer state: saved and loaded
        assert np.isfinite(loaded["loss"][0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_own_networks_and_image_shape_train_save_and_load(report_on, backend):
    result = row(report_on, backend, "own_networks")
    for name in ("vae", "gan", "ae", "lstm"):
        r = result[name]
        assert all(np.isfinite(r["loss"] + r["more"])), name
        if name == "lstm":  # 28x28x1 only, as 16 patches of 7x7
            assert r["image_shape"] == [28, 28, 1] and r["samples"] == [2, 28, 28, 1], name
        else:
            assert r["image_shape"] == [32, 32, 3] and r["samples"] == [2, 32, 32, 3], name
        assert r["same"] < 1e-6, name  # the loaded model is the trained one, networks and weights
        assert r["trained"], name  # every weight matrix moved
    assert result["gan"]["generator_name"] == "my_generator"  # your network came back, not kgen's default
    assert result["ae"]["encoder_name"] == "my_encoder"
    assert result["lstm"]["layers"] == ["GRU", "LSTM", "my_gru"]
    assert result["ae_other_shape"].endswith("Received: image_shape=(32, 32, 3)")
    assert "reads (28, 28, 1) images as 16 patches of 7x7" in result["lstm_other_shape"]
    assert result["lstm_other_shape"].endswith("Received: image_shape=(32, 32, 3)")
    assert "Pass both recurrent= and head=" in result["lstm_half_pair"]
    assert "return_state=True" in result["lstm_no_state"] and "Received: recurrent[0]=" in result["lstm_no_state"]
    assert "The head output must have shape (49,)" in result["lstm_bad_head"]
    assert "The encoder output must have shape (3,) (latent_dim)" in result["ae_bad_code"]
    assert "kgen's own networks take (28, 28, 1) images" in result["default_nets_other_shape"]
    assert result["default_nets_other_shape"].endswith("Received: image_shape=(32, 32, 3)")
    assert "Pass both generator= and discriminator=" in result["half_pair"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_hooks_are_what_fit_logs_and_evaluate_reports(report_on, backend):
    result = row(report_on, backend, "loss_hooks")
    for name in ("gan", "cgan"):
        r = result[name]
        # evaluate reports the overriding hooks' losses, not the built-in ones
        np.testing.assert_allclose(r["evaluated"]["d_loss"], r["d_hook"], rtol=1e-4)
        np.testing.assert_allclose(r["evaluated"]["g_loss"], r["g_hook"], rtol=1e-4)
        assert abs(r["d_hook"] - r["d_builtin"]) > 1e-3 and abs(r["g_hook"] - r["g_builtin"]) > 1e-3, name
        # fit logs them: the same networks and noise with the built-in hooks log other losses
        assert all(np.isfinite(list(r["fit"].values()))), name
        assert abs(r["fit"]["d_loss"] - r["fit_builtin"]["d_loss"]) > 1e-3, name
        assert abs(r["fit"]["g_loss"] - r["fit_builtin"]["g_loss"]) > 1e-3, name
    message = result["one_logit"]
    assert message.startswith("The discriminator must output (batch, 11)") and "aux_weight=0 with projection=True" in message
    assert message.endswith("Received: discriminator.output_shape=(None, 1)")


def test_keras_private_api_only_in_kgen_backend():
    # outside kgen/backend/: no keras.src import or name, no private attribute of another object
    # (self._x is a class's own); os._exit is public (the os module documents it)
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    found = []
    for path in sorted([*(root / "kgen").rglob("*.py"), *(root / "cli").rglob("*.py")]):
        if "backend" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    if ast.unparse(node) != "os._exit":
                        found.append(f"{where} {ast.unparse(node)}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or ""] + [alias.name for alias in node.names]
                if any(name.startswith("keras.src") for name in names):
                    found.append(f"{where} {ast.unparse(node)}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "keras.src" in node.value:
                found.append(f"{where} {node.value[:60]!r}")
    assert not found, found


def test_portable_optimizer_configs_are_guarded():
    import warnings

    import keras

    from kgen.backend.common import portable_config

    # torch's Adam, also inside a LossScaleOptimizer: the public module, which any backend resolves
    scaled = keras.optimizers.serialize(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3)))
    assert "keras.src.backend.torch" in str(scaled)  # what Keras records on torch
    config = portable_config(scaled)
    assert "keras.src" not in str(config)
    assert config["config"]["inner_optimizer"]["module"] == "keras.optimizers"
    restored = keras.optimizers.deserialize(config)
    assert type(restored.inner_optimizer).__name__ == "Adam" and np.isclose(float(restored.learning_rate), 1e-3)
    # a class keras.optimizers does not export: left as Keras wrote it, with a warning
    unknown = {"module": "keras.src.backend.torch.optimizers.torch_new", "class_name": "NewOptimizer", "config": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert portable_config(unknown) == unknown
    assert any("Received: module='keras.src.backend.torch.optimizers.torch_new'" in str(w.message) for w in caught)


def test_gan_optimizer_uses_public_optimizer_api(tiny_images):
    # the pair lists its own, the discriminator's and the generator's variables; finalize_variable_values
    # hands each optimizer its own network's variables (an EMA optimizer overwrites them with its averages)
    import keras

    from kgen.models import GAN

    model = GAN(latent_dim=8, arch="mlp", ema=0.0, spectral_norm=False, seed=0)
    d_opt = keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=0.5)
    model.compile(d_optimizer=d_opt, g_optimizer=keras.optimizers.Adam(1e-3))
    pair = model.optimizer
    assert [id(v) for v in pair.variables] == [
        id(v) for v in pair.own_variables + pair.d_optimizer.variables + pair.g_optimizer.variables
    ]
    assert [v.name for v in pair.own_variables] == ["iteration", "learning_rate"]  # the base Optimizer's, unused
    model.fit(tiny_images[:16], batch_size=8, epochs=1, verbose=0)  # fit ends with finalize_variable_values
    kernel = model.discriminator.trainable_variables[0]
    average = d_opt._model_variables_moving_average[0]  # noqa: SLF001 - what Keras's EMA keeps
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(average))


def test_loss_scaling_follows_the_networks_and_compile_arguments():
    # loss scaling wherever a layer computes in float16 (also your own networks in a float32 model),
    # with compile's arguments given by position or by name, and auto_scale_loss=False honoured
    import keras
    from keras import layers

    from kgen.models import AutoEncoder

    def ae(policy, own_policy=None):
        keras.config.set_dtype_policy(own_policy or policy)
        try:
            encoder = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(2)])
            decoder = keras.Sequential([keras.Input((2,)), layers.Dense(784), layers.Reshape((28, 28, 1))])
            keras.config.set_dtype_policy(policy)
            return AutoEncoder(encoder=encoder, decoder=decoder)
        finally:
            keras.config.set_dtype_policy("float32")

    def scaled(model):
        return type(model.optimizer).__name__ == "LossScaleOptimizer"

    model = ae("mixed_float16")
    model.compile("adam", None, None, None, None, None, 1, False)  # by position, as keras.Model.compile takes them
    assert scaled(model) and type(model.optimizer.inner_optimizer).__name__ == "Adam"
    model = ae("float32", own_policy="mixed_float16")  # your float16 networks in a float32 model
    model.compile(optimizer="adam")
    assert scaled(model)
    model = ae("mixed_float16")
    model.compile(optimizer="adam", auto_scale_loss=False)
    assert not scaled(model)
    model = ae("mixed_bfloat16")  # bfloat16 has float32's range: no scaling
    model.compile(optimizer="adam")
    assert not scaled(model)
