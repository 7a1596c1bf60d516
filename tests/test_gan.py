"""The GAN: networks, losses, the two-phase train step, both optimizers on every backend, the CLI."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main
from kgen import nets
from kgen.models import GAN
from kgen.models.gan import discriminator_loss, generator_loss
from kgen.optimizers import GANOptimizer
from kgen.specs import SPECS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def compiled(cls=GAN, **kwargs):
    model = cls(seed=3, **{"loss": "bce", **kwargs})
    model.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    return model


def values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def changed(before, variables):
    """For each variable: did it change from `before`?"""
    return [not np.array_equal(b, a) for b, a in zip(before, values(variables))]


# building


def test_mlp_networks_are_the_classic_pair():
    g, d = nets.generator("mlp", 64), nets.discriminator("mlp")
    dense = lambda net: [l.units for l in net.layers if isinstance(l, keras.layers.Dense)]  # noqa: E731
    assert dense(g) == [256, 512, 1024, 784]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in g.layers) == 3
    assert sum(isinstance(l, keras.layers.ReLU) for l in g.layers) == 3
    assert g.layers[-2].activation.__name__ == "sigmoid"
    assert dense(d) == [1024, 512, 256, 1]
    assert sum(isinstance(l, keras.layers.LeakyReLU) for l in d.layers) == 3
    assert tuple(g.input_shape) == (None, 64)


def test_conv_networks_go_up_from_7x7_and_down_by_strides():
    g, d = nets.generator("conv", 16), nets.discriminator("conv")
    shapes = [tuple(l.output.shape[1:]) for l in g.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert shapes == [(14, 14, 64), (28, 28, 32)]
    assert tuple(g.layers[0].output.shape[1:]) == (7 * 7 * 128,)
    assert g.layers[-1].activation.__name__ == "sigmoid" and tuple(g.layers[-1].output.shape[1:]) == (28, 28, 1)
    convs = [l for l in d.layers if isinstance(l, keras.layers.Conv2D)]
    assert [(c.filters, c.strides) for c in convs] == [(64, (2, 2)), (128, (2, 2))]
    assert tuple(d(keras.ops.zeros((3, 28, 28, 1))).shape) == (3, 1)


def test_spectral_norm_wraps_every_discriminator_layer_with_weights():
    d = nets.discriminator("conv", spectral_norm=True)
    wrapped = [l for l in d.layers if isinstance(l, keras.layers.SpectralNormalization)]
    assert [type(l.layer).__name__ for l in wrapped] == ["Conv2D", "Conv2D", "Dense"]
    assert not any(isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) for l in d.layers)
    assert len([v for v in d.non_trainable_variables if "vector_u" in v.path]) == 3
    assert not any(isinstance(l, keras.layers.SpectralNormalization) for l in nets.discriminator("conv").layers)


def test_discriminator_dropout_is_an_option():
    def dropouts(model):
        return [l.rate for l in model.discriminator.layers if isinstance(l, keras.layers.Dropout)]

    model = GAN(arch="conv", latent_dim=4)
    assert dropouts(model) == []  # none by default
    assert dropouts(GAN.from_config({**model.get_config(), "d_dropout": 0.5})) == [0.5, 0.5]
    assert dropouts(GAN(arch="conv", latent_dim=4, d_dropout=0.3)) == [0.3, 0.3]
    mlp = nets.discriminator("mlp", dropout=0.3)
    assert [type(l).__name__ for l in mlp.layers][1:] == ["Dense", "LeakyReLU", "Dropout"] * 3 + ["Dense"]


def test_bad_options():
    with pytest.raises(ValueError, match="Received: loss='wgan'"):
        GAN(loss="wgan")
    with pytest.raises(ValueError, match="Received: arch='rnn'"):
        GAN(arch="rnn")
    with pytest.raises(ValueError, match=r"latent_dim must be an integer in \[1, 1024\]"):
        GAN(latent_dim=0)
    with pytest.raises(ValueError, match="Received: d_dropout=1"):
        GAN(d_dropout=1)
    with pytest.raises(ValueError, match="Received: ema=1"):
        GAN(ema=1)
    with pytest.raises(ValueError, match="Received: diffaugment='flip'"):
        GAN(diffaugment="flip")
    with pytest.raises(ValueError, match="two optimizer instances"):
        adam = keras.optimizers.Adam()
        GANOptimizer(adam, adam)


# losses


def test_losses_at_known_logits():
    zero, big = keras.ops.zeros((4, 1)), keras.ops.full((4, 1), 30.0)
    f = lambda t: float(keras.ops.convert_to_numpy(t))  # noqa: E731
    # a discriminator that cannot tell: 2 ln 2 for it, ln 2 for the generator
    assert f(discriminator_loss("bce", zero, zero)) == pytest.approx(2 * np.log(2), rel=1e-5)
    assert f(generator_loss("bce", zero)) == pytest.approx(np.log(2), rel=1e-5)
    # a sure discriminator: no loss for it; the non-saturating generator loss stays large
    assert f(discriminator_loss("bce", big, -big)) == pytest.approx(0.0, abs=1e-6)
    assert f(generator_loss("bce", -big)) == pytest.approx(30.0, rel=1e-4)
    assert f(discriminator_loss("hinge", zero, zero)) == pytest.approx(2.0)
    assert f(discriminator_loss("hinge", big, -big)) == pytest.approx(0.0)
    assert f(generator_loss("hinge", -big)) == pytest.approx(30.0)


# the adversarial step


def test_each_phase_steps_only_its_network(tiny_images):
    model = compiled(arch="mlp", spectral_norm=False)
    d_vars, g_vars = model.discriminator.trainable_variables, model.generator.trainable_variables
    d0, g0 = values(d_vars), values(g_vars)
    out = model.discriminator_step(keras.ops.convert_to_tensor(tiny_images))
    assert set(out) == {"loss", "d_acc_real", "d_acc_fake"}
    assert all(changed(d0, d_vars)) and not any(changed(g0, g_vars))

    d1, g1 = values(d_vars), values(g_vars)
    model.generator_step(32)
    assert all(changed(g1, g_vars)) and not any(changed(d1, d_vars))
    assert int(model.optimizer.d_optimizer.iterations.numpy()) == 1
    assert int(model.optimizer.g_optimizer.iterations.numpy()) == 1



@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_discriminator_step_scores_real_and_fake_as_two_separate_calls_would(arch, tiny_images):
    # the step scores both halves in one pass; without dropout that must be the
    # loss and accuracies of two calls on the same images
    model = compiled(arch=arch, d_dropout=0.0, spectral_norm=False, diffaugment="")
    real = keras.ops.convert_to_tensor(tiny_images)
    state = model.seed_generator.state.numpy().copy()
    fake = model.generator(model.sample_noise(len(tiny_images)), training=True)
    real_logits = model.discriminator(real, training=True)
    fake_logits = model.discriminator(fake, training=True)
    model.seed_generator.state.assign(state)  # the step draws the same noise
    out = model.discriminator_step(real)
    expected = discriminator_loss("bce", real_logits, fake_logits)
    np.testing.assert_allclose(float(out["loss"]), keras.ops.convert_to_numpy(expected), rtol=1e-5)
    assert float(out["d_acc_real"]) == float(keras.ops.mean(real_logits > 0))
    assert float(out["d_acc_fake"]) == float(keras.ops.mean(fake_logits < 0))

@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_one_train_step_updates_both_networks(loss, tiny_images):
    model = compiled(arch="conv", loss=loss)
    d0, g0 = values(model.discriminator.trainable_variables), values(model.generator.trainable_variables)
    logs = model.train_on_batch(tiny_images, return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "d_acc_real", "d_acc_fake", "loss"}
    assert all(np.isfinite(list(logs.values())))
    assert 0 <= logs["d_acc_real"] <= 1 and 0 <= logs["d_acc_fake"] <= 1
    # every weight matrix moves (with the hinge loss at the start, the gradient of
    # the last bias is exactly 0: as many real logits below 1 as fake ones above -1)
    for before, net in ((d0, model.discriminator), (g0, model.generator)):
        moved = changed(before, net.trainable_variables)
        assert all(m for m, v in zip(moved, net.trainable_variables) if "kernel" in v.path)
    assert model.optimizer.iterations is model.optimizer.g_optimizer.iterations


def test_generate_shapes_range_and_seed():
    model = GAN(arch="conv", latent_dim=8)
    images = model.generate(5, seed=1)
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images, model.generate(5, seed=1))
    assert not np.array_equal(images, model.generate(5, seed=2))
    assert model.generate(1).shape == (1, 28, 28, 1)
    with pytest.raises(ValueError, match="Received: n=0"):
        model.generate(0)


# the loss hooks: one objective for the training steps and for evaluate


def own_pair(conditional, width=1):
    """A tiny generator and discriminator of your own with no batch norm or dropout: the same in training and inference."""
    from keras import layers

    z, images = keras.Input((4,)), keras.Input((28, 28, 1))
    if not conditional:
        generator = keras.Model(z, layers.Reshape((28, 28, 1))(layers.Dense(784, activation="sigmoid")(z)))
        return generator, keras.Model(images, layers.Dense(width)(layers.Flatten()(images)))
    labels, d_labels = keras.Input((), dtype="int32"), keras.Input((), dtype="int32")
    h = layers.Concatenate()([z, layers.Embedding(10, 4)(labels)])
    generator = keras.Model([z, labels], layers.Reshape((28, 28, 1))(layers.Dense(784, activation="sigmoid")(h)))
    h = layers.Concatenate()([layers.Flatten()(images), layers.Embedding(10, 4)(d_labels)])
    return generator, keras.Model([images, d_labels], layers.Dense(width)(h))


class LeastSquares:
    """The loss hooks of a least-squares GAN, keeping the classifier and code terms (the docstring's example)."""

    def d_loss(self, real_outputs, fake_outputs, labels=None, fake_labels=None):
        real, fake = real_outputs[:, :1], fake_outputs[:, :1]
        adversarial = keras.ops.mean(keras.ops.square(real - 1.0)) + keras.ops.mean(keras.ops.square(fake))
        return adversarial + self.class_loss(real_outputs, labels) + self.code_loss(fake_outputs, fake_labels)

    def g_loss(self, fake_outputs, labels=None, fake_labels=None):
        adversarial = keras.ops.mean(keras.ops.square(fake_outputs[:, :1] - 1.0))
        return adversarial + self.class_loss(fake_outputs, labels) + self.code_loss(fake_outputs, fake_labels)


def hooked(conditional, least_squares=False):
    """A compiled tiny GAN or cGAN (with an auxiliary classifier) on `own_pair`; with `least_squares`, its LSGAN."""
    from kgen.models import ConditionalGAN

    base = ConditionalGAN if conditional else GAN
    cls = type("LS" + base.__name__, (LeastSquares, base), {}) if least_squares else base
    generator, discriminator = own_pair(conditional, width=11 if conditional else 1)
    return compiled(cls, latent_dim=4, ema=0.0, generator=generator, discriminator=discriminator)


def batch(real_digits, conditional):
    """16 digits: the `fit` arguments, the images as a tensor and the labels as one (None for a GAN)."""
    images, labels = real_digits[0][:16], real_digits[1][:16].astype("int32")
    args = (images, labels) if conditional else (images,)
    return args, keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels) if conditional else None


