"""PatchLSTM: patches, teacher forcing, completion, sampling, saving, the CLI, other backends."""

import json
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kgen import runs
from kgen.cli.main import main
from kgen.data import fill_missing, from_patches, missing_patch_mse, read_images, to_patches
from kgen.models import AutoEncoder, PatchLSTM
from kgen.models.patch_lstm import PatchMADE


def small_model(patch_head="dense", **kwargs):
    """A small PatchLSTM; the dense head unless told (the MADE head, the default, has its own tests below)."""
    model = PatchLSTM(num_layers=2, units=16, seed=0, patch_head=patch_head, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


@pytest.fixture(scope="module")
def trained(real_digits):
    """A small PatchLSTM after a few steps on real digits."""
    keras.utils.set_random_seed(0)
    model = small_model()
    model.fit(real_digits[0], epochs=1, batch_size=32, verbose=0)
    return model


def rerun_complete(model, images, given):
    """Reference completion: re-run the whole teacher-forced sequence for each new patch."""
    patches = to_patches(np.array(images, np.float32))
    for t in range(given, 16):
        probs = keras.ops.convert_to_numpy(model(from_patches(patches)))  # (n, 16, 49)
        patches[:, t] = probs[:, t]
    return from_patches(patches)


# patches


def test_patch_round_trip_is_exact(real_digits):
    x = real_digits[0]  # (256, 28, 28, 1)
    p = to_patches(x)
    assert p.shape == (256, 16, 49)
    assert np.array_equal(from_patches(p), x)
    assert np.array_equal(from_patches(to_patches(x[..., 0])), x)  # (n, 28, 28) too
    # row-major 4x4 grid of 7x7 patches, each flattened row-major
    assert np.array_equal(p[:, 0], x[:, :7, :7, 0].reshape(-1, 49))
    assert np.array_equal(p[:, 3], x[:, :7, 21:, 0].reshape(-1, 49))
    assert np.array_equal(p[:, 4], x[:, 7:14, :7, 0].reshape(-1, 49))
    assert np.array_equal(p[:, 9], x[:, 14:21, 7:14, 0].reshape(-1, 49))
    # backend tensors take the same path
    assert np.array_equal(keras.ops.convert_to_numpy(to_patches(keras.ops.convert_to_tensor(x))), p)
    with pytest.raises(ValueError, match="Received: shape"):
        to_patches(np.zeros((2, 27, 28)))


def test_fill_missing_and_missing_patch_mse(real_digits):
    x = real_digits[0][:16]
    mean = real_digits[0].mean(axis=0)
    filled = fill_missing(x, mean, 8)
    assert np.array_equal(filled[:, :14], x[:, :14])  # 8 patches = the top 14 rows
    assert np.array_equal(filled[:, 14:], np.broadcast_to(mean[14:], filled[:, 14:].shape))
    assert missing_patch_mse(x, x, 8) == 0.0
    blank = fill_missing(x, 0.0, 12)
    expected = np.mean(np.square(x[:, 21:]))  # the bottom row of patches
    assert missing_patch_mse(blank, x, 12) == pytest.approx(expected, rel=1e-6)


# the model


def test_teacher_forced_shapes_and_inputs(tiny_images):
    model = small_model()
    probs = keras.ops.convert_to_numpy(model(tiny_images))
    assert probs.shape == (32, 16, 49)
    assert np.all((probs > 0) & (probs < 1))
    inputs = keras.ops.convert_to_numpy(model.sequence_inputs(to_patches(tiny_images)))
    assert inputs.shape == (32, 16, 65)
    patches = to_patches(tiny_images)
    assert np.all(inputs[:, 0, :49] == 0)  # the start: a blank patch
    assert np.array_equal(inputs[:, 1:, :49], patches[:, :-1])  # step t reads patch t-1
    assert np.array_equal(inputs[0, :, 49:], np.eye(16))  # and its position


def test_prediction_of_patch_t_sees_only_earlier_patches(trained, tiny_images):
    x = tiny_images[:4]
    changed = to_patches(x.copy())
    changed[:, 6] = 1.0 - changed[:, 6]
    a = keras.ops.convert_to_numpy(trained(x))
    b = keras.ops.convert_to_numpy(trained(from_patches(changed)))
    np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-6)  # patches 0..6 do not see patch 6
    assert np.abs(a[:, 7:] - b[:, 7:]).max() > 1e-3  # patch 7 on does


