"""`kgen train` as a Python function: data, model, callbacks, `model.fit`, run directory."""

import dataclasses
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
from kgen import callbacks, checkpoint, data, devices, files, models, plots, runs, specs
from kgen import capabilities as caps
from kgen.data import to_float
from kgen.data.batches import EpochBatches
from kgen.errors import DataError, RunError
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
    extra = _extra_callbacks(callbacks, tensorboard)
    if not devices.is_chief():  # a multi-host job: process 0 writes the run, the others a private copy
        with tempfile.TemporaryDirectory() as out:
            _train(dataclasses.replace(config, out=out), 0, extra)
        return None
    return _train(config, verbose, extra)


def _extra_callbacks(callbacks, tensorboard):
    """The user's callbacks, checked, and whether TensorBoard logs are written: `(list, bool)`."""
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(f"callbacks must be keras.callbacks.Callback instances. Received: {callback!r}")
    if tensorboard:
        check_tensorboard()
    return callbacks, bool(tensorboard)


def check_tensorboard():
    """Raises `ImportError` (one line, how to install it) unless TensorBoard logs can be written.

    Keras's `TensorBoard` callback writes through `tensorflow.summary`, which
    needs both TensorFlow and TensorBoard, on every backend.
    """
    try:
        import tensorboard  # noqa: F401
        import tensorflow.summary  # noqa: F401
    except ImportError:
        raise ImportError(
            "--tensorboard needs TensorFlow and TensorBoard, which are not installed: pip install 'kgen[tensorboard]'"
        ) from None


def _train(config, verbose, extra=([], False)):
    keras.utils.set_random_seed(config.seed)
    keras.config.set_dtype_policy(specs.PRECISIONS[config.precision])  # the layers keep it in model.keras
    train_set = data.load_dataset(config.dataset, "train", config.data_dir, config.offline)
    test_set = data.load_dataset(config.dataset, "test", config.data_dir, config.offline)
    with devices.scope(config.devices):  # built and fitted on config.devices devices
        model = build_model(config)
        arrays = _arrays(model, train_set, config)  # checks the labels before a run directory exists
        if isinstance(model, models.SelfConditionedGAN):  # its labels: k-means clusters of the training images
            try:
                model.cluster(arrays[0])
            except ValueError as error:  # fewer images than clusters
                raise DataError(str(error)) from None

        guard = callbacks.TrainingGuard()
        guard.install()  # from the first file of the run: a stop there still ends in a checkpoint
        try:
            run = _start_run(model, train_set, test_set, config)
            with runs.locked(run):
                _fit(model, run, arrays, test_set, config, verbose, guard=guard, extra=extra)
        finally:
            guard.restore()
    return run


def _start_run(model, train_set, test_set, config):
    """Creates the run directory and writes its config.json; returns its path."""
    run = runs.create_run(config.out, config.model, config.name)
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
    return run


