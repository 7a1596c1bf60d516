"""Keras callbacks that fill the run directory while `model.fit` trains."""

import os

import keras
import numpy as np

from kgen import plots, runs
from kgen.data import fill_missing, missing_patch_mse


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of samples from fixed noise after every epoch.

    The model's `generate(n, seed=seed)` is called with the same seed each
    epoch, so the grids show the same noise decoded as training goes on. For a
    conditional model (one with `num_classes`), the grid has one row per
    label instead: row k holds ten samples of label k.

    Args:
        folder: where `epoch_001.png`, ... go (the run's `samples/`).
        n: number of samples (a square grid when `n` is a square).
        seed: the seed of the fixed noise.
    """

    def __init__(self, folder, n=64, seed=1234):
        super().__init__()
        self.folder = folder
        self.n = n
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.folder, f"epoch_{epoch + 1:03d}.png")
        if hasattr(self.model, "num_classes"):  # conditional: row k holds ten samples of label k
            labels = np.repeat(np.arange(self.model.num_classes), 10)
            images = self.model.generate(len(labels), labels=labels, seed=self.seed)
            plots.save_grid(path, images, ncol=10)
            return
        images = self.model.generate(self.n, seed=self.seed)
        plots.save_grid(path, images)


class HistoryCSV(keras.callbacks.Callback):
    """Rewrites `history.csv` atomically after every epoch (one row per epoch).

    Args:
        path: the CSV file.
        rows: rows of earlier epochs (when a run is resumed).
    """

    def __init__(self, path, rows=None):
        super().__init__()
        self.path = path
        self.rows = list(rows or [])

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)
        runs.write_csv(self.path, self.rows)


class Checkpoint(keras.callbacks.Callback):
    """Saves the model (optimizer included) and the epoch count after every epoch.

    Args:
        folder: the run's `checkpoint/`; holds `model.keras` and `state.json`.
    """

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        with runs.atomic_path(os.path.join(self.folder, runs.MODEL)) as tmp:
            self.model.save(tmp)
        runs.write_json(os.path.join(self.folder, "state.json"), {"epoch": epoch + 1})


class ReconstructionGrid(keras.callbacks.Callback):
    """At the end of training, saves test digits above their reconstructions.

    Args:
        path: the PNG to write.
        images: test images (n, 28, 28, 1) in [0, 1]; 30 make three pairs of rows.
    """

    def __init__(self, path, images):
        super().__init__()
        self.path = path
        self.images = images

    def on_train_end(self, logs=None):
        plots.save_reconstructions(self.path, self.images, self.model.reconstruct(self.images))


class LatentMap(keras.callbacks.Callback):
    """At the end of training, scatters the 2-D codes of test digits by label.

    Args:
        path: the PNG to write.
        images: test images (n, 28, 28, 1) in [0, 1].
        labels: their digit labels.
    """

    def __init__(self, path, images, labels):
        super().__init__()
        self.path = path
        self.images = images
        self.labels = labels

    def on_train_end(self, logs=None):
        codes = []
        for start in range(0, len(self.images), 1000):
            z = self.model.encode(self.images[start : start + 1000])
            z = z[0] if isinstance(z, (tuple, list)) else z  # a VAE's posterior mean
            codes.append(keras.ops.convert_to_numpy(z))
        plots.save_latent_map(self.path, np.concatenate(codes), self.labels)


class CompletionGrid(keras.callbacks.Callback):
    """Saves test digits in rows of three after every epoch: original, given, completed.

    The middle row shows the first `given` patches with the rest grey; the
    last row is the model's `complete(images, given=given)`.

    Args:
        folder: where `epoch_001.png`, ... go (the run's `plots/completions/`).
        images: test images (n, 28, 28, 1) in [0, 1]; 10 make one block of rows.
        given: the number of given patches (8: the top half).
    """

    def __init__(self, folder, images, given=8):
        super().__init__()
        self.folder = folder
        self.images = images
        self.given = given

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        plots.save_completions(
            os.path.join(self.folder, f"epoch_{epoch + 1:03d}.png"),
            self.images,
            fill_missing(self.images, 0.25, self.given),
            self.model.complete(self.images, given=self.given),
        )


class CompletionError(keras.callbacks.Callback):
    """At the end of training, plots the completion error of test digits against K.

    For K = 1..15 given patches, the MSE on the missing patches of the
    model's completions, beside the same error of filling them with the mean
    training image. Writes the plot and a CSV of the numbers beside it.

    Args:
        path: the PNG to write (the CSV gets the same name).
        images: test images (n, 28, 28, 1) in [0, 1].
        mean_image: the mean training image (28, 28, 1), the baseline's fill.
    """

    def __init__(self, path, images, mean_image):
        super().__init__()
        self.path = path
        self.images = images
        self.mean_image = mean_image

    def on_train_end(self, logs=None):
        givens = list(range(1, 16))
        rows = []
        for k in givens:
            completed = self.model.complete(self.images, given=k)
            baseline = fill_missing(self.images, self.mean_image, k)
            rows.append(
                {
                    "given": k,
                    "lstm_mse": missing_patch_mse(completed, self.images, k),
                    "mean_image_mse": missing_patch_mse(baseline, self.images, k),
                }
            )
        runs.write_csv(os.path.splitext(self.path)[0] + ".csv", rows)
        plots.save_completion_error(
            self.path,
            givens,
            {
                "PatchLSTM": [r["lstm_mse"] for r in rows],
                "mean training image": [r["mean_image_mse"] for r in rows],
            },
            title=f"completion error of {len(self.images)} test digits",
        )