def test_training_lowers_the_loss(real_digits):
    keras.utils.set_random_seed(0)
    model = small_model(recon_loss="mse")
    x = real_digits[0][:128]
    before = {k: float(keras.ops.convert_to_numpy(v)) for k, v in model.patch_losses(x).items()}
    history = model.fit(x, epochs=3, batch_size=32, verbose=0)
    after = {k: float(keras.ops.convert_to_numpy(v)) for k, v in model.patch_losses(x).items()}
    assert set(history.history) == {"loss", "mse"}
    assert after["loss"] < 0.8 * before["loss"]
    assert after["mse"] == pytest.approx(after["loss"], rel=1e-5)  # "mse" loss is the mse


@pytest.mark.parametrize("given", [1, 8, 15])
def test_complete_keeps_given_patches_and_matches_a_rerun(trained, real_digits, given):
    x = real_digits[0][:12]
    out = trained.complete(x, given=given)
    assert out.shape == (12, 28, 28, 1) and out.dtype == np.float32
    assert np.array_equal(to_patches(out)[:, :given], to_patches(x)[:, :given])  # bit for bit
    assert not np.array_equal(to_patches(out)[:, given:], to_patches(x)[:, given:])
    # stepping with carried states equals re-running the sequence for every patch
    np.testing.assert_allclose(out, rerun_complete(trained, x, given), atol=1e-5)
    # and the result does not depend on how the images are batched
    np.testing.assert_allclose(out, trained.complete(x, given=given, batch_size=5), atol=1e-6)


@pytest.mark.parametrize("given", [0, 16, 8.0, True, "8"])
def test_complete_rejects_bad_given(trained, tiny_images, given):
    with pytest.raises(ValueError, match="given must be"):
        trained.complete(tiny_images, given=given)


def test_complete_rejects_bad_images(trained):
    with pytest.raises(ValueError, match=r"Received: shape=\(2, 32, 32\)"):
        trained.complete(np.zeros((2, 32, 32)))


def test_generate_samples_differ_and_repeat_with_a_seed(trained):
    a = trained.generate(8, seed=3)
    assert a.shape == (8, 28, 28, 1) and a.min() >= 0 and a.max() <= 1
    pairwise = [np.abs(a[i] - a[j]).mean() for i in range(8) for j in range(i + 1, 8)]
    assert min(pairwise) > 1e-3  # no two samples alike
    np.testing.assert_array_equal(trained.generate(8, seed=3), a)
    assert np.abs(trained.generate(8, seed=4) - a).mean() > 1e-3
    greedy = trained.generate(3, sampling="mean")
    np.testing.assert_allclose(greedy[0], greedy[2], atol=1e-6)  # deterministic: copies
    with pytest.raises(ValueError, match="sampling must be"):
        trained.generate(2, sampling="top-k")


def test_save_and_load_complete_identically(trained, real_digits, tmp_path):
    path = str(tmp_path / "lstm.keras")
    trained.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, PatchLSTM)
    assert loaded.get_config() == trained.get_config()
    x = real_digits[0][:8]
    np.testing.assert_array_equal(loaded.complete(x, given=8), trained.complete(x, given=8))
    np.testing.assert_array_equal(loaded.generate(4, seed=1), trained.generate(4, seed=1))
    loaded.fit(x, epochs=1, batch_size=8, verbose=0)  # keeps training, optimizer restored


