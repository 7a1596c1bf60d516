"""The run directory: create it, write into it atomically, read it back.

A run of `kgen train MODEL` lives in `<root>/<model>/<YYYYmmdd-HHMMSS>[-name]/`:

    config.json     model and training config, data source, backend, versions
    model.keras     the final model (optimizer state included)
    checkpoint/     the latest resumable state: state.json and the model file it names
    history.csv     one row per epoch
    samples/        epoch_001.png, ... fixed-noise sample grids
    plots/          loss curves and model-specific figures
    metrics.json    written by `kgen evaluate`

Every file is written to a temporary name in the same folder and renamed into
place, so a crash during a write leaves the previous version whole.
"""

import contextlib
import csv
import io
import json
import os
import time
import zipfile

from kgen.errors import RunError

CONFIG = "config.json"
MODEL = "model.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINT = "checkpoint"
CHECKPOINT_STATE = "state.json"
SAMPLES = "samples"
PLOTS = "plots"


def create_run(root, model, name=None):
    """Creates a new, empty run directory and returns its path.

    Args:
        root: the root of all runs (`artifacts` by default on the CLI).
        model: the model's short name (`"vae"`, ...), the first sub-folder.
        name: optional suffix of the folder name.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, model, f"{stamp}-{name}" if name else stamp)
    path, i = base, 1
    while True:
        try:
            os.makedirs(path)
            break
        except FileExistsError:
            i += 1
            path = f"{base}-{i}"
    for sub in (SAMPLES, PLOTS, CHECKPOINT):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, renamed to `path` on success.

    The temporary name keeps the extension, so writers that pick a format by
    extension (`model.save`, `savefig`) work. On an exception the temporary
    file is removed and `path` is untouched.

    Example:

    >>> with atomic_path("run/model.keras") as tmp:
    ...     model.save(tmp)
    """
    folder, base = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{base}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename == tmp:  # name the file the user knows
            e.filename = os.fspath(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_csv(path, rows):
    """Writes a list of dicts as CSV (columns in first-seen order) atomically."""
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def read_csv(path):
    """Reads a CSV written by `write_csv`; numbers come back as ints or floats."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def load_run(path):
    """Checks that `path` is a run directory and returns its config.

    Raises:
        RunError: when the folder does not exist or holds no `config.json`.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RunError(f"Run directory does not exist. Received: run={path}")
    config_path = os.path.join(path, CONFIG)
    if not os.path.isfile(config_path):
        raise RunError(
            f"{path} is not a kgen run: it has no {CONFIG}. Pass a folder "
            f"that `kgen train` printed (see `kgen runs`)."
        )
    try:
        return read_json(config_path)
    except (OSError, ValueError) as e:
        raise RunError(f"{config_path} cannot be read ({e}); the run is damaged.") from None


def load_model(path):
    """Loads the model of a run: `model.keras`, else the latest checkpoint."""
    load_run(path)
    candidate = os.path.join(path, MODEL)
    if not os.path.isfile(candidate):
        state = read_checkpoint(path)
        if state is None:
            raise RunError(f"{path} holds no {MODEL} yet; train it or resume it first.")
        candidate = os.path.join(path, CHECKPOINT, state["model"])
    return load_model_file(candidate)


def load_model_file(path):
    """`keras.saving.load_model` with a one-line `RunError` for a bad file."""
    import keras

    from kgen import models  # noqa: F401  (registers the model classes)

    if not zipfile.is_zipfile(path):
        raise RunError(
            f"{path} is not a .keras file (corrupt or truncated); resume the run "
            f"from its checkpoint or train it again."
        )
    try:
        return keras.saving.load_model(path)
    except Exception as e:
        raise RunError(
            f"{path} cannot be loaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'corrupt file'}); "
            f"resume the run from its checkpoint or train it again."
        ) from None


def read_checkpoint(path):
    """The state of a run's latest checkpoint (a dict naming its model file), or None."""
    state_path = os.path.join(path, CHECKPOINT, CHECKPOINT_STATE)
    if not os.path.isfile(state_path):
        return None
    try:
        state = read_json(state_path)
    except (OSError, ValueError) as e:
        raise RunError(f"{state_path} cannot be read ({e}); the checkpoint is damaged.") from None
    if not os.path.isfile(os.path.join(path, CHECKPOINT, state.get("model", ""))):
        raise RunError(f"{state_path} names a model file that is missing; the checkpoint is damaged.")
    return state


def remove_temporaries(path):
    """Deletes the `.tmp-*` files a killed writer may have left in a run."""
    for folder, _, files in os.walk(path):
        for name in files:
            if name.startswith(".tmp-"):
                os.remove(os.path.join(folder, name))


def list_runs(root):
    """All runs under `root` (newest first) as dicts of config and metrics."""
    runs = []
    if not os.path.isdir(root):
        return runs
    for model in sorted(os.listdir(root)):
        folder = os.path.join(root, model)
        if not os.path.isdir(folder):
            continue
        for stamp in sorted(os.listdir(folder)):
            path = os.path.join(folder, stamp)
            if not os.path.isfile(os.path.join(path, CONFIG)):
                continue
            try:
                config = read_json(os.path.join(path, CONFIG))
            except (OSError, ValueError):
                continue
            metrics_path = os.path.join(path, METRICS)
            metrics = read_json(metrics_path) if os.path.isfile(metrics_path) else {}
            history_path = os.path.join(path, HISTORY)
            history = read_csv(history_path) if os.path.isfile(history_path) else []
            runs.append(
                {"path": path, "config": config, "metrics": metrics, "history": history}
            )
    return sorted(runs, key=lambda r: r["config"].get("created", ""), reverse=True)


def _number(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
