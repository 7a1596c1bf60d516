"""`kgen train` as a Python function: data, model, callbacks, `model.fit`, run directory."""

import dataclasses
import errno
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import typing

import keras
import numpy as np

import kgen
from kgen import callbacks, checkpoint, data, devices, figures, files, models, runs, specs
from kgen import capabilities as caps
from kgen.data import to_float
from kgen.data.batches import EpochBatches
from kgen.errors import DataError, RunError, RunOptionError
from kgen.specs import TrainConfig


def build_model(config):
    """The compiled model that `config` describes, the model's own defaults (`kgen.specs`) filling in the rest."""
    spec = specs.get(config.model)
    model = models.MODELS[config.model](**{**spec.options, **config.model_options}, seed=config.seed)
    given = {"": {} if config.learning_rate is None else {"learning_rate": config.learning_rate}, **config.gan_optimizers}
    model.compile(**{
        f"{net}_optimizer" if net else "optimizer": keras.optimizers.Adam(**{**arguments, **given.get(net, {})})
        for net, arguments in spec.optimizers.items()
    })
    return model


def train(config, verbose=1, callbacks=None, tensorboard=False):
    """Trains a model as `config` says and writes a run directory.

    Args:
        config: a `TrainConfig`.
        verbose: Keras's verbosity (0: silent, 1: a progress bar per
            epoch, 2: one line per epoch).
        callbacks: more `keras.callbacks.Callback`s, passed to `model.fit`
            after kgen's own (kgen's checkpoint stays last in each epoch).
        tensorboard: also write TensorBoard logs
            (`keras.callbacks.TensorBoard`) into `RUN/logs`; needs
            TensorFlow and TensorBoard (`pip install 'kgen[tensorboard]'`).

    Returns:
        The path of the run directory (None in a process other than 0 of a
        multi-host job: that one trains in step but writes into a private
        temporary folder, removed at the end).

    Example:

    >>> run = train(TrainConfig(model="vae", epochs=10, offline=True),
    ...             callbacks=[keras.callbacks.CSVLogger("log.csv")])
    >>> model = keras.saving.load_model(f"{run}/model.keras")
    """
    config.validate()
    if config.data_dir:  # stored absolute: a resume from another folder trains on the same data
        config.data_dir = os.path.abspath(os.path.expanduser(config.data_dir))
    job = _job(config, verbose, callbacks, tensorboard)
    if not devices.is_chief():  # a multi-host job: process 0 writes the run, the others a private copy
        with tempfile.TemporaryDirectory() as out:
            _train(dataclasses.replace(job, config=dataclasses.replace(config, out=out), verbose=0))
        return None
    return _train(job)


@dataclasses.dataclass
class _Job:
    """What one `train` or `resume` call asks for: the run's config and how to fit it."""

    config: TrainConfig
    verbose: int
    callbacks: list  # the user's, after kgen's own
    tensorboard: bool


def _job(config, verbose, callbacks, tensorboard):
    """A `_Job`, its callbacks checked (and TensorBoard, when asked for, importable)."""
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(f"callbacks must be keras.callbacks.Callback instances. Received: {callback!r}")
    if tensorboard:
        check_tensorboard()
    return _Job(config, verbose, callbacks, bool(tensorboard))


def check_tensorboard():
    """Raises `ImportError` (one line, how to install it) unless TensorBoard logs can be written.

    Keras's `TensorBoard` callback writes through `tensorflow.summary`, which
    needs both TensorFlow and TensorBoard, on every backend.
    """
    from kgen.data.load import import_tensorflow

    try:
        import tensorboard  # noqa: F401

        import_tensorflow()  # its start-up lines off the screen
        import tensorflow.summary  # noqa: F401
    except ImportError:
        raise ImportError(
            "--tensorboard needs TensorFlow and TensorBoard, which are not installed: pip install 'kgen[tensorboard]'"
        ) from None