def test_binarized_training_draws_fresh_binary_inputs(tiny_images, tmp_path):
    model = small_model(binarize=True)
    logs = model.fit(tiny_images, epochs=2, batch_size=16, verbose=0).history
    assert np.all(np.isfinite(logs["loss"]))
    state = keras.ops.convert_to_numpy(model.seed_generator.state)
    model.fit(tiny_images[:16], epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(state, keras.ops.convert_to_numpy(model.seed_generator.state))  # a new draw per step
    path = str(tmp_path / "lstm.keras")
    model.save(path)
    assert keras.saving.load_model(path).binarize is True


def test_exact_nll_from_logits_is_the_sum_of_pixel_cross_entropies(trained, real_digits):
    from kgen.evaluation import metrics
    from kgen.evaluation.evaluate import binarized, lstm_nll_per_image

    x = binarized(real_digits[0][:40])
    nll = lstm_nll_per_image(trained, x, batch_size=16)  # three batches, the last one short
    probs = keras.ops.convert_to_numpy(trained(x))  # (40, 16, 49)
    bce = metrics.reconstruction_errors(np.asarray(to_patches(x)), probs)["bce"]
    assert nll.shape == (40,) and np.all(nll > 0)
    assert nll.mean() == pytest.approx(bce, rel=1e-4)


def test_evaluate_and_validation_report_the_teacher_forced_loss(real_digits):
    model = small_model()
    x = real_digits[0][:64]
    logs = model.fit(x, epochs=1, batch_size=32, validation_split=0.25, verbose=0).history
    assert set(logs) == {"loss", "mse", "val_loss", "val_mse"}
    result = model.evaluate(x[:32], batch_size=32, verbose=0, return_dict=True)
    expected = {k: float(keras.ops.convert_to_numpy(v)) for k, v in model.patch_losses(x[:32]).items()}
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert result["mse"] == pytest.approx(expected["mse"], rel=1e-5)


# the within-patch autoregressive head ("made")


def rerun_complete_made(model, images, given):
    """Reference of a "made" completion: re-run the whole teacher-forced sequence for each new pixel."""
    patches = to_patches(np.array(images, np.float32))
    for t in range(given, 16):
        for i in range(49):
            probs = keras.ops.convert_to_numpy(model(from_patches(patches)))  # (n, 16, 49)
            patches[:, t, i] = probs[:, t, i]
    return from_patches(patches)


def test_made_head_pixel_i_sees_the_context_and_only_earlier_pixels():
    made = PatchMADE(32)
    h = np.random.RandomState(0).rand(3, 8).astype("float32")
    x = np.random.RandomState(1).rand(3, 49).astype("float32")
    made.build((None, 8))
    # the direct weights start at zero: give them values so that they are tested too
    made.direct.assign(np.random.RandomState(2).randn(49, 49).astype("float32"))
    base = keras.ops.convert_to_numpy(made(h, x))
    assert base.shape == (3, 49)
    for j in (0, 20, 47, 48):
        changed = x.copy()
        changed[:, j] += 1.0
        diff = np.abs(keras.ops.convert_to_numpy(made(h, changed)) - base).max(axis=0)  # (49,)
        assert np.all(diff[: j + 1] == 0)  # pixel i <= j never sees pixel j
        if j < 48:
            assert np.all(diff[j + 1 :] > 0)  # every later pixel does
    other = keras.ops.convert_to_numpy(made(h + 1.0, x))
    assert np.all(np.abs(other - base) > 0)  # the context reaches every pixel, the first included


def test_made_lstm_learns_a_lower_exact_nll_than_the_dense_head(real_digits):
    from kgen.evaluation.evaluate import binarized, lstm_nll_per_image

    x = binarized(real_digits[0][:256])
    nll = {}
    for head in ("dense", "made"):
        keras.utils.set_random_seed(0)
        model = small_model(patch_head=head)
        model.fit(x, epochs=3, batch_size=32, verbose=0)
        nll[head] = lstm_nll_per_image(model, x).mean()
        probs = keras.ops.convert_to_numpy(model(x))  # teacher-forced: each pixel given the true earlier ones
        p = to_patches(x)
        exact = -(p * np.log(probs) + (1 - p) * np.log1p(-probs)).sum(axis=(1, 2)).mean()
        assert nll[head] == pytest.approx(exact, rel=1e-3)
    # pixels of a patch are strongly dependent: modelling that lowers -log p(x) by far
    assert nll["made"] < nll["dense"] - 20, nll


def test_best_of_candidates_keeps_the_likeliest_draw(trained, real_digits):
    x, given, n = real_digits[0][:3], 8, 5
    out = trained.complete(x, given=given, sampling="best", candidates=n, seed=4)
    assert np.array_equal(to_patches(out)[:, :given], to_patches(x)[:, :given])
    np.testing.assert_array_equal(out, trained.complete(x, given=given, sampling="best", candidates=n, seed=4))
    # the reference: the same n draws per digit, each scored by the teacher-forced NLL of its written patches
    tiled = np.repeat(to_patches(x), n, axis=0)
    shown, drawn = trained._rollout_batch(tiled, given, "bernoulli", keras.random.SeedGenerator(4))
    tiled[:, given:] = drawn
    probs = np.clip(keras.ops.convert_to_numpy(trained(from_patches(tiled))), 1e-7, 1 - 1e-7)
    nll = -(tiled * np.log(probs) + (1 - tiled) * np.log1p(-probs))[:, given:].sum(axis=(1, 2)).reshape(3, n)
    assert len(set(nll.argmin(1))) > 1 or nll.std() > 0  # the draws differ
    expected = shown.reshape(3, n, 16 - given, 49)[np.arange(3), nll.argmin(1)]
    np.testing.assert_allclose(to_patches(out)[:, given:], expected, atol=1e-5)
    # one candidate is a plain draw
    np.testing.assert_allclose(
        trained.complete(x, given=given, sampling="best", candidates=1, seed=4),
        trained.complete(x, given=given, sampling="bernoulli", seed=4), atol=1e-6,
    )
    with pytest.raises(ValueError, match="Received: candidates=0"):
        trained.complete(x, sampling="best", candidates=0)


def test_average_of_candidates_is_the_mean_of_the_same_draws(trained, real_digits):
    x, given, n = real_digits[0][:3], 8, 5
    out = trained.complete(x, given=given, sampling="average", candidates=n, seed=4)
    assert np.array_equal(to_patches(out)[:, :given], to_patches(x)[:, :given])
    np.testing.assert_array_equal(out, trained.complete(x, given=given, sampling="average", candidates=n, seed=4))
    # the reference: the same n draws per digit as "best" makes, averaged pixel by pixel
    tiled = np.repeat(to_patches(x), n, axis=0)
    shown, _ = trained._rollout_batch(tiled, given, "bernoulli", keras.random.SeedGenerator(4))
    shown = shown.reshape(3, n, 16 - given, 49)
    assert np.abs(shown - shown[:, :1]).max() > 1e-3  # the draws differ, so the average is not one of them
    np.testing.assert_allclose(to_patches(out)[:, given:], shown.mean(axis=1), atol=1e-5)
    # one candidate is a plain draw
    np.testing.assert_allclose(
        trained.complete(x, given=given, sampling="average", candidates=1, seed=4),
        trained.complete(x, given=given, sampling="bernoulli", seed=4), atol=1e-6,
    )


@pytest.mark.parametrize("given", [8, 15])
def test_made_complete_and_generate_write_pixel_by_pixel(real_digits, given):
    keras.utils.set_random_seed(0)
    model = small_model(patch_head="made")
    model.fit(real_digits[0][:64], epochs=1, batch_size=32, verbose=0)
    x = real_digits[0][:3]
    out = model.complete(x, given=given)
    assert np.array_equal(to_patches(out)[:, :given], to_patches(x)[:, :given])
    if given == 15:  # each pixel written from the states and the pixels before it equals a re-run per pixel
        np.testing.assert_allclose(out, rerun_complete_made(model, x, given), atol=1e-5)
    a = model.generate(4, seed=3)
    assert a.shape == (4, 28, 28, 1) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(model.generate(4, seed=3), a)
    assert min(np.abs(a[i] - a[j]).mean() for i in range(4) for j in range(i + 1, 4)) > 1e-3


def test_made_is_the_default_and_your_own_head_replaces_it(real_digits, tmp_path):
    own = PatchLSTM(recurrent=[keras.layers.LSTM(8, return_sequences=True, return_state=True)],
                    head=keras.layers.Dense(49))
    assert own.patch_head == "dense"  # your head scores a patch's pixels at once
    model = PatchLSTM(num_layers=1, units=16, seed=0)
    assert model.patch_head == "made" and isinstance(model.head, PatchMADE)
    path = str(tmp_path / "made.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.patch_head == "made" and isinstance(loaded.head, PatchMADE)
    x = real_digits[0][:4]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))