def outputs_by_hand(model, real, labels, state, training):
    """The discriminator's outputs on `real` and on images drawn from the seed generator's `state`."""
    model.seed_generator.state.assign(state)
    n = real.shape[0]
    fake_labels = model.fake_labels(labels, n)
    fake = model.generator(model.generator_inputs(model.sample_noise(n), fake_labels), training=training)
    real_out = model.discriminator(model.discriminator_inputs(real, labels), training=training)
    fake_out = model.discriminator(model.discriminator_inputs(fake, labels), training=training)
    return real_out, fake_out, fake_labels


def f(tensor):
    return float(keras.ops.convert_to_numpy(tensor))


@pytest.mark.parametrize("conditional", [False, True])
def test_evaluate_reports_the_losses_the_training_steps_optimise(conditional, real_digits):
    model = hooked(conditional)
    args, real, labels = batch(real_digits, conditional)
    state = model.seed_generator.state.numpy().copy()
    evaluated = model.evaluate(*args, batch_size=16, verbose=0, return_dict=True)
    # test_step: the hooks on the outputs in inference mode, from the same noise
    real_out, fake_out, fake_labels = outputs_by_hand(model, real, labels, state, training=False)
    d_loss, g_loss = f(model.d_loss(real_out, fake_out, labels, fake_labels)), f(model.g_loss(fake_out, labels, fake_labels))
    np.testing.assert_allclose(evaluated["d_loss"], d_loss, rtol=1e-5)
    np.testing.assert_allclose(evaluated["g_loss"], g_loss, rtol=1e-5)
    if conditional:  # the classifier's term is in both
        assert f(model.class_loss(real_out, labels)) > 0.1 and f(model.class_loss(fake_out, labels)) > 0.1
    # the training steps, on the same batch and noise (these networks are the same in both modes),
    # optimise what evaluate reported: the generator's step first (it leaves the discriminator as it is)
    generator = values(model.generator.weights)
    model.seed_generator.state.assign(state)
    np.testing.assert_allclose(f(model.generator_step(16, labels)["loss"]), evaluated["g_loss"], rtol=1e-5)
    for variable, value in zip(model.generator.weights, generator):
        variable.assign(value)
    model.seed_generator.state.assign(state)
    np.testing.assert_allclose(f(model.discriminator_step(real, labels)["loss"]), evaluated["d_loss"], rtol=1e-5)