def _train(job):
    config = job.config
    keras.utils.set_random_seed(config.seed)
    keras.config.set_dtype_policy(specs.PRECISIONS[config.precision])  # the layers keep it in model.keras
    train_set, test_set = _datasets(config)
    with devices.scope(config.devices):  # built and fitted on config.devices devices
        model = build_model(config)
        arrays = _arrays(model, train_set, config)  # checks the labels before a run directory exists
        _check_labels(model, test_set, config, test_set.labels)
        try:
            model.prepare(*arrays)  # once, before the first step: the scgan's k-means clusters
        except ValueError as error:  # fewer images than clusters
            raise DataError(str(error)) from None
        guard = callbacks.TrainingGuard()
        guard.install()  # from the first file of the run: a stop there still ends in a checkpoint
        run = None
        try:
            run = _start_run(model, train_set, test_set, config)
            with runs.locked(run):
                _fit(model, run, job, arrays, test_set, _Start(), guard)
        except OSError as error:
            _note_full_disk(error, run or getattr(error, "kgen_run", None))
            raise
        finally:
            guard.restore()
    return run


def _note_full_disk(error, run):
    """Tells the CLI what a full disk (`ENOSPC`) left: the run, and whether it has a checkpoint to resume.

    Sets `error.kgen_run` and `error.kgen_checkpoint` (True, False); the CLI
    says "continue with: kgen resume RUN" only when there is a checkpoint.
    """
    if error.errno == errno.ENOSPC:
        error.kgen_run = run
        error.kgen_checkpoint = bool(run) and os.path.isfile(os.path.join(checkpoint.folder(run), checkpoint.STATE))


def _datasets(config):
    """The run's training and test sets."""
    return tuple(data.load_dataset(config.dataset, split, config.data_dir, config.offline) for split in ("train", "test"))


def _start_run(model, train_set, test_set, config):
    """Creates the run directory and writes its config.json; returns its path."""
    run = runs.create_run(config.out, config.model, config.name)
    try:
        _write_config(run, model, train_set, test_set, config)
    except OSError as error:  # a full disk at the first file: the run is named in the message
        error.kgen_run = run
        raise
    return run


def _write_config(run, model, train_set, test_set, config):
    files.write_json(
        os.path.join(run, runs.CONFIG),
        {
            "model": config.model,
            "model_class": type(model).__name__,
            "model_config": model.get_config(),
            "train": dataclasses.asdict(config),
            "data": {
                "dataset": config.dataset,
                "source": train_set.source,
                "test_source": test_set.source,
                "train_images": len(train_set.images[: config.limit]),
                "test_images": len(test_set),
            },
            "backend": keras.config.backend(),
            "versions": _versions(),
            "run_format": runs.RUN_FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        },
    )


class _Start(typing.NamedTuple):
    """Where `_fit` starts: epoch 0 of a new run, or the checkpoint that a resumed run continues from."""

    epoch: int = 0
    step: int = 0  # batches of `epoch` done before an interruption
    metric_states: list = None  # the trackers' states at that step
    history: list = ()  # the rows of history.csv of the epochs done
    saved: tuple = None  # (epoch, step) of the checkpoint on disk; None: none yet

    @classmethod
    def of(cls, state, history):
        """The start of a resumed run: its checkpoint's `state` (`kgen.checkpoint.read`) and its history's rows."""
        return cls(state["epoch"], state["step"], state.get("metric_states"), history, (state["epoch"], state["step"]))


