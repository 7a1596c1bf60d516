"""`kgen compare` as a Python function: one report of several runs side by side.

The report folder holds `report.md` (and the same as `report.html`) with:

- the runs (model, options, epochs, backend) and their metrics from
  `metrics.json` (written by `kgen evaluate`), with the real-data floor;
- `samples.png`: 100 samples of every run from one seed, grids of one size;
- `latent_maps.png`: for the runs with an encoder, the codes of 2,000 test
  digits coloured by label (PCA beyond 2-D), with the 2-sigma circle of the
  N(0, I) prior. Comparing a VAE trained with `--kl-weight 1` and one with
  `--kl-weight 0` this way is the no-KL ablation: latent maps and N(0, I)
  samples side by side;
- `curves.png`: the training curves of every run.
"""

import html
import os
import time
import warnings

import numpy as np

from kgen import capabilities as caps
from kgen import specs
from kgen import checkpoint, files, plots, runs
from kgen.errors import KgenError
from kgen.models.common import encode

SAMPLES_SEED = 1234
LATENT_POINTS = 2000

# (key in metrics.json, column title, format) of the two tables
SAMPLE_COLUMNS = [  # FID, KID and IS in kgen's evaluator's feature space (evaluate.METRIC_NAMES)
    ("fid", "FID (kgen evaluator) ↓", "{:.2f}"),
    ("kid", "KID (kgen evaluator) ↓", "{:.3f}"),
    ("inception_score", "IS (kgen evaluator) ↑", "{:.2f}"),
    ("precision", "precision ↑", "{:.3f}"),
    ("recall", "recall ↑", "{:.3f}"),
    ("coverage_kl", "coverage KL ↓", "{:.3f}"),
    ("min_class_share", "min class share", "{:.3f}"),
]


