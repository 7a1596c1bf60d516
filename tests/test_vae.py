"""The VAE and the autoencoder: building, train step, saving, generate."""

import keras
import numpy as np
import pytest

from kgen.models import VAE, AutoEncoder


def compiled(cls, **kwargs):
    model = cls(seed=3, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


# building


@pytest.mark.parametrize("cls", [VAE, AutoEncoder])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_shapes(cls, arch, tiny_images):
    model = cls(latent_dim=3, arch=arch)
    out = model.encode(tiny_images[:5])
    codes = out[0] if isinstance(out, tuple) else out
    assert tuple(codes.shape) == (5, 3)
    recon = model.reconstruct(tiny_images[:5])
    assert recon.shape == (5, 28, 28, 1)
    assert recon.min() >= 0 and recon.max() <= 1


def test_bad_options():
    with pytest.raises(ValueError, match=r"latent_dim must be an integer in \[1, 1024\]"):
        VAE(latent_dim=0)
    with pytest.raises(ValueError, match="Received: recon_loss='l1'"):
        VAE(recon_loss="l1")
    with pytest.raises(ValueError, match="Received: arch='rnn'"):
        AutoEncoder(arch="rnn")


# train step


@pytest.mark.parametrize("cls", [VAE, AutoEncoder])
def test_train_steps_lower_the_loss(cls, tiny_images):
    model = compiled(cls)
    before = model.evaluate(tiny_images, verbose=0, return_dict=True)["loss"]
    model.fit(tiny_images, epochs=15, batch_size=32, verbose=0)
    after = model.evaluate(tiny_images, verbose=0, return_dict=True)["loss"]
    assert after < 0.8 * before


def test_vae_logs_and_kl_weight(tiny_images):
    model = compiled(VAE, kl_weight=0.0)
    logs = model.fit(tiny_images, epochs=1, batch_size=16, verbose=0).history
    assert set(logs) == {"loss", "recon_loss", "kl_loss"}
    # with no KL weight the loss is the reconstruction term alone
    assert logs["loss"][0] == pytest.approx(logs["recon_loss"][0], rel=1e-5)
    assert logs["kl_loss"][0] > 0


def test_vae_mse_and_binarize(tiny_images):
    model = compiled(VAE, recon_loss="mse", binarize=True)
    logs = model.fit(tiny_images, epochs=2, batch_size=16, verbose=0).history
    assert np.all(np.isfinite(logs["loss"]))


def test_posterior_draws_use_the_model_seed_generator(tiny_images):
    model = VAE(seed=1)
    mean, log_var = model.encode(tiny_images[:4])
    a = keras.ops.convert_to_numpy(model.sample_posterior(mean, log_var))
    b = keras.ops.convert_to_numpy(model.sample_posterior(mean, log_var))
    assert not np.allclose(a, b)  # the generator's state moves on


def test_log_likelihood_is_below_elbo_bound(tiny_images):
    model = compiled(VAE)
    model.fit(tiny_images, epochs=3, batch_size=16, verbose=0)
    ll = model.log_likelihood(tiny_images[:8], k=50)
    recon, kl = model.losses_per_image(tiny_images[:8])
    elbo = -(keras.ops.convert_to_numpy(recon) + keras.ops.convert_to_numpy(kl))
    assert ll.shape == (8,) and np.all(ll < 0)
    # importance sampling with k draws is a tighter bound than one-draw ELBO on average
    assert ll.mean() > elbo.mean() - 5


def test_iwae_bound_trains_tightens_with_k_and_reloads(tiny_images, tmp_path):
    model = compiled(VAE, latent_dim=4, iwae_k=5, binarize=True)
    logs = model.fit(tiny_images, epochs=3, batch_size=16, verbose=0).history
    assert logs["loss"][-1] < logs["loss"][0]
    x = (tiny_images[:16] > 0.5).astype("float32")
    # the k-sample bound rises with k on average (Burda et al., theorem 1)
    one, many = model.log_likelihood(x, k=1).mean(), model.log_likelihood(x, k=500, chunk=64).mean()
    assert many > one
    # the chunked bound is the unchunked one up to Monte Carlo noise
    assert abs(model.log_likelihood(x, k=500).mean() - many) < 2.0
    path = str(tmp_path / "iwae.keras")
    model.save(path)
    assert keras.saving.load_model(path).iwae_k == 5


def test_iwae_k_is_checked():
    with pytest.raises(ValueError, match=r"iwae_k must be an integer in \[1, 1000\]"):
        VAE(iwae_k=0)
    with pytest.raises(ValueError, match="needs the Bernoulli likelihood"):
        VAE(iwae_k=5, recon_loss="mse")


# saving


@pytest.mark.parametrize("cls", [VAE, AutoEncoder])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_save_load_round_trip(cls, arch, tiny_images, tmp_path):
    model = compiled(cls, latent_dim=2, arch=arch)
    model.fit(tiny_images, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is cls and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.generate(6, seed=5), model.generate(6, seed=5))
    np.testing.assert_array_equal(loaded.reconstruct(tiny_images[:4]), model.reconstruct(tiny_images[:4]))
    # the optimizer state came back and training goes on from it
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    loaded.fit(tiny_images, epochs=1, batch_size=16, verbose=0)
    assert int(loaded.optimizer.iterations) == 4


# generate


@pytest.mark.parametrize("cls", [VAE, AutoEncoder])
def test_generate(cls):
    model = cls(latent_dim=4)
    images = model.generate(10, seed=1)
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images, model.generate(10, seed=1))
    assert not np.allclose(images, model.generate(10, seed=2))


def test_terminate_on_nonfinite_stops_fit_at_the_first_nan_loss(tiny_images):
    from kgen.callbacks import TerminateOnNonFinite

    model = VAE(latent_dim=2, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(1e30))  # diverges within a few steps
    history = model.fit(tiny_images, epochs=5, batch_size=8, verbose=0, callbacks=[TerminateOnNonFinite()])
    assert len(history.history["loss"]) == 1  # stopped inside the first epoch
    # without it, fit runs every epoch on NaN
    model = VAE(latent_dim=2, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    history = model.fit(tiny_images, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2 and not np.isfinite(history.history["loss"][-1])