@pytest.mark.parametrize("conditional", [False, True])
def test_overriding_the_loss_hooks_changes_what_fit_trains_and_evaluate_reports(conditional, real_digits):
    model = hooked(conditional, least_squares=True)
    args, real, labels = batch(real_digits, conditional)
    square = lambda t: keras.ops.mean(keras.ops.square(t))  # noqa: E731
    extra = lambda out: f(model.class_loss(out, labels)) if conditional else 0.0  # noqa: E731
    state = model.seed_generator.state.numpy().copy()
    # evaluate: the least-squares losses, not the built-in BCE
    evaluated = model.evaluate(*args, batch_size=16, verbose=0, return_dict=True)
    real_out, fake_out, fake_labels = outputs_by_hand(model, real, labels, state, training=False)
    d_ls = f(square(real_out[:, :1] - 1.0) + square(fake_out[:, :1])) + extra(real_out)
    np.testing.assert_allclose(evaluated["d_loss"], d_ls, rtol=1e-5)
    np.testing.assert_allclose(evaluated["g_loss"], f(square(fake_out[:, :1] - 1.0)) + extra(fake_out), rtol=1e-5)
    assert abs(evaluated["d_loss"] - f(GAN.d_loss(model, real_out, fake_out, labels, fake_labels))) > 1e-3
    assert abs(evaluated["g_loss"] - f(GAN.g_loss(model, fake_out, labels, fake_labels))) > 1e-3
    # fit logs them too: the discriminator's loss before its step, the generator's against the stepped discriminator
    generator = values(model.generator.weights)
    model.seed_generator.state.assign(state)
    logs = model.fit(*args, batch_size=16, epochs=1, verbose=0, shuffle=False).history
    np.testing.assert_allclose(logs["d_loss"][0], d_ls, rtol=1e-5)
    for variable, value in zip(model.generator.weights, generator):
        variable.assign(value)
    model.seed_generator.state.assign(state)
    model.sample_noise(16)  # the discriminator's step drew its noise first
    fake = model.generator(model.generator_inputs(model.sample_noise(16), labels))
    fake_out = model.discriminator(model.discriminator_inputs(fake, labels))
    np.testing.assert_allclose(logs["g_loss"][0], f(square(fake_out[:, :1] - 1.0)) + extra(fake_out), rtol=1e-5)


