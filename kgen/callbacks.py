"""Keras callbacks that fill the run directory while `model.fit` trains (the end-of-run figures: `kgen.figures`)."""

import math
import os
import signal
import sys
import threading

import keras
import numpy as np

from kgen import capabilities as caps
from kgen import files, plots
from kgen.checkpoint import check_finite, resume_command
from kgen.data import fill_missing
from kgen.errors import Diverged, Interrupted


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of samples from fixed noise after every epoch.

    The model's `generate(n, seed=seed)` is called with the same seed each
    epoch, so the grids show the same noise decoded as training goes on. For a
    conditional model (one with `num_classes`), the grid has one row per
    label instead: row k holds ten samples of label k; for a GAN with an
    InfoGAN code, one row per code value.

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
        if caps.has(self.model, caps.CONDITIONAL):  # conditional: row k holds ten samples of label k
            labels = np.repeat(np.arange(self.model.num_classes), 10)
            images = self.model.generate(len(labels), labels=labels, seed=self.seed)
            plots.save_grid(path, images, ncol=10)
            return
        if getattr(self.model, "codes", 0):  # an InfoGAN: row k holds ten samples of code k
            codes = np.repeat(np.arange(self.model.codes), 10)
            plots.save_grid(path, self.model.generate(len(codes), codes=codes, seed=self.seed), ncol=10)
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
        files.write_csv(self.path, self.rows)


def nonfinite_loss(logs):
    """The first logged loss (a name with "loss" in it) that is NaN or inf, as (name, value); else None."""
    for key, value in (logs or {}).items():
        if "loss" in key and not math.isfinite(float(value)):
            return key, float(value)
    return None


class LinearDecay(keras.callbacks.Callback):
    """Lowers every optimizer's learning rate linearly over the run, epoch by epoch.

    In epoch e (0-based) of E, each optimizer steps at base × (E − e) / E:
    the base in the first epoch, base / E in the last. The rate is computed
    from the epoch alone, not from the optimizer's current one, so a run
    resumed from a checkpoint (mid-epoch included) steps at the same rates as
    one never stopped. Keras's `LearningRateScheduler` passes every optimizer
    the same schedule; a GAN's two optimizers have two bases.

    Args:
        epochs: E, the run's epochs in all.
        rates: the base rate of each optimizer, by name: `{"": 1e-3}` for a
            model with one (`model.optimizer`), `{"d": 4e-4, "g": 4e-4}` for
            a GAN's `d_optimizer` and `g_optimizer`.

    Example:

    >>> model.fit(x, epochs=10, callbacks=[LinearDecay(10, {"": 1e-3})])
    """

    def __init__(self, epochs, rates):
        super().__init__()
        self.epochs = epochs
        self.rates = dict(rates)

    def on_epoch_begin(self, epoch, logs=None):
        factor = max(self.epochs - epoch, 1) / self.epochs
        for name, base in self.rates.items():
            optimizer = getattr(self.model.optimizer, f"{name}_optimizer") if name else self.model.optimizer
            optimizer.learning_rate = base * factor


