"""Every bad input of the docs' table: one line, non-zero exit, no traceback, nothing damaged.

`CASES` is also the source of the table in `docs/errors.md`
(`python docs/make_error_table.py` prints it from these cases).
"""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main
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
    ("fewer images than clusters", lambda t, r: ("train", "scgan", "--clusters", 50, "--limit", 20, "--epochs", 1, "--offline"),
     "at least as many images as clusters (50)"),
    ("--code on a run without codes", lambda t, r: ("sample", run_of(r, "vae"), "--code", 3), "gan runs trained with --codes only"),
    ("complete on a non-LSTM run", lambda t, r: ("complete", run_of(r, "vae")), "complete needs an lstm run"),
    ("output path that cannot be written", lambda t, r: ("sample", run_of(r, "vae"), "--out", t / "no" / "x.png"), "Cannot write"),
    ("resume of a finished run", lambda t, r: ("train", "vae", "--resume", run_of(r, "vae"), "--epochs", 1), "already has 1 epochs"),
]


def npz_dir(tmp, x=None, y=None, y_test=None):
    """A data folder holding one Keras-style .npz; its training images or labels replaced by `x`, `y`."""
    rng = np.random.default_rng(0)
    data = tmp / "data"
    data.mkdir()
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 20, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 10, dtype=np.uint8),
    }
    if x is not None:
        arrays["x_train"] = x
    if y is not None:
        arrays["y_train"] = y
    if y_test is not None:
        arrays["y_test"] = y_test
    np.savez(data / "mnist.npz", **arrays)
    return data


def damaged_copy(tmp, root, file, content):
    """A copy of the VAE run with `file` replaced by `content` (text, bytes, or JSON-able)."""
    copy = tmp / "damaged"
    shutil.copytree(run_of(root, "vae"), copy)
    if isinstance(content, bytes):
        (copy / file).write_bytes(content)
    elif isinstance(content, str):
        (copy / file).write_text(content)
    else:
        (copy / file).write_text(json.dumps(content))
    return copy


def edited_config(tmp, root, edit):
    config = json.loads((run_of(root, "vae") / "config.json").read_text())
    edit(config)
    return damaged_copy(tmp, root, "config.json", config)


def edited_state(tmp, root, edit):
    state = json.loads((run_of(root, "vae") / "checkpoint" / "state.json").read_text())
    state = edit(state) or state
    return damaged_copy(tmp, root, "checkpoint/state.json", state)


def not_a_run_config(tmp, root):
    folder = tmp / "foo"
    folder.mkdir()
    (folder / "config.json").write_text('{"foo": 1}')
    return folder


TINY = ("--epochs", 1, "--limit", 64, "--offline")  # keeps a wrongly accepted run short
RESUME = ("train", "vae", "--epochs", 2, "--resume")