def _fit(model, run, job, arrays, test_set, start, guard):
    """The training driver: callbacks, `model.fit` from `start` to `config.epochs`, end-of-run figures, `model.keras`.

    `arrays` are the training arrays ((x,) or (x, y)). SIGINT and SIGTERM
    are handled (by `guard`) from the first batch to the end of the final
    save: a stop at any point leaves a checkpoint that `resume` finishes. A
    `start` that already has all the epochs only writes the end-of-run
    figures and `model.keras`.
    """
    config, x_test = job.config, to_float(test_set.images)
    saver = checkpoint.Checkpoint(checkpoint.folder(run), saved=start.saved, run=run, advice=_diverged_advice(config))
    guard.attach(saver, run)
    each_epoch = _callbacks(model, run, job, x_test, start, guard) + [saver]  # the checkpoint last: the epoch's files are all written
    validation = _validation(model, x_test, test_set, config)
    guard.install()
    try:
        epoch = start.epoch
        if start.step:  # finish the interrupted epoch from the batch after the last one done
            guard.resume_at(start.step)
            batches = EpochBatches(arrays, config.batch_size, config.seed, skip=start.step)
            model.fit(batches, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, validation_data=validation,
                      callbacks=[batches.follow_epochs(), checkpoint.RestoreTrackers(start.metric_states)] + each_epoch,
                      verbose=job.verbose)
            epoch += 1
        if epoch < config.epochs:
            batches = EpochBatches(arrays, config.batch_size, config.seed)
            model.fit(batches, epochs=config.epochs, initial_epoch=epoch, shuffle=False, validation_data=validation,
                      callbacks=[batches.follow_epochs()] + each_epoch, verbose=job.verbose)
        for draw in figures.end_of_run(model, run, x_test, test_set.labels, arrays[0]):  # still under the guard
            guard.raise_if_signalled()
            draw()
        figures.curves(run, config.model, caps.has(model, caps.ADVERSARIAL))
        guard.raise_if_signalled()
        with files.atomic_path(os.path.join(run, runs.MODEL)) as tmp:  # the last file: a run with it is finished
            model.save(tmp)
    finally:
        guard.restore()


def _callbacks(model, run, job, x_test, start, guard):
    """kgen's callbacks of every epoch, then the user's: the learning-rate decay, the guard, the sample grid, history.csv, ..."""
    each_epoch = [callbacks.LinearDecay(job.config.epochs, base_rates(job.config))] if job.config.lr_decay else []
    each_epoch += [
        guard,
        callbacks.SampleGrid(os.path.join(run, runs.SAMPLES)),
        callbacks.HistoryCSV(os.path.join(run, runs.HISTORY), start.history),
    ]
    if caps.has(model, caps.COMPLETES):  # the patch LSTM: completions of test digits after every epoch
        each_epoch.append(callbacks.CompletionGrid(os.path.join(run, runs.PLOTS, "completions"), x_test[:20]))
    each_epoch += job.callbacks
    if job.tensorboard:
        each_epoch.append(keras.callbacks.TensorBoard(log_dir=os.path.join(run, runs.LOGS)))
    return each_epoch


def _validation(model, x_test, test_set, config):
    """`validation_data` of the run: the first `val_images` test images (at most `limit`), or None.

    Keras evaluates them after every epoch with the model's `test_step`;
    `history.csv` gains their losses as `val_loss`, `val_d_loss`, ...
    """
    n = min(config.val_images, len(x_test), config.limit or len(x_test))
    if n == 0:
        return None
    if caps.has(model, caps.CONDITIONAL):
        if test_set.labels is None:
            return None  # a conditional model is evaluated on labelled images only
        return x_test[:n], test_set.labels[:n]
    return (x_test[:n],)


def _diverged_advice(config):
    """The options to lower when training of this model diverges: its learning rates."""
    rates = [specs.flag(name) for name in specs.get(config.model).rates()]
    return "Lower " + " and ".join(rates)


def _arrays(model, train_set, config):
    """(x,) or, for conditional models, (x, labels) of the training images."""
    x = to_float(train_set.images[: config.limit])
    if caps.has(model, caps.CONDITIONAL):  # conditional models train on labels
        labels = train_set.labels
        if labels is None:
            raise DataError(f"{config.model} trains on labels, and {train_set.source} has none.")
        labels = labels[: config.limit]
        _check_labels(model, train_set, config, labels)
        return x, labels
    return (x,)


