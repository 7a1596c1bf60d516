"""Every model's `model.keras` saved under one backend loads under the others.

The matrix: torch, jax and tensorflow each save the seven models (with
optimizer state set to random values, so it is in the file) and load the
files the other two saved: same weights and optimizer state bit for bit, the
loading backend's own optimizer classes, finite samples in [0, 1].
"""

import json

import pytest

pytestmark = pytest.mark.backends  # jax and tensorflow subprocesses: left out of the default run (conftest.py)

MODEL_SCRIPT = """
import json, os, keras, numpy as np
from kgen.specs import TrainConfig
from kgen.training import build_model

NAMES = ("ae", "vae", "gan", "cgan", "scgan", "lstm", "flow")
OPTIONS = {"ae": {}, "vae": {}, "gan": {"arch": "conv"}, "cgan": {}, "scgan": {}, "lstm": {"units": 32},
           "flow": {"width": 8, "steps": 2}}
backend = keras.config.backend()
report = {}

OTHERS = {"torch", "jax", "tensorflow"} - {backend}

def optimizers(model):
    opt = model.optimizer
    return getattr(opt, "optimizers", [opt])

def save(folder):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in NAMES:
        model = build_model(TrainConfig(model=name, seed=0, model_options=OPTIONS[name]))
        for opt in optimizers(model):
            if not opt.built:
                opt.build(model.trainable_variables)
        for v in model.optimizer.variables:
            v.assign(rng.random(v.shape).astype(v.dtype))
        model.save(os.path.join(folder, name + ".keras"))
        arrays = model.get_weights() + [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
        np.savez(os.path.join(folder, name + ".npz"), *arrays)

def load(folder):
    for name in NAMES:
        model = keras.saving.load_model(os.path.join(folder, name + ".keras"))
        saved = np.load(os.path.join(folder, name + ".npz"))
        arrays = model.get_weights() + [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
        same = len(arrays) == len(saved.files) and all(
            np.array_equal(a, saved[f"arr_{i}"]) for i, a in enumerate(arrays))
        samples = model.generate(4, seed=0)
        modules = [type(opt).__module__ for opt in optimizers(model)]
        report[f"{backend} loads {os.path.basename(folder)}:{name}"] = {
            "same_state": bool(same),
            "shape": list(samples.shape),
            "finite_in_range": bool(np.all(np.isfinite(samples)) and samples.min() >= 0 and samples.max() <= 1),
            "foreign_optimizer": any(other in m for m in modules for other in OTHERS),
        }
"""


def run_matrix_part(backend, run_on_backend, root, load_from, save_to=None):
    code = MODEL_SCRIPT + "".join(f"\nload({str(root / b)!r})" for b in load_from)
    if save_to:
        code += f"\nsave({str(root / save_to)!r})"
    code += "\nprint(json.dumps(report))"
    if backend == "torch":  # this process runs torch: same code, no subprocess
        namespace = {}
        exec(compile(MODEL_SCRIPT, "matrix", "exec"), namespace)
        for b in load_from:
            namespace["load"](str(root / b))
        if save_to:
            namespace["save"](str(root / save_to))
        return namespace["report"]
    return json.loads(run_on_backend(backend, code).strip().splitlines()[-1])


def test_every_model_loads_on_every_backend(tmp_path, run_on_backend):
    report = {}
    report.update(run_matrix_part("torch", run_on_backend, tmp_path, [], "torch"))
    report.update(run_matrix_part("jax", run_on_backend, tmp_path, ["torch"], "jax"))
    report.update(run_matrix_part("tensorflow", run_on_backend, tmp_path, ["torch", "jax"], "tensorflow"))
    report.update(run_matrix_part("torch", run_on_backend, tmp_path, ["jax", "tensorflow"]))
    report.update(run_matrix_part("jax", run_on_backend, tmp_path, ["tensorflow"]))
    # 3 savers x 2 loaders x 7 models
    assert len(report) == 42
    for key, r in report.items():
        assert r["same_state"], key  # weights and optimizer state, bit for bit
        assert r["shape"] == [4, 28, 28, 1] and r["finite_in_range"], key
        assert not r["foreign_optimizer"], key  # the loading backend's own optimizer class
