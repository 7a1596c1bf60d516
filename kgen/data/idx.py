"""Reader and writer of the IDX format of the MNIST files.

An IDX file is a big-endian header (two zero bytes, a type code, the number of
dimensions, one uint32 per dimension) followed by the data. kgen reads the
uint8 images (3 dimensions) and labels (1 dimension) of MNIST-style data sets,
gzipped or not, and checks everything it can so that a bad file is one clear
error that names the file.
"""

import gzip
import math
import os
import stat
import struct
import zlib

import numpy as np

from kgen.errors import DataError

_UBYTE = 0x08
# the most data one IDX file may hold: 1 GiB, 1.37 million 28x28 digits (MNIST's training images are
# 47 MB, EMNIST's largest split 547 MB); a header promising more is refused before anything is read
MAX_BYTES = 1 << 30


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
        if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/zero, a FIFO: no size to check, no end
            raise DataError(
                f"{name} is not a regular file (a device, a pipe or a socket); kgen reads IDX data "
                f"from plain files only. Received: path={path}"
            )
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):  # replaced since the check above
                raise DataError(f"{name} is not a regular file; kgen reads IDX data from plain files only. Received: path={path}")
            gzipped = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                    return _read_stream(stream, path, name, ndim, None)
            return _read_stream(f, path, name, ndim, info.st_size)
    except OSError as e:
        if isinstance(e, (gzip.BadGzipFile, EOFError)) or e.strerror is None:
            raise DataError(f"{path} is a damaged gzip file ({e}); download it again.") from None
        raise DataError(f"Cannot read IDX file {path}: {e.strerror}.") from None
    except (EOFError, zlib.error) as e:
        raise DataError(f"{path} is a damaged gzip file ({e}); download it again.") from None


def _read_stream(f, path, name, ndim, size):
    """The array of an open IDX stream: the header first, then exactly the bytes it promises.

    `size` is the file's length when it is not compressed (None for a gzip
    stream): the header is checked against it before anything is allocated.
    A gzip stream is read up to the promised length plus one byte, never
    to its end, so a small file that inflates to gigabytes costs no memory.
    """
    raw = f.read(4)
    if len(raw) < 4:
        raise DataError(
            f"{path} is too short to be an IDX file ({len(raw)} bytes)."
        )
    zero, dtype, dims = struct.unpack(">HBB", raw)
    if zero != 0 or dtype != _UBYTE or dims == 0 or dims > 4:
        raise DataError(
            f"{name} is not an unsigned-byte IDX file: bad magic number "
            f"0x{raw.hex()} (expected 0x0000080N). Received: path={path}"
        )
    if ndim is not None and dims != ndim:
        raise DataError(
            f"{name} has {dims} dimensions where {ndim} were expected "
            f"(images have 3, labels 1). Received: path={path}"
        )
    raw = f.read(4 * dims)
    if len(raw) < 4 * dims:
        raise DataError(f"{path} is truncated inside its header.")
    shape = struct.unpack(f">{dims}I", raw)
    expected = math.prod(shape)
    header = 4 + 4 * dims
    if size is not None and size - header != expected:
        got = size - header
        what = "truncated" if got < expected else "longer than its header says"
        raise DataError(
            f"{name} is {what}: the header promises {expected} bytes of data "
            f"for shape {shape}, the file holds {got}. Received: path={path}"
        )
    if expected > MAX_BYTES:
        raise DataError(
            f"{name}'s header promises {expected:,} bytes of data for shape {shape}; kgen reads IDX files of at "
            f"most {MAX_BYTES:,} bytes ({MAX_BYTES // 784:,} digits). Received: path={path}"
        )
    array = np.empty(expected, np.uint8)
    view, got = memoryview(array), 0
    while got < expected:  # a gzip stream gives at most what is asked for, in pieces
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    if got < expected:
        raise DataError(
            f"{name} is truncated: the header promises {expected} bytes of data "
            f"for shape {shape}, the file holds {got}. Received: path={path}"
        )
    if f.read(1):
        raise DataError(
            f"{name} is longer than its header says: the header promises {expected} bytes of data "
            f"for shape {shape}, the file holds more. Received: path={path}"
        )
    return array.reshape(shape)


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
