"""The run directory: create it, write into it atomically, read it back.

A run of `kgen train MODEL` lives in `<root>/<model>/<YYYYmmdd-HHMMSS>[-name]/`:

    config.json     model and training config, data source, backend, versions
    model.keras     the final model (optimizer state included)
    checkpoint/     the latest resumable state (kgen.checkpoint): state.json and the model file it names
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
CHECKPOINT = "checkpoint"  # its files: kgen.checkpoint
SAMPLES = "samples"
PLOTS = "plots"
LOGS = "logs"  # TensorBoard logs (kgen train --tensorboard)


def create_run(root, model, name=None):
    """Creates a new, empty run directory and returns its path.

    Args:
        root: the root of all runs (`artifacts` by default on the CLI).
        model: the model's short name (`"vae"`, ...), the first sub-folder.
        name: optional suffix of the folder name.
    """
    check_name(name)
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


def check_name(name):
    """Raises `RunError` unless `name` is None or one safe folder-name component.

    The name becomes part of the run folder's name under `--out`; a `/`, a
    `..`, an absolute path or a leading `.` would put the run elsewhere or
    hide it.
    """
    if name is None:
        return
    bad = (
        not isinstance(name, str)
        or not name
        or name.startswith((".", "-"))
        or any(c in name for c in '/\\:\0')
        or any(ord(c) < 32 for c in name)
        or len(name) > 100
    )
    if bad:
        raise RunError(
            f"--name must be one folder-name part (letters, digits, '_', '-', '.'; no '/', no "
            f"leading '.' or '-', at most 100 characters); runs stay under --out. Received: name={name!r}"
        )


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
        if e.filename in (None, tmp):  # name the file the user knows (a full disk in a writer names none)
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


def read_json_dict(path, what):
    """A JSON object read from `path`, or a one-line `RunError` naming the file.

    Args:
        path: the file.
        what: what the file is, for the message ("the run's config").
    """
    try:
        obj = read_json(path)
    except UnicodeDecodeError:
        raise RunError(f"{path} cannot be read: it is not UTF-8 text; {what} is damaged.") from None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise RunError(f"{path} cannot be read ({reason}); {what} is damaged.") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} holds a JSON {type(obj).__name__}, not an object; {what} is damaged.")
    return obj


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
        RunError: when the folder does not exist, holds no `config.json`, or
            its `config.json` is not a kgen run config (one line naming it).
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
    config = read_json_dict(config_path, "the run")
    missing = [k for k in ("model", "train") if k not in config]
    if missing:
        raise RunError(
            f"{config_path} lacks {' and '.join(repr(k) for k in missing)}; it is not the config of a "
            f"kgen run, or the run is damaged."
        )
    if not isinstance(config["model"], str) or not isinstance(config["train"], dict):
        raise RunError(f"{config_path}: 'model' must be a name and 'train' an object; the run is damaged.")
    return config


def load_model(path):
    """Loads the model of a run: `model.keras`, else the latest checkpoint."""
    from kgen import checkpoint

    load_run(path)
    candidate = os.path.join(path, MODEL)
    if not os.path.isfile(candidate):
        state = checkpoint.read(path)
        if state is None:
            raise RunError(f"{path} holds no {MODEL} yet; train it or resume it first.")
        candidate = checkpoint.model_path(path, state)
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


def read_history(path, epochs=None):
    """The rows of a run's `history.csv`, checked: epochs 1, 2, ... and numbers.

    Args:
        path: the run directory.
        epochs: when given, the rows of the first `epochs` epochs, which must
            all be there (a resume keeps those and writes the rest).

    Raises:
        RunError: when the file cannot be read or parsed (one line naming it);
            a resume never writes over a history it cannot read.
    """
    history_path = os.path.join(path, HISTORY)
    if not os.path.isfile(history_path):
        if epochs:
            raise RunError(
                f"{history_path} is missing, and the checkpoint has {epochs} epochs; "
                f"put the file back, or train the run anew."
            )
        return []
    try:
        rows = read_csv(history_path)
    except UnicodeDecodeError:
        rows, problem = None, "it is not UTF-8 text"
    except (OSError, csv.Error) as e:
        rows, problem = None, str(e).splitlines()[0]
    if rows is not None:
        problem = None
        for i, row in enumerate(rows):
            if row.get("epoch") != i + 1:
                problem = f"row {i + 1} has epoch {row.get('epoch')!r}, not {i + 1}"
            else:
                bad = [k for k, v in row.items() if not isinstance(v, (int, float)) or k is None]
                if bad:
                    problem = f"row {i + 1} holds a value that is not a number in column {bad[0]!r}"
            if problem:
                break
        if problem is None and epochs is not None and len(rows) < epochs:
            problem = f"it has {len(rows)} rows, and the checkpoint has {epochs} epochs"
    if problem:
        then = "; resume will not write over it. Restore it, or move it away to resume without the earlier rows" \
            if epochs is not None else ""
        raise RunError(f"{history_path} is damaged: {problem}{then}.")
    return rows if epochs is None else rows[:epochs]


LOCK = ".lock"


@contextlib.contextmanager
def locked(path):
    """Holds an exclusive lock on a run while it trains (`fcntl.flock` on `RUN/.lock`).

    The lock dies with its process, so a killed run leaves none behind;
    the empty `.lock` file stays.

    Raises:
        RunError: when another process holds the run (a second `--resume`).
    """
    try:
        import fcntl
    except ImportError:  # no flock on this system: no lock
        yield
        return
    fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunError(f"{path} is being trained by another process; wait for it to finish or stop it.") from None
        yield
    finally:
        os.close(fd)


def remove_temporaries(path):
    """Deletes the `.tmp-*` files a killed writer may have left in a run."""
    for folder, _, files in os.walk(path):
        for name in files:
            if name.startswith(".tmp-"):
                os.remove(os.path.join(folder, name))


def list_runs(root, skipped=None):
    """All runs under `root` (newest first) as dicts of config and metrics.

    Args:
        root: the root of the run directories.
        skipped: a list that gets one line (naming the file) per damaged
            run, which is left out; without it damaged runs are left out
            silently.
    """
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
                runs.append(read_run(path))
            except RunError as e:
                if skipped is not None:
                    skipped.append(str(e))
    return sorted(runs, key=lambda r: str(r["config"].get("created", "")), reverse=True)


def read_run(path):
    """A run's config, metrics (empty before `kgen evaluate`) and history, as one dict.

    Returns:
        `{"path", "config", "metrics", "history"}`.

    Raises:
        RunError: one line naming the damaged file.
    """
    config = load_run(path)
    metrics_path = os.path.join(path, METRICS)
    metrics = read_json_dict(metrics_path, "its metrics file") if os.path.isfile(metrics_path) else {}
    return {"path": os.fspath(path), "config": config, "metrics": metrics, "history": read_history(path)}


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
