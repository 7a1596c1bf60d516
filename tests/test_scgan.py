"""The self-conditioned GAN: k-means clusters as its labels, drawn with their shares, no labels taken."""

import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kgen import capabilities as caps
from kgen.cli.main import main
from kgen.models import ConditionalGAN, SelfConditionedGAN
from kgen.models.scgan import kmeans


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def compiled(**kwargs):
    model = SelfConditionedGAN(seed=3, latent_dim=16, arch="mlp", **{"clusters": 4, **kwargs})
    model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


def numpy(variable):
    return keras.ops.convert_to_numpy(variable)


# the clusters


def test_kmeans_centres_and_shares_and_the_step_assigns_the_nearest(real_digits):
    images = real_digits[0][:128]
    centres, shares = kmeans(images, 5, seed=0)
    assert centres.shape == (5, 784) and shares.shape == (5,)
    assert abs(shares.sum() - 1) < 1e-6 and shares.min() > 0
    model = SelfConditionedGAN(clusters=5, latent_dim=8, arch="mlp", seed=0)
    assert not model.clustered
    model.cluster(images)
    assert model.clustered
    np.testing.assert_allclose(numpy(model.centres), centres)
    # the step's label of each image is its nearest centre
    _, labels = model.unpack((keras.ops.convert_to_tensor(images),))
    nearest = ((images.reshape(128, 1, -1) - centres[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(numpy(labels), nearest)
    np.testing.assert_allclose(np.bincount(nearest, minlength=5) / 128, shares, atol=1e-6)


def test_it_is_unconditional_and_one_of_the_gan_family():
    assert not caps.has(SelfConditionedGAN, caps.CONDITIONAL)
    assert caps.has(SelfConditionedGAN, caps.ADVERSARIAL)
    assert issubclass(SelfConditionedGAN, ConditionalGAN)
    assert "train_step" not in vars(SelfConditionedGAN) and "compile" not in vars(SelfConditionedGAN)


@pytest.mark.parametrize("clusters", [1, 0, True, 2.5, "4"])
def test_bad_cluster_counts(clusters):
    with pytest.raises(ValueError, match=r"clusters must be an integer in \[2, 1000\]"):
        SelfConditionedGAN(clusters=clusters)


def test_fewer_images_than_clusters_is_a_clear_error(real_digits):
    with pytest.raises(ValueError, match="at least as many images as clusters"):
        SelfConditionedGAN(clusters=8, latent_dim=8, arch="mlp").cluster(real_digits[0][:5])


# training


def test_fit_clusters_its_images_then_trains_without_labels(real_digits):
    model = compiled()
    before = [numpy(w).copy() for w in model.generator.trainable_weights]
    model.fit(real_digits[0][:64], epochs=1, batch_size=32, verbose=0)
    assert model.clustered
    assert all(not np.array_equal(b, numpy(w)) for b, w in zip(before, model.generator.trainable_weights))
    result = model.evaluate(real_digits[0][:32], verbose=0, return_dict=True)
    assert np.isfinite(result["d_loss"]) and np.isfinite(result["g_loss"])


def test_fit_on_a_dataset_before_clustering_says_what_to_do(real_digits):
    batches = keras.utils.PyDataset  # a dataset cannot be clustered in one pass here

    class Batches(batches):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return real_digits[0][:32]

    model = compiled()
    with pytest.raises(ValueError, match=r"call model.cluster\(images\) first"):
        model.fit(Batches(), epochs=1, verbose=0)
    model.cluster(real_digits[0][:64])
    model.fit(Batches(), epochs=1, verbose=0)  # clustered first: trains


# sampling


def test_generate_draws_clusters_with_their_shares(real_digits):
    model = compiled()
    model.cluster(real_digits[0][:64])
    model.shares.assign(np.array([0, 0, 1, 0], "float32"))  # every training image in cluster 2
    np.testing.assert_array_equal(model.generate(6, seed=1), model.generate(6, seed=1, clusters=2))
    assert not np.array_equal(model.generate(6, seed=1), model.generate(6, seed=1, clusters=0))
    model.shares.assign(np.array([0.5, 0, 0, 0.5], "float32"))
    rng = np.random.default_rng(2)  # the clusters' stream: seed + 1
    drawn = rng.choice(4, size=200, p=[0.5, 0, 0, 0.5])
    np.testing.assert_array_equal(model.generate(200, seed=1), model.generate(200, seed=1, clusters=drawn))
    with pytest.raises(ValueError, match=r"clusters must be in 0\.\.3"):
        model.generate(2, clusters=4)


def test_saved_and_loaded_with_its_clusters(real_digits, tmp_path):
    model = compiled()
    model.fit(real_digits[0][:64], epochs=1, batch_size=32, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is SelfConditionedGAN and loaded.clusters == 4 and "num_classes" not in loaded.get_config()
    np.testing.assert_array_equal(numpy(loaded.centres), numpy(model.centres))
    np.testing.assert_array_equal(loaded.generate(5, seed=2), model.generate(5, seed=2))


# the CLI


def test_cli_trains_samples_and_refuses_too_few_images(artifacts):
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["train", "scgan", "--arch", "mlp", "--latent-dim", "16", "--clusters", "4", "--epochs", "1",
         "--limit", "64", "--batch-size", "32", "--offline", "--out", str(artifacts)],
    )
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    assert os.path.isfile(os.path.join(run, "samples", "epoch_001.png"))
    out = str(artifacts / "s.npz")
    result = runner.invoke(main, ["sample", run, "-n", "6", "--seed", "1", "--out", out])
    assert result.exit_code == 0, result.output
    assert np.load(out)["images"].shape == (6, 28, 28, 1)

    result = runner.invoke(main, ["train", "scgan", "--clusters", "50", "--limit", "20", "--epochs", "1",
                                  "--offline", "--out", str(artifacts / "bad")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "at least as many images as clusters (50)" in result.output, result.output
    assert not (artifacts / "bad").exists() or not any((artifacts / "bad").rglob("config.json"))


def test_resume_is_exact_with_the_clusters_from_the_checkpoint(artifacts):
    from kgen import specs, training

    def config(out, epochs):
        return specs.TrainConfig(model="scgan", epochs=epochs, batch_size=32, limit=96, offline=True, seed=7,
                                    val_images=32, out=str(out), model_options={"clusters": 3, "arch": "mlp"})

    whole = training.train(config(artifacts / "a", 2), verbose=0)
    run = training.train(config(artifacts / "b", 1), verbose=0)
    training.resume(run, epochs=2, verbose=0)
    assert open(os.path.join(whole, "history.csv")).read() == open(os.path.join(run, "history.csv")).read()
    a, b = (keras.saving.load_model(os.path.join(r, "model.keras")) for r in (whole, run))
    assert a.clustered
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)
