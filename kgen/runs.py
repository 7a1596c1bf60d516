"""The run directory: create it, read its config and history back, lock it.

A run of `kgen train MODEL` lives in `<root>/<model>/<YYYYmmdd-HHMMSS>[-name]/`:

    config.json     model and training config, data source, backend, versions, run format
    model.keras     the final model (optimizer state included)
    checkpoint/     the latest resumable state (kgen.checkpoint): state.json and the model file it names
    history.csv     one row per epoch
    samples/        epoch_001.png, ... fixed-noise sample grids
    plots/          loss curves and model-specific figures
    metrics.json    written by `kgen evaluate`

Every file is written through `kgen.files` (to a temporary name in the same
folder, then renamed into place), so a crash during a write leaves the previous
version whole. Loading the model of a run: `kgen.checkpoint.load_model`.

A run records the `RUN_FORMAT` of the kgen that wrote it in `config.json`
(`"run_format"`); a run of another format (or of none: made before kgen
recorded it) is refused with one line naming the kgen version that wrote it,
and is trained anew. kgen keeps no code for reading runs of earlier formats.
"""

import contextlib
import csv
import os
import time

import kgen
from kgen.errors import RunError
from kgen.files import read_csv, read_json_dict

CONFIG = "config.json"
MODEL = "model.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINT = "checkpoint"  # its files: kgen.checkpoint
SAMPLES = "samples"
PLOTS = "plots"
LOGS = "logs"  # TensorBoard logs (kgen train --tensorboard)
PRESET_METADATA = "metadata.json"  # what a preset folder holds and a run does not (kgen.presets)

# The layout of a run that this kgen reads: config.json and its keys, the checkpoint,
# the trackers in model.keras. Raise it with any change that runs written before cannot follow.
RUN_FORMAT = 1


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
        or not all(c.isalnum() or c in "_-." for c in name)  # no space, control, separator or direction mark
        or len(name) > 100
    )
    if bad:
        raise RunError(
            f"--name must be one folder-name part (letters, digits, '_', '-', '.' only; no "
            f"leading '.' or '-', at most 100 characters); runs stay under --out. Received: name={name!r}"
        )


def load_run(path):
    """Checks that `path` is a run directory and returns its config.

    A preset (`kgen.presets`) reads as the finished run it came from: its
    config has `"preset"`, the preset's name.

    Raises:
        RunError: when the folder does not exist, holds no `config.json`,
            its `config.json` is not a kgen run config, or the run is of
            another `RUN_FORMAT` (one line naming it).
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RunError(f"Run directory does not exist. Received: run={path}")
    if os.path.isfile(os.path.join(path, PRESET_METADATA)):  # a preset reads as the finished run it came from
        return _preset_config(path)
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
    if config.get("run_format") != RUN_FORMAT:
        versions = config.get("versions")
        version = versions.get("kgen") if isinstance(versions, dict) else None
        found = f"run format {config['run_format']!r}" if "run_format" in config else "no run format"
        raise RunError(
            f"{path} was made by kgen {version if isinstance(version, str) else '(version unknown)'} ({found}); "
            f"kgen {kgen.__version__} reads runs of format {RUN_FORMAT} only: train it again with this version."
        )
    return config


def _preset_config(path):
    """The config of the run a preset (`kgen.presets`) came from, as `load_run` gives a run's.

    Its data come from kgen's bundled digits or tensorflow-datasets
    (`data_dir` None; `offline` for MNIST, whose test set is bundled), not
    from the folder it trained from; `"preset"` names the preset.
    """
    meta_path = os.path.join(path, PRESET_METADATA)
    meta = read_json_dict(meta_path, "the preset")
    config = meta.get("run_config")
    if not isinstance(config, dict) or not isinstance(config.get("train"), dict) or not isinstance(meta.get("name"), str):
        raise RunError(f"{meta_path} lacks 'name' or 'run_config'; the preset is damaged.")
    train = dict(config["train"], data_dir=None, offline=config["train"].get("dataset", "mnist") == "mnist")
    return {**config, "train": train, "preset": meta["name"]}


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
        elif problem is None and epochs is not None and len(rows) > epochs + 1:  # one more: a stop before the checkpoint
            problem = f"it has {len(rows)} rows, and the checkpoint has only {epochs} epochs (a rewound checkpoint)"
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
    lock = os.path.join(path, LOCK)
    try:  # never through a link: a .lock linked elsewhere would create or open a file outside the run
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        if os.path.islink(lock):
            raise RunError(
                f"{lock} is a symbolic link; kgen locks a run with a plain file of its own. Remove the link and "
                f"run the command again. Received: {LOCK} -> {os.readlink(lock)}"
            ) from None
        raise RunError(f"{lock} cannot be opened ({e.strerror or e}); the run cannot be locked.") from None
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
    if "preset" in config:  # its run's metrics travel in its metadata.json
        metrics = read_json_dict(os.path.join(path, PRESET_METADATA), "the preset").get("metrics") or {}
    return {"path": os.fspath(path), "config": config, "metrics": metrics, "history": read_history(path)}