CASES += [
    # issue 17: bad training data, refused before a run directory exists
    ("cGAN label above 9", lambda t, r: ("train", "cgan", "--data-dir", npz_dir(t, y=np.r_[np.zeros(19), 12].astype(np.uint8)), "--epochs", 1),
     "cgan draws labels 0 to 9"),
    ("negative label", lambda t, r: ("train", "cgan", "--data-dir", npz_dir(t, y=np.r_[np.zeros(19), -1].astype(np.int64)), "--epochs", 1),
     "not class numbers"),
    ("fractional label", lambda t, r: ("train", "cgan", "--data-dir", npz_dir(t, y=np.full(20, 2.5)), "--epochs", 1),
     "not class numbers"),
    ("y_train of shape (N, 2)", lambda t, r: ("train", "cgan", "--data-dir", npz_dir(t, y=np.zeros((20, 2), np.uint8)), "--epochs", 1),
     "labels of shape (20, 2) for 20 images"),
    ("NaN images in an .npz", lambda t, r: ("train", "vae", "--data-dir", npz_dir(t, x=np.full((20, 28, 28), np.nan)), "--epochs", 1),
     "NaN or infinite pixels"),
    ("pixels above 255", lambda t, r: ("train", "vae", "--data-dir", npz_dir(t, x=np.full((20, 28, 28), 300, np.int16)), "--epochs", 1),
     "pixels from 300 to 300"),
    ("fractional float pixels above 1", lambda t, r: ("train", "vae", "--data-dir", npz_dir(t, x=np.full((20, 28, 28), 2.5)), "--epochs", 1),
     "not whole numbers"),
    # issue 17: --name is one folder-name part
    ("--name with ..", lambda t, r: ("train", "ae", "--name", "../../../elsewhere/x", *TINY), "Invalid value for --name"),
    ("--name with /", lambda t, r: ("train", "ae", "--name", "a/b", *TINY), "Invalid value for --name"),
    ("absolute --name", lambda t, r: ("train", "ae", "--name", "/tmp/x", *TINY), "Invalid value for --name"),
    ("--name ..", lambda t, r: ("train", "ae", "--name", "..", *TINY), "Invalid value for --name"),
    # issue 17: damaged run files on --resume
    ("config.json a list", lambda t, r: (*RESUME, damaged_copy(t, r, "config.json", [1, 2])), "holds a JSON list, not an object"),
    ("config.json without train", lambda t, r: (*RESUME, edited_config(t, r, lambda c: c.pop("train"))), "lacks 'train'"),
    ("config.json with an extra key", lambda t, r: (*RESUME, edited_config(t, r, lambda c: c["train"].update(evil=1))),
     "unknown key 'evil'"),
    ("string batch size in config.json", lambda t, r: (*RESUME, edited_config(t, r, lambda c: c["train"].update(batch_size="32"))),
     "'train.batch_size' must be int"),
    ("config.json not JSON", lambda t, r: (*RESUME, damaged_copy(t, r, "config.json", "{not json")), "config.json cannot be read"),
    ("config.json of another program", lambda t, r: (*RESUME, not_a_run_config(t, r)), "lacks 'model' and 'train'"),
    ("state.json without epoch", lambda t, r: (*RESUME, edited_state(t, r, lambda s: s.pop("epoch") and None)), "lacks 'epoch'"),
    ("state.json a list", lambda t, r: (*RESUME, edited_state(t, r, lambda s: [s])), "holds a JSON list"),
    ("string epoch in state.json", lambda t, r: (*RESUME, edited_state(t, r, lambda s: s.update(epoch="1"))), "'epoch' must be a whole number"),
    ("state.json naming a file outside checkpoint/", lambda t, r: (*RESUME, edited_state(t, r, lambda s: s.update(model="../model.keras"))),
     "'model' must name a .keras file in checkpoint/"),
    ("garbage history.csv", lambda t, r: (*RESUME, damaged_copy(t, r, "history.csv", "epoch,loss\nbanana,x\n")),
     "history.csv is damaged: row 1 has epoch 'banana'"),
    ("non-UTF-8 history.csv", lambda t, r: (*RESUME, damaged_copy(t, r, "history.csv", b"\xff\xfe\x00garbage")),
     "history.csv is damaged: it is not UTF-8 text"),
    # issue 17: numbers
    ("--lr nan", lambda t, r: ("train", "vae", "--lr", "nan", *TINY), "'nan' is not a finite number"),
    ("--lr inf", lambda t, r: ("train", "vae", "--lr", "inf", *TINY), "--lr"),
    ("--lr 1e39", lambda t, r: ("train", "vae", "--lr", "1e39", *TINY), "not in the range 0<x<=1"),
    ("--kl-weight inf", lambda t, r: ("train", "vae", "--kl-weight", "inf", *TINY), "'inf' is not a finite number"),
    ("--d-lr nan", lambda t, r: ("train", "gan", "--d-lr", "nan", *TINY), "'nan' is not a finite number"),
    ("--g-beta-1 nan", lambda t, r: ("train", "gan", "--g-beta-1", "nan", *TINY), "'nan' is not a finite number"),
    # issue 15: the model options come from kgen/specs.py
    ("an option the model does not take", lambda t, r: ("train", "ae", "--kl-weight", 0.5, *TINY), "--kl-weight applies to vae only"),
    ("sample grid of 20,000", lambda t, r: ("sample", run_of(r, "vae"), "-n", 20000, "--out", t / "big.png"), "a grid PNG holds at most 10,000 images"),
    ("sample to a .jpg", lambda t, r: ("sample", run_of(r, "vae"), "--out", t / "s.jpg"), "must end in .png (a grid), .npy or .npz"),
    # issue 15: --resume keeps the run's options
    ("resume as another model", lambda t, r: ("train", "gan", "--resume", run_of(r, "vae"), "--epochs", 2), "is a vae run"),
    ("--batch-size with --resume", lambda t, r: ("train", "vae", "--resume", run_of(r, "vae"), "--epochs", 2, "--batch-size", 7),
     "--batch-size cannot be used with --resume"),
    ("no model and no --resume", lambda t, r: ("train", "--epochs", 1), "Missing argument"),
    ("complete to a .jpg", lambda t, r: ("complete", run_of(r, "vae"), "--out", t / "c.jpg"), "must end in .png (a figure), .npy or .npz"),
    ("negative --seed", lambda t, r: ("sample", run_of(r, "vae"), "--seed", -1), "-1 is not in the range x>=0"),
]
USAGE = ("complete to a .jpg", "negative --seed", "resume of a finished run")  # exit 2, as click's usage errors

