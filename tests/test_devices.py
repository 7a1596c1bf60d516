"""Data-parallel training on several devices (keras.distribution, jax backend).

The jax runs use two virtual CPU devices (`--xla_force_host_platform_device_count=2`,
which must be set before jax is imported), so they run in a subprocess.
"""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main

# Two devices each sum half the batch and the halves are then added: float32
# rounding differs from the one-device sum at about 1e-7 relative per
# operation, and the GAN's two-player steps amplify it over the steps of two
# epochs (1.4e-4 relative seen here). 1e-3 leaves room for that; a device that
# trains on a different share of the batch moves the losses by far more. (A
# batch copied whole to both devices would pass this check: the sharding test
# below rules that out.)
RTOL = 1e-3


@pytest.fixture(scope="module")
def jax_results(tmp_path_factory, run_on_backend):
    """One jax subprocess: histories on 1 and 2 devices, a resumed 2-device run, the shardings seen."""
    out = tmp_path_factory.mktemp("devices")
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    code = f"""
        import json, os
        import jax, keras, numpy as np
        from kgen import devices, files, runs, specs, training
        from kgen.models import VAE

        OPTIONS = {{"vae": {{"arch": "mlp"}}, "gan": {{"arch": "mlp"}}, "flow": {{"width": 8, "steps": 2}}}}

        def config(model, n, epochs, name):
            return specs.TrainConfig(
                model=model, epochs=epochs, batch_size=32, offline=True, limit=64, val_images=32, seed=3,
                out={str(out)!r}, name=name, devices=n, model_options=OPTIONS[model],
            )

        def history(run):
            return files.read_csv(os.path.join(run, "history.csv"))

        result = {{"devices": devices.count("all")}}
        for model in ("vae", "gan", "flow"):
            result[model] = [history(training.train(config(model, n, 2, f"{{model}}{{n}}"), verbose=0)) for n in (1, 2)]
        run = training.train(config("gan", 2, 1, "resumed"), verbose=0)
        training.resume(run, epochs=2, verbose=0)
        result["resumed"] = history(run)
        result["resumed_config"] = runs.load_run(run)["train"]["devices"]

        # what the compiled step receives: the batch split along its first axis over both devices
        seen = []

        class Probe(VAE):
            def train_step(self, state, data):
                x = data[0] if isinstance(data, tuple) else data  # (batch, 28, 28, 1)
                jax.debug.inspect_array_sharding(x, callback=lambda s: seen.append(s))
                return super().train_step(state, data)

        with devices.scope(2):
            model = Probe(latent_dim=2, seed=0)
            model.compile(optimizer="adam")
            model.fit(np.random.default_rng(0).random((64, 28, 28, 1), "float32"), batch_size=32, epochs=1, verbose=0)
        sharding = seen[0]
        result["batch_sharding"] = {{
            "devices": len(sharding.device_set),
            "fully_replicated": sharding.is_fully_replicated,
            "shard_shape": list(sharding.shard_shape((32, 28, 28, 1))),
        }}
        weight = model.trainable_variables[0].value.sharding
        result["weights_replicated"] = weight.is_fully_replicated and len(weight.device_set) == 2
        print(json.dumps(result))
        """
    # two virtual CPU devices: an XLA flag, read when jax starts
    return json.loads(run_on_backend("jax", code, timeout=900, env={"XLA_FLAGS": flags}).strip().splitlines()[-1])


def assert_same_history(a, b, rtol=RTOL):
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b):
        for key in ra:
            np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=rtol, atol=1e-6, err_msg=key)


def test_jax_sees_two_virtual_devices(jax_results):
    assert jax_results["devices"] == 2


@pytest.mark.parametrize("model", ["vae", "gan", "flow"])
def test_two_devices_train_as_one_with_the_same_global_batch(jax_results, model):
    one, two = jax_results[model]
    assert len(one) == 2 and any(k.startswith("val_") for k in one[0])
    assert_same_history(one, two)


def test_the_batch_is_split_across_both_devices(jax_results):
    sharding = jax_results["batch_sharding"]
    assert sharding["devices"] == 2 and not sharding["fully_replicated"]
    assert sharding["shard_shape"] == [16, 28, 28, 1]  # half of the global batch of 32 on each
    assert jax_results["weights_replicated"]


def test_resume_on_two_devices_is_exact(jax_results):
    straight = jax_results["gan"][1]
    assert jax_results["resumed_config"] == 2
    assert_same_history(straight, jax_results["resumed"], rtol=0)


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_several_devices_off_jax_is_one_clear_line(backend, artifacts):
    result = CliRunner().invoke(
        main, ["train", "vae", "--offline", "--devices", "2", "--backend", backend, "--out", str(artifacts)]
    )
    assert result.exit_code == 2
    assert "jax" in result.output and "Received: devices=2" in result.output
    assert "Traceback" not in result.output
    assert not any(artifacts.iterdir())


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_devices_must_be_a_positive_number_or_all(value, artifacts):
    result = CliRunner().invoke(main, ["train", "vae", "--offline", "--devices", value, "--out", str(artifacts)])
    assert result.exit_code == 2
    assert f"Received: devices={value!r}" in result.output


def test_batch_size_must_split_evenly(monkeypatch):
    from kgen import devices, specs

    monkeypatch.setattr(devices, "count", lambda n: int(n))  # as if there were 3 jax devices
    with pytest.raises(ValueError, match=r"multiple of devices \(3\).*Received: batch_size=32"):
        specs.TrainConfig(model="vae", batch_size=32, devices=3).validate()


def test_only_process_zero_writes_the_run(monkeypatch, artifacts):
    from kgen import devices, specs, training

    monkeypatch.setattr(devices, "is_chief", lambda: False)  # process 1 of a multi-host job
    config = specs.TrainConfig(model="vae", epochs=1, offline=True, limit=64, val_images=0, out=str(artifacts))
    assert training.train(config, verbose=0) is None
    assert not any(artifacts.iterdir())


def test_a_multi_host_job_is_joined_only_when_its_addresses_are_set(monkeypatch):
    import keras

    from kgen import devices

    calls = []
    monkeypatch.setattr(keras.distribution, "initialize", lambda: calls.append(1))
    monkeypatch.setattr(devices.backend, "DATA_PARALLEL", True)  # as on jax
    monkeypatch.delenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", raising=False)
    assert not devices.join_hosts() and not calls
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234,10.0.0.2:1234")
    assert devices.join_hosts() and calls == [1]