# the InfoGAN code


def test_codes_make_an_infogan_whose_discriminator_reads_the_code_back(tiny_images):
    model = compiled(arch="conv", latent_dim=8, codes=4, code_weight=2.0, diffaugment="")
    assert model.generator.input_shape == [(None, 8), (None,)]  # [noise, code]
    assert model.discriminator.output_shape == (None, 5)  # realness logit, then 4 code logits
    # the discriminator's step: its loss plus twice (code_weight) the code head's cross-entropy on the generated half
    real = keras.ops.convert_to_tensor(tiny_images)
    n = len(tiny_images)
    state = model.seed_generator.state.numpy().copy()
    codes = model.fake_labels(None, n)  # drawn first, then the noise
    fake = model.generator([model.sample_noise(n), codes], training=True)
    real_out, fake_out = model.discriminator(real, training=True), model.discriminator(fake, training=True)
    model.seed_generator.state.assign(state)
    out = {k: keras.ops.convert_to_numpy(v) for k, v in model.discriminator_step(real).items()}
    code_ce = keras.ops.mean(keras.ops.sparse_categorical_crossentropy(codes, fake_out[:, 1:], from_logits=True))
    expected = discriminator_loss("bce", real_out[:, :1], fake_out[:, :1]) + 2.0 * code_ce
    expected, code_ce = (keras.ops.convert_to_numpy(t) for t in (expected, code_ce))  # no autograd graph
    np.testing.assert_allclose(float(out["loss"]), keras.ops.convert_to_numpy(expected), rtol=1e-5)
    assert float(code_ce) > 0.1  # an untrained head: the term is there
    # the code head is trained by both steps: its kernel moves in the discriminator's step
    head = [v for v in model.discriminator.trainable_variables if v.shape == (6272, 4)]
    assert len(head) == 1