CASES += [
    # memory: every reader checks sizes before it allocates
    ("gzipped IDX inflating past its header", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, gzip_bomb)),
     "is longer than its header says"),
    ("IDX file linked to /dev/zero", lambda t, r: ("train", "vae", "--data-dir", idx_dir(t, dev_zero)), "is not a regular file"),
    ("model.keras whose config.json inflates past 16 MB", lambda t, r: ("sample", keras_bomb_copy(t, r)),
     "model.keras is not a model kgen wrote: its member config.json inflates to"),
    ("sample 10,000,000 to an .npz", lambda t, r: ("sample", run_of(r, "vae"), "-n", 10_000_000, "--out", t / "x.npz"),
     "one call writes at most 1,000,000 samples"),
    ("evaluate 10,000,000 samples", lambda t, r: ("evaluate", run_of(r, "vae"), "--num-samples", 10_000_000),
     "num_samples must be at most 60,000"),
    ("latent size 3,000,000", lambda t, r: ("train", "vae", "--latent-dim", 3_000_000, *TINY), "not in the range 1<=x<=1024"),
    ("gan with 100,000 codes", lambda t, r: ("train", "gan", "--codes", 100_000, *TINY), "not in the range 0<=x<=100"),
    ("lstm of 100,000 units", lambda t, r: ("train", "lstm", "--units", 100_000, *TINY), "not in the range 1<=x<=1024"),
    ("lstm of 100,000 layers", lambda t, r: ("train", "lstm", "--layers", 100_000, *TINY), "not in the range 1<=x<=4"),
    ("scgan with 100,000 clusters", lambda t, r: ("train", "scgan", "--clusters", 100_000, *TINY), "not in the range 2<=x<=1000"),
    ("vae with 100,000,000 importance samples", lambda t, r: ("train", "vae", "--iwae-k", 100_000_000, *TINY),
     "not in the range 1<=x<=1000"),
    ("flow 100,000 channels wide", lambda t, r: ("train", "flow", "--width", 100_000, *TINY), "not in the range 8<=x<=128"),
    ("flow 1,000 blocks deep", lambda t, r: ("train", "flow", "--depth", 1000, *TINY), "not in the range 1<=x<=4"),
    # runs that resume exactly or refuse
    ("cGAN test label above 9", lambda t, r: ("train", "cgan", "--data-dir", npz_dir(t, y_test=np.r_[np.zeros(9), 12].astype(np.uint8)),
                                              "--epochs", 1), "(test set) holds label 12"),
    ("state.json at step 1,000,000", lambda t, r: (*RESUME, edited_state(t, r, lambda s: s.update(step=1_000_000))),
     "checkpoint/state.json is damaged: it says epoch 1, step 1000000, and names 'model-0001-00000.keras'"),
    ("state.json a step past its epoch's end", lambda t, r: (*RESUME, state_past_the_epoch(t, r)),
     "it says step 1000000 of an epoch of 2 steps"),
    ("history.csv with an extra column", lambda t, r: (*RESUME, extra_column_copy(t, r)),
     "history.csv is damaged: it has a column the model does not log 'foo'"),
    ("state.json rewound an epoch", lambda t, r: (*RESUME, edited_state(t, r, lambda s: s.update(epoch=0))),
     "it says epoch 0, step 0, and names 'model-0001-00000.keras', the model of another point of the run"),
    # readers that cannot be crashed
    ("config.json nested 100,000 levels", lambda t, r: (*RESUME, damaged_copy(t, r, "config.json", "[" * 100_000 + "]" * 100_000)),
     "config.json cannot be read (it is nested too deep to be read)"),
    ("RUN/.lock linked outside the run", lambda t, r: (*RESUME, linked_lock_copy(t, r)), ".lock is a symbolic link"),
    ("--name with DEL", lambda t, r: ("train", "ae", "--name", "a\x7fb", *TINY), "Invalid value for --name"),
    ("--name with U+0085", lambda t, r: ("train", "ae", "--name", "a\u0085b", *TINY), "Invalid value for --name"),
    ("--name with U+2028", lambda t, r: ("train", "ae", "--name", "a\u2028b", *TINY), "Invalid value for --name"),
    ("--name with U+202E", lambda t, r: ("train", "ae", "--name", "a\u202eb", *TINY), "Invalid value for --name"),
]