def _check_labels(model, dataset, config, labels):
    """Raises `DataError` when a conditional model's `labels` of `dataset` hold a class it does not draw."""
    if not caps.has(model, caps.CONDITIONAL) or labels is None or not labels.size:
        return
    if int(labels.max()) >= model.num_classes:
        split = "" if dataset.split == "train" else f" ({dataset.split} set)"
        raise DataError(
            f"{config.model} draws labels 0 to {model.num_classes - 1}, and {dataset.source}{split} holds "
            f"label {int(labels.max())}. Received: labels in {int(labels.min())}..{int(labels.max())}"
        )


def resume(run, epochs=None, verbose=1, callbacks=None, tensorboard=False):
    """Continues a run from its latest checkpoint until it has `epochs` epochs in all.

    The checkpoint restores the weights, both optimizers' states, the seed
    generators and the data order, so a run interrupted and resumed ends with
    the weights and `history.csv` of the uninterrupted run (same backend,
    same machine). A run stopped after its last checkpoint but before
    `model.keras` was written is finished: the end-of-run figures and
    `model.keras` are written.

    Args:
        run: the run directory.
        epochs: the total number of epochs (default: the run's own).
        verbose: Keras's verbosity (0, 1 or 2).
        callbacks: more `keras.callbacks.Callback`s, passed to `model.fit`
            as in `train`.
        tensorboard: also write TensorBoard logs into `RUN/logs`.

    Returns:
        The path of the run directory.

    Raises:
        RunError: a damaged `config.json`, `state.json` or `history.csv`
            (one line naming the file), a run that has no checkpoint, or one
            that already has `epochs` epochs and its `model.keras`.
    """
    config = saved_config(run)
    job = _job(config, verbose, callbacks, tensorboard)
    if epochs is not None:
        config.epochs = epochs
        _validate_saved(config, os.path.join(run, runs.CONFIG))
    state = checkpoint.read(run)
    if state is None:
        raise RunError(f"{run} has no checkpoint to resume from; train it anew.")
    unfinished = state["epoch"] == config.epochs and not state["step"] and not all(
        os.path.isfile(os.path.join(run, name)) for name in (runs.MODEL, figures.LAST)
    )  # stopped before model.keras, or before the figures that follow it
    if state["epoch"] >= config.epochs and not unfinished:
        raise RunOptionError(
            f"{run} already has {state['epoch']} epochs; pass --epochs larger than "
            f"{state['epoch']} to train more. Received: epochs={config.epochs}"
        )
    if not devices.is_chief():  # a multi-host job: process 0 writes the run, the others a private copy
        with tempfile.TemporaryDirectory() as copy:
            _resume(shutil.copytree(run, os.path.join(copy, os.path.basename(run))), dataclasses.replace(job, verbose=0), state)
        return None
    return _resume(run, job, state)


def _resume(run, job, state):
    start = _Start.of(state, runs.read_history(run, state["epoch"]))
    train_set, test_set = _datasets(job.config)
    with devices.scope(job.config.devices):  # the run's own number of devices
        model = checkpoint.load_model(run, state)
        arrays = _arrays(model, train_set, job.config)
        _check_labels(model, test_set, job.config, test_set.labels)
        _check_checkpoint(run, state, model, arrays, start.history, _validation(model, to_float(test_set.images[:1]), test_set, job.config))
        try:
            with runs.locked(run):  # a second resume of the run stops here, before it removes anything
                runs.remove_temporaries(run)
                checkpoint.restore(model, state)  # its clusters too: no `prepare`
                _fit(model, run, job, arrays, test_set, start, callbacks.TrainingGuard())
        except OSError as error:
            _note_full_disk(error, run)
            raise
    return run


