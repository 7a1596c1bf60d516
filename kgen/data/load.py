"""Loading an MNIST-shaped data set: its sources, in order, and the checks of what they hold.

`load_dataset(name, split)` returns a `Dataset` of uint8 images (N, 28, 28),
their labels and the source they came from (the order of the sources:
`kgen.data`). `to_float` turns the images into what the models take.
"""

import dataclasses
import glob
import os
import stat
import warnings

import numpy as np

from kgen.data.idx import read_idx
from kgen.errors import DataError

DATASETS = ("mnist", "fashion_mnist", "kmnist", "emnist", "binarized_mnist")
SPLITS = ("train", "test")
BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "bundled")
BUNDLED_SOURCE = "bundled MNIST sample (5,000 training / 10,000 test digits)"
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_warned = []  # the reason of the bundled-sample warning, once it was given


@dataclasses.dataclass
class Dataset:
    """Images and labels of one split, and where they came from."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8, or None for a data set without labels
    source: str  # human-readable origin, recorded in the run's config.json
    name: str = "mnist"
    split: str = "train"

    def __len__(self):
        return len(self.images)


def load_dataset(name="mnist", split="train", data_dir=None, offline=False):
    """Loads one split of an MNIST-shaped data set as uint8 arrays.

    Args:
        name: `"mnist"`, `"fashion_mnist"` or another 28x28 grey data set of
            tensorflow-datasets (`"kmnist"`, `"binarized_mnist"`).
        split: `"train"` or `"test"`.
        data_dir: a folder with IDX files or an `.npz`, or an `.npz` file.
            Defaults to the `KGEN_DATA_DIR` environment variable.
        offline: skip every network attempt and use `data_dir` or the
            bundled MNIST sample.

    Returns:
        A `Dataset` with `images` (N, 28, 28) uint8, `labels` (N,) and
        `source`.

    Example:

    >>> ds = load_dataset("mnist", "test", offline=True)
    >>> ds.images.shape, ds.labels[:3]
    ((10000, 28, 28), array([7, 2, 1], dtype=uint8))
    """
    if split not in SPLITS:
        raise DataError(
            f"Unknown split; use one of {', '.join(SPLITS)}. Received: split={split!r}"
        )
    data_dir = data_dir or os.environ.get("KGEN_DATA_DIR") or None
    if data_dir:
        images, labels, source = _load_local(data_dir, split)
        return _checked(Dataset(images, labels, source, name, split))
    if not offline:
        try:
            images, labels, source = _load_online(name, split)
            return _checked(Dataset(images, labels, source, name, split))
        except DataError:
            raise
        except Exception as e:  # no network, no cache, no package
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    else:
        reason = "offline mode"
    if name != "mnist":
        raise DataError(
            f"{name} could not be loaded ({reason}) and only MNIST is bundled; "
            f"pass --data-dir with its IDX files. Received: name={name!r}"
        )
    if not _warned:  # once per process, not once per split
        _warned.append(reason)
        warnings.warn(f"Using the {BUNDLED_SOURCE} shipped with kgen ({reason}).", stacklevel=2)
    return _checked(Dataset(*load_bundled(split), BUNDLED_SOURCE, name, split))


def to_float(images):
    """uint8 images (n, 28, 28) to float32 (n, 28, 28, 1) in [0, 1], as the models take them."""
    return (np.asarray(images, np.float32) / 255.0)[..., None]


def load_bundled(split):
    """The bundled real MNIST digits of `split`, training digits shuffled."""
    prefix = "train-5k" if split == "train" else "t10k"
    images = read_idx(os.path.join(BUNDLED_DIR, f"{prefix}-images-idx3-ubyte.gz"), 3)
    labels = read_idx(os.path.join(BUNDLED_DIR, f"{prefix}-labels-idx1-ubyte.gz"), 1)
    if split == "train":  # the files are sorted by class
        order = np.random.default_rng(0).permutation(len(images))
        images, labels = images[order], labels[order]
    return images, labels


def _load_local(data_dir, split):
    data_dir = os.path.expanduser(os.fspath(data_dir))
    if os.path.isfile(data_dir) and data_dir.endswith(".npz"):
        return _load_npz(data_dir, split)
    if not os.path.isdir(data_dir):
        raise DataError(
            f"Data directory does not exist; pass a folder with IDX files or "
            f"an .npz. Received: data_dir={data_dir}"
        )
    prefix = _IDX_PREFIX[split]
    folder = next((f for f in _idx_folders(data_dir) if _standard(f, prefix)), data_dir)
    image_files, label_files = _standard(folder, prefix) or (
        _find(data_dir, f"{prefix}*-images-idx3-ubyte*"),
        _find(data_dir, f"{prefix}*-labels-idx1-ubyte*"),
    )
    if image_files and label_files:
        if len(image_files) > 1 or len(label_files) > 1:
            raise DataError(
                f"Several {split} IDX files in {data_dir}; keep one set. "
                f"Received: {', '.join(os.path.basename(p) for p in image_files + label_files)}"
            )
        images = read_idx(image_files[0], ndim=3)
        labels = read_idx(label_files[0], ndim=1)
        if len(images) != len(labels):
            raise DataError(
                f"{os.path.basename(image_files[0])} holds {len(images)} images "
                f"but {os.path.basename(label_files[0])} holds {len(labels)} "
                f"labels; use files of one set. Received: data_dir={data_dir}"
            )
        return images, labels, f"IDX files in {os.path.dirname(image_files[0])}"
    npz = sorted(glob.glob(os.path.join(data_dir, "*.npz")))
    if len(npz) == 1:
        return _load_npz(npz[0], split)
    raise DataError(
        f"No {split} data in {data_dir}: expected {prefix}-images-idx3-ubyte[.gz] "
        f"and {prefix}-labels-idx1-ubyte[.gz] (there or in torchvision's MNIST/raw/), or one Keras-style .npz."
    )


def _idx_folders(data_dir):
    """Where IDX files may be: the folder itself, or torchvision's layout under it (ROOT/MNIST/raw/)."""
    return [data_dir, os.path.join(data_dir, "MNIST", "raw"), os.path.join(data_dir, "raw")]


