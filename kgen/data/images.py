"""A user's own digits from a PNG or a `.npy` file, as the models take them."""

import os
import warnings

import numpy as np

from kgen.errors import DataError


def read_images(path):
    """Reads 28x28 grey images from a PNG (one image) or a `.npy` file.

    A `.npy` holds one image (28, 28) or several (n, 28, 28[, 1]): integers
    from 0 to 255, or floats in [0, 1]. A PNG holds one image, converted to
    grey. Digits are white on black, as in MNIST; an image that is mostly
    white (a dark digit on a light page) is inverted, with a warning.

    Args:
        path: the `.png` or `.npy` file.

    Returns:
        float32 images (n, 28, 28, 1) in [0, 1].

    Example:

    >>> read_images("my_digit.png").shape
    (1, 28, 28, 1)
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            images = np.load(path, allow_pickle=False)
        except Exception as e:
            raise DataError(f"Cannot read {path} as a .npy file ({type(e).__name__}: {e}).") from None
    elif ext == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                images = np.asarray(image.convert("L"))[None]  # (1, h, w)
        except Exception as e:
            raise DataError(f"Cannot read {path} as a PNG image ({type(e).__name__}).") from None
    else:
        raise DataError(f"Images must be a .png or a .npy file. Received: path={path}")
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) == 0:
        shape = "x".join(map(str, images.shape[-2:][::-1])) if ext == ".png" else images.shape
        raise DataError(
            f"{os.path.basename(path)} must hold 28x28 grey images (n, 28, 28[, 1]); resize it first. "
            f"Received: {'size' if ext == '.png' else 'shape'}={shape}"
        )
    if np.issubdtype(images.dtype, np.integer) or images.dtype == bool:
        if images.min() < 0 or images.max() > 255:
            raise DataError(f"Integer images must hold values 0 to 255. Received: range={images.min()}..{images.max()}")
        images = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
            raise DataError(f"Float images must hold values in [0, 1]. Received: range={images.min()}..{images.max()}")
        images = images.astype(np.float32)
    else:
        raise DataError(f"Images must hold numbers. Received: dtype={images.dtype}")
    light = images.mean(axis=(1, 2)) > 0.5
    if light.any():
        warnings.warn(
            f"{light.sum()} of the images in {os.path.basename(path)} are mostly white; "
            f"inverted to a white digit on black, as in MNIST.",
            stacklevel=2,
        )
        images[light] = 1.0 - images[light]
    return images[..., None]
