"""Every bad input of the docs' table: one line, non-zero exit, no traceback, nothing damaged.

`CASES` is also the source of the table in `docs/errors.md`
(`python docs/make_error_table.py` prints it from these cases).
"""

import hashlib
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from kgen.data import idx


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tree_digest(path):
    """A digest of every file under `path`, to show nothing was changed."""
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(folder, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for model in ("vae", "cgan"):
        result = invoke("train", model, "--epochs", 1, "--limit", 64, "--offline", "--out", root, "--batch-size", 32)
        assert result.exit_code == 0, result.output
    return root


def run_of(root, model):
    folder = root / model
    return folder / sorted(os.listdir(folder))[0]


def idx_dir(tmp, break_it=None):
    """A data folder with a valid tiny training set, then broken as asked."""
    rng = np.random.default_rng(0)
    data = tmp / "data"
    data.mkdir()
    idx.write_idx(data / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    idx.write_idx(data / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 20, dtype=np.uint8))
    if break_it:
        break_it(data)
    return data


def truncate(data):
    path = data / "train-images-idx3-ubyte.gz"
    raw = idx.gzip.decompress(path.read_bytes())
    path.write_bytes(raw[:5000])  # not gzipped any more, and cut short


def bad_magic(data):
    path = data / "train-labels-idx1-ubyte.gz"
    raw = idx.gzip.decompress(path.read_bytes())
    path.write_bytes(b"\x00\x00\x0b\x01" + raw[4:])


def count_mismatch(data):
    idx.write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))


def not_28(data):
    idx.write_idx(data / "train-images-idx3-ubyte.gz", np.zeros((20, 32, 32), np.uint8))


def npz_only(data):
    for f in os.listdir(data):
        os.remove(data / f)
    np.savez(data / "mnist.npz", images=np.zeros((3, 28, 28)))


def empty(data):
    for f in os.listdir(data):
        os.remove(data / f)


def corrupt_gzip(data):
    path = data / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])


# (what, how the CLI is called, words of the one-line message)
CASES = [
    ("truncated IDX file", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, truncate)), "is truncated"),
    ("damaged gzip", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, corrupt_gzip)), "damaged gzip file"),
    ("wrong magic number", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, bad_magic)), "bad magic number"),
    ("image/label count mismatch", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, count_mismatch)), "20 images but"),
    ("images not 28x28", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, not_28)), "needs 28x28 grey images"),
    ("npz without x_train/y_train", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, npz_only)), "lacks the arrays"),
    ("empty data directory", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, empty)), "No train data"),
    ("missing data directory", lambda t, r: ("train", "vae", "--data-dir", t / "nowhere"), "does not exist"),
    ("corrupt model.keras", lambda t, r: ("sample", corrupt_copy(t, r)), "is not a .keras file"),
    ("run directory without a model", lambda t, r: ("sample", modelless_copy(t, r)), "holds no model.keras"),
    ("folder that is not a run", lambda t, r: ("sample", t), "not a kgen run"),
    ("unknown model", lambda t, r: ("train", "diffusion"), "'diffusion' is not one of"),
    ("unknown backend", lambda t, r: ("train", "vae", "--backend", "numpy"), "'numpy' is not one of"),
    ("epochs 0", lambda t, r: ("train", "vae", "--epochs", 0), "--epochs"),
    ("batch size -1", lambda t, r: ("train", "vae", "--batch-size", -1), "--batch-size"),
    ("latent size 0", lambda t, r: ("train", "vae", "--latent-dim", 0), "--latent-dim"),
    ("label outside 0-9", lambda t, r: ("sample", run_of(r, "cgan"), "--label", 10), "labels 0 to 9"),
    ("--label on an unconditional run", lambda t, r: ("sample", run_of(r, "vae"), "--label", 3), "conditional (cgan) runs only"),
    ("complete on a non-LSTM run", lambda t, r: ("complete", run_of(r, "vae")), "complete needs an lstm run"),
    ("output path that cannot be written", lambda t, r: ("sample", run_of(r, "vae"), "--out", t / "no" / "x.png"), "Cannot write"),
    ("resume of a finished run", lambda t, r: ("train", "vae", "--resume", run_of(r, "vae"), "--epochs", 1), "already has 1 epochs"),
]


def corrupt_copy(tmp, root):
    copy = tmp / "corrupt"
    shutil.copytree(run_of(root, "vae"), copy)
    (copy / "model.keras").write_bytes(b"PK\x03\x04 broken")
    return copy


def modelless_copy(tmp, root):
    copy = tmp / "modelless"
    shutil.copytree(run_of(root, "vae"), copy)
    os.remove(copy / "model.keras")
    shutil.rmtree(copy / "checkpoint")
    return copy


@pytest.mark.parametrize("what, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(what, args, words, tmp_path, runs_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default --out lands here, if anything were written
    before = tree_digest(runs_root)
    result = invoke(*args(tmp_path, runs_root))
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert words in errors[0], result.output
    assert tree_digest(runs_root) == before  # existing runs untouched
    assert not (tmp_path / "artifacts").exists()  # no half-made run


def test_debug_shows_the_traceback(tmp_path):
    result = invoke("--debug", "train", "vae", "--data-dir", idx_dir(tmp_path, empty))
    assert result.exit_code == 1
    assert "Traceback" in result.output or "Traceback" in (result.stderr if hasattr(result, "stderr") else "")
