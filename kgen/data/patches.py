"""A 28x28 image as a sequence of 16 patches of 7x7, and back.

The image is cut into a 4x4 grid of 7x7 patches, read row-major (left to
right, top to bottom), each patch flattened row-major into 49 values. Patches
1-4 are the top row of the image, 1-8 its top half. The round trip
`from_patches(to_patches(x))` is exact: only reshapes and transposes.

The functions take NumPy arrays (and return NumPy) or backend tensors (and
return tensors), so the same code cuts the data and the model's batches.
"""

import numpy as np

GRID = 4  # patches per side
SIZE = 7  # pixels per patch side
NUM_PATCHES = GRID * GRID  # 16
PATCH_DIM = SIZE * SIZE  # 49


def _ops(x):
    if isinstance(x, np.ndarray):
        return np
    from keras import ops

    return ops


def to_patches(images):
    """Cuts images into 16 row-major patches of 7x7, each flattened.

    Args:
        images: (n, 28, 28) or (n, 28, 28, 1) images.

    Returns:
        Patches of shape (n, 16, 49), same dtype.

    Example:

    >>> p = to_patches(np.zeros((2, 28, 28, 1)))
    >>> p.shape
    (2, 16, 49)
    """
    xp = _ops(images)
    shape = tuple(images.shape)
    if shape[1:] not in ((28, 28), (28, 28, 1)):
        raise ValueError(f"to_patches needs images (n, 28, 28[, 1]). Received: shape={shape}")
    x = xp.reshape(images, (-1, GRID, SIZE, GRID, SIZE))  # (n, row, y, col, x)
    x = xp.transpose(x, (0, 1, 3, 2, 4))  # (n, row, col, y, x)
    return xp.reshape(x, (-1, NUM_PATCHES, PATCH_DIM))  # (n, 16, 49)


def from_patches(patches):
    """Puts 16 row-major patches of 49 values back into images.

    Args:
        patches: (n, 16, 49) patches, as from `to_patches`.

    Returns:
        Images of shape (n, 28, 28, 1), same dtype.
    """
    xp = _ops(patches)
    shape = tuple(patches.shape)
    if shape[1:] != (NUM_PATCHES, PATCH_DIM):
        raise ValueError(f"from_patches needs patches (n, 16, 49). Received: shape={shape}")
    x = xp.reshape(patches, (-1, GRID, GRID, SIZE, SIZE))  # (n, row, col, y, x)
    x = xp.transpose(x, (0, 1, 3, 2, 4))  # (n, row, y, col, x)
    return xp.reshape(x, (-1, 28, 28, 1))


def fill_missing(images, fill, given):
    """Keeps the first `given` patches of each image and copies the rest from `fill`.

    With `fill` the mean training image this is the trivial baseline of
    completion; with `fill=0` it blanks the missing part.

    Args:
        images: (n, 28, 28[, 1]) NumPy images.
        fill: a number, or one image (28, 28[, 1]) to take missing patches from.
        given: how many patches to keep, 0 to 16.

    Returns:
        NumPy images (n, 28, 28, 1) of `images`' dtype.
    """
    patches = to_patches(np.array(images))  # (n, 16, 49), a copy
    fill = np.broadcast_to(np.asarray(fill, patches.dtype), (28, 28, 1))
    patches[:, given:] = to_patches(fill[None])[:, given:]
    return from_patches(patches)


def missing_patch_mse(completed, originals, given):
    """Mean squared error over the pixels of the patches after the first `given`.

    Args:
        completed: (n, 28, 28[, 1]) completed images in [0, 1].
        originals: the true images, same shape.
        given: how many leading patches were given (1 to 15).

    Returns:
        A float: the mean over images and missing pixels.
    """
    a = to_patches(np.asarray(completed, np.float64))[:, given:]
    b = to_patches(np.asarray(originals, np.float64))[:, given:]
    return float(np.mean(np.square(a - b)))
