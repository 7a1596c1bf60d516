"""Trained models that ship with kgen, as presets: KerasHub's folder of config, metadata and weights.

A preset is a folder named after it; those kgen ships live here, in
`kgen/presets/<name>/`:

    config.json        the model's Keras config (`keras.saving.serialize_keras_object`,
                       without its compile config), so that it rebuilds on any backend
    metadata.json      its name and description, its numbers (the run's `kgen evaluate`,
                       and a check on 1,000 samples measured from the preset itself),
                       the commands that made it, date, commit, evaluator hash, kgen
                       version, size
    model.weights.h5   the sampling weights only (`SAMPLING_WEIGHTS`): no optimizer state,
                       no discriminator, and of a model with a moving average (EMA) only
                       the averaged copy, which is the one that draws

`from_preset(name)` (also `kgen.models.from_preset`) rebuilds the model from
its config and loads the weights; `list_presets()` lists them. Wherever kgen
takes a run (`kgen sample`, `kgen complete`, `kgen evaluate`, `kgen compare`)
a preset reads as the finished run it came from: `kgen.runs.load_run` gives
that run's config (its data read from kgen's bundled digits or
tensorflow-datasets, not the folder it trained from) and
`kgen.checkpoint.load_model` the preset's model.
`kgen.presets.export.export_preset(run, name)` (`kgen export-preset RUN
NAME`) makes one from a run measured by `kgen evaluate`.

Example:

>>> model = kgen.models.from_preset("cgan-mnist")
>>> sevens = model.generate(16, labels=7)  # (16, 28, 28, 1) in [0, 1]
"""

import os

from kgen import files
from kgen.errors import PresetError, RunError

ROOT = os.path.dirname(os.path.abspath(__file__))  # the presets kgen ships
CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
CHECK_SAMPLES = 1000  # the samples of the check that metadata.json records and the tests repeat
CHECK_SEED = 0
CHECK_GIVEN = 8  # patches kept when a PatchLSTM's check completes test digits
FINGERPRINT_IMAGES = 16  # images of the cheap check that every backend draws alike (export.fingerprint)
# what "sampling weights only" leaves out of model.weights.h5 (`left_out`)
SAMPLING_WEIGHTS = (
    "no optimizer state; no discriminator; of a model with a moving average (EMA) only the "
    "averaged copy, which draws the samples and is copied into the trained copy on loading"
)


def names(root=None):
    """The names of the presets in `root` (default: those kgen ships), sorted."""
    root = ROOT if root is None else root
    if not os.path.isdir(root):
        return []
    return sorted(n for n in os.listdir(root) if not n.startswith(".") and is_preset(os.path.join(root, n)))


def is_preset(path):
    """Whether `path` is a preset folder (it holds a `metadata.json`; a run holds none)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, METADATA))


def find(name, root=None):
    """The folder of a preset: `name` itself when it is a preset folder, else kgen's preset of that name; None if neither."""
    name = os.fspath(name)
    if is_preset(name):
        return name
    return os.path.join(ROOT if root is None else root, name) if name in names(root) else None


def not_found(name, root=None):
    """The one line saying that `name` is no preset, naming those there are."""
    there = names(root)
    return (
        f"No preset named {name!r}; kgen ships {', '.join(there) if there else 'none yet'} (`kgen presets`). "
        f"Received: name={name!r}"
    )


def check_name(name):
    """Raises `PresetError` (exit 2) unless `name` is a preset's name: one folder-name part.

    Lowercase letters, digits, '-', '_' and '.', starting with a letter or a
    digit, at most 64 characters (`cgan-mnist`).
    """
    ok = isinstance(name, str) and 0 < len(name) <= 64 and name[0].isalnum() and all(
        c.isdigit() or "a" <= c <= "z" or c in "-_." for c in name
    )
    if not ok:
        raise PresetError(
            "A preset name is one folder-name part: lowercase letters, digits, '-', '_' and '.', starting with a "
            f"letter or a digit, at most 64 characters (cgan-mnist). Received: name={name!r}",
            exit_code=2,
        )