def test_own_discriminator_must_have_a_head_for_the_codes():
    generator, one_logit = own_pair(conditional=False, width=1)
    z = keras.Input((4,))
    with_codes = keras.Model([z, keras.Input((), dtype="int32")], generator(z))
    with pytest.raises(ValueError, match=r"output \(batch, 5\): one realness logit, then 4 code logits \(codes=4\); "
                       r"give it a final Dense\(5\), or pass codes=0\. Received: discriminator.output_shape=\(None, 1\)"):
        GAN(latent_dim=4, codes=4, generator=with_codes, discriminator=one_logit)
    assert GAN(latent_dim=4, codes=4, generator=with_codes, discriminator=own_pair(False, width=5)[1]).codes == 4
    with pytest.raises(ValueError, match=r"must output \(batch, 1\).*Received: discriminator.output_shape=\(None, 5\)"):
        GAN(latent_dim=4, generator=generator, discriminator=own_pair(False, width=5)[1])


def test_codes_in_generate(tiny_images):
    model = compiled(arch="conv", latent_dim=8, codes=4)
    model.train_on_batch(tiny_images)
    images = model.generate(6, seed=1)
    np.testing.assert_array_equal(images, model.generate(6, seed=1))  # noise and codes from the seed
    z = np.repeat(np.random.default_rng(0).normal(size=(1, 8)).astype("float32"), 4, axis=0)
    by_code = model.generate(4, z=z, codes=[0, 1, 2, 3])
    assert all(not np.array_equal(by_code[0], by_code[i]) for i in (1, 2, 3))  # the code changes the image
    same = model.generate(4, z=z, seed=2)  # noise given: one code for every image
    assert all(np.array_equal(same[0], same[i]) for i in (1, 2, 3))
    np.testing.assert_allclose(model.generate(2, z=z[:2], codes=3), by_code[[3, 3]], atol=1e-6)
    with pytest.raises(ValueError, match="Received: code=4"):
        model.generate(2, codes=[0, 4])
    with pytest.raises(ValueError, match="has no codes"):
        GAN(latent_dim=8).generate(2, codes=1)


@pytest.mark.parametrize("codes", [1, -2, 2.5, True])
def test_bad_codes(codes):
    with pytest.raises(ValueError, match="Received: codes="):
        GAN(codes=codes)


@pytest.mark.parametrize("weight", [0, -1.0])
def test_bad_code_weight(weight):
    with pytest.raises(ValueError, match=f"Received: code_weight={weight}"):
        GAN(codes=10, code_weight=weight)


def test_a_conditional_gan_takes_no_codes():
    from kgen.models import ConditionalGAN

    with pytest.raises(ValueError, match="not InfoGAN codes. Received: codes=3"):
        ConditionalGAN(codes=3)
    assert ConditionalGAN(latent_dim=8).get_config()["codes"] == 0


# the generator's moving average and spectral normalization


def test_ema_is_the_moving_average_of_the_generator(tiny_images):
    model = compiled(arch="conv", latent_dim=8, ema=0.9)
    assert model.ema_generator is not None and not model.ema_generator.trainable_variables
    ema_ids = {id(v) for v in model.ema_generator.weights}
    assert ema_ids <= {id(v) for v in model.non_trainable_variables}  # carried by jax's state, saved
    before = values(model.generator.weights)
    np.testing.assert_array_equal(before[0], values(model.ema_generator.weights)[0])  # starts as a copy
    model.train_on_batch(tiny_images)
    decay = min(0.9, (1 + 1) / (10 + 1))  # the warm-up at step 1
    for b, a, e in zip(before, values(model.generator.weights), values(model.ema_generator.weights)):
        np.testing.assert_allclose(e, decay * b + (1 - decay) * a, rtol=1e-5, atol=1e-6)
    assert any(changed(before, model.ema_generator.weights))
    # samples come from the average, not from the generator in training
    z = keras.random.normal((4, 8), seed=0)
    np.testing.assert_allclose(model.generate(4, z=z), keras.ops.convert_to_numpy(model.ema_generator(z)), atol=1e-6)
    assert not np.allclose(model.generate(4, z=z), keras.ops.convert_to_numpy(model.generator(z)), atol=1e-4)
    plain = compiled(arch="mlp", latent_dim=8, ema=0)
    assert plain.ema_generator is None and plain.sampler is plain.generator