def compare(run_paths, out=None, progress=None):
    """Writes a side-by-side report of runs; returns the path of `report.md`.

    Args:
        run_paths: two or more run directories (one is allowed).
        out: the report folder (default: `artifacts/compare/<date-time>`).
        progress: called as `progress(message, step, steps)` at the start of
            each stage ("loading 2 runs", ...): the CLI shows it on stderr.

    Example:

    >>> compare(["artifacts/vae/20250101-120000", "artifacts/gan/20250101-130000"], "report")
    'report/report.md'
    """
    if not run_paths:
        raise KgenError("Pass at least one run directory to compare.")
    if len(set(map(os.path.normpath, run_paths))) != len(run_paths):
        raise KgenError(f"A run is listed twice. Received: runs={list(run_paths)}")
    entries = [_load(path) for path in run_paths]
    check_same_evaluator(entries)
    out = out or os.path.join("artifacts", "compare", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    names = _names(entries)
    stages = [f"loading {len(entries)} run{'s' if len(entries) > 1 else ''}", "drawing 100 samples of each",
              "latent maps", "training curves and the report"]

    def say(step):
        if progress is not None:
            progress(stages[step], step + 1, len(stages))

    # samples of every run, one seed, grids of one size
    say(0)
    models = [checkpoint.load_model(e["path"]) for e in entries]
    say(1)
    grids = [np.asarray(m.generate(100, seed=SAMPLES_SEED, **_columns(m))) for m in models]
    plots.save_side_by_side(os.path.join(out, "samples.png"), grids, names)
    caption = "100 samples of each run, one seed"
    if any(caps.has(m, caps.CONDITIONAL) for m in models):
        caption += " (a conditional model's columns are the digits 0-9)"
    images = {"samples.png": caption}

    # latent maps of the runs that encode
    encoders = [(n, m) for n, m in zip(names, models) if caps.has(m, caps.ENCODES)]
    say(2)
    if encoders:
        x, y = _test_digits(next(e["config"] for e, m in zip(entries, models) if caps.has(m, caps.ENCODES)))
        panels, titles = [], []
        for name, model in encoders:
            codes = encode(model, x)
            panels.append(codes if codes.shape[1] == 2 else plots.pca(codes))
            titles.append(name if codes.shape[1] == 2 else f"{name} (PCA of {codes.shape[1]}-D)")
        plots.save_latent_panels(
            os.path.join(out, "latent_maps.png"), panels, y, titles, prior_radius=2.0,
            suptitle="test digits in latent space (dashed: 2σ circle of the N(0, I) prior)",
        )
        images["latent_maps.png"] = "latent codes of 2,000 test digits (dashed: the prior's 2σ circle)"

    # training curves
    say(3)
    with_history = [(e["history"], n) for e, n in zip(entries, names) if e["history"]]
    if with_history:
        histories, titles = zip(*with_history)
        plots.save_curves_side_by_side(os.path.join(out, "curves.png"), histories, titles)
        images["curves.png"] = "training curves"

    markdown = _markdown(entries, names, images)
    files.write_text(os.path.join(out, "report.md"), markdown)
    files.write_text(os.path.join(out, "report.html"), _html(entries, names, images))
    return os.path.join(out, "report.md")


def _columns(model, n=100):
    """The labels of a conditional model's samples, one class per column of a grid of ten (none for the others)."""
    return {"labels": np.arange(n) % model.num_classes} if caps.has(model, caps.CONDITIONAL) else {}


def _test_digits(config):
    """The first test images (n, 28, 28, 1) in [0, 1] and labels of a run's data set."""
    from kgen.evaluation.evaluate import test_digits

    x, y, _ = test_digits(config.get("data", {}).get("dataset", "mnist"), config.get("train", {}).get("data_dir"))
    return x[:LATENT_POINTS], y[:LATENT_POINTS]


def check_same_evaluator(entries):
    """Refuses runs whose metrics were measured by different evaluators: their numbers do not compare."""
    measured = {}
    for e in entries:
        sha = e["metrics"].get("evaluator", {}).get("sha256")
        if sha:
            measured.setdefault(sha, e["path"])
    if len(measured) > 1:
        (a, path_a), (b, path_b) = list(measured.items())[:2]
        raise KgenError(
            f"{path_a} and {path_b} were measured by different evaluators ({a[:12]}… and {b[:12]}…), "
            "so their numbers do not compare; rerun `kgen evaluate` on the older run."
        )


def _load(path):
    entry = runs.read_run(path)
    if not entry["metrics"]:  # a preset's come from its metadata.json
        warnings.warn(f"{path} has no {runs.METRICS}; run `kgen evaluate {path}` to fill its row.", stacklevel=3)
    return entry


def _names(entries):
    names = []
    for e in entries:
        base = os.path.basename(os.path.normpath(e["path"]))
        names.append(f"{e['config'].get('model', '?')}/{base}")
    return names


def _options(config):
    """The options `kgen train` sets for the run's model (kgen.specs), as the model saved them."""
    opts = dict(config.get("model_config", {}))
    spec = specs.SPECS.get(config.get("model"))
    keep = spec.options if spec else ()
    return ", ".join(f"{k}={opts[k]}" for k in keep if k in opts)


def _fmt(value, fmt):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return fmt.format(value)


def _rows(entries, names):
    """Table rows as lists of strings: runs, sample metrics, model metrics."""
    run_rows = [["run", "model", "options", "epochs", "backend", "train images"]]
    for e, name in zip(entries, names):
        c = e["config"]
        run_rows.append([
            name, c.get("model_class", c.get("model", "?")), _options(c), str(len(e["history"])),
            c.get("backend", "?"), str(c.get("data", {}).get("train_images", "?")),
        ])

    sample_rows = [["run", "N"] + [title for _, title, _ in SAMPLE_COLUMNS]]
    floor = next((e["metrics"] for e in entries if e["metrics"].get("floor")), None)
    if floor:
        sample_rows.append(
            [f"*real-data floor* ({floor['evaluator']['dataset']} training images)", str(floor["floor_num_samples"])]
            + [_fmt(floor["floor"].get(k), f) for k, _, f in SAMPLE_COLUMNS]
        )
    for e, name in zip(entries, names):
        s = e["metrics"].get("samples")
        if s is None:
            sample_rows.append([name, "–"] + ["not evaluated"] + ["–"] * (len(SAMPLE_COLUMNS) - 1))
            continue
        drawn = "".join(f", {k} {v}" for k, v in e["metrics"].get("generate_options", {}).items())  # a flow's guidance
        sample_rows.append(
            [name, f"{e['metrics'].get('num_samples')}{drawn}"] + [_fmt(s.get(k), f) for k, _, f in SAMPLE_COLUMNS]
        )

    model_rows = [["run", "recon MSE", "recon BCE", "ELBO", "log p(x)", "cond. acc (worst)", "completion agreement"]]
    for e, name in zip(entries, names):
        m = e["metrics"]
        recon, like, cond, comp = (m.get(k, {}) for k in ("reconstruction", "likelihood", "conditional", "completion"))
        ll = like.get("log_likelihood")
        if ll is None and like.get("test_nll") is not None:
            ll = -like["test_nll"]
        model_rows.append([
            name,
            _fmt(recon.get("mse"), "{:.4f}"),
            _fmt(recon.get("bce"), "{:.1f}"),
            _fmt(like.get("elbo"), "{:.1f}"),
            _fmt(ll, "{:.1f}"),
            f"{cond['accuracy']:.3f} ({cond['worst_accuracy']:.2f}, class {cond['worst_class']})" if cond else "–",
            f"{comp['label_agreement']:.3f} (given {comp['given']}/16)" if comp else "–",
        ])
    return run_rows, sample_rows, model_rows


def _test_images(entries, names):
    """The test images the runs were measured against, from their metrics.json: "the 1,000 test images" (per run when they differ)."""
    counts = {e["metrics"]["test_images"] for e in entries if isinstance(e["metrics"].get("test_images"), int)}
    if len(counts) == 1:
        return f"the {counts.pop():,} test images"
    if not counts:
        return "the test images"
    return "each run's first test images (" + ", ".join(
        f"{name}: {e['metrics']['test_images']:,}" for e, name in zip(entries, names)
        if isinstance(e["metrics"].get("test_images"), int)
    ) + ")"


def _md_table(rows):
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _markdown(entries, names, images):
    run_rows, sample_rows, model_rows = _rows(entries, names)
    evaluator = next((e["metrics"]["evaluator"] for e in entries if e["metrics"].get("evaluator")), None)
    parts = ["# kgen comparison", "", f"Made by `kgen compare` on {time.strftime('%Y-%m-%d')}.", ""]
    parts += ["## Runs", "", _md_table(run_rows), ""]
    parts += ["## Sample quality", ""]
    if evaluator:
        parts += [
            f"Measured by `kgen evaluate` with the shipped {evaluator['dataset']} evaluator "
            f"(test accuracy {evaluator['test_accuracy']:.2%}, weights sha256 `{evaluator['sha256'][:12]}…`) "
            f"against {_test_images(entries, names)}; the real-data floor is real training images measured the same way.",
            "",
        ]
    parts += [_md_table(sample_rows), ""]
    parts += ["## Model-specific metrics", "", "Test set; nats per image; log p(x) is importance-sampled for a VAE "
              "and exact for the PatchLSTM.", "", _md_table(model_rows), ""]
    for file, caption in images.items():
        parts += [f"## {caption[0].upper() + caption[1:]}", "", f"![{caption}]({file})", ""]
    parts += ["## Run directories and commands", ""]
    for e, name in zip(entries, names):
        command = e["config"].get("command")
        parts.append(f"- `{name}`: `{e['path']}`" + (f", made by `{command}`" if command else ""))
    parts.append("")
    return "\n".join(parts)


def _html(entries, names, images):
    def table(rows):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
        return f"<table><tr>{head}</tr>{body}</table>"

    run_rows, sample_rows, model_rows = _rows(entries, names)
    figures = "".join(
        f"<h2>{html.escape(caption)}</h2><img src='{html.escape(file)}' alt='{html.escape(caption)}'>"
        for file, caption in images.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>kgen comparison</title>"
        "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body><h1>kgen comparison</h1>"
        f"<h2>Runs</h2>{table(run_rows)}<h2>Sample quality</h2>{table(sample_rows)}"
        f"<h2>Model-specific metrics</h2>{table(model_rows)}{figures}</body></html>\n"
    )
