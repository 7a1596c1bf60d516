"""`kgen evaluate` as a Python function: the metrics and figures that fit a run's model.

What a model offers decides what is measured:

- every model `generate`s: FID, KID, inception-style score, precision and
  recall, class coverage of N samples, each beside the real-data floor (N real
  training images measured the same way against the same test set);
- `generate(n, labels=...)` (cGAN, flow): conditional accuracy, mean and worst class;
  and, asked for (`cas_samples`), the classification accuracy score beside its
  real-data ceiling (`kgen.evaluation.cas`);
- `encode` and `reconstruct` (AE, VAE): test reconstruction MSE and BCE, and
  the latent-space figures;
- `log_likelihood` (VAE with a Bernoulli decoder): test ELBO and an
  importance-sampled log-likelihood in nats;

Likelihoods (VAE and PatchLSTM) are measured on the test digits binarized
once, each pixel drawn as Bernoulli of its grey level with a fixed seed
(`BINARIZE_SEED`), as Burda et al. measure binarized-MNIST likelihoods; with
`--ll-samples 5000 --num-samples 10000` the VAE's number is their protocol.
- `complete(images, given=K)` (PatchLSTM): the evaluator's agreement with the
  true label on completed test digits and the completion error (of the
  mean-field completion and of the average of 16 drawn ones), and the exact
  test negative log-likelihood of the autoregressive model.
"""

import functools
import inspect
import os
import time

import keras
import numpy as np

from kgen import capabilities as caps
from kgen import checkpoint, data, files, runs
from kgen.data import to_float
from kgen.errors import KgenError
from kgen.evaluation import cas, metrics
from kgen.evaluation.evaluator import load_evaluator

DEFAULT_NUM_SAMPLES = 5000
BINARIZE_SEED = 0  # the one binarization of the test set that likelihoods are measured on
FLOOR_SEED = 0  # which real training images make the real-data floor
# samples of one evaluation: MNIST's 60,000 training digits (the real-data floor uses as many); the samples,
# the test digits and their features then take well under 2 GB (docs/errors.md, "Bounds")
MAX_NUM_SAMPLES = 60_000
# drawn completions averaged per test digit (PatchLSTM): on the full MNIST, 4 / 8 / 16 draws read
# 93.5 / 94.0 / 94.2 % right against 93.0 % for the mean-field completion (docs/patch_lstm.md)
COMPLETION_DRAWS = 16


def binarized(x, seed=BINARIZE_SEED):
    """Images in [0, 1] binarized once: each pixel 1 with probability its grey level.

    Example:

    >>> binarized(np.full((1, 28, 28, 1), 0.5)).mean()  # about 0.5
    """
    rng = np.random.default_rng(seed)
    return (rng.random(np.shape(x)) < x).astype(np.float32)