def gzip_bomb(data):
    """A gzipped IDX file whose header promises 20 images, followed by 3 MB of zeros (10 GiB in the attack)."""
    path = data / "train-images-idx3-ubyte.gz"
    with idx.gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + np.array([20, 28, 28], ">u4").tobytes())
        f.write(bytes(3 << 20))


def dev_zero(data):
    os.remove(data / "train-images-idx3-ubyte.gz")
    os.symlink("/dev/zero", data / "train-images-idx3-ubyte")


def keras_bomb_copy(tmp, root):
    """A copy of the VAE run whose model.keras holds a config.json of 17 MB of spaces (3.75 GiB in the attack)."""
    import zipfile

    copy = tmp / "corrupt"
    shutil.copytree(run_of(root, "vae"), copy)
    with zipfile.ZipFile(copy / "model.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (17 << 20))
    return copy


def state_past_the_epoch(tmp, root):
    """A copy of the VAE run whose checkpoint says step 1,000,000 of its 2-step epochs, its model file named so."""
    copy = edited_state(tmp, root, lambda s: s.update(step=1_000_000, model="model-0001-1000000.keras"))
    os.rename(copy / "checkpoint" / "model-0001-00000.keras", copy / "checkpoint" / "model-0001-1000000.keras")
    return copy


def extra_column_copy(tmp, root):
    history = (run_of(root, "vae") / "history.csv").read_text().splitlines()
    rows = [history[0] + ",foo"] + [line + ",1.0" for line in history[1:]]
    return damaged_copy(tmp, root, "history.csv", "\n".join(rows) + "\n")


def linked_lock_copy(tmp, root):
    copy = damaged_copy(tmp, root, "history.csv", (run_of(root, "vae") / "history.csv").read_text())
    os.remove(copy / ".lock")
    os.symlink(tmp / "outside", copy / ".lock")
    return copy


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
    if what in USAGE:
        assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert words in errors[0], result.output
    assert tree_digest(runs_root) == before  # existing runs untouched
    assert not (tmp_path / "artifacts").exists()  # no half-made run


def test_a_bad_name_writes_nothing_anywhere(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for name in ("../../../elsewhere", "x/y", str(tmp_path / "abs")):
        result = invoke("train", "ae", "--out", work / "root", "--name", name, *TINY)
        assert result.exit_code == 2, result.output
    assert sorted(os.listdir(tmp_path)) == ["a"] and os.listdir(work) == []


def test_a_garbage_history_is_not_resumed_over(tmp_path, runs_root):
    copy = damaged_copy(tmp_path, runs_root, "history.csv", "epoch,loss\nbanana,x\n")
    before = tree_digest(copy)
    result = invoke(*RESUME, copy)
    assert result.exit_code == 1 and "history.csv is damaged" in result.output
    assert tree_digest(copy) == before


def test_float_images_in_0_1_are_scaled_with_a_warning(tmp_path):
    from kgen.data import load_dataset

    x = np.random.default_rng(0).random((20, 28, 28))
    with pytest.warns(UserWarning, match=r"floats in \[0, 1\]; kgen scales them by 255"):
        ds = load_dataset("mnist", "train", npz_dir(tmp_path, x=x))
    assert ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, np.round(x * 255).astype(np.uint8))


def test_debug_shows_the_traceback(tmp_path):
    result = invoke("--debug", "train", "vae", "--data-dir", idx_dir(tmp_path, empty))
    assert result.exit_code == 1
    assert "Traceback" in result.output or "Traceback" in (result.stderr if hasattr(result, "stderr") else "")


def test_runs_lists_the_good_runs_beside_a_config_nested_too_deep(tmp_path, runs_root):
    root = tmp_path / "root"
    shutil.copytree(run_of(runs_root, "vae"), root / "vae" / "good")
    (root / "vae" / "nested").mkdir()
    (root / "vae" / "nested" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(main, ["runs", "--root", str(root)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert str(root / "vae" / "good") in result.output
    assert "skipped a run" in result.output and "nested too deep" in result.output


def test_a_batch_not_split_evenly_across_devices_is_bad_usage(tmp_path, monkeypatch):
    from kgen import devices

    monkeypatch.setattr(devices, "count", lambda devices: 2)  # two jax devices, seen from any backend
    result = invoke("train", "vae", "--batch-size", 7, "--devices", 2, "--out", tmp_path, *TINY)
    assert result.exit_code == 2, result.output
    assert "--batch-size must be a multiple of --devices (2)" in result.output and "Received: --batch-size 7" in result.output
    assert not os.listdir(tmp_path)


def test_complete_writes_arrays_and_refuses_uint8(tmp_path):
    from kgen.models import PatchLSTM

    with pytest.raises(ValueError, match=r"divide by 255.*Received: images=uint8 array of shape \(2, 28, 28, 1\)$"):
        PatchLSTM(seed=0).complete(np.full((2, 28, 28), 200, np.uint8))
    result = invoke("train", "lstm", "--out", tmp_path, "--units", 8, "--batch-size", 32, *TINY)
    assert result.exit_code == 0, result.output
    run = run_of(tmp_path, "lstm")
    for name in ("c.npy", "c.npz"):
        result = invoke("complete", run, "-n", 3, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    completed = np.load(tmp_path / "c.npy")
    assert completed.shape == (3, 28, 28, 1) and completed.dtype == np.float32 and 0 <= completed.min() <= completed.max() <= 1
    with np.load(tmp_path / "c.npz") as arrays:
        assert sorted(arrays) == ["completions", "images"]
        np.testing.assert_array_equal(arrays["completions"], completed)  # --sampling mean: deterministic
        np.testing.assert_array_equal(arrays["images"][:, :14], completed[:, :14])  # the given top half, as it was


def test_generate_refuses_a_count_that_is_not_positive_on_every_model():
    from kgen.models import MODELS

    for name, cls in MODELS.items():
        with pytest.raises(ValueError, match=r"n must be a positive integer. Received: n=-1$"):
            cls(seed=0).generate(-1)


def test_gan_predict_on_images_is_one_line():
    from kgen.models import ConditionalGAN, GAN

    for model, takes in ((GAN(seed=0), "noise (n, 64)"), (ConditionalGAN(seed=0), "[noise (n, 64), labels (n,)]")):
        with pytest.raises(ValueError) as error:
            model.predict(np.zeros((4, 28, 28, 1), "float32"))
        message = str(error.value)
        assert "\n" not in message and takes in message and "generate(n)" in message
        assert message.endswith("Received: x.shape=(4, 28, 28, 1)")
    assert GAN(seed=0).predict(np.zeros((3, 64), "float32"), verbose=0).shape == (3, 28, 28, 1)