def _fit(model, run, arrays, test_set, config, verbose, state=None, history=(), guard=None, extra=([], False)):
    """Trains `model` on `arrays` ((x,) or (x, y)) from a checkpoint `state` to `config.epochs`.

    SIGINT and SIGTERM are handled from the first batch to the end of the
    final save: a stop at any point leaves a checkpoint that `resume`
    finishes. A `state` that already has all the epochs only writes the
    end-of-run figures and `model.keras`.
    """
    x_train = arrays[0]
    x_test = to_float(test_set.images)
    validation = _validation(model, x_test, test_set, config)
    epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    saver = checkpoint.Checkpoint(
        checkpoint.folder(run), saved=(epoch, step) if state else None, run=run, advice=_diverged_advice(config)
    )
    guard = guard or callbacks.TrainingGuard()
    guard.attach(saver, run)
    per_epoch = [
        guard,
        callbacks.SampleGrid(os.path.join(run, runs.SAMPLES)),
        callbacks.HistoryCSV(os.path.join(run, runs.HISTORY), history),
    ]
    at_end = []
    if caps.has(model, caps.RECONSTRUCTS):
        at_end.append(callbacks.ReconstructionGrid(os.path.join(run, runs.PLOTS, "reconstructions.png"), x_test[:30]))
    if caps.has(model, caps.ENCODES) and model.latent_dim == 2:
        at_end.append(
            callbacks.LatentMap(os.path.join(run, runs.PLOTS, "latent_map.png"), x_test, test_set.labels)
        )
    if caps.has(model, caps.COMPLETES):  # the patch LSTM: completions per epoch, error against K at the end
        per_epoch.append(callbacks.CompletionGrid(os.path.join(run, runs.PLOTS, "completions"), x_test[:20]))
        at_end.append(
            callbacks.CompletionError(
                os.path.join(run, runs.PLOTS, "completion_error.png"), x_test[:1000], x_train.mean(axis=0)
            )
        )
    if config.lr_decay:
        per_epoch.insert(0, callbacks.LinearDecay(config.epochs, base_rates(config)))
    user, tensorboard = extra
    per_epoch += user
    if tensorboard:
        per_epoch.append(keras.callbacks.TensorBoard(log_dir=os.path.join(run, runs.LOGS)))
    per_epoch.append(saver)  # last: the epoch's files are all written when its checkpoint is
    guard.install()
    try:
        if step:
            # finish the interrupted epoch from the batch after the last one done
            guard.resume_at(step)
            batches = EpochBatches(arrays, config.batch_size, config.seed, skip=step)
            model.fit(
                batches,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                callbacks=[batches.follow_epochs(), checkpoint.RestoreTrackers(state["metric_states"])] + per_epoch,
                validation_data=validation,
                verbose=verbose,
            )
            epoch += 1
        if epoch < config.epochs:
            batches = EpochBatches(arrays, config.batch_size, config.seed)
            model.fit(
                batches,
                epochs=config.epochs,
                initial_epoch=epoch,
                shuffle=False,
                callbacks=[batches.follow_epochs()] + per_epoch,
                validation_data=validation,
                verbose=verbose,
            )
        # end of the run: figures, then model.keras, still under the guard
        guard.raise_if_signalled()
        for figure in at_end:
            figure.set_model(model)
            figure.on_train_end()
            guard.raise_if_signalled()
        with files.atomic_path(os.path.join(run, runs.MODEL)) as tmp:
            model.save(tmp)
        rows = files.read_csv(os.path.join(run, runs.HISTORY))
        plots.save_curves(
            os.path.join(run, runs.PLOTS, "loss_curves.png"), rows, groups=_curve_groups(rows), title=f"{config.model} training"
        )
        if rows and caps.has(model, caps.ADVERSARIAL):  # GANs: the losses and accuracies of both players
            plots.save_curves(
                os.path.join(run, runs.PLOTS, "dynamics.png"),
                rows,
                groups=[["d_loss", "g_loss"], ["d_acc_real", "d_acc_fake"]],
                title=f"{config.model} training dynamics",
            )
    finally:
        guard.restore()


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


def _curve_groups(rows):
    """One panel per logged value, its held-out `val_` twin beside it."""
    if not rows:
        return []
    keys = [k for k in rows[0] if k != "epoch"]
    for row in rows:
        keys += [k for k in row if k != "epoch" and k not in keys]
    return [[k] + ([f"val_{k}"] if f"val_{k}" in keys else []) for k in keys if not k.startswith("val_")]


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
        if labels.size and int(labels.max()) >= model.num_classes:
            raise DataError(
                f"{config.model} draws labels 0 to {model.num_classes - 1}, and {train_set.source} holds "
                f"label {int(labels.max())}. Received: labels in {int(labels.min())}..{int(labels.max())}"
            )
        return x, labels
    return (x,)


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
    extra = _extra_callbacks(callbacks, tensorboard)
    if epochs is not None:
        config.epochs = epochs
        _validate_saved(config, os.path.join(run, runs.CONFIG))
    state = checkpoint.read(run)
    if state is None:
        raise RunError(f"{run} has no checkpoint to resume from; train it anew.")
    unfinished = state["epoch"] == config.epochs and not state["step"] and not os.path.isfile(
        os.path.join(run, runs.MODEL)
    )
    if state["epoch"] >= config.epochs and not unfinished:
        raise RunError(
            f"{run} already has {state['epoch']} epochs; pass --epochs larger than "
            f"{state['epoch']} to train more. Received: epochs={config.epochs}"
        )
    if not devices.is_chief():  # a multi-host job: process 0 writes the run, the others a private copy
        with tempfile.TemporaryDirectory() as copy:
            _resume(shutil.copytree(run, os.path.join(copy, os.path.basename(run))), config, state, 0, extra)
        return None
    return _resume(run, config, state, verbose, extra)


def _resume(run, config, state, verbose, extra=([], False)):
    history = runs.read_history(run, state["epoch"])
    train_set = data.load_dataset(config.dataset, "train", config.data_dir, config.offline)
    test_set = data.load_dataset(config.dataset, "test", config.data_dir, config.offline)
    with devices.scope(config.devices):  # the run's own number of devices
        model = checkpoint.load_model(run, state)
        arrays = _arrays(model, train_set, config)
        with runs.locked(run):  # a second resume of the run stops here, before it removes anything
            runs.remove_temporaries(run)
            checkpoint.restore(model, state)
            _fit(model, run, arrays, test_set, config, verbose, state, history, extra=extra)
    return run


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