EMA_SN_CHECK = """
import json, keras, numpy as np
from tests.test_gan import tiny_state_change
print(json.dumps(tiny_state_change()))
"""


def tiny_state_change():
    """Two fit steps of a GAN and a cGAN with EMA, spectral norm and DiffAugment: which states moved."""
    import keras

    from kgen.data import load_bundled
    from kgen.models import MODELS

    images, labels = load_bundled("train")
    x, y = (images[:16, :, :, None] / 255.0).astype("float32"), labels[:16]
    result = {"backend": keras.config.backend()}
    for name in ("gan", "cgan"):
        model = MODELS[name](arch="mlp", latent_dim=8, seed=0, spectral_norm=True, diffaugment="translation,cutout")
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
        groups = {
            "ema": model.ema_generator.weights,
            "vector_u": [v for v in model.discriminator.non_trainable_variables if "vector_u" in v.path],
            "seed": [model.seed_generator.state],
        }
        before = {k: [np.array(keras.ops.convert_to_numpy(v)) for v in vs] for k, vs in groups.items()}
        model.fit(*((x, y) if name == "cgan" else (x,)), batch_size=8, epochs=1, verbose=0)
        for k, vs in groups.items():
            result[f"{name}_{k}"] = [not np.array_equal(b, keras.ops.convert_to_numpy(v)) for b, v in zip(before[k], vs)]
        result[f"{name}_ema_differs_from_generator"] = not np.allclose(
            keras.ops.convert_to_numpy(model.ema_generator.weights[0]), keras.ops.convert_to_numpy(model.generator.weights[0])
        )
    return result


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_ema_power_iteration_and_augmentation_seeds_move_on_every_trainer(backend, run_on_backend):
    # on jax these are non-trainable variables threaded through the stateless trainer's state
    result = tiny_state_change() if backend == "torch" else json.loads(
        run_on_backend(backend, EMA_SN_CHECK).strip().splitlines()[-1]
    )
    assert result["backend"] == backend
    for name in ("gan", "cgan"):
        assert result[f"{name}_ema"] and all(result[f"{name}_ema"]), result
        # three hidden layers and the logit (the cGAN's classifier head has no spectral norm)
        assert len(result[f"{name}_vector_u"]) == 4 and all(result[f"{name}_vector_u"]), result
        assert all(result[f"{name}_seed"]) and result[f"{name}_ema_differs_from_generator"], result


# both optimizers on every backend: k steps, k updates each, moments moving, saving


def train_save_load(name, arch, path, resume=False):
    """Trains `name` for 3 + 3 steps, saves, loads, [trains one more step]; returns what happened."""
    import keras

    from kgen.data import load_bundled
    from kgen.models import MODELS

    images, labels = load_bundled("train")
    x, y = (images[:24, :, :, None] / 255.0).astype("float32"), labels[:24]
    args = (x, y) if name == "cgan" else (x,)
    # bce: with the hinge loss the last bias has no gradient while every logit is inside the margin
    codes = {"codes": 4} if name == "infogan" else {}  # the unconditional GAN with an InfoGAN code
    model = MODELS["gan" if name == "infogan" else name](arch=arch, latent_dim=16, seed=0, loss="bce", **codes)
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
    )
    pair = model.optimizer
    subs = {"d": pair.d_optimizer, "g": pair.g_optimizer}

    def moments(opt):
        return [v.numpy().copy() for v in opt.variables if "momentum" in v.name or "velocity" in v.name]

    result = {"backend": keras.config.backend()}
    first = model.fit(*args, batch_size=8, epochs=1, verbose=0).history  # 3 steps
    m1 = {k: moments(o) for k, o in subs.items()}
    second = model.fit(*args, batch_size=8, epochs=1, verbose=0).history  # 3 more
    m2 = {k: moments(o) for k, o in subs.items()}
    for k, opt in subs.items():
        result[f"{k}_steps"] = int(opt.iterations.numpy())
        result[f"{k}_moments"] = len(m1[k])
        result[f"{k}_moments_nonzero_after_3"] = all(np.any(m != 0) for m in m1[k])
        result[f"{k}_moments_moved_3_to_6"] = all(not np.array_equal(a, b) for a, b in zip(m1[k], m2[k]))
    result["losses"] = {k: first[k] + second[k] for k in ("d_loss", "g_loss")}

    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    result["load_warnings"] = [str(w.message) for w in caught]
    result["optimizer_state_equal"] = len(loaded.optimizer.variables) == len(pair.variables) and all(
        np.array_equal(a.numpy(), b.numpy()) for a, b in zip(pair.variables, loaded.optimizer.variables)
    )
    result["same_images"] = bool(np.allclose(model.generate(6, seed=5), loaded.generate(6, seed=5), atol=1e-6))
    if resume:
        loaded.fit(*[a[:8] for a in args], batch_size=8, epochs=1, verbose=0)  # one more step
        result["steps_after_resuming"] = [int(o.iterations.numpy()) for o in loaded.optimizer.optimizers]
    return result


