"""The figures `kgen train` writes at the end of a run: plain functions of the trained model.

`end_of_run` lists the ones a model's capabilities call for; the training
driver draws them one by one (a stop between two still finishes). The
figures written after every epoch are callbacks (`kgen.callbacks`), and
`kgen evaluate`'s are in `kgen.evaluation.figures`.
"""

import functools
import os

from kgen import capabilities as caps
from kgen import files, plots, runs
from kgen.data import fill_missing, missing_patch_mse
from kgen.models.common import encode


def end_of_run(model, run, x_test, labels, x_train):
    """The end-of-run figures of `model`, as functions of no arguments, in the order they are drawn.

    Args:
        model: the trained model.
        run: the run directory (they go into `run/plots/`).
        x_test: test images (n, 28, 28, 1) in [0, 1].
        labels: their labels (None: unlabelled).
        x_train: the training images (the completion error's baseline is their mean).
    """
    plots_dir = os.path.join(run, runs.PLOTS)
    drawn = []
    if caps.has(model, caps.RECONSTRUCTS):
        drawn.append(functools.partial(reconstructions, os.path.join(plots_dir, "reconstructions.png"), model, x_test[:30]))
    if caps.has(model, caps.ENCODES) and model.latent_dim == 2:
        drawn.append(functools.partial(latent_map, os.path.join(plots_dir, "latent_map.png"), model, x_test, labels))
    if caps.has(model, caps.COMPLETES):
        drawn.append(functools.partial(completion_error, os.path.join(plots_dir, "completion_error.png"), model,
                                       x_test[:1000], x_train.mean(axis=0)))
    return drawn


def reconstructions(path, model, images):
    """Saves test digits above their reconstructions (30 images make three pairs of rows)."""
    plots.save_reconstructions(path, images, model.reconstruct(images))


def latent_map(path, model, images, labels):
    """Scatters the 2-D codes of test digits by label."""
    plots.save_latent_map(path, encode(model, images), labels)


def completion_error(path, model, images, mean_image):
    """Plots the completion error of test digits against K, and writes its numbers as a CSV beside it.

    For K = 1..15 given patches, the MSE on the missing patches of the
    model's completions, beside the same error of filling them with
    `mean_image`, the mean training image (28, 28, 1).
    """
    givens = list(range(1, 16))
    rows = []
    for k in givens:
        rows.append({
            "given": k,
            "lstm_mse": missing_patch_mse(model.complete(images, given=k), images, k),
            "mean_image_mse": missing_patch_mse(fill_missing(images, mean_image, k), images, k),
        })
    files.write_csv(os.path.splitext(path)[0] + ".csv", rows)
    plots.save_completion_error(
        path,
        givens,
        {"PatchLSTM": [r["lstm_mse"] for r in rows], "mean training image": [r["mean_image_mse"] for r in rows]},
        title=f"completion error of {len(images)} test digits",
    )


CURVES = "loss_curves.png"  # in plots/: the figure of every run
LAST = os.path.join(runs.PLOTS, CURVES)  # what a run stopped after model.keras by an older kgen may lack


def curves(run, name, adversarial):
    """The loss curves of `history.csv` (each value beside its `val_` twin); a GAN's dynamics too.

    Args:
        run: the run directory.
        name: the model's CLI name, in the titles.
        adversarial: also plot both players' losses and accuracies.
    """
    rows = files.read_csv(os.path.join(run, runs.HISTORY))
    plots.save_curves(os.path.join(run, runs.PLOTS, CURVES), rows, groups=_curve_groups(rows),
                      title=f"{name} training")
    if rows and adversarial:
        plots.save_curves(
            os.path.join(run, runs.PLOTS, "dynamics.png"),
            rows,
            groups=[["d_loss", "g_loss"], ["d_acc_real", "d_acc_fake"]],
            title=f"{name} training dynamics",
        )


def _curve_groups(rows):
    """One panel per logged value, its held-out `val_` twin beside it."""
    if not rows:
        return []
    keys = [k for k in rows[0] if k != "epoch"]
    for row in rows:
        keys += [k for k in row if k != "epoch" and k not in keys]
    return [[k] + ([f"val_{k}"] if f"val_{k}" in keys else []) for k in keys if not k.startswith("val_")]
