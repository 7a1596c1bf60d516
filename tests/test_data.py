"""kgen.data: the IDX reader, the .npz reader, and the order of data sources."""

import gzip
import os
import struct
import warnings

import numpy as np
import pytest

from kgen import data
from kgen.data import idx, load
from kgen.errors import DataError


def write_set(folder, n=12, prefix="train", compress=True, image_shape=(28, 28)):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if compress else ""
    idx.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images)
    idx.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)
    return images, labels


# reading IDX files


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images, labels = write_set(tmp_path, compress=compress)
    ds = data.load_dataset("mnist", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert str(tmp_path) in ds.source


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "plain-but-named.gz"
    idx.write_idx(path, np.arange(6, dtype=np.uint8), compress=False)
    np.testing.assert_array_equal(idx.read_idx(path, 1), np.arange(6))


def corrupt(path, how):
    raw = gzip.decompress(path.read_bytes())
    if how == "truncated":
        raw = raw[:-100]
    elif how == "too_long":
        raw = raw + b"\0" * 5
    elif how == "magic":
        raw = b"\x00\x00\x0d\x03" + raw[4:]  # float type code
    elif how == "header":
        raw = raw[:10]
    elif how == "dims":
        raw = b"\x00\x00\x08\x02" + raw[4:]
    path.write_bytes(gzip.compress(raw))


@pytest.mark.parametrize(
    "how, words",
    [
        ("truncated", "truncated"),
        ("too_long", "longer than its header"),
        ("magic", "magic number"),
        ("header", "truncated inside its header"),
        ("dims", "dimensions"),
    ],
)
def test_corrupt_idx_is_one_clear_error(tmp_path, how, words):
    write_set(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    corrupt(path, how)
    with pytest.raises(DataError) as e:
        data.load_dataset("mnist", "train", data_dir=tmp_path)
    message = str(e.value)
    assert words in message and "train-images-idx3-ubyte.gz" in message
    assert "\n" not in message


def test_damaged_gzip(tmp_path):
    write_set(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="damaged gzip"):
        data.load_dataset("mnist", "train", data_dir=tmp_path)


def test_count_mismatch(tmp_path):
    write_set(tmp_path, n=12)
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        data.load_dataset("mnist", "train", data_dir=tmp_path)


def test_images_not_28x28(tmp_path):
    write_set(tmp_path, image_shape=(32, 32))
    with pytest.raises(DataError, match="28x28"):
        data.load_dataset("mnist", "train", data_dir=tmp_path)


def test_empty_and_missing_dirs(tmp_path):
    with pytest.raises(DataError, match="No train data"):
        data.load_dataset("mnist", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        data.load_dataset("mnist", "train", data_dir=tmp_path / "nope")


def test_test_split_uses_t10k_files(tmp_path):
    write_set(tmp_path, n=5, prefix="train")
    images, _ = write_set(tmp_path, n=7, prefix="t10k")
    ds = data.load_dataset("mnist", "test", data_dir=tmp_path)
    assert len(ds) == 7
    np.testing.assert_array_equal(ds.images, images)


# Keras-style .npz


def test_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (9, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 9),
        "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 4),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    ds = data.load_dataset("mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.images, arrays["x_test"])
    ds = data.load_dataset("mnist", "train", data_dir=tmp_path / "mnist.npz")
    np.testing.assert_array_equal(ds.labels, arrays["y_train"])


def test_npz_without_expected_arrays(tmp_path):
    np.savez(tmp_path / "mnist.npz", images=np.zeros((2, 28, 28)))
    with pytest.raises(DataError, match="lacks the arrays x_train, y_train"):
        data.load_dataset("mnist", "train", data_dir=tmp_path)


def test_corrupt_npz(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="Cannot read"):
        data.load_dataset("mnist", "train", data_dir=tmp_path)


# bundled sample and the order of sources


def test_bundled_sample_is_real_shuffled_mnist():
    images, labels = data.load_bundled("train")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert len(set(labels[:50].tolist())) > 5  # shuffled, not sorted by class
    test_images, test_labels = data.load_bundled("test")
    assert test_images.shape == (10000, 28, 28)
    assert test_labels[:3].tolist() == [7, 2, 1]  # the official test set's first digits


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(load, "_warned", [])


def test_offline_uses_bundled_with_one_warning(monkeypatch):
    def no_network(*args):
        raise AssertionError("offline must not try the network")

    monkeypatch.setattr(load, "_load_online", no_network)
    with pytest.warns(UserWarning, match="bundled MNIST sample") as record:
        ds = data.load_dataset("mnist", "train", offline=True)
        data.load_dataset("mnist", "test", offline=True)
    assert len(record) == 1
    assert ds.source == data.BUNDLED_SOURCE and len(ds) == 5000


def test_data_dir_comes_first(tmp_path, monkeypatch):
    write_set(tmp_path)
    monkeypatch.setattr(load, "_load_online", lambda *a: pytest.fail("network tried"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = data.load_dataset("mnist", "train", data_dir=tmp_path)
    assert "IDX files" in ds.source
    monkeypatch.setenv("KGEN_DATA_DIR", str(tmp_path))
    assert "IDX files" in data.load_dataset("mnist", "train").source


def test_network_failure_falls_back_to_bundled(monkeypatch):
    def fails(name, split):
        raise ConnectionError("no network")

    monkeypatch.setattr(load, "_load_online", fails)
    with pytest.warns(UserWarning, match="ConnectionError: no network"):
        ds = data.load_dataset("mnist", "test")
    assert ds.source == data.BUNDLED_SOURCE


def test_only_mnist_is_bundled(monkeypatch):
    monkeypatch.setattr(load, "_load_online", lambda *a: (_ for _ in ()).throw(OSError("down")))
    with pytest.raises(DataError, match="only MNIST is bundled; pass --data-dir"):
        data.load_dataset("fashion_mnist", "train")


def test_tensorflow_datasets_source(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(load, "check_network", lambda: None)  # mock_data stands in for it
    with tfds.testing.mock_data(num_examples=6):
        ds = data.load_dataset("mnist", "train")
    assert ds.source == "tensorflow-datasets mnist"
    assert ds.images.shape == (6, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (6,)


def test_keras_datasets_source_without_tensorflow(monkeypatch):
    import sys

    import keras

    x = np.zeros((3, 28, 28), np.uint8)
    y = np.arange(3, dtype=np.uint8)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails
    monkeypatch.setattr(load, "check_network", lambda: None)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: ((x, y), (x[:1], y[:1])))
    ds = data.load_dataset("fashion_mnist", "test")
    assert ds.source == "keras.datasets.fashion_mnist" and len(ds) == 1


def test_unknown_split():
    with pytest.raises(DataError, match="Received: split='validation'"):
        data.load_dataset("mnist", "validation", offline=True)


def test_header_layout_is_standard(tmp_path):
    path = tmp_path / "x"
    idx.write_idx(path, np.zeros((2, 3, 4), np.uint8))
    raw = path.read_bytes()
    assert struct.unpack(">HBB3I", raw[:16]) == (0, 8, 3, 2, 3, 4)


def test_network_probe_fails_fast():
    import time

    start = time.monotonic()
    with pytest.raises(ConnectionError):
        data.check_network("unreachable.invalid", timeout=1.0)
    assert time.monotonic() - start < 30