CHECK = """
import json, sys
from tests.test_gan import train_save_load
print(json.dumps([train_save_load("gan", "conv", sys.argv[1] + "/g.keras"),
                  train_save_load("cgan", "conv", sys.argv[1] + "/c.keras"),
                  train_save_load("infogan", "conv", sys.argv[1] + "/i.keras")]))
"""


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_both_optimizers_step_and_save_on_every_backend(backend, run_on_backend, tmp_path):
    if backend == "torch":  # this process
        results = [
            train_save_load("gan", "conv", str(tmp_path / "g.keras"), resume=True),
            train_save_load("cgan", "conv", str(tmp_path / "c.keras"), resume=True),
            train_save_load("infogan", "conv", str(tmp_path / "i.keras"), resume=True),
        ]
    else:
        code = f"import sys; sys.argv = ['-', {str(tmp_path)!r}]\n" + CHECK
        results = json.loads(run_on_backend(backend, code).strip().splitlines()[-1])
    for r in results:
        assert r["backend"] == backend
        for k in ("d", "g"):
            assert r[f"{k}_steps"] == 6, r  # k steps: k updates of each optimizer
            assert r[f"{k}_moments"] > 0
            assert r[f"{k}_moments_nonzero_after_3"], r
            assert r[f"{k}_moments_moved_3_to_6"], r
        for curve in r["losses"].values():
            assert np.all(np.isfinite(curve)) and curve[0] != curve[1]  # finite, and moving
        assert not [w for w in r["load_warnings"] if "Skipping" in w or "compile" in w], r["load_warnings"]
        assert r["optimizer_state_equal"] and r["same_images"]
        if backend == "torch":  # the loaded model keeps training (the jax state threading is checked above)
            assert r["steps_after_resuming"] == [7, 7]


# the CLI


def test_cli_trains_a_gan_and_refuses_a_label(artifacts):
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["train", "gan", "--arch", "mlp", "--epochs", "1", "--limit", "64", "--batch-size", "32",
         "--loss", "hinge", "--d-lr", "1e-4", "--g-beta-1", "0.3", "--ema", "0", "--no-spectral-norm",
         "--diffaugment", "translation", "--codes", "0", "--offline", "--out", str(artifacts)],
    )
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    for path in ("model.keras", "history.csv", "samples/epoch_001.png", "plots/dynamics.png"):
        assert os.path.isfile(os.path.join(run, path)), path
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["model_config"]["loss"] == "hinge" and config["model_config"]["latent_dim"] == 64
    assert config["model_config"]["ema"] == 0 and config["model_config"]["spectral_norm"] is False
    assert config["model_config"]["diffaugment"] == "translation" and config["model_config"]["arch"] == "mlp"
    assert config["model_config"]["codes"] == 0  # the plain GAN, asked for
    assert config["train"]["gan_optimizers"]["d"]["learning_rate"] == 1e-4
    assert config["train"]["gan_optimizers"]["g"]["beta_1"] == 0.3

    out = str(artifacts / "s.png")
    result = runner.invoke(main, ["sample", run, "-n", "4", "--out", out])
    assert result.exit_code == 0, result.output and os.path.isfile(out)
    result = runner.invoke(main, ["sample", run, "--label", "3"])
    assert result.exit_code != 0
    assert "--label applies to conditional (cgan) runs only" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["sample", run, "--code", "0"])
    assert result.exit_code == 2 and "--code applies to gan runs trained with --codes only" in result.output


