"""Makes a preset (`kgen.presets`) from a finished run, and measures one the way its metadata records.

`export_preset(run, name)` is `kgen export-preset RUN NAME`; `measure(model)`
is the check on `CHECK_SAMPLES` samples that `metadata.json` records and
that tests/test_presets.py repeats for every preset kgen ships.
"""

import os
import shutil
import subprocess
import sys
import time

import kgen
from kgen import files, specs
from kgen.errors import PresetError
from kgen.presets import (
    CHECK_GIVEN, CHECK_SAMPLES, CHECK_SEED, CONFIG, FINGERPRINT_IMAGES, METADATA, ROOT, SAMPLING_WEIGHTS, WEIGHTS,
    check_name, folder_size, headline, left_out, load, save_weights,
)


def fingerprint(model, n=FINGERPRINT_IMAGES, seed=CHECK_SEED):
    """What a model draws from fixed inputs, each image averaged over 4 × 4 blocks: `n` lists of 7 × 7 floats.

    The images come from noise that NumPy draws with `seed` (a conditional
    model asked for the labels 0, 1, 2, ...), or for a model that completes
    (the PatchLSTM) from its mean-field completions of the first `n` test
    digits given `CHECK_GIVEN` patches. Nothing depends on a backend's own
    random generator, so every backend draws the same from the same weights
    (to float32 rounding) and other weights draw something else. It costs a
    second where `measure` costs minutes, so every test run checks each
    shipped preset on every backend with it.

    Example:

    >>> len(fingerprint(kgen.models.from_preset("flow-mnist")))
    16
    """
    import numpy as np

    from kgen import capabilities as caps

    if caps.has(model, caps.COMPLETES):
        from kgen.data import load_bundled

        digits, _ = load_bundled("test")
        images = model.complete((digits[:n, :, :, None] / 255.0).astype("float32"), given=CHECK_GIVEN)
    else:
        shape = (model.latent_dim,) if caps.has(model, caps.LATENT) else model.image_shape  # a flow starts from images
        z = np.random.default_rng(seed).standard_normal((n, *shape)).astype("float32")
        labels = {"labels": np.arange(n) % model.num_classes} if caps.has(model, caps.CONDITIONAL) else {}
        images = model.generate(n, seed=seed, z=z, **labels)
    images = np.asarray(images, dtype="float64").reshape(n, 7, 4, 7, 4)  # (n, 7 blocks, 4 rows, 7 blocks, 4 columns)
    return np.round(images.mean(axis=(2, 4)), 5).tolist()


def measure(model, num_samples=CHECK_SAMPLES, seed=CHECK_SEED, dataset="mnist"):
    """The check of a preset: what `kgen evaluate` measures, on `num_samples` samples, of the cheap kind.

    The samples' FID, KID, precision, recall and class coverage against the
    test set (and the real-data floor of as many bundled training digits); a
    conditional model's labels read as asked; a PatchLSTM's label agreement
    of the mean-field completion of the first `num_samples` test digits
    from `CHECK_GIVEN` patches and its exact test NLL; a VAE's test ELBO.
    No figures, no importance-sampled likelihood, no drawn completions.

    Returns:
        A dict shaped as `metrics.json` (`samples`, `floor`, `conditional`,
        ...) with `num_samples`, `seed`, `backend` and the evaluator.
    """
    import keras
    import numpy as np

    from kgen import capabilities as caps
    from kgen.evaluation import evaluate as ev
    from kgen.evaluation import metrics
    from kgen.evaluation.evaluator import load_evaluator

    evaluator = load_evaluator(dataset)
    ref = ev.reference(dataset)
    trainable = model.trainable
    model.trainable = False  # inference only
    try:
        conditional = caps.has(model, caps.CONDITIONAL)
        labels = np.arange(num_samples) % model.num_classes if conditional else None
        images = ev.generate(model, num_samples, seed, labels)
        features, probs = evaluator.embed(images)
        out = {
            "num_samples": num_samples,
            "seed": seed,
            "backend": keras.config.backend(),
            "evaluator": {"dataset": dataset, "sha256": evaluator.info["sha256"]},
            "samples": ev.sample_metrics(features, probs, ref),
            "floor": ev.floor_metrics(dataset, None, num_samples),
        }
        if conditional:
            out["conditional"] = metrics.conditional_accuracy(probs.argmax(1), labels, probs.shape[1])
        n_test = min(num_samples, len(ref["x_test"]))
        x, y = ref["x_test"][:n_test], ref["y_test"][:n_test]
        x_binary = ev.binarized(ref["x_test"])[:n_test]
        if caps.has(model, caps.COMPLETES):
            completed = model.complete(x, given=CHECK_GIVEN)
            out["completion"] = {"given": CHECK_GIVEN, "label_agreement": float(np.mean(evaluator.predict(completed) == y))}
            out["likelihood"] = {"test_nll": ev.lstm_nll(model, x_binary)}
        elif caps.has(model, caps.LIKELIHOOD):
            out["likelihood"] = ev.likelihood(model, x_binary, 0)
    finally:
        model.trainable = trainable
    return out


