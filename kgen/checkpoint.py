"""A run's resumable state, in one module: write it, read it back, restore it into a model.

The state lives in the run's `checkpoint/` folder:

    checkpoint/state.json                the epoch and step reached, the model file, and
                                         what `model.keras` does not hold: the states of
                                         the model's seed generators and metric trackers
    checkpoint/model-<epoch>-<step>.keras  the model with its optimizers' state

`write` saves a new model file, then replaces `state.json` atomically, then
removes the older model file, so a crash at any point leaves a consistent
pair. No checkpoint ever holds a NaN or an infinite weight: `write` checks
first (`check_finite`) and raises `Diverged` instead. `load_model(run)`
loads a finished run's `model.keras` (else its latest checkpoint's model).

Example:

>>> state = checkpoint.read(run)          # None when the run has none
>>> model = checkpoint.load_model(run, state)
>>> checkpoint.restore(model, state)      # seed generators as they were
"""

import os
import shlex
import zipfile

import keras
import numpy as np

from kgen import files, runs
from kgen.errors import Diverged, RunError

STATE = "state.json"  # in the run's `checkpoint/` (runs.CHECKPOINT)


def folder(run):
    """The checkpoint folder of a run."""
    return os.path.join(run, runs.CHECKPOINT)


def write(model, where, epoch, step):
    """Saves `model`'s state after `epoch` whole epochs and `step` batches of the next into the folder `where`.

    Returns:
        The name of the model file, as `state.json` names it.
    """
    name = model_name(epoch, step)
    with files.atomic_path(os.path.join(where, name)) as tmp:
        model.save(tmp)
    state_path = os.path.join(where, STATE)
    old = files.read_json(state_path)["model"] if os.path.isfile(state_path) else None
    files.write_json(
        state_path,
        {
            "epoch": epoch,
            "step": step,
            "model": name,
            "seed_states": [_values(v) for v in seed_states(model)],
            "metric_states": [_values(v) for v in model.metrics_variables],
        },
    )
    if old and old != name and os.path.exists(os.path.join(where, old)):
        os.remove(os.path.join(where, old))
    return name


def model_name(epoch, step):
    """The name of the model file of the checkpoint after `epoch` epochs and `step` steps: `model-0003-00000.keras`."""
    return f"model-{epoch:04d}-{step:05d}.keras"


def read(run):
    """The state of a run's latest checkpoint (a dict naming its model file), or None when it has none.

    Raises:
        RunError: when `state.json` is damaged or names a missing model file
            (one line naming it and what is wrong).
    """
    state_path = os.path.join(folder(run), STATE)
    if not os.path.isfile(state_path):
        return None
    state = files.read_json_dict(state_path, "the checkpoint")
    problem = None
    for key in ("epoch", "step"):
        value = state.get(key)
        if key not in state:
            problem = f"it lacks {key!r}"
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problem = f"{key!r} must be a whole number >= 0, not {value!r}"
        if problem:
            break
    if problem is None:
        model = state.get("model")
        if not isinstance(model, str) or not model.endswith(".keras") or model != os.path.basename(model) \
                or model.startswith("."):
            problem = f"'model' must name a .keras file in checkpoint/, not {model!r}"
        elif not all(isinstance(state.get(k, []), list) for k in ("seed_states", "metric_states")):
            problem = "'seed_states' and 'metric_states' must be lists"
        elif model != model_name(state["epoch"], state["step"]):  # `write` names the file by the state it holds
            problem = (f"it says epoch {state['epoch']}, step {state['step']}, and names {model!r}, the model of "
                       f"another point of the run")
    if problem:
        raise RunError(f"{state_path} is damaged: {problem}. Train the run anew.")
    if not os.path.isfile(model_path(run, state)):
        raise RunError(f"{state_path} names a model file that is missing; the checkpoint is damaged.")
    return state


def model_path(run, state):
    """The model file of a checkpoint `state` read from `run`."""
    return os.path.join(folder(run), state["model"])


def load_model(run, state=None):
    """The model of a run, its optimizers' state included.

    Args:
        run: the run directory.
        state: a checkpoint `state` (from `read`): that checkpoint's model,
            to which `restore` puts back the rest. None: the run's
            `model.keras`, else its latest checkpoint's model (a preset's
            folder: its model, `kgen.presets.load`).

    Raises:
        RunError: a folder that is not a run, a run without a model yet, or a
            model file that cannot be loaded (one line naming it).
    """
    if state is None:
        if "preset" in runs.load_run(run):  # a preset: its sampling weights (kgen.presets)
            from kgen import presets

            return presets.load(run)
        final = os.path.join(run, runs.MODEL)
        if os.path.isfile(final):
            return load_model_file(final)
        state = read(run)
        if state is None:
            raise RunError(f"{run} holds no {runs.MODEL} yet; train it or resume it first.")
    return load_model_file(model_path(run, state))


def load_model_file(path):
    """`keras.saving.load_model` with a one-line `RunError` for a bad file."""
    from kgen import models  # noqa: F401  (registers the model classes)

    if not zipfile.is_zipfile(path):
        raise RunError(
            f"{path} is not a .keras file (corrupt or truncated); resume the run "
            f"from its checkpoint or train it again."
        )
    check_archive(path)
    try:
        return keras.saving.load_model(path)
    except Exception as e:
        raise RunError(
            f"{path} cannot be loaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'corrupt file'}); "
            f"resume the run from its checkpoint or train it again."
        ) from None


