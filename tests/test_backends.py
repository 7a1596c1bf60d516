"""AE and VAE train, save and load on jax and tensorflow from the same code.

The test process runs on torch (the tests of the other files); each backend
here runs one subprocess that trains both models a few steps, checks that the
loss is finite and falls, saves, loads, compares outputs and trains on.
"""

import json

import pytest

SCRIPT = """
import json, os, tempfile
import keras, numpy as np
from kgen.data import load_bundled
from kgen.models import VAE, AutoEncoder

x = (load_bundled("train")[0][:64, :, :, None] / 255.0).astype("float32")
report = {"backend": keras.config.backend()}
for cls, arch in ((VAE, "mlp"), (VAE, "conv"), (AutoEncoder, "mlp")):
    model = cls(latent_dim=2, arch=arch, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    losses = model.fit(x, epochs=6, batch_size=32, verbose=0).history["loss"]
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    same = float(np.abs(loaded.generate(4, seed=1) - model.generate(4, seed=1)).max())
    iters = int(loaded.optimizer.iterations)
    more = loaded.fit(x, epochs=1, batch_size=32, verbose=0).history["loss"]
    evaluated = loaded.evaluate(x, batch_size=32, verbose=0, return_dict=True)["loss"]
    report[f"{cls.__name__}-{arch}"] = {
        "losses": losses, "same": same, "iterations": iters,
        "after_load": more, "iterations_after": int(loaded.optimizer.iterations),
        "evaluated": evaluated,
    }
# kgen's `backend.forward` outside a traced step: on jax one compiled call of the whole network
from kgen import backend
z = np.random.default_rng(0).normal(size=(5, 2)).astype("float32")
eager = backend.forward(model.decoder, z)
report["forward"] = {
    "difference": float(np.abs(np.asarray(eager) - np.asarray(model.decoder(z, training=False))).max()),
    "dtype": keras.backend.standardize_dtype(eager.dtype),
    "compiled": keras.config.backend() == "jax" and model.decoder in backend.jax._compiled,
}
print(json.dumps(report))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_train_save_load_on_backend(backend, run_on_backend):
    report = json.loads(run_on_backend(backend, SCRIPT).strip().splitlines()[-1])
    assert report["backend"] == backend
    for name in ("VAE-mlp", "VAE-conv", "AutoEncoder-mlp"):
        r = report[name]
        assert all(abs(v) < 1e9 for v in r["losses"] + r["after_load"]), name
        assert r["losses"][-1] < r["losses"][0], name  # training moves the loss down
        assert r["same"] == 0.0, name  # loaded model generates identically
        assert r["iterations"] == 12 and r["iterations_after"] == 14, name
        assert 0 < r["evaluated"] < r["losses"][0], name  # model.evaluate runs on this backend too
    forward = report["forward"]
    assert forward["difference"] < 1e-5 and forward["dtype"] == "float32"
    assert forward["compiled"] == (backend == "jax")