def test_cli_trains_an_infogan_with_a_row_per_code(artifacts):
    import matplotlib.image

    result = CliRunner().invoke(
        main,
        ["train", "gan", "--arch", "mlp", "--codes", "4", "--epochs", "1", "--limit", "64", "--batch-size", "32",
         "--offline", "--out", str(artifacts)],
    )
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    assert json.load(open(os.path.join(run, "config.json")))["model_config"]["codes"] == 4
    # the epoch grid: four rows (one per code) of ten, each cell 28 + 2 pixels, drawn at 2x
    grid = matplotlib.image.imread(os.path.join(run, "samples", "epoch_001.png"))
    assert grid.shape[:2] == (2 * (4 * 30 + 2), 2 * (10 * 30 + 2))
    # kgen sample: column k holds code k, or only the code asked for; an .npz keeps the codes
    result = CliRunner().invoke(main, ["sample", run, "-n", "8", "--seed", "3", "--out", str(artifacts / "c.npz")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["sample", run, "-n", "3", "--code", "2", "--out", str(artifacts / "two.npz")])
    assert result.exit_code == 0, result.output
    with np.load(artifacts / "c.npz") as f, np.load(artifacts / "two.npz") as g:
        assert list(f["codes"]) == [0, 1, 2, 3, 0, 1, 2, 3] and list(g["codes"]) == [2, 2, 2]
        assert f["images"].shape == (8, 28, 28, 1)
    result = CliRunner().invoke(main, ["sample", run, "-n", "8", "--out", str(artifacts / "c.png")])
    assert result.exit_code == 0 and matplotlib.image.imread(artifacts / "c.png").shape[:2] == (2 * (2 * 30 + 2), 2 * (4 * 30 + 2))
    for code, message in ((4, "this run draws codes 0 to 3. Received: 4"), (-1, "Received: -1")):
        result = CliRunner().invoke(main, ["sample", run, "--code", str(code)])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["train", "gan", "--codes", "1", "--offline", "--out", str(artifacts / "x")])
    assert result.exit_code == 1 and "Received: codes=1" in result.output and "Traceback" not in result.output
    assert not os.path.exists(artifacts / "x")


def test_cli_gan_defaults_and_a_bad_policy(artifacts):
    result = CliRunner().invoke(main, ["train", "gan", "--diffaugment", "flip", "--offline", "--out", str(artifacts)])
    assert result.exit_code == 1 and "Received: diffaugment='flip'" in result.output, result.output
    assert not os.listdir(artifacts)
    help_text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split()).replace("- ", "-")  # click wraps at hyphens
    for shown in ("[default: hinge]", "[default: 0.999;", "[default: no-spectral-norm]", "[default: 0.0004;",
                  "[default: (gan, cgan: 0.0008; scgan: 0.002); 0<x<=1]", "[default: 10; 0<=x<=100]", "[default: 2.0; x>0]"):
        assert shown in help_text
    # the gan's InfoGAN code is on by default on the command line; the Python class is a plain GAN
    assert SPECS["gan"].options["codes"] == 10 and SPECS["gan"].options["code_weight"] == 2.0
    assert GAN().codes == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "vae", "--loss", "hinge"], "--loss applies to gan, cgan and scgan only"),
        (["train", "ae", "--g-lr", "1e-3"], "--g-learning-rate applies to gan, cgan and scgan only"),
        (["train", "vae", "--d-dropout", "0"], "--d-dropout applies to gan, cgan and scgan only"),
        (["train", "gan", "--lr", "1e-3"], "use --d-learning-rate and --g-learning-rate"),
        (["train", "gan", "--d-beta-1", "1"], "--d-beta-1"),
        (["train", "cgan", "--loss", "wgan"], "--loss"),
        (["train", "vae", "--ema", "0.9"], "--ema applies to gan, cgan, scgan and flow only"),
        (["train", "ae", "--no-spectral-norm"], "--spectral-norm applies to gan, cgan and scgan only"),
        (["train", "vae", "--diffaugment", ""], "--diffaugment applies to gan, cgan and scgan only"),
        (["train", "gan", "--aux-weight", "1"], "--aux-weight applies to cgan and scgan only"),
        (["train", "gan", "--projection"], "--projection applies to cgan and scgan only"),
        (["train", "gan", "--ema", "1"], "--ema"),
        (["train", "cgan", "--codes", "10"], "--codes applies to gan only"),
        (["train", "gan", "--codes", "-1"], "--codes"),
    ],
)
def test_cli_rejects_misplaced_gan_options(args, message, artifacts):
    result = CliRunner().invoke(main, args + ["--offline", "--out", str(artifacts)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not os.listdir(artifacts)  # nothing written
