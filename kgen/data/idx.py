"""Reader and writer of the IDX format of the MNIST files.

An IDX file is a big-endian header (two zero bytes, a type code, the number of
dimensions, one uint32 per dimension) followed by the data. kgen reads the
uint8 images (3 dimensions) and labels (1 dimension) of MNIST-style data sets,
gzipped or not, and checks everything it can so that a bad file is one clear
error that names the file.
"""

import gzip
import os
import struct

import numpy as np

from kgen.errors import DataError

_UBYTE = 0x08


def read_idx(path, ndim=None):
    """Reads an IDX file of unsigned bytes into a NumPy array.

    Args:
        path: the file, plain or gzip-compressed (by content, not by name).
        ndim: the number of dimensions the caller expects (3 for images, 1 for
            labels), or `None` to accept any.

    Returns:
        A `uint8` array with the shape that the header gives.

    Raises:
        DataError: when the file is missing, truncated, too long, or its
            header is not one of an unsigned-byte IDX file.

    Example:

    >>> images = read_idx("t10k-images-idx3-ubyte.gz", ndim=3)
    >>> images.shape
    (10000, 28, 28)
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"Cannot read IDX file {path}: {e.strerror}.") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(
                f"{path} is a damaged gzip file ({e}); download it again."
            ) from None
    if len(raw) < 4:
        raise DataError(
            f"{path} is too short to be an IDX file ({len(raw)} bytes)."
        )
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or dims == 0 or dims > 4:
        raise DataError(
            f"{name} is not an unsigned-byte IDX file: bad magic number "
            f"0x{raw[:4].hex()} (expected 0x0000080N). Received: path={path}"
        )
    if ndim is not None and dims != ndim:
        raise DataError(
            f"{name} has {dims} dimensions where {ndim} were expected "
            f"(images have 3, labels 1). Received: path={path}"
        )
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header.")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    expected = int(np.prod(shape))
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise DataError(
            f"{name} is {what}: the header promises {expected} bytes of data "
            f"for shape {shape}, the file holds {got}. Received: path={path}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path, array, compress=None):
    """Writes a `uint8` array as an IDX file (gzipped when the name ends in .gz).

    Args:
        path: destination file.
        array: `uint8` array of 1 to 4 dimensions.
        compress: force gzip on or off; by default it follows the file name.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, _UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