def _check_checkpoint(run, state, model, arrays, history, validation):
    """Raises `RunError` (one line, before anything is written) unless the checkpoint agrees with the run around it.

    Its step lies within an epoch of the run's data; its model took as
    many optimizer steps as its epoch and step say; `history.csv` has the
    columns that the model logs (`val_*` too when it is validated).
    """
    state_path = os.path.join(checkpoint.folder(run), checkpoint.STATE)
    saved = runs.load_run(run).get("data", {}).get("train_images")
    images = len(arrays[0])
    if isinstance(saved, int) and saved != images:
        raise RunError(
            f"{run} trained on {saved} images, and its data now holds {images}; resume it with the data it "
            f"trained on (config.json's 'train.data_dir'). Received: {images} images"
        )
    steps = math.ceil(images / runs.load_run(run)["train"]["batch_size"])
    if state["step"] >= steps:
        raise RunError(
            f"{state_path} is damaged: it says step {state['step']} of an epoch of {steps} steps; "
            f"train the run anew. Received: step={state['step']}"
        )
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    if iterations is not None:
        done = int(keras.ops.convert_to_numpy(iterations))
        if done != state["epoch"] * steps + state["step"]:
            raise RunError(
                f"{state_path} is damaged: it says epoch {state['epoch']}, step {state['step']} "
                f"({state['epoch'] * steps + state['step']} steps), and its model took {done}; train the run anew."
            )
    if history:
        names = [m.name for m in model.metrics]
        expected = {"epoch", *names, *(f"val_{n}" for n in names if validation is not None)}
        columns = set(history[0])
        if columns != expected:
            odd = sorted(columns - expected) or sorted(expected - columns)
            which = "has a column the model does not log" if columns - expected else "lacks the column"
            raise RunError(
                f"{os.path.join(run, runs.HISTORY)} is damaged: it {which} {odd[0]!r}; resume will not write over it. "
                f"Restore it, or move it away to resume without the earlier rows. Received: columns {sorted(columns)}"
            )


def base_rates(config):
    """Each optimizer's learning rate before any decay, by name: `{"": 1e-3}` or `{"d": ..., "g": ...}`."""
    if config.gan_optimizers:
        return {net: arguments["learning_rate"] for net, arguments in config.gan_optimizers.items()}
    return {"": config.learning_rate}


def saved_config(run):
    """The `TrainConfig` of a run, from its `config.json`, checked.

    Raises:
        RunError: one line naming `config.json` and what is wrong in it.
    """
    saved = runs.load_run(run)
    path = os.path.join(run, runs.CONFIG)
    train = dict(saved["train"])
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(k for k in train if k not in fields)
    if unknown:
        raise RunError(f"{path}: 'train' has an unknown key {unknown[0]!r}; the run is damaged or not kgen's.")
    missing = [k for k in fields if k not in train]  # a run of this format has them all
    if missing:
        raise RunError(f"{path}: 'train' lacks {missing[0]!r}; the run is damaged.")
    types = saved_types()
    for key, value in train.items():
        kinds = types[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise RunError(f"{path}: 'train.{key}' must be {names}, not {value!r}; the run is damaged.")
    if train["model"] != saved["model"]:
        raise RunError(f"{path}: 'model' is {saved['model']!r} but 'train.model' is {train['model']!r}; the run is damaged.")
    config = TrainConfig(**train)
    _validate_saved(config, path)
    return config


def saved_types():
    """The JSON types `config.json` holds for each `TrainConfig` field, from its annotation (a float takes an int too)."""
    types = {}
    for field in dataclasses.fields(TrainConfig):
        kinds = typing.get_args(field.type) or (field.type,)
        types[field.name] = tuple(k for kind in kinds for k in ((kind, int) if kind is float else (kind,)))
    return types


def _validate_saved(config, path):
    try:
        config.validate()
    except ValueError as e:
        raise RunError(f"{path}: {e}") from None


def _versions():
    versions = {
        "kgen": kgen.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    module = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}[keras.config.backend()]
    versions[module] = __import__(module).__version__
    return versions
