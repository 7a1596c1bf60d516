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


ROWS = {name[4:]: fn for name, fn in dict(globals()).items() if name.startswith("row_")}


def report():
    """Every row's findings on the current backend: {row: result, or {"error": traceback}}."""
    import keras

    out = {"backend": keras.config.backend()}
    for name, fn in ROWS.items():
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

    from kgen import runs, training

    config = training.TrainConfig(
        model="cgan", epochs=1, batch_size=16, limit=32, offline=True, out=str(artifacts),
        model_options={"arch": "mlp", "latent_dim": 8},
    )
    run = training.train(config, verbose=0)
    (row_,) = runs.read_csv(os.path.join(run, "history.csv"))
    for key in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "loss"):
        assert np.isfinite(row_[f"val_{key}"]), key
    assert runs.load_run(run)["train"]["val_images"] == 1000  # evaluated on min(1000, limit) = 32 test digits