def export_preset(run, name, description=None, root=None, command=None):
    """Makes a preset from a finished run that `kgen evaluate` measured; returns its folder.

    The folder `root/name/` is written beside it under a temporary name and
    renamed into place when whole, so a failure leaves no half-written
    preset. The weights are the sampling weights only (`SAMPLING_WEIGHTS`);
    the preset is loaded back and measured on `CHECK_SAMPLES` samples
    (`measure`), which `metadata.json` records beside the run's own
    numbers. A run measured with sampler settings (`kgen evaluate
    --guidance W --steps K`, a flow's) gives a preset that draws with those
    settings by default, so that its numbers are those of what it draws.

    Args:
        run: the run directory (its `model.keras` and `metrics.json`).
        name: the preset's name (`check_name`), its folder's name.
        description: one line saying what it is (default: the model class,
            its options and the data it trained on).
        root: the folder of the presets (default: kgen's own, `ROOT`).
        command: the command that exported it, for `metadata.json`
            (default: this process's command line).

    Raises:
        PresetError: a bad name, a preset of that name already there, a run
            without `metrics.json` or measured by another evaluator (exit 2).
        RunError: a folder that is not a run, or a damaged one.

    Example:

    >>> export_preset("artifacts/cgan/20250101-120000", "cgan-mnist", "conditional GAN, 28 epochs")
    '.../kgen/presets/cgan-mnist'
    """
    from kgen import checkpoint, runs
    from kgen.evaluation.evaluator import load_evaluator

    check_name(name)
    root = ROOT if root is None else os.fspath(root)
    run = os.fspath(run)
    config = runs.load_run(run)
    metrics_path = os.path.join(run, runs.METRICS)
    if not os.path.isfile(metrics_path):
        raise PresetError(
            f"{run} has no {runs.METRICS}: measure it first with `kgen evaluate {run}`; a preset carries its numbers.",
            exit_code=2,
        )
    metrics = files.read_json_dict(metrics_path, "its metrics file")
    dataset = config.get("data", {}).get("dataset", "mnist")
    evaluator = load_evaluator(dataset)
    measured_by = metrics.get("evaluator", {}).get("sha256")
    if measured_by != evaluator.info["sha256"]:
        raise PresetError(
            f"{metrics_path} was measured by another evaluator than kgen's ({str(measured_by)[:12]}...); "
            f"measure it again with `kgen evaluate {run}`.",
            exit_code=2,
        )
    final = os.path.join(root, name)
    if os.path.exists(final):
        raise PresetError(f"{final} exists; remove it first to export the preset anew, or pick another name.", exit_code=2)
    model = checkpoint.load_model(run)
    for option, value in (metrics.get("generate_options") or {}).items():  # checked by `kgen evaluate`
        setattr(model, option, value)  # the preset's default: what its numbers were measured with
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".tmp-{os.getpid()}-{name}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        meta = _write(model, tmp, name, description, run, config, metrics, dataset, command)
        files.write_json(os.path.join(tmp, METADATA), meta)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write(model, folder, name, description, run, config, metrics, dataset, command):
    """Writes `config.json` and the weights into `folder`, measures the preset they make; returns its metadata."""
    import keras
    import numpy as np

    keras_config = keras.saving.serialize_keras_object(model)
    keras_config.pop("compile_config", None)  # sampling needs no optimizer
    files.write_json(os.path.join(folder, CONFIG), keras_config)
    weights_path = os.path.join(folder, WEIGHTS)
    with files.atomic_path(weights_path) as tmp:
        save_weights(model, tmp)
    loaded = load(folder)  # the check measures the preset itself, loaded as a user loads it
    check = measure(loaded, CHECK_SAMPLES, CHECK_SEED, dataset)
    skipped = {id(v) for obj in left_out(loaded) for v in getattr(obj, "variables", [])}
    parameters = sum(int(np.prod(v.shape)) for v in loaded.weights if id(v) not in skipped)
    kept = {k: v for k, v in metrics.items() if k not in ("figures", "run")}
    options = ", ".join(f"{k}={v}" for k, v in config.get("train", {}).get("model_options", {}).items())
    data = config.get("data", {})
    return {
        "name": name,
        "description": description or (
            f"{type(model).__name__} ({options}) trained on {data.get('train_images', '?')} images of {data.get('dataset', dataset)}"
        ),
        "model": config["model"],
        "model_class": type(model).__name__,
        "numbers": headline(metrics),
        "num_samples": metrics.get("num_samples"),
        "check": {
            "numbers": headline(check),
            "num_samples": CHECK_SAMPLES,
            "seed": CHECK_SEED,
            "backend": check["backend"],
            "fingerprint": fingerprint(loaded),
            "how": "kgen.presets.measure(kgen.models.from_preset(NAME)): the samples' metrics, labels read as asked, "
                   "the mean-field completion from 8 patches, the test ELBO or exact NLL; no figures",
        },
        "evaluator": {"dataset": dataset, "sha256": metrics["evaluator"]["sha256"]},
        "train_command": config.get("command"),
        "evaluate_command": f"kgen evaluate {run} --num-samples {metrics.get('num_samples')} --seed {metrics.get('seed', 0)}"
                            + "".join(f" {specs.flag(k)} {v}" for k, v in (metrics.get("generate_options") or {}).items()),
        "export_command": command if command is not None else " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "run": run,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "trained": config.get("created"),
        "commit": _commit(),
        "kgen_version": kgen.__version__,
        "keras_version": keras.__version__,
        "weights": {
            "file": WEIGHTS,
            "bytes": os.path.getsize(weights_path),
            "parameters": parameters,
            "left_out": SAMPLING_WEIGHTS,
        },
        "size_bytes": folder_size(folder),  # config.json and the weights; metadata.json adds a few kB
        "run_config": config,
        "metrics": kept,
    }


def _commit():
    """The git commit of kgen's source tree, or None when it is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=os.path.dirname(ROOT), capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