def read_metadata(path):
    """A preset's `metadata.json`, checked: a one-line `PresetError` when it is damaged."""
    meta_path = os.path.join(path, METADATA)
    try:
        meta = files.read_json_dict(meta_path, "the preset")
    except RunError as e:
        raise PresetError(str(e)) from None
    missing = [k for k in ("name", "model", "model_class") if not isinstance(meta.get(k), str)]
    if missing:
        raise PresetError(f"{meta_path} lacks {', '.join(repr(k) for k in missing)}; the preset is damaged.")
    return meta


def list_presets(root=None, skipped=None):
    """The presets in `root` (default: those kgen ships) as their metadata, sorted by name.

    Each dict is the preset's `metadata.json` with `path` (its folder) and
    `size_bytes` (its files on disk) added.

    Args:
        root: the folder of the presets.
        skipped: a list that gets one line per damaged preset, which is left
            out; without it a damaged preset raises `PresetError`.
    """
    root = ROOT if root is None else root
    found = []
    for name in names(root):
        path = os.path.join(root, name)
        try:
            meta = read_metadata(path)
        except PresetError as e:
            if skipped is None:
                raise
            skipped.append(str(e))
            continue
        found.append({**meta, "path": path, "size_bytes": folder_size(path)})
    return found


def folder_size(path):
    """Bytes of the files in a folder (not below it)."""
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if os.path.isfile(os.path.join(path, f)))


def from_preset(name):
    """The Keras model of a preset, ready to sample, on the current backend.

    Args:
        name: the name of a preset kgen ships (`"cgan-mnist"`, see
            `list_presets()`), or the folder of one.

    Returns:
        The model (a `keras.Model` of `kgen.models`), not compiled. A model
        with a moving average draws from it, and its trained copy holds the
        same weights; a GAN's discriminator is not shipped (it starts anew).

    Raises:
        PresetError: no such preset (one line naming those there are), or a
            damaged one (one line naming the file).

    Example:

    >>> model = kgen.models.from_preset("cgan-mnist")
    >>> model.generate(10, labels=7, seed=0).shape
    (10, 28, 28, 1)
    """
    path = find(name)
    if path is None:
        raise PresetError(not_found(name), exit_code=2)
    read_metadata(path)
    return load(path)


def load(path):
    """The model of the preset folder `path` (its `config.json` and `model.weights.h5`; `from_preset` reads its metadata first)."""
    import importlib

    import keras

    config_path, weights_path = os.path.join(path, CONFIG), os.path.join(path, WEIGHTS)
    try:
        config = files.read_json_dict(config_path, "the preset")
    except RunError as e:
        raise PresetError(str(e)) from None
    if not os.path.isfile(weights_path):
        raise PresetError(f"{weights_path} is missing; the preset is damaged.")
    module = config.get("module")
    if not isinstance(module, str) or not module.startswith("kgen.models."):
        raise PresetError(f"{config_path} names no kgen model module; the preset is damaged. Received: module={module!r}")
    try:
        # the module of the model's class registers it with Keras; kgen.models imports this package for
        # from_preset, so it is named by the preset's config instead of imported here
        importlib.import_module(module)
        model = keras.saving.deserialize_keras_object(config)
    except Exception as e:
        raise PresetError(f"{config_path} does not rebuild a model ({_reason(e)}); the preset is damaged.") from None
    if not isinstance(model, keras.Model):
        raise PresetError(f"{config_path} holds a {type(model).__name__}, not a model; the preset is damaged.")
    try:
        model.load_weights(weights_path, objects_to_skip=left_out(model))
    except Exception as e:
        raise PresetError(f"{weights_path} cannot be loaded ({_reason(e)}); the preset is damaged.") from None
    for trained, average in _averaged(model):  # the trained copy starts from the average that draws
        for w, a in zip(trained.weights, average.weights):
            w.assign(keras.ops.convert_to_numpy(a))
    return model