def _standard(folder, prefix):
    """([images], [labels]) under the standard MNIST names in `folder` (unpacked before .gz), or None.

    The exact names win over other IDX files in the same folder (a folder may
    also hold other sets), and torchvision keeps both the .gz and the
    unpacked file: the same data, read once.
    """
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        names = [os.path.join(folder, f"{prefix}-{kind}{ext}") for ext in ("", ".gz")]
        names = _regular(names)
        if not names:
            return None
        found.append(names[:1])
    return tuple(found)


def _find(folder, pattern):
    found = glob.glob(os.path.join(folder, pattern))
    return _regular(sorted(p for p in found if p.endswith(("ubyte", ".gz"))))


def _regular(paths):
    """The `paths` that exist; `DataError` for one that is not a regular file once its links are followed.

    A name linked to /dev/zero, a FIFO or a socket has no size to check and
    no end: it is refused before it is opened.
    """
    found = []
    for path in paths:
        try:
            mode = os.stat(os.path.realpath(path)).st_mode
        except OSError:
            continue  # missing, or a dangling link
        if not stat.S_ISREG(mode):
            raise DataError(
                f"{os.path.basename(path)} is not a regular file (a device, a pipe or a socket); kgen reads IDX "
                f"data from plain files only. Received: path={path}"
            )
        found.append(path)
    return found


def _load_npz(path, split):
    keys = (f"x_{split}", f"y_{split}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(
                    f"{os.path.basename(path)} lacks the arrays "
                    f"{', '.join(missing)} of a Keras-style MNIST .npz. "
                    f"Received: arrays={sorted(f.files)}"
                )
            images, labels = f[keys[0]], f[keys[1]]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"Cannot read {path} as an .npz file: {e}.") from None
    if len(images) != len(labels):
        raise DataError(
            f"{os.path.basename(path)} holds {len(images)} images but "
            f"{len(labels)} labels in {split}. Received: path={path}"
        )
    return images, labels, f"npz file {path}"


def import_tensorflow():
    """`import tensorflow` with its start-up lines off the screen; returns the module (ImportError if absent).

    TensorFlow writes its start-up lines (absl's "All log messages before
    absl::InitializeLog()", oneDNN, CUDA, the CPU's instructions) from C++
    straight to file descriptor 2, whatever `TF_CPP_MIN_LOG_LEVEL` says. On
    torch and jax kgen imports it only where it needs it: TFDS preparing a
    data set, and `--tensorboard`. File descriptor 2 points at /dev/null
    during the import and the creation of its CPU device (which logs too),
    then back where it was; Python's exceptions are not touched. With
    TensorFlow already imported (the tensorflow backend), nothing is done.
    """
    import sys

    if sys.modules.get("tensorflow") is not None:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow

            tensorflow.config.list_logical_devices("CPU")  # the CPU device, whose creation logs a line
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