def test_constructor_rejects_bad_options():
    for kwargs, name in [({"num_layers": 0}, "num_layers"), ({"units": 0}, "units"),
                         ({"dropout": 1.0}, "dropout"), ({"recon_loss": "l1"}, "recon_loss"),
                         ({"patch_head": "pixelcnn"}, "patch_head")]:
        with pytest.raises(ValueError, match=f"Received: {name}="):
            PatchLSTM(**kwargs)


# reading a user's images


def test_read_images_png_and_npy(tmp_path, real_digits):
    digit = (real_digits[0][0, :, :, 0] * 255).astype(np.uint8)
    Image.fromarray(255 - digit).save(tmp_path / "dark_on_light.png")
    with pytest.warns(UserWarning, match="inverted"):
        png = read_images(tmp_path / "dark_on_light.png")
    assert png.shape == (1, 28, 28, 1)
    np.testing.assert_allclose(png[0, :, :, 0], digit / 255.0, atol=1e-6)
    np.save(tmp_path / "many.npy", real_digits[0][:5])
    np.testing.assert_array_equal(read_images(tmp_path / "many.npy"), real_digits[0][:5])


# the CLI


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    result = CliRunner().invoke(
        main,
        ["train", "lstm", "--epochs", "1", "--limit", "64", "--batch-size", "32", "--units", "16",
         "--layers", "1", "--dropout", "0.1", "--recon-loss", "mse", "--offline", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_cli_train_lstm_writes_the_run(lstm_run):
    for name in ("model.keras", "history.csv", "samples/epoch_001.png", "plots/completions/epoch_001.png",
                 "plots/completion_error.png", "plots/completion_error.csv"):
        assert os.path.isfile(os.path.join(lstm_run, name)), name
    with open(os.path.join(lstm_run, "config.json")) as f:
        options = json.load(f)["model_config"]
    assert (options["num_layers"], options["units"], options["dropout"], options["recon_loss"]) == (1, 16, 0.1, "mse")
    rows = open(os.path.join(lstm_run, "plots/completion_error.csv")).read().splitlines()
    assert rows[0] == "given,lstm_mse,mean_image_mse" and len(rows) == 16


def test_cli_evaluate_reads_the_mean_field_and_the_averaged_completions(lstm_run):
    from kgen import checkpoint
    from kgen.evaluation import evaluate as ev
    from kgen.evaluation.evaluator import load_evaluator

    result = CliRunner().invoke(main, ["evaluate", lstm_run, "-n", "20", "--seed", "3", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert f"label agreement, average of {ev.COMPLETION_DRAWS} completions" in result.output
    with open(os.path.join(lstm_run, "metrics.json")) as f:
        c = json.load(f)["completion"]
    # the same 20 test digits completed both ways, read by the same evaluator
    x, y, _ = ev.test_digits()
    model, evaluator = checkpoint.load_model(lstm_run), load_evaluator()
    mean = model.complete(x[:20], given=8)
    averaged = model.complete(x[:20], given=8, sampling="average", candidates=ev.COMPLETION_DRAWS, seed=3)
    assert c["average_draws"] == ev.COMPLETION_DRAWS
    assert c["label_agreement"] == pytest.approx(np.mean(evaluator.predict(mean) == y[:20]))
    assert c["label_agreement_average"] == pytest.approx(np.mean(evaluator.predict(averaged) == y[:20]))
    assert c["mse_missing_average"] == pytest.approx(np.mean((averaged - x[:20])[:, 14:] ** 2), rel=1e-4)
    assert c["mse_missing_average"] != pytest.approx(c["mse_missing"], rel=1e-4)


def test_cli_complete_test_digits_and_own_images(lstm_run, tmp_path, real_digits):
    runner = CliRunner()
    result = runner.invoke(main, ["complete", lstm_run, "--given", "4", "-n", "6"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == os.path.join(lstm_run, "plots", "complete.png")
    assert Image.open(os.path.join(lstm_run, "plots", "complete.png")).size[0] > 6 * 28
    np.save(tmp_path / "mine.npy", (real_digits[0][:3] * 255).astype(np.uint8))
    out = str(tmp_path / "mine.png")
    result = runner.invoke(main, ["complete", lstm_run, "--input", str(tmp_path / "mine.npy"), "--out", out])
    assert result.exit_code == 0, result.output
    assert os.path.isfile(out)
    Image.fromarray((real_digits[0][0, :, :, 0] * 255).astype(np.uint8)).save(tmp_path / "one.png")
    result = runner.invoke(main, ["complete", lstm_run, "--input", str(tmp_path / "one.png"), "--out", out])
    assert result.exit_code == 0, result.output
    # the likeliest of 4 draws and their average, seeded: the same PNG twice
    for sampling in ("best", "average"):
        for name in (f"{sampling}1.png", f"{sampling}2.png"):
            args = ["--sampling", sampling, "--candidates", "4", "--seed", "1", "-n", "3", "--out", str(tmp_path / name)]
            assert runner.invoke(main, ["complete", lstm_run, *args]).exit_code == 0
        assert (tmp_path / f"{sampling}1.png").read_bytes() == (tmp_path / f"{sampling}2.png").read_bytes()
    assert (tmp_path / "best1.png").read_bytes() != (tmp_path / "average1.png").read_bytes()


@pytest.mark.parametrize(
    "make, args, message",
    [
        (None, ["--given", "0"], "0 is not in the range 1<=x<=15"),
        (None, ["--given", "16"], "16 is not in the range 1<=x<=15"),
        (lambda d: np.save(d / "small.npy", np.zeros((2, 20, 20), np.uint8)), ["--input", "{d}/small.npy"], "must hold 28x28 grey images"),
        (lambda d: Image.new("L", (32, 32)).save(d / "big.png"), ["--input", "{d}/big.png"], "Received: size=32x32"),
        (lambda d: (d / "text.png").write_text("not a png"), ["--input", "{d}/text.png"], "Cannot read"),
        (lambda d: (d / "x.jpg").write_text(""), ["--input", "{d}/x.jpg"], "must be a .png or a .npy"),
        (lambda d: np.save(d / "neg.npy", -np.ones((1, 28, 28))), ["--input", "{d}/neg.npy"], "values in [0, 1]"),
        (None, ["--candidates", "4"], "--candidates applies to --sampling best or average only"),
        (None, ["--sampling", "best", "--candidates", "0"], "0 is not in the range x>=1"),
    ],
)
def test_cli_complete_bad_input(lstm_run, tmp_path, make, args, message):
    if make:
        make(tmp_path)
    out = tmp_path / "never.png"
    args = [a.format(d=tmp_path) for a in args]
    result = CliRunner().invoke(main, ["complete", lstm_run, *args, "--out", str(out)])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if "Error" in line] == [result.output.strip().splitlines()[-1]]
    assert not out.exists()


def test_cli_complete_needs_an_lstm_run(tmp_path):
    run = tmp_path / "ae_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "ae", "train": {}, "run_format": runs.RUN_FORMAT}))
    AutoEncoder(latent_dim=2).save(str(run / "model.keras"))
    result = CliRunner().invoke(main, ["complete", str(run)])
    assert result.exit_code != 0
    assert "complete needs an lstm run" in result.output and "AutoEncoder" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["vae", "--units", "8"], "applies to lstm only"),
        (["ae", "--layers", "3"], "applies to lstm only"),
        (["lstm", "--arch", "conv"], "not to lstm"),
        (["lstm", "--layers", "0"], "0 is not in the range 1<=x<=4"),
        (["lstm", "--dropout", "1"], "dropout"),
    ],
)
def test_cli_train_lstm_bad_options(artifacts, args, message):
    result = CliRunner().invoke(main, ["train", *args, "--offline", "--out", str(artifacts)])
    assert result.exit_code != 0
    assert message in result.output
    assert os.listdir(artifacts) == []  # no run was started


# other backends


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_trains_completes_and_reloads_on_backend(run_on_backend, backend, tmp_path):
    out = run_on_backend(
        backend,
        f"""
        import keras, numpy as np
        from kgen.data import load_bundled, to_patches
        from kgen.models import PatchLSTM
        x = (load_bundled("train")[0][:32, :, :, None] / 255.0).astype("float32")
        keras.utils.set_random_seed(0)
        model = PatchLSTM(num_layers=2, units=16, dropout=0.1, seed=0, patch_head="made")
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        logs = model.fit(x, epochs=2, batch_size=16, validation_data=(x[:16],), verbose=0).history
        losses = logs["loss"]
        assert losses[-1] < losses[0], losses
        assert np.all(np.isfinite(logs["val_loss"])), logs
        assert np.isfinite(model.evaluate(x[:16], verbose=0, return_dict=True)["loss"])
        done = model.complete(x[:4], given=8)
        assert np.array_equal(to_patches(done)[:, :8], to_patches(x[:4])[:, :8])
        g = model.generate(4, seed=1)
        assert g.shape == (4, 28, 28, 1) and np.abs(g[0] - g[1]).max() > 1e-4  # the draws differ
        model.save(r"{tmp_path}/m.keras")
        loaded = keras.saving.load_model(r"{tmp_path}/m.keras")
        assert np.array_equal(loaded.complete(x[:4], given=8), done)
        print("ok", keras.config.backend(), losses)
        """,
    )
    assert out.startswith(f"ok {backend}")
