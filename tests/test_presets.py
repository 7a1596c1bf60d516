"""Presets (kgen.presets): made from a run, listed, loaded, used wherever a run is; the shipped ones still measure up.

Most tests use a tiny preset exported on the fly from a one-epoch cGAN, in a
temporary presets folder (`kgen.presets.ROOT` monkeypatched). The last ones
iterate over the presets kgen ships (`kgen/presets/*/`): on every backend each
must draw its fingerprint (`export.fingerprint`, 16 images from fixed inputs)
as its `metadata.json` records it; in the slow run each draws 1,000 samples
and must measure what its metadata says, within `TOLERANCE`.
"""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import kgen
from kgen import checkpoint, files, presets, runs, specs, training
from kgen.cli.main import main
from kgen.errors import PresetError
from kgen.presets.export import export_preset, fingerprint, measure

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIPPED = presets.names()  # the presets kgen ships, read when the tests are collected
NAME = "tiny-cgan"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error:") and "Traceback" not in result.output, result.output
    assert sum(line.startswith("Error:") for line in lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch mlp cGAN on 64 digits, measured by `kgen evaluate` on 100 samples (no figures)."""
    from kgen.evaluation.evaluate import evaluate

    config = specs.TrainConfig(
        model="cgan", epochs=1, batch_size=32, limit=64, val_images=0, offline=True,
        out=str(tmp_path_factory.mktemp("artifacts")), model_options={"arch": "mlp", "latent_dim": 8},
    )
    run = training.train(config, verbose=0)
    evaluate(run, num_samples=100, ll_samples=0, figures=False)
    return run


@pytest.fixture(scope="module")
def shelf(tiny_run, tmp_path_factory):
    """A presets folder holding one preset, exported from the tiny run."""
    root = tmp_path_factory.mktemp("presets")
    export_preset(tiny_run, NAME, description="a one-epoch test cGAN", root=root, command="kgen export-preset RUN tiny-cgan")
    return root


@pytest.fixture
def shipped(shelf, monkeypatch):
    """The tiny preset as if kgen shipped it."""
    monkeypatch.setattr(presets, "ROOT", str(shelf))
    return shelf


def test_export_writes_config_metadata_and_the_sampling_weights_only(shelf, tiny_run):
    import h5py

    folder = shelf / NAME
    assert sorted(os.listdir(shelf)) == [NAME]  # no temporary folder left behind
    assert sorted(os.listdir(folder)) == ["config.json", "metadata.json", "model.weights.h5"]
    with h5py.File(folder / "model.weights.h5") as f:  # the moving average draws: no optimizer, discriminator or trained copy
        assert sorted(f.keys()) == ["ema_generator", "vars"]
    assert os.path.getsize(folder / "model.weights.h5") < os.path.getsize(os.path.join(tiny_run, runs.MODEL)) / 3
    config = files.read_json(folder / "config.json")
    assert config["class_name"] == "ConditionalGAN" and "compile_config" not in config
    meta = files.read_json(folder / "metadata.json")
    run_metrics = files.read_json(os.path.join(tiny_run, runs.METRICS))
    assert meta["name"] == NAME and meta["model"] == "cgan" and meta["description"] == "a one-epoch test cGAN"
    assert meta["numbers"] == presets.headline(run_metrics) and meta["num_samples"] == 100
    assert {"fid", "fid_floor", "precision", "recall", "labels_as_asked", "worst_class_accuracy"} <= set(meta["numbers"])
    assert meta["check"]["num_samples"] == presets.CHECK_SAMPLES and meta["check"]["backend"] == "torch"
    assert set(meta["check"]["numbers"]) == set(meta["numbers"])
    assert meta["evaluator"]["sha256"] == run_metrics["evaluator"]["sha256"]
    assert meta["kgen_version"] == kgen.__version__ and meta["export_command"] == "kgen export-preset RUN tiny-cgan"
    assert meta["train_command"] and meta["created"] and meta["run_config"]["model"] == "cgan"
    assert meta["weights"]["bytes"] == os.path.getsize(folder / "model.weights.h5")
    assert meta["size_bytes"] == os.path.getsize(folder / "model.weights.h5") + os.path.getsize(folder / "config.json")
    generator = checkpoint.load_model(tiny_run).ema_generator
    assert meta["weights"]["parameters"] == sum(int(np.prod(v.shape)) for v in generator.weights)


def test_from_preset_draws_what_the_run_draws(shipped, tiny_run):
    model = kgen.models.from_preset(NAME)
    trained = checkpoint.load_model(tiny_run)
    assert type(model).__name__ == "ConditionalGAN" and getattr(model, "optimizer", None) is None  # not compiled
    np.testing.assert_array_equal(model.generate(8, labels=7, seed=3), trained.generate(8, labels=7, seed=3))
    for w, a in zip(model.generator.weights, model.ema_generator.weights):  # the trained copy holds the average
        np.testing.assert_array_equal(np.asarray(w), np.asarray(a))
    assert presets.from_preset(str(shipped / NAME)).latent_dim == 8  # a preset's folder works as well as its name


def test_list_presets_and_the_presets_command(shipped):
    (found,) = presets.list_presets()
    assert found["name"] == NAME and found["path"] == str(shipped / NAME) and found["size_bytes"] > 0
    result = invoke("presets")
    assert result.exit_code == 0, result.output
    assert NAME in result.output and "cgan" in result.output and "FID" in result.output and "MB" in result.output
    assert "a one-epoch test cGAN" in result.output and "labels as asked" in result.output


def test_no_presets(tmp_path, monkeypatch):
    monkeypatch.setattr(presets, "ROOT", str(tmp_path))
    assert presets.list_presets() == []
    result = invoke("presets")
    assert result.exit_code == 0 and "No presets" in result.output


def test_sample_with_a_preset_name(shipped, tmp_path, monkeypatch):
    before = sorted(os.listdir(shipped / NAME))
    result = invoke("sample", NAME, "--label", 7, "-n", 16, "--out", tmp_path / "sevens.npy")
    assert result.exit_code == 0, result.output
    images = np.load(tmp_path / "sevens.npy")
    assert images.shape == (16, 28, 28, 1) and 0 <= images.min() and images.max() <= 1
    monkeypatch.chdir(tmp_path)  # the default grid goes to the current folder, not into the preset
    result = invoke("sample", NAME, "-n", 10)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"{NAME}-sample.png" and (tmp_path / f"{NAME}-sample.png").is_file()
    assert sorted(os.listdir(shipped / NAME)) == before


def test_evaluate_with_a_preset_name_writes_nothing_into_it(shipped, tmp_path):
    before = sorted(os.listdir(shipped / NAME))
    result = invoke("evaluate", NAME, "-n", 100, "--no-figures")
    assert result.exit_code == 0, result.output
    assert "conditional accuracy" in result.output and "wrote nothing" in result.output
    assert sorted(os.listdir(shipped / NAME)) == before
    result = invoke("evaluate", NAME, "-n", 100, "--no-figures", "--out", tmp_path / "measured")
    assert result.exit_code == 0, result.output
    metrics = files.read_json(tmp_path / "measured" / "metrics.json")
    assert metrics["num_samples"] == 100 and "conditional" in metrics
    assert sorted(os.listdir(shipped / NAME)) == before


def test_compare_a_preset_with_a_run(shipped, tiny_run, tmp_path):
    result = invoke("compare", NAME, tiny_run, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "not evaluated" not in report  # the preset's numbers come from its metadata


def test_a_missing_preset_is_one_line_naming_those_there_are(shipped):
    assert_one_line_error(invoke("sample", "no-such-preset"), 2, "does not exist", NAME)
    assert_one_line_error(invoke("evaluate", "no-such-preset"), 2, "does not exist", NAME)
    with pytest.raises(PresetError, match=f"No preset named 'no-such-preset'; kgen ships {NAME}"):
        kgen.models.from_preset("no-such-preset")


@pytest.mark.parametrize("damage, fragment", [
    ("metadata", "metadata.json cannot be read"),
    ("config", "config.json cannot be read"),
    ("weights", "model.weights.h5 is missing"),
    ("truncated weights", "model.weights.h5 cannot be loaded"),
])
def test_a_damaged_preset_is_one_line(shelf, tmp_path, monkeypatch, damage, fragment):
    shutil.copytree(shelf / NAME, tmp_path / NAME)
    folder = tmp_path / NAME
    if damage == "metadata":
        (folder / "metadata.json").write_text("{not json")
    elif damage == "config":
        (folder / "config.json").write_text("{not json")
    elif damage == "weights":
        os.remove(folder / "model.weights.h5")
    else:
        data = (folder / "model.weights.h5").read_bytes()
        (folder / "model.weights.h5").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(presets, "ROOT", str(tmp_path))
    with pytest.raises(PresetError, match=fragment):
        kgen.models.from_preset(NAME)
    assert_one_line_error(invoke("sample", NAME, "-n", 4, "--out", tmp_path / "x.npy"), 1, fragment)
    assert not (tmp_path / "x.npy").exists()


def test_export_preset_command_and_its_refusals(tiny_run, tmp_path):
    root = tmp_path / "shelf"
    result = invoke("export-preset", tiny_run, "mine", "--root", root)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(root / "mine") and "MB" in result.output
    assert "ConditionalGAN" in files.read_json(root / "mine" / "metadata.json")["description"]

    assert_one_line_error(invoke("export-preset", tiny_run, "mine", "--root", root), 2, "exists")
    assert_one_line_error(invoke("export-preset", tiny_run, "Bad/Name", "--root", root), 2, "preset name")
    unmeasured = tmp_path / "unmeasured"
    shutil.copytree(tiny_run, unmeasured)
    os.remove(unmeasured / runs.METRICS)
    assert_one_line_error(invoke("export-preset", unmeasured, "other", "--root", root), 2, "kgen evaluate")
    assert sorted(os.listdir(root)) == ["mine"]  # nothing half-written


# --- the presets kgen ships -------------------------------------------------------------

# How far a shipped preset's check may drift from the one its metadata.json records. Both
# draw CHECK_SAMPLES samples with the same seed; on the backend and device that exported it the
# numbers come back almost exactly, and the tolerance covers another backend's or device's
# noise (another draw of 1,000: FID at N=1,000 moves by a few percent, a share by about
# sqrt(p(1 - p) / 1000)). A broken preset (weights not loaded, a changed network) misses by far:
# FID many times larger, labels read as asked near 10 %.
TOLERANCE = {  # key of presets.headline: (kind, amount)
    "fid": ("relative", 0.25),
    "precision": ("absolute", 0.05),
    "recall": ("absolute", 0.05),
    "labels_as_asked": ("absolute", 0.01),
    "worst_class_accuracy": ("absolute", 0.05),
    "completion_agreement": ("absolute", 0.02),
    "test_nll": ("relative", 0.02),
    "elbo": ("relative", 0.02),
}

# How far a fingerprint's 4 x 4 block means (pixels in [0, 1]) may differ from those recorded:
# backends agree to about 2e-4 (float32 convolutions summed in other orders, through a flow's
# ten ODE steps); other weights differ by tenths.
FINGERPRINT_TOLERANCE = 0.01


def assert_measures_up(recorded, measured, where):
    checked = 0
    for key, (kind, amount) in TOLERANCE.items():
        if key not in recorded:
            continue
        allowed = amount * abs(recorded[key]) if kind == "relative" else amount
        assert abs(measured[key] - recorded[key]) <= allowed, (
            f"{where}: {key} {measured[key]:.4g}, metadata.json says {recorded[key]:.4g} (tolerance {allowed:.3g})"
        )
        checked += 1
    assert checked, f"{where}: metadata.json's check holds no number to compare"


def assert_same_fingerprint(recorded, drawn, where):
    recorded, drawn = np.asarray(recorded), np.asarray(drawn)
    assert recorded.shape == drawn.shape == (presets.FINGERPRINT_IMAGES, 7, 7), where
    assert np.abs(recorded - drawn).max() <= FINGERPRINT_TOLERANCE, (
        f"{where}: draws {np.abs(recorded - drawn).max():.3g} away from the fingerprint in metadata.json"
    )


def test_export_records_the_fingerprint_it_draws(shelf):
    recorded = presets.read_metadata(str(shelf / NAME))["check"]["fingerprint"]
    assert recorded == fingerprint(kgen.models.from_preset(str(shelf / NAME)))  # same backend, same draw


def test_the_fingerprint_tells_other_weights_apart():
    name = SHIPPED[0]
    model = kgen.models.from_preset(name)
    recorded = presets.read_metadata(os.path.join(presets.ROOT, name))["check"]["fingerprint"]
    rng = np.random.default_rng(0)
    for w in model.weights:  # the same network, each weight's values shuffled
        w.assign(rng.permutation(np.asarray(w).ravel()).reshape(w.shape))
    assert np.abs(np.asarray(recorded) - np.asarray(fingerprint(model))).max() > 10 * FINGERPRINT_TOLERANCE


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_is_whole_and_draws_its_fingerprint(name):
    folder = os.path.join(presets.ROOT, name)
    meta = presets.read_metadata(folder)
    assert meta["name"] == name
    assert sorted(os.listdir(folder)) == ["config.json", "metadata.json", "model.weights.h5"]
    assert meta["weights"]["bytes"] == os.path.getsize(os.path.join(folder, presets.WEIGHTS))
    assert meta["check"]["num_samples"] == presets.CHECK_SAMPLES
    model = kgen.models.from_preset(name)
    assert type(model).__name__ == meta["model_class"]
    assert_same_fingerprint(meta["check"]["fingerprint"], fingerprint(model), name)


FINGERPRINT_SCRIPT = """
import json, os, tempfile
import numpy as np
import kgen.models
from click.testing import CliRunner
from kgen import presets
from kgen.cli.main import main
from kgen.evaluation.evaluator import load_evaluator
from kgen.presets.export import fingerprint

out = {"fingerprints": {name: fingerprint(kgen.models.from_preset(name)) for name in presets.names()}}
conditional = [n for n in presets.names() if presets.read_metadata(presets.find(n)).get("numbers", {}).get("labels_as_asked")]
if conditional:  # the README's first command, on this backend
    path = os.path.join(tempfile.mkdtemp(), "sevens.npy")
    result = CliRunner().invoke(main, ["sample", conditional[0], "--label", "7", "-n", "16", "--out", path])
    sevens = np.load(path) if result.exit_code == 0 else None
    out["sample"] = {"preset": conditional[0], "exit_code": result.exit_code, "output": result.output[-2000:],
                     "shape": None if sevens is None else list(sevens.shape),
                     "read": None if sevens is None else load_evaluator("mnist").predict(sevens).tolist()}
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_shipped_presets_load_and_draw_their_fingerprints_on_other_backends(backend, run_on_backend):
    drawn = json.loads(run_on_backend(backend, FINGERPRINT_SCRIPT).strip().splitlines()[-1])
    assert sorted(drawn["fingerprints"]) == sorted(SHIPPED)
    for name in SHIPPED:
        meta = presets.read_metadata(os.path.join(presets.ROOT, name))
        assert_same_fingerprint(meta["check"]["fingerprint"], drawn["fingerprints"][name], f"{name} on {backend}")
    if "sample" in drawn:  # `kgen sample PRESET --label 7 -n 16 --out sevens.npy`
        sample = drawn["sample"]
        assert sample["exit_code"] == 0, sample["output"]
        assert sample["shape"] == [16, 28, 28, 1]
        assert sum(label == 7 for label in sample["read"]) >= 14, sample  # the shipped cGAN and flow read ~99.8 % as asked


# The checks on CHECK_SAMPLES samples take minutes per preset (a flow draws 1,000 samples in
# 19 network passes each): the slow run repeats them on every backend.

@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_still_measures_what_its_metadata_says(name):
    meta = presets.read_metadata(os.path.join(presets.ROOT, name))
    check = meta["check"]
    measured = measure(kgen.models.from_preset(name), check["num_samples"], check["seed"])
    assert measured["evaluator"]["sha256"] == meta["evaluator"]["sha256"], "the evaluator changed: export the preset anew"
    assert_measures_up(check["numbers"], presets.headline(measured), name)


BACKEND_SCRIPT = """
import json, kgen.models
from kgen import presets
from kgen.presets.export import measure
model = kgen.models.from_preset({name!r})
print(json.dumps(presets.headline(measure(model, presets.CHECK_SAMPLES, presets.CHECK_SEED))))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_measures_up_on_other_backends(name, backend, run_on_backend):
    meta = presets.read_metadata(os.path.join(presets.ROOT, name))
    out = run_on_backend(backend, BACKEND_SCRIPT.format(name=name))
    assert_measures_up(meta["check"]["numbers"], json.loads(out.strip().splitlines()[-1]), f"{name} on {backend}")


def test_a_flow_measured_with_sampler_settings_exports_them_as_its_defaults(tmp_path):
    # `kgen evaluate --guidance 1.5 --steps 1`: the preset draws with those settings, so its numbers are its own
    from kgen.evaluation.evaluate import evaluate

    config = specs.TrainConfig(
        model="flow", epochs=1, batch_size=32, limit=64, val_images=0, offline=True, out=str(tmp_path / "runs"),
        model_options={"width": 8, "steps": 2},
    )
    run = training.train(config, verbose=0)
    evaluate(run, num_samples=100, ll_samples=0, figures=False,
             generate_options={"guidance": 1.5, "guidance_from": 0.5, "steps": 1})
    folder = export_preset(run, "tiny-flow", root=tmp_path / "presets", command="kgen export-preset RUN tiny-flow")
    model = presets.load(folder)
    assert (model.guidance, model.guidance_from, model.steps) == (1.5, 0.5, 1)
    meta = presets.read_metadata(folder)
    assert meta["evaluate_command"].endswith("--guidance 1.5 --guidance-from 0.5 --steps 1")  # the CLI's flags
    assert checkpoint.load_model(run).steps == 2  # the run itself is left as it was