class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` as soon as any tracked loss is NaN or infinite.

    Keras's `TerminateOnNaN` watches `logs["loss"]` only; kgen's models
    track several losses (a GAN's `d_loss` and `g_loss`, a VAE's
    `recon_loss` and `kl_loss`), and a NaN in any of them poisons the
    weights. This callback checks every logged value whose name contains
    "loss" after each batch and sets `model.stop_training`. `kgen train`
    uses it through `TrainingGuard`, which also keeps the last good
    checkpoint.

    Example:

    >>> model.fit(x, epochs=10, callbacks=[kgen.callbacks.TerminateOnNonFinite()])
    """

    def on_train_batch_end(self, batch, logs=None):
        bad = nonfinite_loss(logs)
        if bad:
            self.on_nonfinite(*bad, batch)

    def on_nonfinite(self, key, value, batch):
        print(f"Batch {batch}: {key} is {value}; terminating training.")
        self.model.stop_training = True


class TrainingGuard(TerminateOnNonFinite):
    """Stops training cleanly on Ctrl-C, SIGTERM or a non-finite loss or weight.

    `install()` takes over SIGINT and SIGTERM and `restore()` gives them
    back; `kgen.training` holds them from the start of a run to the end of
    its final save, end-of-run figures included. On the first signal the
    current batch finishes, a mid-epoch checkpoint is written and
    `Interrupted` is raised; a second signal exits at once (every file of the
    run is written atomically, so nothing is left half-written). A signal
    that arrives after the last batch is acted on by `raise_if_signalled`.

    A loss that is NaN or infinite raises `Diverged` after that batch; so do
    weights or optimizer states that hold a NaN or inf at the end of an epoch
    (checked before anything of that epoch is saved) or before any
    checkpoint is written, so no checkpoint ever holds a non-finite weight.

    Args:
        checkpoint: the run's `Checkpoint` callback (None until `attach`).
        run: the run directory, named in the messages.
    """

    def __init__(self, checkpoint=None, run=None):
        super().__init__()
        self.attach(checkpoint, run)
        self.signal = None
        self._skip = 0  # batches of the current epoch done before a resume
        self._previous = {}

    def attach(self, checkpoint, run):
        """Sets the `Checkpoint` written on a stop and the run the messages name (a guard installed before they exist)."""
        self.checkpoint = checkpoint
        self.run = run

    def resume_at(self, step):
        """The next epoch starts after `step` batches done before an interruption (steps are counted from there)."""
        self._skip = step

    def install(self):
        """Handles SIGINT and SIGTERM until `restore()` (main thread only)."""
        if threading.current_thread() is threading.main_thread() and not self._previous:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def on_train_begin(self, logs=None):
        self.install()

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second signal: leave now
            sys.stderr.write("\nInterrupted again; exiting without a new checkpoint.\n")
            os._exit(130)
        self.signal = signal.Signals(signum).name
        sys.stderr.write(f"\n{self.signal}: finishing the current step, then saving a checkpoint...\n")

    def on_nonfinite(self, key, value, batch):
        raise Diverged(
            f"The {key} became {value} at epoch {self.checkpoint.epoch + 1}, "
            f"step {batch + 1 + self._skip}; {self.checkpoint.kept()}. {self.checkpoint.stop_advice()}"
        )

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)  # a non-finite loss raises `Diverged`
        step = batch + 1 + self._skip
        if self.signal is not None:
            steps = (self.params or {}).get("steps")
            if steps and batch + 1 >= steps:
                return  # the epoch's last step: its end writes the checkpoint, the next epoch stops
            self.checkpoint.write(self.checkpoint.epoch, step)
            raise Interrupted(
                f"{self.signal} at epoch {self.checkpoint.epoch + 1}, step {step}: checkpoint "
                f"saved. Resume with: {resume_command(self.run)}"
            )

    def on_epoch_begin(self, epoch, logs=None):
        if self.signal is not None and self.checkpoint.saved == (epoch, 0):  # stopped at an epoch's end
            raise Interrupted(
                f"{self.signal} at the end of epoch {epoch}: checkpoint saved. Resume with: {resume_command(self.run)}"
            )

    def on_epoch_end(self, epoch, logs=None):
        self._skip = 0  # a resumed epoch is whole now
        # the last step's update is in the weights now: check them before the
        # epoch's grid, history row and checkpoint are written (this callback's
        # model: the checkpoint callback need not be in the same fit)
        check_finite(self.model, self.checkpoint, epoch + 1, 0)

    def raise_if_signalled(self):
        """After the last batch: a signal stops the run here, its last checkpoint on disk."""
        if self.signal is not None:
            epoch, step = self.checkpoint.saved or (0, 0)
            raise Interrupted(
                f"{self.signal} after epoch {epoch}, before model.keras was written: the checkpoint "
                f"of epoch {epoch} is saved. Finish with: {resume_command(self.run)}"
            )

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


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