# what a .keras file of kgen's may inflate to, member by member, checked before Keras opens it (Keras's
# own guard is 4 GiB, more than the memory of many machines): its config.json and metadata.json are a
# few kB, its weights at most a few hundred MB (the largest models that kgen.specs's bounds allow)
MAX_KERAS_JSON_BYTES = 16 << 20
MAX_KERAS_BYTES = 1 << 30


def check_archive(path):
    """Raises `RunError` when a member of the .keras (zip) file `path` inflates past kgen's bounds.

    The sizes are those the archive declares, which Python's zipfile
    never reads past: a small file that inflates to gigabytes is refused
    before one byte of it is decompressed.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise RunError(f"{path} is not a .keras file ({e}); resume the run from its checkpoint or train it again.") from None
    total = 0
    for member in members:
        bound = MAX_KERAS_JSON_BYTES if member.filename.endswith(".json") else MAX_KERAS_BYTES
        total += member.file_size
        if member.file_size > bound or total > MAX_KERAS_BYTES:
            raise RunError(
                f"{path} is not a model kgen wrote: its member {member.filename} inflates to {member.file_size:,} "
                f"bytes (kgen loads at most {bound:,}, {MAX_KERAS_BYTES:,} in all); train the run again."
                f" Received: {os.path.getsize(path):,} bytes on disk"
            )


def restore(model, state):
    """Puts the seed-generator states of a checkpoint back into `model` (the trackers: `RestoreTrackers`)."""
    for variable, value in zip(seed_states(model), state["seed_states"]):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def seed_states(model):
    """The state variables of every seed generator in `model` (not saved by `model.save`)."""
    return [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]


class RestoreTrackers(keras.callbacks.Callback):
    """Restores metric trackers at the start of a resumed, half-done epoch.

    Keras resets the trackers when an epoch begins; a run interrupted at step
    `s` of an epoch resumes with the running means it had at that step, so
    the epoch's row in `history.csv` is the one the uninterrupted run writes.

    Args:
        values: the `metric_states` of the checkpoint.
    """

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_begin(self, epoch, logs=None):
        for variable, value in zip(self.model.metrics_variables, self.values):
            variable.assign(np.asarray(value, dtype=variable.dtype))


class Checkpoint(keras.callbacks.Callback):
    """Keeps the latest resumable state of a run in its `checkpoint/` folder.

    After every epoch (and on demand, mid-epoch, when training is
    interrupted) it `write`s the state; it checks the weights first, so the
    checkpoint on disk is always a good one.

    Args:
        folder: the run's `checkpoint/`.
        saved: (epoch, step) of the checkpoint already on disk, None when
            there is none.
        run: the run directory, named in the messages.
        advice: what to change when the weights diverge.
    """

    def __init__(self, folder, saved=None, run=None, advice="Lower --learning-rate"):
        super().__init__()
        self.folder = folder
        self.epoch = 0
        self.saved = saved
        self.run = run
        self.advice = advice

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch + 1, 0)

    def write(self, epoch, step):
        """Saves the state after `epoch` whole epochs and `step` batches of the next.

        Raises:
            Diverged: when a weight or optimizer variable is NaN or infinite;
                nothing is written then, so the checkpoint on disk stays good.
        """
        self.check(epoch, step)
        write(self.model, self.folder, epoch, step)
        self.saved = (epoch, step)

    def check(self, epoch, step):
        """Raises `Diverged` when the model holds a NaN or inf after `epoch` epochs and `step` steps."""
        check_finite(self.model, self, epoch, step)

    def stop_advice(self):
        """What a user does after training diverged: lower the rate; resume only from a good checkpoint."""
        then = f", or resume the checkpoint with `{resume_command(self.run)}`" if self.saved and self.run else ""
        return f"{self.advice} and train again{then}."

    def kept(self):
        """Words for the checkpoint on disk, as the stop messages name it."""
        if self.saved is None:
            return "no checkpoint was saved"
        epoch, step = self.saved
        if step:
            return f"the checkpoint of epoch {epoch + 1}, step {step} is kept"
        return f"the checkpoint of epoch {epoch} is kept"


def resume_command(run):
    """The shell command that continues `run`, as the stop messages print it."""
    return f"kgen resume {shlex.quote(str(run))}"


def nonfinite_variable(model):
    """The first weight, state or optimizer variable of `model` holding NaN or inf, or None.

    Checked in NumPy on each variable's values: backend operations would
    compile a kernel per variable shape on jax (eager operations there are
    compiled per shape), seconds for every new model, where the copy to the
    host of kgen's small networks costs milliseconds.
    """
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)  # None before compile
    if optimizer is not None:
        variables += list(optimizer.variables)
    for variable in variables:
        if "float" not in str(variable.dtype):
            continue
        if not np.isfinite(keras.ops.convert_to_numpy(variable)).all():
            return variable
    return None


def check_finite(model, checkpoint, epoch, step):
    """Raises `Diverged` when `model` holds a non-finite value after `epoch` epochs and `step` steps."""
    variable = nonfinite_variable(model)
    if variable is None:
        return
    where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
    raise Diverged(
        f"The weights became non-finite (NaN or inf in {variable.path}) at {where}; "
        f"{checkpoint.kept()}. {checkpoint.stop_advice()}"
    )


def _values(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable)).tolist()
