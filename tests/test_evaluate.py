"""The shipped evaluator, `kgen evaluate` and `kgen compare`."""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main
from kgen import files, runs, specs, training
from kgen.data import load_bundled
from kgen.errors import KgenError
from kgen.evaluation import evaluator as ev_module
from kgen.evaluation import load_evaluator


@pytest.fixture(scope="module")
def test_digits():
    images, labels = load_bundled("test")
    return (images[..., None] / 255.0).astype("float32"), labels


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A one-epoch VAE (latent 2) and AE (latent 3) on 64 digits: just enough to evaluate."""
    root = tmp_path_factory.mktemp("artifacts")
    made = {}
    for name, model, options in [("vae", "vae", {"latent_dim": 2}), ("ae", "ae", {"latent_dim": 3})]:
        config = specs.TrainConfig(
            model=model, epochs=1, batch_size=32, limit=64, offline=True, out=str(root), name=name,
            model_options=options,
        )
        made[name] = training.train(config, verbose=0)
    return made


def test_evaluator_reaches_its_stated_accuracy_on_the_real_test_digits():
    from kgen.evaluation.evaluate import reference

    evaluator = load_evaluator("mnist")
    ref = reference("mnist")  # the evaluator's view of all test digits, kept for `evaluate`
    accuracy = np.mean(ref["p_test"].argmax(1) == ref["y_test"])
    assert len(ref["y_test"]) == 10000
    assert accuracy == pytest.approx(evaluator.info["test_accuracy"], abs=2e-4)
    assert accuracy >= 0.994
    assert evaluator.info["train_images"] == 60000


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_evaluator_weights_are_small_and_match_their_hash(dataset):
    info = ev_module.manifest()[dataset]
    path = os.path.join(ev_module.WEIGHTS_DIR, info["file"])
    assert os.path.getsize(path) < 1_000_000
    assert ev_module.sha256(path) == info["sha256"]


FASHION_DIR = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="needs the dataset-fashion-mnist package")
def test_fashion_evaluator_reaches_its_stated_accuracy():
    from kgen.data import load_dataset

    test = load_dataset("fashion_mnist", "test", data_dir=FASHION_DIR)
    evaluator = load_evaluator("fashion_mnist")
    accuracy = np.mean(evaluator.predict(test.images / 255.0) == test.labels)
    assert accuracy == pytest.approx(evaluator.info["test_accuracy"], abs=2e-4)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_evaluator_gives_the_same_answers_on_other_backends(backend, run_on_backend, test_digits):
    images, _ = test_digits
    features, probs = load_evaluator("mnist").embed(images[:300])
    out = run_on_backend(
        backend,
        """
        import json, keras
        from kgen.data import load_bundled
        from kgen.evaluation import load_evaluator
        images, labels = load_bundled("test")
        x = (images[:, :, :, None] / 255.0).astype("float32")
        f, p = load_evaluator("mnist").embed(x)
        accuracy = float((p.argmax(1) == labels).mean())
        print(json.dumps({"backend": keras.config.backend(), "f": f[:300].tolist(), "p": p[:300].argmax(1).tolist(), "accuracy": accuracy}))
        """,
    )
    got = json.loads(out.strip().splitlines()[-1])
    assert got["backend"] == backend
    assert got["accuracy"] >= 0.994  # all 10,000 test digits, on this backend
    np.testing.assert_allclose(got["f"], features, atol=1e-3 * max(1.0, features.max()))
    assert np.mean(np.array(got["p"]) == probs.argmax(1)) >= 299 / 300


def test_evaluator_refuses_weights_that_do_not_match_the_hash(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(ev_module.WEIGHTS_DIR, folder)
    weights = folder / "mnist.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte among the weights
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(ev_module, "WEIGHTS_DIR", str(folder))
    monkeypatch.setattr(ev_module, "MANIFEST", str(folder / "evaluators.json"))
    with pytest.raises(KgenError, match="do not match their recorded hash"):
        ev_module.Evaluator("mnist")
    with pytest.raises(KgenError, match="ships evaluators for"):
        ev_module.Evaluator("kmnist")


def test_evaluator_rejects_images_outside_0_1():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_evaluator("mnist").embed(np.full((4, 28, 28), 255.0))
    with pytest.raises(ValueError, match="28, 28"):
        load_evaluator("mnist").embed(np.zeros((4, 32, 32)))


def test_evaluate_vae_through_the_cli(tiny_runs):
    run = tiny_runs["vae"]
    result = CliRunner().invoke(main, ["evaluate", run, "-n", "200", "--ll-samples", "4"])
    assert result.exit_code == 0, result.output
    assert "FID (kgen evaluator)" in result.output and "test ELBO" in result.output and "real data" in result.output
    # what it is doing, on stderr, one line per stage in a pipe (stdout keeps the results)
    stages = [line for line in result.stderr.splitlines() if line.startswith("kgen evaluate: ")]
    assert stages == [
        "kgen evaluate: loading the model, the evaluator and the test digits (1/8)",
        "kgen evaluate: generating 200 samples (2/8)",
        "kgen evaluate: embedding them with the evaluator (3/8)",
        "kgen evaluate: FID, KID, inception score, precision and recall (4/8)",
        "kgen evaluate: the real-data floor (5/8)",
        "kgen evaluate: reconstructing test digits (6/8)",
        "kgen evaluate: test log-likelihood (7/8)",
        "kgen evaluate: figures (8/8)",
    ], result.stderr
    assert "kgen evaluate:" not in result.stdout
    m = files.read_json(os.path.join(run, runs.METRICS))
    assert m["evaluator"]["sha256"] == ev_module.manifest()["mnist"]["sha256"]
    assert m["num_samples"] == 200 and m["floor_num_samples"] == 200
    assert "official MNIST test set" in m["data"]["reference"]
    assert "drawn at random" in m["data"]["floor"] and "bundled MNIST" in m["data"]["floor"]
    assert "binarized once" in m["likelihood"]["test_set"]
    # one epoch on 64 digits is far from real data; real training digits are close to the test set
    assert m["floor"]["fid"] < m["samples"]["fid"]
    assert m["floor"]["coverage_kl"] < 0.1 and m["floor"]["inception_score"] > 7
    like = m["likelihood"]
    assert like["log_likelihood"] < 0 and like["elbo"] < 0
    assert like["importance_samples"] == 4
    assert m["reconstruction"]["mse"] > 0
    for name in ("latent_map.png", "traversal.png", "interpolation.png", "eval_samples.png"):
        assert os.path.isfile(os.path.join(run, runs.PLOTS, name)), name


def test_evaluate_ae_with_a_3d_latent_space(tiny_runs):
    from kgen.evaluation import evaluate

    m = evaluate.evaluate(tiny_runs["ae"], num_samples=100)
    assert "likelihood" not in m and "conditional" not in m
    assert set(m["reconstruction"]) == {"mse", "bce"}
    assert "latent_map.png" in m["figures"]  # PCA and t-SNE of the 3-D codes
    rows = dict((name, value) for name, value, _ in evaluate.table(m))
    assert rows["FID (kgen evaluator)"] == m["samples"]["fid"]


def test_evaluate_bad_inputs(tmp_path, tiny_runs):
    runner = CliRunner()
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    result = runner.invoke(main, ["evaluate", str(not_a_run)])
    assert result.exit_code == 1
    assert "is not a kgen run" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1

    result = runner.invoke(main, ["evaluate", tiny_runs["vae"], "-n", "5"])
    assert result.exit_code == 2 and "--num-samples" in result.output

    # a run with no model yet, and a run of a data set kgen has no evaluator for
    broken = tmp_path / "broken"
    shutil.copytree(tiny_runs["vae"], broken)
    os.remove(broken / runs.MODEL)
    shutil.rmtree(broken / runs.CHECKPOINT)
    before = (broken / runs.METRICS).read_bytes() if (broken / runs.METRICS).exists() else None
    result = runner.invoke(main, ["evaluate", str(broken)])
    assert result.exit_code == 1 and "holds no model.keras" in result.output
    after = (broken / runs.METRICS).read_bytes() if (broken / runs.METRICS).exists() else None
    assert before == after

    other = tmp_path / "other"
    shutil.copytree(tiny_runs["vae"], other)
    config = files.read_json(other / runs.CONFIG)
    config["data"]["dataset"] = "kmnist"
    files.write_json(other / runs.CONFIG, config)
    result = runner.invoke(main, ["evaluate", str(other)])
    assert result.exit_code == 1 and "ships evaluators for mnist" in result.output


def test_compare_writes_a_report_with_images(tmp_path, tiny_runs):
    from kgen.evaluation import evaluate

    if not os.path.isfile(os.path.join(tiny_runs["vae"], runs.METRICS)):
        evaluate.evaluate(tiny_runs["vae"], num_samples=100, ll_samples=0, figures=False)
    runner = CliRunner()
    out = tmp_path / "report"
    result = runner.invoke(main, ["compare", tiny_runs["vae"], tiny_runs["ae"], "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert result.stdout.strip().endswith("report.md")
    assert [line for line in result.stderr.splitlines() if line.startswith("kgen compare: ")] == [
        "kgen compare: loading 2 runs (1/4)", "kgen compare: drawing 100 samples of each (2/4)",
        "kgen compare: latent maps (3/4)", "kgen compare: training curves and the report (4/4)",
    ], result.stderr
    for image in ("samples.png", "latent_maps.png", "curves.png"):
        assert (out / image).is_file() and f"]({image})" in report
    assert "vae/" in report and "ae/" in report and "real-data floor" in report
    with open(os.path.join(tiny_runs["vae"], runs.METRICS)) as f:
        measured = json.load(f)["test_images"]  # the test images the run was evaluated on, not the whole test set
    against = next(line for line in report.splitlines() if "against " in line and "test images" in line)
    assert f"{measured:,}" in against  # the count of its metrics.json, whatever the other run's
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_compare_bad_inputs(tmp_path, tiny_runs):
    runner = CliRunner()
    result = runner.invoke(main, ["compare"])
    assert result.exit_code == 2 and "Missing argument" in result.output
    result = runner.invoke(main, ["compare", tiny_runs["vae"], tiny_runs["vae"]])
    assert result.exit_code == 1 and "listed twice" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["compare", tiny_runs["vae"], str(empty)])
    assert result.exit_code == 1 and "is not a kgen run" in result.output
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = runner.invoke(main, ["compare", tiny_runs["vae"], "--out", str(a_file)])
    assert result.exit_code != 0 and "file" in result.output


def test_compare_refuses_runs_measured_by_different_evaluators(tmp_path, tiny_runs):
    paths = []
    for name, sha in (("a", "a" * 64), ("b", "b" * 64)):
        path = tmp_path / name
        shutil.copytree(tiny_runs["vae"], path)
        (path / runs.METRICS).write_text(json.dumps({"evaluator": {"dataset": "mnist", "sha256": sha, "test_accuracy": 0.99}}))
        paths.append(str(path))
    result = CliRunner().invoke(main, ["compare", *paths, "--out", str(tmp_path / "report")])
    assert result.exit_code == 1
    assert "different evaluators" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "report").exists()


def test_likelihood_test_set_is_binarized_once_with_a_fixed_seed(test_digits):
    from kgen.evaluation.evaluate import binarized

    x = test_digits[0][:200]
    a, b = binarized(x), binarized(x)
    np.testing.assert_array_equal(a, b)  # the same binarization every time
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert abs(a.mean() - x.mean()) < 0.01  # each pixel drawn with its grey level
    assert np.all(a[x == 0] == 0) and np.all(a[x == 1] == 1)
    assert not np.array_equal(a, binarized(x, seed=1))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_class_interpolation_replays_the_cgan_generator(arch):
    import keras

    from kgen.evaluation.figures import _embedding_head
    from kgen.models import ConditionalGAN

    model = ConditionalGAN(latent_dim=8, arch=arch, seed=0)
    table, rest = _embedding_head(model.generator)
    z = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    labels = np.array([1, 4, 7])
    expected = model.generate(3, labels=labels, z=z)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rest([z, table[labels]])), expected, atol=1e-6)


def test_interpolation_rows_keep_one_label_code_or_cluster(tiny_images):
    """A row of a figure is one path through the noise: the cGAN's label, the scgan's cluster fixed along it."""
    from kgen.evaluation.figures import decode_rows
    from kgen.models import ConditionalGAN, SelfConditionedGAN

    z = np.random.default_rng(0).normal(size=(4, 3, 8)).astype("float32")  # (rows, steps, latent_dim)
    cgan = ConditionalGAN(latent_dim=8, seed=0)
    rows = decode_rows(cgan, z, seed=5)
    assert rows.shape == (4, 3, 28, 28, 1)
    for r in range(4):  # class r along row r, not the default 0, 1, 2, ... along the row
        np.testing.assert_allclose(rows[r], cgan.generate(3, labels=r, z=z[r]), atol=1e-6)
    np.testing.assert_allclose(decode_rows(cgan, z, seed=5, vary=False)[3], cgan.generate(3, labels=0, z=z[3]), atol=1e-6)

    scgan = SelfConditionedGAN(latent_dim=8, clusters=10, seed=0)
    scgan.cluster(tiny_images)
    rows = decode_rows(scgan, z, seed=5)
    clusters = []
    for r in range(4):  # one cluster per row, drawn with seed 5 + r
        match = [c for c in range(10) if np.allclose(rows[r], scgan.generate(3, z=z[r], clusters=c), atol=1e-6)]
        assert len(match) == 1, (r, match)
        clusters.append(match[0])
    assert len(set(clusters)) > 1, clusters  # not one cluster for the whole figure
    np.testing.assert_allclose(rows, decode_rows(scgan, z, seed=5), atol=1e-6)  # seeded