def evaluate(run, num_samples=DEFAULT_NUM_SAMPLES, ll_samples=100, given=8, seed=0, figures=True, generate_options=None,
             folder=None, cas_samples=0, cas_epochs=None, progress=None):
    """Measures a trained run and writes `metrics.json` (and figures in `plots/`).

    Args:
        run: the run directory, or a preset's folder (`kgen.presets`).
        num_samples: images generated for the sample metrics, and test
            images used for the per-image metrics (at most the test set).
        ll_samples: importance samples per image of the VAE log-likelihood
            (0 skips it).
        given: patches kept when the PatchLSTM completes test digits.
        seed: seed of the generated samples.
        figures: also write the figures that fit the model.
        folder: where `metrics.json` and the figures (in `plots/`) go
            (`output_folder`): default the run; a preset's default is none,
            its numbers are returned only (its folder is part of kgen).
        generate_options: more keyword arguments of the model's `generate`
            for the samples and figures, e.g. `{"guidance": 1.5, "steps": 4}`
            for a flow (recorded in `metrics.json`; default: the model's own).
        cas_samples: a conditional model: also its classification accuracy
            score on this many labelled samples, beside its real-data ceiling
            (`kgen.evaluation.cas`; `"cas"` in `metrics.json`); 0 skips it.
        cas_epochs: the classifier's epochs of that score (default
            `cas.DEFAULT_EPOCHS`).
        progress: called as `progress(message, step, steps)` at the start
            of each of the `steps` long stages ("generating 5,000 samples",
            ...): the CLI shows it on stderr. Default: nothing.

    Returns:
        The metrics as a dict (what `metrics.json` holds).

    Example:

    >>> m = evaluate("artifacts/vae/20250101-120000", num_samples=5000)
    >>> m["samples"]["fid"], m["floor"]["fid"]
    """
    if num_samples < 10:
        raise KgenError(f"num_samples must be at least 10 (the score uses 10 splits). Received: num_samples={num_samples}")
    if ll_samples < 0:
        raise KgenError(f"ll_samples must be 0 or more. Received: ll_samples={ll_samples}")
    start = time.time()
    config = runs.load_run(run)
    from kgen.models import MODELS

    say = _stages(MODELS.get(config.get("model")), num_samples, figures and output_folder(run, folder), progress)
    say("load")
    model = checkpoint.load_model(run)
    folder = output_folder(run, folder)
    generate_options = dict(generate_options or {})
    if num_samples > MAX_NUM_SAMPLES:
        error = KgenError(
            f"num_samples must be at most {MAX_NUM_SAMPLES:,} (as many as MNIST's training digits, against which "
            f"the real-data floor is measured). Received: num_samples={num_samples}"
        )
        error.exit_code = 2  # a bad option, as click's
        raise error
    check_generate_options(model, generate_options)
    if cas_samples and not caps.has(model, caps.CONDITIONAL):
        error = KgenError(
            f"The classification accuracy score applies to conditional models (cgan, flow); this is a "
            f"{type(model).__name__}. Received: cas_samples={cas_samples}"
        )
        error.exit_code = 2  # a bad option, as click's
        raise error
    model.trainable = False  # inference only: no gradient bookkeeping on any backend
    dataset = config.get("data", {}).get("dataset", "mnist")
    data_dir = config.get("train", {}).get("data_dir")
    evaluator = load_evaluator(dataset)
    ref = reference(dataset, data_dir)
    n_test = min(num_samples, len(ref["x_test"]))

    out = {
        "run": os.fspath(run),
        "model": config.get("model"),
        "model_class": type(model).__name__,
        "evaluator": {
            "dataset": dataset,
            "sha256": evaluator.info["sha256"],
            "test_accuracy": evaluator.info["test_accuracy"],
        },
        "data": {
            "reference": f"{len(ref['x_test'])} test images of {ref['source']}",
            "floor": (
                f"{min(num_samples, len(ref['x_train']))} training images drawn at random (seed {FLOOR_SEED}) "
                f"from the {len(ref['x_train'])} of {ref['train_source']}"
            ),
        },
        "num_samples": num_samples,
        "floor_num_samples": min(num_samples, len(ref["x_train"])),
        "test_images": n_test,
        "seed": seed,
        "generate_options": generate_options,
    }

    # samples: N generated images against the test set, beside N real training images
    conditional = caps.has(model, caps.CONDITIONAL)
    labels = np.arange(num_samples) % model.num_classes if conditional else None
    say("generate")
    generating = time.time()
    images = generate(model, num_samples, seed, labels, options=generate_options)
    out["generate_seconds"] = round(time.time() - generating, 1)
    say("embed")
    features, probs = evaluator.embed(images)
    say("metrics")
    out["samples"] = sample_metrics(features, probs, ref)
    say("floor")
    out["floor"] = floor_metrics(dataset, data_dir, num_samples)
    if conditional:
        out["conditional"] = metrics.conditional_accuracy(probs.argmax(1), labels, probs.shape[1])
    if cas_samples:  # the samples above are its samples when N agrees (drawn alike: labels 0..9, seed + i)
        out["cas"] = classification_accuracy_score(
            model, cas_samples, seed, cas_epochs or cas.DEFAULT_EPOCHS, generate_options=generate_options,
            dataset=dataset, data_dir=data_dir, samples=(images, labels) if cas_samples == num_samples else None,
        )

    x_test, y_test = ref["x_test"][:n_test], ref["y_test"][:n_test]
    if caps.has(model, caps.RECONSTRUCTS):
        say("reconstruct")
        out["reconstruction"] = metrics.reconstruction_errors(x_test, batched(model.reconstruct, x_test))
    x_binary = binarized(ref["x_test"])[:n_test]
    protocol = f"{n_test} test images binarized once (Bernoulli of the grey level, seed {BINARIZE_SEED})"
    if caps.has(model, caps.LIKELIHOOD):
        say("likelihood")
        out["likelihood"] = {**likelihood(model, x_binary, ll_samples), "test_set": protocol}
    if caps.has(model, caps.COMPLETES):
        say("complete")
        out["completion"] = completion(model, evaluator, x_test, y_test, given, seed)
        out["likelihood"] = {"test_nll": lstm_nll(model, x_binary), "test_set": protocol}

    if figures and folder:
        from kgen.evaluation import figures as figs

        say("figures")
        out["figures"] = figs.write_figures(
            model, folder, images, ref, labels=labels, given=given, seed=seed, generate_options=generate_options
        )
    out["backend"] = keras.config.backend()  # of this evaluation; config.json has the training one
    out["seconds"] = round(time.time() - start, 1)
    out["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if folder:
        os.makedirs(folder, exist_ok=True)
        files.write_json(os.path.join(folder, runs.METRICS), out)
    return out


def _stages(model, num_samples, figures, progress):
    """`say(stage)`: calls `progress(message, step, steps)` for each stage `evaluate` runs for `model` (nothing without it).

    `model`: the model's class (its capabilities say which stages run).
    """
    stages = {
        "load": "loading the model, the evaluator and the test digits",
        "generate": f"generating {num_samples:,} samples",
        "embed": "embedding them with the evaluator",
        "metrics": "FID, KID, inception score, precision and recall",
        "floor": "the real-data floor",
        "reconstruct": "reconstructing test digits" if caps.has(model, caps.RECONSTRUCTS) else None,
        "likelihood": "test log-likelihood" if caps.has(model, caps.LIKELIHOOD) else None,
        "complete": "completing test digits" if caps.has(model, caps.COMPLETES) else None,
        "figures": "figures" if figures else None,
    }
    order = [name for name, message in stages.items() if message]

    def say(stage):
        if progress is not None:
            progress(stages[stage], order.index(stage) + 1, len(order))

    return say


def output_folder(run, folder=None):
    """Where `evaluate` writes `metrics.json` and `plots/`: `folder` when given, else the run; None for a preset.

    A preset's folder is part of the installed kgen: `kgen evaluate PRESET`
    writes nothing there (`--out FOLDER` keeps its numbers and figures).
    """
    if folder is not None:
        return os.fspath(folder)
    return None if "preset" in runs.load_run(run) else os.fspath(run)


def generate(model, n, seed, labels=None, batch_size=1000, options=None):
    """`n` samples from `model` in batches, each batch with its own seed."""
    chunks = generate_chunks(model, n, seed, labels, batch_size, options=options)
    return np.concatenate([images for _, images in chunks])


def check_generate_options(model, options):
    """Raises `KgenError` naming the first of `options` that the model's `generate` does not take.

    Example:

    >>> check_generate_options(FlowMatching(), {"guidance": 1.5})  # fine
    >>> check_generate_options(VAE(), {"steps": 4})
    KgenError: steps applies to models whose generate takes it (flow); this is a VAE. Received: steps=4
    """
    takes = inspect.signature(model.generate).parameters
    for name, value in options.items():
        if name not in takes:
            raise KgenError(
                f"{name} applies to models whose generate takes it (flow); this is a {type(model).__name__}. "
                f"Received: {name}={value!r}"
            )


def generate_chunks(model, n, seed=None, labels=None, batch_size=1000, key="labels", options=None):
    """Yields `(start, images)`: `n` samples of `model`, `batch_size` at a time, float32.

    Chunk i is drawn with seed `seed + i` (random when `seed` is None); a
    conditional model draws `labels[start:start + size]`, or its own default
    labels when `labels` is None. `key`: the argument of `model.generate`
    that takes them ("codes" for a GAN's InfoGAN codes). `options`: more
    keyword arguments of `generate` (a flow's `guidance`, `steps`).
    """
    for i, start in enumerate(range(0, n, batch_size)):
        size = min(batch_size, n - start)
        kwargs = {**(options or {}), "seed": None if seed is None else seed + i}
        if labels is not None:
            kwargs[key] = labels[start : start + size]
        yield start, np.asarray(model.generate(size, **kwargs), np.float32)


def classification_accuracy_score(model, num_samples=cas.DEFAULT_NUM_SAMPLES, seed=0, epochs=cas.DEFAULT_EPOCHS,
                                  generate_options=None, dataset="mnist", data_dir=None, samples=None):
    """The accuracy on real test digits of a classifier trained on `model`'s labelled samples only.

    Args:
        model: a conditional kgen model (`generate(n, labels=...)`).
        num_samples: labelled samples drawn (labels cycling 0..9) and real
            training digits of the ceiling.
        seed: seed of the samples (chunk i: `seed + i`) and of the
            classifier's initial weights and shuffling (the same for the
            ceiling, so both classifiers start alike).
        epochs: passes of the classifier over its training images.
        generate_options: more keyword arguments of `generate`, e.g.
            `{"guidance": 1.5, "steps": 4}` for a flow (default: its own).
        dataset, data_dir: the run's data source: the test digits, and the
            training digits of the ceiling (`reference`).
        samples: `(images, labels)` already drawn this way (`kgen evaluate`
            reuses its own when N and the seed agree), or None to draw them.

    Returns:
        A dict: `accuracy` (CAS), `ceiling` (the same protocol on real
        training digits), `per_class` accuracy and `worst_class`,
        `num_samples`, `ceiling_num_samples`, `epochs`, `seed`,
        `test_images`, `seconds`.

    Example:

    >>> cas = classification_accuracy_score(checkpoint.load_model(run), 10_000)
    >>> cas["accuracy"], cas["ceiling"]
    """
    if not caps.has(model, caps.CONDITIONAL):
        raise KgenError(
            f"The classification accuracy score needs a conditional model (generate(n, labels=...)); "
            f"this is a {type(model).__name__}."
        )
    if num_samples < model.num_classes:
        raise KgenError(f"num_samples must be at least {model.num_classes} (one of each label). "
                        f"Received: num_samples={num_samples}")
    if epochs < 1:
        raise KgenError(f"epochs must be 1 or more. Received: epochs={epochs}")
    start = time.time()
    if samples is None:
        labels = np.arange(num_samples) % model.num_classes
        images = generate(model, num_samples, seed, labels, options=dict(generate_options or {}))
    else:
        images, labels = samples
    ref = reference(dataset, data_dir)
    result = cas.train_and_test(images, labels, ref["x_test"], ref["y_test"], epochs, seed, model.num_classes)
    ceiling = real_data_ceiling(dataset, data_dir, num_samples, epochs, seed)
    return {
        "accuracy": result["accuracy"],
        "ceiling": ceiling["accuracy"],
        "per_class": result["per_class"],
        "worst_class": result["worst_class"],
        "worst_accuracy": result["worst_accuracy"],
        "ceiling_worst_accuracy": ceiling["worst_accuracy"],
        "num_samples": int(num_samples),
        "ceiling_num_samples": ceiling["num_samples"],
        "epochs": int(epochs),
        "seed": seed,
        "test_images": len(ref["y_test"]),
        "seconds": round(time.time() - start, 1),
    }


def real_data_ceiling(dataset, data_dir, num_samples, epochs, seed):
    """The protocol on N real training digits drawn as the real-data floor draws them: `accuracy`, `per_class`, ...

    N is `num_samples`, or all the training digits when there are fewer
    (`num_samples` in the result says which). Computed once per process.
    """
    return dict(_ceiling(dataset, data_dir or None, int(num_samples), int(epochs), seed))


@functools.lru_cache(maxsize=8)
def _ceiling(dataset, data_dir, num_samples, epochs, seed):
    ref = reference(dataset, data_dir)
    n = min(num_samples, len(ref["x_train"]))
    pick = np.random.default_rng(FLOOR_SEED).permutation(len(ref["x_train"]))[:n]
    num_classes = int(np.max(ref["y_test"])) + 1
    result = cas.train_and_test(ref["x_train"][pick], ref["y_train"][pick], ref["x_test"], ref["y_test"], epochs, seed,
                            num_classes)
    return {**result, "num_samples": int(n)}


def batched(fn, x, batch_size=500):
    """Applies `fn` to `x` in batches; concatenates NumPy results."""
    return np.concatenate(
        [keras.ops.convert_to_numpy(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    )


def sample_metrics(features, probs, ref):
    """FID, KID, score, precision/recall and coverage of one set of images against `reference`."""
    test_features = ref["f_test"]
    kid_mean, kid_std = metrics.kid(features, test_features)
    is_mean, is_std = metrics.inception_score(probs)
    precision, recall = metrics.precision_recall(test_features, features, k=3, real_radii=ref["radii_test"])
    coverage = metrics.class_coverage(probs.argmax(1), probs.shape[1])
    return {
        "fid": metrics.fid(features, test_features),
        "kid": kid_mean,
        "kid_std": kid_std,
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "precision": precision,
        "recall": recall,
        "coverage_kl": coverage["kl_to_uniform"],
        "min_class_share": coverage["min_share"],
        "class_shares": coverage["shares"],
        "missing_classes": coverage["missing"],
    }


def reference(dataset="mnist", data_dir=None):
    """Test and training images of `dataset` with the evaluator's view of the test set.

    MNIST: the official 10,000 test digits (bundled with kgen, the same on
    every machine) and, for the real-data floor, the training digits of the
    run's `data_dir` (the full 60,000 when it holds them), else the 5,000
    bundled ones. Other data sets come from the run's `data_dir` or
    tensorflow-datasets. Computed once per process.
    """
    return _reference(dataset, data_dir or None)


@functools.lru_cache(maxsize=4)
def _reference(dataset, data_dir):
    x_test, y_test, source = test_digits(dataset, data_dir)
    if dataset == "mnist" and not data_dir:
        (x_train, y_train), train_source = data.load_bundled("train"), "the bundled MNIST sample"
    else:
        train = data.load_dataset(dataset, "train", data_dir)
        (x_train, y_train), train_source = (train.images, train.labels), train.source
    f_test, p_test = load_evaluator(dataset).embed(x_test)
    return {
        "x_train": to_float(x_train), "y_train": np.asarray(y_train),
        "x_test": x_test, "y_test": y_test,
        "f_test": f_test, "p_test": p_test, "source": source, "train_source": train_source,
        "radii_test": metrics.kth_neighbour_radii(f_test, k=3),
    }


def test_digits(dataset="mnist", data_dir=None):
    """The test images (n, 28, 28, 1) in [0, 1], their labels and where they came from.

    MNIST: the official 10,000 test digits bundled with kgen (the same on
    every machine, whatever the run trained on); other data sets: the run's
    `data_dir`, else tensorflow-datasets.
    """
    if dataset == "mnist":
        (x, y), source = data.load_bundled("test"), "the official MNIST test set"
    else:
        test = data.load_dataset(dataset, "test", data_dir)
        (x, y), source = (test.images, test.labels), test.source
    return to_float(x), np.asarray(y), source


def floor_metrics(dataset, data_dir, num_samples):
    """The real-data floor: N real training images drawn at random, measured like samples.

    N is `num_samples`, or all the training images when there are fewer; the
    draw (without replacement, seed `FLOOR_SEED`) is the same for every run of
    the same training set.
    """
    ref = reference(dataset, data_dir)
    return dict(_floor(dataset, data_dir, min(num_samples, len(ref["x_train"]))))


@functools.lru_cache(maxsize=8)
def _floor(dataset, data_dir, n):
    ref = reference(dataset, data_dir)
    pick = np.random.default_rng(FLOOR_SEED).permutation(len(ref["x_train"]))[:n]
    features, probs = load_evaluator(dataset).embed(ref["x_train"][pick])
    return sample_metrics(features, probs, ref)


def likelihood(model, x, ll_samples):
    """Test ELBO and importance-sampled log-likelihood of a VAE, nats per image.

    With one importance sample the estimate is the ELBO (one posterior draw
    per image); with k it is the IWAE bound, which tightens toward log p(x) as
    k grows. Only a Bernoulli decoder (`recon_loss="bce"`) defines p(x|z).
    """
    if getattr(model, "recon_loss", "bce") != "bce":
        return {"skipped": "the decoder is not Bernoulli (recon_loss='mse'): no likelihood"}
    out = {"elbo": float(np.mean(batched(lambda b: model.log_likelihood(b, k=1), x)))}
    if ll_samples > 0:
        batch = max(1, 100000 // ll_samples)  # 1,000 images at k=100
        ll = batched(lambda b: model.log_likelihood(b, k=ll_samples), x, batch_size=batch)
        out["log_likelihood"] = float(np.mean(ll))
        out["importance_samples"] = ll_samples
    return out


def completion(model, evaluator, x, y, given, seed=0):
    """How well a PatchLSTM finishes test digits from their first `given` patches.

    Measured twice: on the deterministic mean-field completion (`complete`'s
    default) and on the average of `COMPLETION_DRAWS` seeded drawn
    completions (`sampling="average"`, an estimate of the posterior mean).
    """
    from kgen.data.patches import NUM_PATCHES, from_patches, to_patches

    completed = model.complete(x, given=given)
    averaged = model.complete(x, given=given, sampling="average", candidates=COMPLETION_DRAWS, seed=seed)
    patches = np.asarray(to_patches(x))
    missing = np.zeros_like(patches)
    missing[:, given:] = 1.0
    missing = np.asarray(from_patches(missing)) > 0.5  # (n, 28, 28, 1): the written pixels
    truncated = np.where(missing, 0.0, x)  # the given part only, the rest black
    return {
        "given": given,
        "of_patches": NUM_PATCHES,
        "label_agreement": float(np.mean(evaluator.predict(completed) == y)),
        "label_agreement_given_only": float(np.mean(evaluator.predict(truncated) == y)),
        "label_agreement_real": float(np.mean(evaluator.predict(x) == y)),
        "mse_missing": float(np.mean((completed - x)[missing] ** 2)),
        "average_draws": COMPLETION_DRAWS,
        "label_agreement_average": float(np.mean(evaluator.predict(averaged) == y)),
        "mse_missing_average": float(np.mean((averaged - x)[missing] ** 2)),
    }


def lstm_nll(model, x):
    """Exact test negative log-likelihood (nats per image) of a Bernoulli PatchLSTM."""
    if getattr(model, "recon_loss", "bce") != "bce":
        return None
    return float(np.mean(lstm_nll_per_image(model, x)))


def lstm_nll_per_image(model, x, batch_size=500):
    """-log p(x) of each image (n,) under a PatchLSTM, from its teacher-forced logits.

    The model's likelihood is the product of its next-patch Bernoullis
    (with a `"made"` head, each pixel's given the pixels before it), so
    the sum of the per-pixel cross-entropies is exact; computed from the
    logits (softplus(l) - x l), without rounding probabilities.
    """
    from keras import ops

    from kgen.data.patches import to_patches

    out = []
    for i in range(0, len(x), batch_size):
        patches = ops.convert_to_tensor(np.asarray(to_patches(x[i : i + batch_size]), np.float32))  # (b, 16, 49)
        h, _ = model.run_layers(model.sequence_inputs(patches))
        nll = ops.sum(model.pixel_loss(patches, model.head_logits(h, patches)), axis=(1, 2))  # softplus(l) - x l
        out.append(np.asarray(ops.convert_to_numpy(nll), np.float64))
    return np.concatenate(out)


# what each sample metric is, as printouts and reports name it: FID, KID and the
# inception-style score are measured in the feature space of kgen's own digit
# evaluator, not Inception's, and are not comparable with published Inception numbers
METRIC_NAMES = {
    "fid": "FID (kgen evaluator)",
    "kid": "KID (kgen evaluator)",
    "inception_score": "inception-style score (kgen evaluator)",
    "precision": "precision (k=3)",
    "recall": "recall (k=3)",
    "coverage_kl": "coverage KL to uniform",
    "min_class_share": "smallest class share",
}


def table(m):
    """The rows of the metrics table `kgen evaluate` prints: (name, value, floor)."""
    rows = []
    s, f = m.get("samples", {}), m.get("floor", {})
    for key, name in METRIC_NAMES.items():
        if key in s:
            rows.append((name, s[key], f.get(key)))
    if "conditional" in m:
        c = m["conditional"]
        rows.append(("conditional accuracy", c["accuracy"], None))
        rows.append((f"worst class ({c['worst_class']}) accuracy", c["worst_accuracy"], None))
    if "cas" in m:  # real data: the same protocol on real training digits (the ceiling)
        rows.append(("classification accuracy score (CAS)", m["cas"]["accuracy"], m["cas"]["ceiling"]))
    if "reconstruction" in m:
        rows.append(("test reconstruction MSE", m["reconstruction"]["mse"], None))
        rows.append(("test reconstruction BCE (nats)", m["reconstruction"]["bce"], None))
    like = m.get("likelihood", {})
    if "elbo" in like:
        rows.append(("test ELBO (nats)", like["elbo"], None))
    if "log_likelihood" in like:
        rows.append((f"test log p(x), k={like['importance_samples']} (nats)", like["log_likelihood"], None))
    if like.get("test_nll") is not None:
        rows.append(("test NLL, exact (nats)", like["test_nll"], None))
    if "completion" in m:
        c = m["completion"]
        rows.append((f"label agreement, completed from {c['given']}/16", c["label_agreement"], c["label_agreement_real"]))
        rows.append((f"label agreement, {c['given']}/16 given only", c["label_agreement_given_only"], None))
        rows.append(("completion MSE (missing pixels)", c["mse_missing"], None))
        if "label_agreement_average" in c:  # metrics.json files written before it have none
            rows.append((f"label agreement, average of {c['average_draws']} completions", c["label_agreement_average"], None))
            rows.append((f"MSE of the average of {c['average_draws']} (missing pixels)", c["mse_missing_average"], None))
    return rows
