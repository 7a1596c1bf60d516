"""The conditional GAN: label-aware networks, label handling, the train step, the CLI."""

import os

import keras
import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main
from kgen import nets
from kgen.models import ConditionalGAN


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def compiled(**kwargs):
    model = ConditionalGAN(seed=3, latent_dim=16, **{"loss": "bce", **kwargs})
    model.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    return model


def values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def changed(before, variables):
    return [not np.array_equal(b, a) for b, a in zip(before, values(variables))]


@pytest.fixture
def digits(real_digits):
    images, labels = real_digits
    return images[:32], labels[:32].astype("int32")


# building


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_both_networks_depend_on_the_label(arch, digits):
    images, _ = digits
    g, d = nets.generator(arch, 16, num_classes=10), nets.discriminator(arch, num_classes=10)
    z = keras.random.normal((4, 16), seed=0)
    threes, sevens = keras.ops.full((4,), 3, "int32"), keras.ops.full((4,), 7, "int32")
    a, b = keras.ops.convert_to_numpy(g([z, threes])), keras.ops.convert_to_numpy(g([z, sevens]))
    assert a.shape == (4, 28, 28, 1) and not np.allclose(a, b)
    x = keras.ops.convert_to_tensor(images[:4])
    la, lb = keras.ops.convert_to_numpy(d([x, threes])), keras.ops.convert_to_numpy(d([x, sevens]))
    assert la.shape == (4, 1) and not np.allclose(la, lb)


def test_projection_term_is_the_label_embedding_dot_the_features(digits):
    """logit(x, y) - logit(x, y') is exactly <embed(y) - embed(y'), h(x)>."""
    d = nets.discriminator("mlp", num_classes=10)
    x = keras.ops.convert_to_tensor(digits[0][:3])
    last = [l for l in d.layers if isinstance(l, keras.layers.LeakyReLU)][-1]
    features = keras.Model(d.inputs[0], last.output)  # h(x)
    embedding = next(l for l in d.layers if isinstance(l, keras.layers.Embedding)).embeddings
    h = keras.ops.convert_to_numpy(features(x))  # (3, 256)
    e = keras.ops.convert_to_numpy(embedding)  # (10, 256)
    two, five = keras.ops.full((3,), 2, "int32"), keras.ops.full((3,), 5, "int32")
    diff = keras.ops.convert_to_numpy(d([x, two]) - d([x, five]))[:, 0]
    np.testing.assert_allclose(diff, h @ (e[2] - e[5]), rtol=1e-4, atol=1e-5)


def test_projection_is_an_option_and_the_labels_must_reach_the_discriminator():
    with_projection = ConditionalGAN(latent_dim=4, projection=True).discriminator
    without = ConditionalGAN(latent_dim=4).discriminator
    has_embedding = lambda d: any(isinstance(l, keras.layers.Embedding) for l in d.layers)  # noqa: E731
    assert has_embedding(with_projection) and not has_embedding(without)
    assert ConditionalGAN.from_config(ConditionalGAN(latent_dim=4, projection=True).get_config()).projection
    with pytest.raises(ValueError, match=r"never sees the labels.*Received: aux_weight=0, projection=False"):
        ConditionalGAN(latent_dim=4, aux_weight=0)


def test_bad_options():
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        ConditionalGAN(num_classes=1)
    with pytest.raises(ValueError, match="Received: loss='l2'"):
        ConditionalGAN(loss="l2")


# labels


def test_generate_with_labels():
    model = ConditionalGAN(latent_dim=8)
    images = model.generate(6, labels=[0, 1, 2, 7, 8, 9], seed=1)
    assert images.shape == (6, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images, model.generate(6, labels=np.array([0, 1, 2, 7, 8, 9]), seed=1))
    sevens = model.generate(6, labels=7, seed=1)
    np.testing.assert_array_equal(sevens[3], images[3])  # same noise, same label, same image
    assert not np.array_equal(sevens[0], images[0])
    # the default labels go round 0..9
    np.testing.assert_array_equal(model.draw_labels(None, 12), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])


@pytest.mark.parametrize(
    "labels, message",
    [
        (10, "labels must be in 0..9. Received: label=10"),
        ([1, -1, 3], "labels must be in 0..9. Received: label=-1"),
        ([1, 2], "labels must be one integer or 3 integers"),
        ([1.5, 2, 3], "labels must be one integer or 3 integers"),
        ("seven", "labels must be one integer or 3 integers"),
    ],
)
def test_bad_labels_are_clear_errors(labels, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ConditionalGAN(latent_dim=8).generate(3, labels=labels)


# the adversarial step


def test_each_phase_steps_only_its_network(digits):
    images, labels = digits
    model = compiled(arch="mlp", spectral_norm=False)
    d_vars, g_vars = model.discriminator.trainable_variables, model.generator.trainable_variables
    d0, g0 = values(d_vars), values(g_vars)
    model.discriminator_step(keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels))
    assert all(changed(d0, d_vars)) and not any(changed(g0, g_vars))
    d1, g1 = values(d_vars), values(g_vars)
    model.generator_step(len(labels), keras.ops.convert_to_tensor(labels))
    assert all(changed(g1, g_vars)) and not any(changed(d1, d_vars))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_discriminator_step_scores_both_halves_as_two_separate_calls_would(arch, digits):
    # one pass over real and generated pairs; without dropout, the loss and
    # accuracies of two calls on the same images and labels
    from kgen.models.gan import discriminator_loss

    images, labels = digits
    model = compiled(arch=arch, d_dropout=0.0, spectral_norm=False, diffaugment="", aux_weight=0, projection=True)
    real, labels = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels)
    state = model.seed_generator.state.numpy().copy()
    fake = model.generator([model.sample_noise(len(images)), labels], training=True)
    real_logits = model.discriminator([real, labels], training=True)
    fake_logits = model.discriminator([fake, labels], training=True)
    model.seed_generator.state.assign(state)  # the step draws the same noise
    out = model.discriminator_step(real, labels)
    np.testing.assert_allclose(
        float(out["loss"]), keras.ops.convert_to_numpy(discriminator_loss("bce", real_logits, fake_logits)), rtol=1e-5
    )
    assert float(out["d_acc_real"]) == float(keras.ops.mean(real_logits > 0))
    assert float(out["d_acc_fake"]) == float(keras.ops.mean(fake_logits < 0))


