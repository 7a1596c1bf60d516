"""MNIST-shaped data sets: where they come from and how they are read.

`load_dataset(name, split)` returns a `Dataset` of uint8 images (N, 28, 28),
their labels and the source they came from (`kgen.data.load`); `to_float`
makes them the float images the models take. Sources, in order:

1. `data_dir` (or the `KGEN_DATA_DIR` environment variable): the four standard
   IDX files, gzipped or not, or a Keras-style `.npz` with `x_train`,
   `y_train`, `x_test`, `y_test`.
2. tensorflow-datasets (its cache, else a download). Preparing a TFDS data set
   the first time needs TensorFlow; without it `mnist` and `fashion_mnist`
   come from `keras.datasets` (cached in `~/.keras/datasets`).
3. The MNIST sample bundled with kgen (5,000 class-balanced training digits
   and the full 10,000-digit test set), with a warning, when the network is
   unavailable or `offline=True`.
"""

from kgen.data.idx import read_idx, write_idx
from kgen.data.images import read_images
from kgen.data.load import (
    BUNDLED_DIR,
    BUNDLED_SOURCE,
    DATASETS,
    SPLITS,
    Dataset,
    check_network,
    load_bundled,
    load_dataset,
    to_float,
)
from kgen.data.patches import fill_missing, from_patches, missing_patch_mse, to_patches

__all__ = [
    "BUNDLED_DIR",
    "BUNDLED_SOURCE",
    "DATASETS",
    "SPLITS",
    "Dataset",
    "check_network",
    "load_dataset",
    "load_bundled",
    "to_float",
    "read_idx",
    "write_idx",
    "to_patches",
    "from_patches",
    "fill_missing",
    "missing_patch_mse",
    "read_images",
]