def _load_online(name, split):
    try:
        import_tensorflow()  # TFDS prepares data sets with it
    except ImportError:
        if name not in ("mnist", "fashion_mnist"):
            raise RuntimeError(f"{name} needs tensorflow-datasets with TensorFlow")
        import keras

        cached = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
        if not glob.glob(os.path.join(cached, f"*{name.split('_')[0]}*")):
            check_network()
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
        if split == "train":
            return x_train, y_train, f"keras.datasets.{name}"
        return x_test, y_test, f"keras.datasets.{name}"
    import logging

    import tensorflow_datasets as tfds

    absl = logging.getLogger("absl")  # TFDS's notes on its cache folders ("has no dataset_info.json"): not kgen's user's
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        if not tfds.builder(name).is_prepared():
            check_network()
        batches = list(tfds.as_numpy(tfds.load(name, split=split).batch(4096)))
    finally:
        absl.setLevel(level)
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches]) if "label" in batches[0] else None
    if images.ndim == 4:
        images = images[..., 0]  # (N, 28, 28, 1) -> (N, 28, 28)
    if images.max() <= 1:  # binarized_mnist stores 0/1
        images = images * 255
    return images, labels, f"tensorflow-datasets {name}"


def check_network(host="storage.googleapis.com", timeout=3.0):
    """Raises `ConnectionError` at once when `host` cannot be reached.

    The downloaders of TFDS and Keras retry for minutes before they give up;
    this probe lets kgen fall back to the bundled sample in seconds.
    """
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"no network ({host}: {e})") from None


def _checked(ds):
    """Checks a loaded split and returns it with uint8 images (N, 28, 28) and uint8 labels (N,).

    Images must be finite; integer images must lie in 0..255, float images in
    0..255 (whole numbers, cast) or in [0, 1] (scaled by 255, with a
    warning). Labels must be one whole number in 0..255 per image.
    """
    images = np.asarray(ds.images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"kgen needs 28x28 grey images; {ds.source} holds images of shape "
            f"{images.shape[1:]}. Received: shape={images.shape}"
        )
    if len(images) == 0:
        raise DataError(f"{ds.source} holds no {ds.split} images.")
    ds.images = _pixels(images, ds)
    if ds.labels is not None:
        ds.labels = _labels(np.asarray(ds.labels), len(images), ds)
    return ds


def _pixels(images, ds):
    if images.dtype == np.uint8:
        return images
    if images.dtype == bool:
        return images.astype(np.uint8) * 255
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise DataError(f"{ds.source} holds {ds.split} images of type {images.dtype}; kgen needs numbers 0..255.")
    if np.issubdtype(images.dtype, np.floating) and not np.all(np.isfinite(images)):
        raise DataError(
            f"{ds.source} holds {ds.split} images with NaN or infinite pixels "
            f"({int(np.sum(~np.isfinite(images)))} of {images.size}); kgen needs numbers 0..255."
        )
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise DataError(
            f"{ds.source} holds {ds.split} pixels from {low} to {high}; kgen needs 0..255 "
            f"(uint8), or floats in [0, 1]. Received: dtype={images.dtype}"
        )
    if np.issubdtype(images.dtype, np.floating):
        if high <= 1:
            warnings.warn(
                f"{ds.source} holds {ds.split} images as floats in [0, 1]; kgen scales them by 255 to 0..255.",
                stacklevel=3,
            )
            return np.round(images * 255).astype(np.uint8)
        if not np.all(images == np.round(images)):
            raise DataError(
                f"{ds.source} holds {ds.split} images as floats from {low} to {high} that are not whole "
                f"numbers; kgen needs 0..255 (uint8), or floats in [0, 1]."
            )
    return images.astype(np.uint8)


def _labels(labels, n, ds):
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise DataError(
            f"{ds.source} holds {ds.split} labels of shape {labels.shape} for {n} images; "
            f"kgen needs one label per image, shape ({n},)."
        )
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DataError(f"{ds.source} holds {ds.split} labels of type {labels.dtype}; kgen needs whole numbers.")
    if n and (
        (np.issubdtype(labels.dtype, np.floating) and not np.all(np.isfinite(labels)))
        or not np.all(labels == np.round(labels))
        or labels.min() < 0
        or labels.max() > 255
    ):
        bad = labels[~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0) | (labels > 255)] \
            if np.issubdtype(labels.dtype, np.floating) else labels[(labels < 0) | (labels > 255)]
        raise DataError(
            f"{ds.source} holds {ds.split} labels that are not class numbers 0..255 "
            f"(for example {bad.flat[0].item()!r}); kgen needs one whole number >= 0 per image."
        )
    return labels.astype(np.uint8)