def _reason(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else 'no message'}"


def _averaged(model):
    """(trained copy, moving average) of each network that a moving average draws from."""
    pairs = []
    for trained, average in (("generator", "ema_generator"), ("network", "ema_network")):
        if getattr(model, average, None) is not None and getattr(model, trained, None) is not None:
            pairs.append((getattr(model, trained), getattr(model, average)))
    return pairs


def left_out(model):
    """What a preset's weights leave out: the optimizers, and the networks that only train.

    The networks: a GAN's discriminator, and the trained copy of each network
    that a moving average draws from (`ema_generator`, `ema_network`). Passed
    as `objects_to_skip` to Keras's weight saving and loading, which then
    neither write nor read them.
    """
    from kgen import capabilities as caps

    import keras

    out = [v for v in vars(model).values() if isinstance(v, keras.optimizers.Optimizer)]
    if caps.has(model, caps.ADVERSARIAL):
        out.append(model.discriminator)
    out += [trained for trained, _ in _averaged(model)]
    return out


def save_weights(model, path):
    """Writes the sampling weights of `model` (all but `left_out(model)`) to `path` (`.weights.h5`)."""
    from kgen.backend.common import save_weights_skipping

    save_weights_skipping(model, path, left_out(model))


def headline(m):
    """The headline numbers of a metrics dict (`metrics.json`, or `measure`'s) as one flat dict.

    `fid` and `fid_floor`, `precision`, `recall`; a conditional model's
    `labels_as_asked`, `worst_class` and `worst_class_accuracy`; a
    PatchLSTM's `completion_agreement` and `test_nll`; a VAE's `elbo` (and
    `log_likelihood` when measured). Those the metrics lack are left out.
    """
    s, f = m.get("samples", {}), m.get("floor", {})
    cond, comp, like = m.get("conditional", {}), m.get("completion", {}), m.get("likelihood", {})
    out = {
        "fid": s.get("fid"),
        "fid_floor": f.get("fid"),
        "precision": s.get("precision"),
        "recall": s.get("recall"),
        "labels_as_asked": cond.get("accuracy"),
        "worst_class": cond.get("worst_class"),
        "worst_class_accuracy": cond.get("worst_accuracy"),
        "completion_agreement": comp.get("label_agreement"),
        "test_nll": like.get("test_nll"),
        "elbo": like.get("elbo"),
        "log_likelihood": like.get("log_likelihood"),
    }
    return {k: v for k, v in out.items() if v is not None}


def summary(numbers):
    """The headline numbers as `kgen presets` prints them (`FID 2.1 (floor 0.9), precision 0.91, ...`)."""
    parts = []
    if "fid" in numbers:
        floor = f" (floor {numbers['fid_floor']:.3g})" if "fid_floor" in numbers else ""
        parts.append(f"FID {numbers['fid']:.3g}{floor}")
    for key, name in (("precision", "precision"), ("recall", "recall")):
        if key in numbers:
            parts.append(f"{name} {numbers[key]:.2f}")
    if "labels_as_asked" in numbers:
        parts.append(f"labels as asked {100 * numbers['labels_as_asked']:.1f} %")
    if "worst_class_accuracy" in numbers:
        parts.append(f"worst class {numbers.get('worst_class')} {100 * numbers['worst_class_accuracy']:.1f} %")
    if "completion_agreement" in numbers:
        parts.append(f"completion agreement {100 * numbers['completion_agreement']:.1f} %")
    for key, name in (("test_nll", "test NLL"), ("log_likelihood", "log p(x)"), ("elbo", "ELBO")):
        if key in numbers:
            parts.append(f"{name} {numbers[key]:.1f} nats")
    return ", ".join(parts)