def test_train_step_needs_labels_and_updates_both(digits):
    images, labels = digits
    model = compiled(arch="conv")
    with pytest.raises(ValueError, match="call `fit\\(x, y\\)` with integer \\(or one-hot\\) labels y"):
        model.train_on_batch(images)
    d0, g0 = values(model.discriminator.trainable_variables), values(model.generator.trainable_variables)
    logs = model.train_on_batch(images, labels.astype("uint8"), return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "d_acc_real", "d_acc_fake", "loss"}
    assert np.all(np.isfinite(list(logs.values())))
    assert all(changed(d0, model.discriminator.trainable_variables))
    assert all(changed(g0, model.generator.trainable_variables))
    assert [int(o.iterations.numpy()) for o in model.optimizer.optimizers] == [1, 1]


# the CLI


def test_cli_trains_a_cgan_and_samples_a_label(artifacts):
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["train", "cgan", "--arch", "mlp", "--latent-dim", "16", "--epochs", "1", "--limit", "64",
         "--batch-size", "32", "--offline", "--out", str(artifacts)],
    )
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    # the epoch grid: ten rows (one per digit) of ten, each cell 28 + 2 pixels, drawn at 2x
    grid = matplotlib.image.imread(os.path.join(run, "samples", "epoch_001.png"))
    assert grid.shape[:2] == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))
    assert os.path.isfile(os.path.join(run, "plots", "dynamics.png"))

    out = str(artifacts / "sevens.png")
    result = runner.invoke(main, ["sample", run, "--label", "7", "-n", "6", "--seed", "1", "--out", out])
    assert result.exit_code == 0, result.output
    assert os.path.isfile(out)

    for bad in ("10", "-1"):
        result = runner.invoke(main, ["sample", run, "--label", bad, "--out", str(artifacts / "x.png")])
        assert result.exit_code == 2 and "this run draws labels 0 to 9" in result.output, result.output
        assert "Traceback" not in result.output
    assert not os.path.exists(artifacts / "x.png")


# the auxiliary classifier and the GAN family


def test_auxiliary_classifier_head_and_its_loss(digits):
    from kgen.models import GAN

    images, labels = digits
    model = compiled(arch="conv", aux_weight=0.5)
    assert isinstance(model, GAN)  # one family: the cGAN is a GAN with labels
    x, y = keras.ops.convert_to_tensor(images[:8]), keras.ops.convert_to_tensor(labels[:8])
    outputs = model.discriminator([x, y])
    assert tuple(outputs.shape) == (8, 11)  # the logit, then ten class logits
    expected = 0.5 * keras.ops.mean(keras.ops.sparse_categorical_crossentropy(y, outputs[:, 1:], from_logits=True))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.class_loss(outputs, y)), keras.ops.convert_to_numpy(expected), rtol=1e-6)
    assert keras.ops.convert_to_numpy(model.class_loss(outputs, y)) > 0
    assert tuple(compiled(arch="conv", aux_weight=0, projection=True).discriminator([x, y]).shape) == (8, 1)  # no head
    assert compiled(arch="conv", aux_weight=0, projection=True).class_loss(outputs, y) == 0.0
    assert ConditionalGAN(latent_dim=4).aux_weight == 1.0  # on by default, as in the CLI
    assert not ConditionalGAN(latent_dim=4).projection  # off by default (docs/gan.md: it cost label accuracy)
    config = model.get_config()
    assert config["aux_weight"] == 0.5 and config["num_classes"] == 10
    clone = ConditionalGAN.from_config(config)
    assert tuple(clone.discriminator([x, y]).shape) == (8, 11)
    with pytest.raises(ValueError, match="Received: aux_weight=-1"):
        ConditionalGAN(aux_weight=-1)


# your own discriminator: its width is checked when the model is made


def test_own_discriminator_must_have_the_width_the_options_need():
    from tests.test_gan import own_pair

    generator, one_logit = own_pair(conditional=True, width=1)  # the keras.io shape
    with pytest.raises(ValueError) as error:
        ConditionalGAN(latent_dim=4, generator=generator, discriminator=one_logit)
    message = str(error.value)
    assert message.startswith("The discriminator must output (batch, 11): one realness logit, then 10 class logits")
    assert "give it a final Dense(11), or pass aux_weight=0 with projection=True" in message
    assert message.endswith("Received: discriminator.output_shape=(None, 1)") and "\n" not in message
    # either fix works
    assert ConditionalGAN(latent_dim=4, generator=generator, discriminator=one_logit, aux_weight=0, projection=True)
    assert ConditionalGAN(latent_dim=4, generator=generator, discriminator=own_pair(True, width=11)[1])
    with pytest.raises(ValueError, match=r"must output \(batch, 1\).*Received: discriminator.output_shape=\(None, 11\)"):
        ConditionalGAN(latent_dim=4, generator=generator, discriminator=own_pair(True, width=11)[1], aux_weight=0,
                       projection=True)
