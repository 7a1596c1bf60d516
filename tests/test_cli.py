"""The click application: train, sample and runs, and their bad inputs."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kgen.cli.main import main
from kgen.data import idx


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    result = invoke("train", "vae", "--epochs", 2, "--limit", 256, "--offline", "--out", out, "--name", "tiny")
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


# train


def test_train_writes_a_complete_run(vae_run):
    assert os.path.basename(os.path.dirname(vae_run)) == "vae" and vae_run.endswith("-tiny")
    for name in ("config.json", "model.keras", "history.csv", "checkpoint/state.json", "checkpoint/model-0002-00000.keras",
                 "samples/epoch_001.png", "samples/epoch_002.png", "plots/loss_curves.png",
                 "plots/reconstructions.png", "plots/latent_map.png"):
        assert os.path.isfile(os.path.join(vae_run, name)), name
    config = json.load(open(os.path.join(vae_run, "config.json")))
    assert config["data"]["source"].startswith("bundled MNIST sample")
    assert config["data"]["train_images"] == 256
    assert config["backend"] == "torch" and config["train"]["seed"] == 0
    assert config["model_config"]["latent_dim"] == 2
    lines = open(os.path.join(vae_run, "history.csv")).read().splitlines()
    assert lines[0].startswith("epoch,") and len(lines) == 3
    assert not [f for f in os.listdir(vae_run) if f.startswith(".tmp")]


def test_train_prints_the_bundled_data_warning_once(tmp_path, monkeypatch):
    from kgen.data import load

    monkeypatch.setattr(load, "_warned", [])
    result = CliRunner().invoke(main, ["train", "ae", "--epochs", "1", "--limit", "64",
                                       "--offline", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count("Warning: Using the bundled MNIST sample") == 1
    assert "Traceback" not in result.output


def test_train_from_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 30)):
        idx.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    result = invoke("train", "ae", "--epochs", 1, "--data-dir", tmp_path, "--out", tmp_path / "runs", "--latent-dim", 3)
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["data"]["train_images"] == 40 and "IDX files" in config["data"]["source"]


# sample


def test_sample_writes_a_4x4_grid(vae_run, tmp_path):
    out = tmp_path / "grid.png"
    result = invoke("sample", vae_run, "-n", 16, "--out", out, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    grid = np.asarray(Image.open(out).convert("L"))
    assert grid.shape == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))  # 4x4 digits of 28 + 2 padding, scale 2
    # the grid holds exactly the model's samples for that seed
    import keras

    from kgen import plots

    expected = tmp_path / "expected.png"
    plots.save_grid(expected, keras.saving.load_model(os.path.join(vae_run, "model.keras")).generate(16, seed=1))
    np.testing.assert_array_equal(grid, np.asarray(Image.open(expected).convert("L")))


def test_sample_default_path(vae_run):
    result = invoke("sample", vae_run, "-n", 4)
    assert result.exit_code == 0
    assert os.path.isfile(os.path.join(vae_run, "samples", "sample.png"))


# runs


def test_runs_lists_the_run(vae_run):
    root = os.path.dirname(os.path.dirname(vae_run))
    result = invoke("runs", "--root", root)
    assert result.exit_code == 0
    assert vae_run in result.output and " vae " in result.output


def test_runs_on_empty_root(tmp_path):
    result = invoke("runs", "--root", tmp_path)
    assert result.exit_code == 0 and "No runs" in result.output


# bad input: one line, non-zero exit, no traceback


def assert_one_line_error(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], result.output


def test_unknown_model():
    assert_one_line_error(invoke("train", "diffusion"), "Invalid value", "diffusion")


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--latent-dim"])
def test_non_positive_numbers(option, tmp_path):
    result = invoke("train", "vae", option, 0, "--out", tmp_path)
    assert_one_line_error(result, option)
    assert not os.listdir(tmp_path)  # nothing was created


def test_missing_data_dir(tmp_path):
    assert_one_line_error(invoke("train", "vae", "--data-dir", tmp_path / "nope"), "does not exist")


def test_empty_data_dir(tmp_path):
    (tmp_path / "data").mkdir()
    result = invoke("train", "vae", "--data-dir", tmp_path / "data", "--out", tmp_path / "runs")
    assert_one_line_error(result, "No train data")
    assert not (tmp_path / "runs").exists()


def test_corrupt_data_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    result = invoke("train", "vae", "--data-dir", tmp_path, "--out", tmp_path / "runs")
    assert_one_line_error(result, "train-images-idx3-ubyte")


def test_sample_on_a_folder_that_is_not_a_run(tmp_path):
    assert_one_line_error(invoke("sample", tmp_path), "not a kgen run")


def test_sample_on_a_missing_folder(tmp_path):
    assert_one_line_error(invoke("sample", tmp_path / "nope"), "does not exist")


def test_sample_on_a_corrupt_model(vae_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(vae_run, broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    assert_one_line_error(invoke("sample", broken), "is not a .keras file")
    # the original run is untouched and still samples
    assert invoke("sample", vae_run, "-n", 4).exit_code == 0


def test_sample_to_unwritable_path(vae_run, tmp_path):
    assert_one_line_error(invoke("sample", vae_run, "--out", tmp_path / "no" / "dir" / "x.png"), "Cannot write")


def test_ae_only_options_are_refused(tmp_path):
    assert_one_line_error(invoke("train", "ae", "--kl-weight", 0.5, "--out", tmp_path), "applies to vae only")


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "sample", "runs"):
        assert command in result.output


# issue 17: damaged runs, sample in chunks; issue 15: resume as printed


def test_runs_names_a_damaged_run_and_lists_the_rest(vae_run, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(os.path.dirname(vae_run), root / "vae")
    good = root / "vae" / os.path.basename(vae_run)
    for name, damage in (("bad-history", lambda p: (p / "history.csv").write_bytes(b"epoch\n\xff\xfe\n")),
                         ("bad-metrics", lambda p: (p / "metrics.json").write_text("garbage"))):
        shutil.copytree(good, root / "vae" / name)
        damage(root / "vae" / name)
    result = CliRunner().invoke(main, ["runs", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert str(good) in result.output
    assert "bad-history/history.csv is damaged: it is not UTF-8 text" in result.output
    assert "bad-metrics/metrics.json cannot be read" in result.output
    assert "Traceback" not in result.output


def test_a_run_of_another_run_format_is_refused_in_one_line(vae_run, tmp_path):
    import shutil

    import kgen
    from kgen import runs

    config = json.loads(open(os.path.join(vae_run, "config.json")).read())
    assert config["run_format"] == runs.RUN_FORMAT and config["versions"]["kgen"] == kgen.__version__
    root = tmp_path / "root"
    for name, change in (("none", lambda c: c.pop("run_format")), ("other", lambda c: c.update(run_format=runs.RUN_FORMAT + 1))):
        old = root / "vae" / name
        shutil.copytree(vae_run, old)
        config = json.loads((old / "config.json").read_text())
        change(config)
        (old / "config.json").write_text(json.dumps(config))
        found = "no run format" if name == "none" else f"run format {runs.RUN_FORMAT + 1}"
        for args in (("sample", old), ("resume", old, "--epochs", 3), ("evaluate", old, "-n", 10), ("complete", old)):
            result = invoke(*args)
            assert result.exit_code == 1, result.output
            assert_one_line_error(result, f"{old} was made by kgen {kgen.__version__} ({found})", f"format {runs.RUN_FORMAT} only",
                                  "train it again")
    result = CliRunner().invoke(main, ["runs", "--root", str(root)])
    assert result.exit_code == 0 and "No runs" in result.output
    assert result.output.count(f"was made by kgen {kgen.__version__}") == 2 and "Traceback" not in result.output


def test_sample_writes_an_npy_in_chunks(vae_run, tmp_path):
    out = tmp_path / "s.npy"
    result = invoke("sample", vae_run, "-n", 2500, "--seed", 3, "--out", out)
    assert result.exit_code == 0, result.output
    images = np.load(out)
    assert images.shape == (2500, 28, 28, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert not np.array_equal(images[:1000], images[1000:2000])  # each chunk draws new noise
    import keras

    model = keras.saving.load_model(os.path.join(vae_run, "model.keras"))
    np.testing.assert_allclose(images[:1000], model.generate(1000, seed=3), atol=1e-6)
    assert os.listdir(tmp_path) == ["s.npy"]  # no temporary left


def test_resume_as_printed_without_a_model_keeps_the_runs_epochs(vae_run):
    # the command Ctrl-C prints, `kgen train --resume RUN`, works; the run's own 2 epochs are kept
    result = CliRunner().invoke(main, ["train", "--resume", vae_run])
    assert result.exit_code == 2, result.output  # a bad option value, as click's
    assert "already has 2 epochs; pass --epochs larger than 2" in result.output
    assert "Received: epochs=2" in result.output
    result = CliRunner().invoke(main, ["train", "vae", "--resume", vae_run])
    assert "Received: epochs=2" in result.output


def test_resume_without_epochs_trains_to_the_runs_own(vae_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(vae_run, copy)
    os.remove(copy / "model.keras")
    config = json.loads((copy / "config.json").read_text())
    config["train"]["epochs"] = 3
    (copy / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["train", "--resume", str(copy)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(copy)
    assert len(open(copy / "history.csv").read().splitlines()) == 4  # header and epochs 1-3
    assert os.path.isfile(copy / "model.keras")


def test_the_cli_is_part_of_the_package(tmp_path):
    import subprocess
    import sys

    # outside the repository: what an installed kgen offers
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True)  # noqa: E731
    result = run("-m", "kgen", "--version")
    assert result.returncode == 0 and "kgen, version" in result.stdout
    assert run("-c", "import kgen.cli.main").returncode == 0
    # no top-level `cli` package, a name any other project may use
    assert run("-c", "import cli").returncode != 0


def test_pip_install_puts_no_top_level_cli_into_site_packages(tmp_path):
    import shutil
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = tmp_path / "source"  # a copy: setuptools builds in the tree it installs from
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("kgen", "cli"):
        shutil.copytree(os.path.join(root, part), source / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(root, part), source / part)
    site = tmp_path / "site-packages"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    top = sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin")
    assert top == ["kgen"]
    assert (site / "kgen" / "cli" / "main.py").is_file()


# issue 15: callbacks and --tensorboard


def recorder():
    """A Keras callback recording the epochs it saw and their logs."""
    import keras

    class Recorder(keras.callbacks.Callback):
        epochs = None

        def on_epoch_end(self, epoch, logs=None):
            self.epochs = (self.epochs or []) + [(epoch, dict(logs or {}))]

    return Recorder()


def test_train_and_resume_pass_callbacks_to_fit(tmp_path):
    from kgen import specs, training

    first, second = recorder(), recorder()
    config = specs.TrainConfig(model="ae", epochs=1, limit=64, offline=True, val_images=0, out=str(tmp_path))
    run = training.train(config, verbose=0, callbacks=[first])
    assert [e for e, _ in first.epochs] == [0] and "loss" in first.epochs[0][1]
    training.resume(run, epochs=2, verbose=0, callbacks=[second])
    assert [e for e, _ in second.epochs] == [1]
    with pytest.raises(ValueError, match="keras.callbacks.Callback"):
        training.train(config, callbacks=[print])


def test_tensorboard_writes_into_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    result = invoke("train", "ae", "--epochs", 1, "--limit", 64, "--val-images", 0, "--offline", "--tensorboard", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    events = [f for _, _, files in os.walk(os.path.join(run, "logs")) for f in files]
    assert any(f.startswith("events.out.tfevents") for f in events), events


def test_tensorboard_missing_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails as if not installed
    result = invoke("train", "ae", "--epochs", 1, "--limit", 64, "--offline", "--tensorboard", "--out", tmp_path / "runs")
    assert_one_line_error(result, "--tensorboard needs TensorFlow and TensorBoard", "pip install 'kgen[tensorboard]'")
    assert result.exit_code == 2 and not (tmp_path / "runs").exists()


# issue 15: kgen resume, and the command an interruption prints


def test_the_interruption_message_resumes_as_printed(tmp_path, monkeypatch):
    import shlex
    import signal

    from kgen import callbacks

    def interrupt(self, batch, logs=None):
        if self.model.optimizer.iterations == 6:  # epoch 2, step 2: the guard stops after step 3
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(callbacks.HistoryCSV, "on_train_batch_end", interrupt, raising=False)
    out = tmp_path / "my runs"  # a space: the printed command quotes the run
    result = invoke("train", "ae", "--epochs", 3, "--limit", 64, "--batch-size", 16, "--val-images", 0, "--offline", "--out", out)
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    line = [line for line in result.output.splitlines() if line.startswith("Error")][0]
    assert "SIGINT at epoch 2, step 3: checkpoint saved. Resume with: kgen resume " in line
    command = shlex.split(line.split("Resume with: ")[1])
    assert command[:2] == ["kgen", "resume"]
    resumed = invoke(*command[1:])
    assert resumed.exit_code == 0, resumed.output
    run = resumed.output.strip().splitlines()[-1]
    assert run == command[2] and os.path.isfile(os.path.join(run, "model.keras"))
    assert len(open(os.path.join(run, "history.csv")).read().splitlines()) == 4  # header and the run's own 3 epochs


def test_resume_command_is_train_resume(vae_run):
    result = invoke("resume", vae_run)
    assert_one_line_error(result, "already has 2 epochs; pass --epochs larger than 2", "Received: epochs=2")
    assert_one_line_error(invoke("resume", vae_run, "--batch-size", 7), "No such option", "--batch-size")
    assert_one_line_error(invoke("train", "gan", "--resume", vae_run), f"resume it as `kgen resume {vae_run}`")
    assert "Continue an interrupted run" in invoke("resume", "--help").output


# issue 15: output fit for terminals and logs


def test_output_is_one_line_per_epoch_and_a_summary_when_not_a_terminal(tmp_path):
    result = invoke("train", "ae", "--epochs", 2, "--limit", 64, "--val-images", 0, "--offline", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    for code in ("\x1b", "\r", "\b"):  # no colours, no carriage returns, no backspaces in a log
        assert code not in result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("Warning")]
    run = lines[-1]
    assert lines[:4:2] == ["Epoch 1/2", "Epoch 2/2"] and lines[1].startswith("2/2 - ") and "loss: " in lines[1]
    assert lines[-3].startswith("Done: 2 epochs in ") and "epoch 2: loss " in lines[-3]
    assert lines[-2] == f"Latest samples: {os.path.join(run, 'samples', 'epoch_002.png')}"
    # --verbose 0: the run directory alone; --verbose 1: Keras's progress bar
    quiet = invoke("resume", run, "--epochs", 3, "--verbose", 0)
    assert quiet.exit_code == 0, quiet.output
    assert [line for line in quiet.output.splitlines() if not line.startswith("Warning")] == [run]
    bar = invoke("train", "--resume", run, "--epochs", 4, "--verbose", 1)
    assert bar.exit_code == 0 and "━" in bar.output and bar.output.strip().splitlines()[-1] == run


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_no_tensorflow_log_lines_on_torch_and_jax(backend, tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    result = subprocess.run(
        [sys.executable, "-m", "kgen", "train", "ae", "--epochs", "1", "--limit", "64", "--val-images", "0", "--offline",
         "--out", str(tmp_path), "--backend", backend],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line.startswith("Warning: Using the bundled")]
    assert result.stdout.strip().splitlines()[-1].startswith(str(tmp_path))


# issue 15: arrays from sample, metrics by name, --data-dir layouts


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgan")
    result = invoke("train", "cgan", "--arch", "mlp", "--epochs", 1, "--limit", 64, "--val-images", 0, "--offline",
                    "--out", out, "--verbose", 0)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_sample_writes_arrays_not_a_png(vae_run, cgan_run, tmp_path):
    assert invoke("sample", vae_run, "-n", 12, "--seed", 2, "--out", tmp_path / "s.npy").exit_code == 0
    assert invoke("sample", vae_run, "-n", 12, "--seed", 2, "--out", tmp_path / "s.npz").exit_code == 0
    assert not open(tmp_path / "s.npy", "rb").read(8).startswith(b"\x89PNG")
    with np.load(tmp_path / "s.npz") as f:
        assert f.files == ["images"]
        np.testing.assert_array_equal(f["images"], np.load(tmp_path / "s.npy"))
    assert invoke("sample", cgan_run, "-n", 20, "--out", tmp_path / "c.npz").exit_code == 0
    assert invoke("sample", cgan_run, "-n", 5, "--label", 7, "--out", tmp_path / "seven.npz").exit_code == 0
    with np.load(tmp_path / "c.npz") as f, np.load(tmp_path / "seven.npz") as g:
        assert f["images"].shape == (20, 28, 28, 1) and list(f["labels"]) == list(range(10)) * 2
        assert list(g["labels"]) == [7] * 5
    assert sorted(os.listdir(tmp_path)) == ["c.npz", "s.npy", "s.npz", "seven.npz"]  # no temporaries, no .npz.npz
    assert_one_line_error(invoke("sample", vae_run, "--out", tmp_path / "s.jpg"), ".png", ".npy or .npz")


def test_runs_names_each_loss(vae_run, cgan_run):
    for run, names in ((vae_run, ("kl_loss ", "loss ", "recon_loss ")), (cgan_run, ("d_loss ", "g_loss "))):
        result = invoke("runs", "--root", os.path.dirname(os.path.dirname(run)))
        assert result.exit_code == 0 and "losses of the last epoch" in result.output
        line = [line for line in result.output.splitlines() if line.startswith(run)][0]
        for name in names:
            assert name in line, line
        assert "val_" not in line


def test_metric_names_say_which_evaluator():
    from kgen import report
    from kgen.evaluation import evaluate as ev

    rows = ev.table({"samples": {"fid": 1.0, "kid": 0.1, "inception_score": 9.0}})
    assert [name for name, _, _ in rows] == ["FID (kgen evaluator)", "KID (kgen evaluator)",
                                             "inception-style score (kgen evaluator)"]
    assert [title for _, title, _ in report.SAMPLE_COLUMNS[:3]] == [
        "FID (kgen evaluator) ↓", "KID (kgen evaluator) ↓", "IS (kgen evaluator) ↑"]


def write_mnist_files(folder, n=(40, 30), gz=True, seed=0):
    os.makedirs(folder, exist_ok=True)
    for prefix, count in zip(("train", "t10k"), n):
        for suffix in ((".gz", "") if gz else ("",)):
            idx.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"),
                          np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8))
            idx.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"),
                          np.random.default_rng(seed).integers(0, 10, count, dtype=np.uint8))


@pytest.mark.parametrize("layout", ["beside other IDX files", "torchvision root"])
def test_data_dir_finds_the_standard_files(layout, tmp_path):
    root = tmp_path / "data"
    if layout == "torchvision root":  # ROOT/MNIST/raw/ with both the .gz and the unpacked files
        write_mnist_files(root / "MNIST" / "raw", gz=True)
        where = root / "MNIST" / "raw"
    else:  # the standard names win over another set's IDX files in the same folder
        write_mnist_files(root, gz=False)
        write_mnist_files(root / "other", n=(50, 20))
        for name in os.listdir(root / "other"):
            if name.endswith(".gz"):
                os.rename(root / "other" / name, root / name.replace("-images", "-5k-images").replace("-labels", "-5k-labels"))
        where = root
    result = invoke("train", "ae", "--epochs", 1, "--data-dir", root, "--val-images", 0, "--out", tmp_path / "runs", "--verbose", 0)
    assert result.exit_code == 0, result.output
    config = json.load(open(os.path.join(result.output.strip().splitlines()[-1], "config.json")))
    assert config["data"]["train_images"] == 40 and config["data"]["source"] == f"IDX files in {where}"


# issue 15: one place that says what each model is


def test_models_declare_what_they_can_do():
    import subprocess

    from kgen import capabilities as caps
    from kgen.models import MODELS

    assert {name: sorted(caps.of(cls)) for name, cls in MODELS.items()} == {
        "ae": ["encodes", "latent", "reconstructs"],
        "vae": ["encodes", "latent", "likelihood", "reconstructs"],
        "gan": ["adversarial", "latent"],
        "cgan": ["adversarial", "conditional", "latent"],
        "scgan": ["adversarial", "latent"],
        "lstm": ["completes"],
        "flow": ["conditional"],
    }
    with pytest.raises(ValueError, match="Unknown capability"):
        caps.has(MODELS["vae"], "flies")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = subprocess.run(["grep", "-rn", "hasattr(model", "kgen", "cli"], cwd=root, capture_output=True, text=True)
    assert found.stdout == ""  # no sniffing of model kinds


def test_complete_refuses_a_model_that_does_not_complete(vae_run):
    assert_one_line_error(invoke("complete", vae_run), "complete needs an lstm run")


def test_one_declaration_of_each_model_agrees_with_its_class_and_makes_the_cli_options():
    import inspect

    from kgen import specs
    from kgen.models import MODELS

    assert list(MODELS) == list(specs.NAMES)
    for name, spec in specs.SPECS.items():
        cls = MODELS[name]
        assert cls.__name__ == spec.class_name
        assert not hasattr(cls, "default_batch_size"), name  # the batch size is declared once, in kgen.specs
        signature = {}  # the constructor defaults, a subclass's first (ConditionalGAN passes the rest to GAN)
        for klass in reversed(cls.__mro__):
            if "__init__" in vars(klass):
                signature.update(inspect.signature(klass.__init__).parameters)
        for option, default in spec.options.items():
            assert (signature[option].default == default) != (option in spec.recipe), (name, option)
    help_text = " ".join(invoke("train", "--help").output.split())
    for option in specs.OPTIONS:
        assert specs.flag(option) in help_text
        assert specs.takers(option), option  # every option belongs to a model
    assert "[default: (ae, vae: 2; gan, cgan, scgan: 64)" in help_text  # --latent-dim, from the specs


def test_training_defaults_come_from_the_spec(tmp_path):
    from kgen import specs

    config = specs.TrainConfig(model="gan", model_options={"arch": "mlp"}, gan_optimizers={"d": {"learning_rate": 1e-4}})
    config.validate()
    assert config.batch_size == 64 and config.learning_rate is None
    assert config.model_options == {**specs.SPECS["gan"].options, "arch": "mlp"}
    assert config.gan_optimizers == {"d": {**specs.GAN_ADAM, "learning_rate": 1e-4}, "g": specs.GAN_ADAM}
    config = specs.TrainConfig(model="gan")
    config.validate()
    assert config.gan_optimizers["d"]["learning_rate"] == 8e-4 and config.gan_optimizers["g"] == specs.GAN_ADAM
    config = specs.TrainConfig(model="cgan")
    config.validate()
    assert config.gan_optimizers == {"d": specs.GAN_D_ADAM, "g": specs.GAN_ADAM}
    config = specs.TrainConfig(model="lstm")
    config.validate()
    assert (config.batch_size, config.learning_rate, config.model_options["units"]) == (64, 1e-3, 256)


def test_hide_tensorflow_keeps_it_out_of_seeding_and_saving_and_falls_back_to_the_log_level(tmp_path, monkeypatch):
    import importlib.util
    import subprocess
    import sys

    from kgen.backend.common import hide_tensorflow

    if importlib.util.find_spec("tensorflow") is not None:  # the Python API on torch, as the CLI runs it
        script = (
            "import sys, keras\n"
            "from kgen.backend.common import hide_tensorflow\n"
            "assert hide_tensorflow()\n"
            "from kgen.models import AutoEncoder\n"
            "keras.utils.set_random_seed(0)\n"
            f"AutoEncoder().save({str(tmp_path / 'ae.keras')!r})\n"
            "assert 'tensorflow' not in sys.modules, 'imported'\n"
        )
        env = {**os.environ, "KERAS_BACKEND": "torch"}
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
        assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    monkeypatch.setitem(sys.modules, "keras.src.utils.module_utils", None)  # a Keras without that private module
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as if no test had imported it yet
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert hide_tensorflow() is False and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_keep_freed_memory_serves_blocks_below_32_mib_from_the_heap_and_yields_to_the_environment(monkeypatch):
    import inspect
    import platform
    import subprocess
    import sys

    from kgen.backend.common import keep_freed_memory

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        # In a fresh process (a test worker's heap already holds freed blocks that would serve any size):
        # the function's own source, then glibc's mallinfo2, whose hblkhd is the bytes held in mmap-ed blocks.
        script = inspect.getsource(keep_freed_memory) + (
            "import ctypes, numpy as np\n"
            "class Info(ctypes.Structure):\n"
            "    _fields_ = [(f, ctypes.c_size_t) for f in 'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'.split()]\n"
            "libc = ctypes.CDLL(None); libc.mallinfo2.restype = Info\n"
            "def mmapped(mib):\n"
            "    before = libc.mallinfo2().hblkhd; block = np.ones(mib * 2**18, 'float32')\n"
            "    return libc.mallinfo2().hblkhd - before >= mib * 2**20\n"
            "libc.mallopt(-3, 128 * 2**10)  # glibc's starting threshold, 128 KiB, held fixed\n"
            "print(mmapped(30), keep_freed_memory(), mmapped(30), mmapped(48))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        # before: mmap-ed; after: from the heap; 48 MiB (above glibc's maximum threshold) still mmap-ed
        assert result.stdout.split() == ["True", "True", "False", "True"], result.stdout
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # the user's own setting stands
    assert keep_freed_memory() is False


def test_the_command_keeps_freed_memory_on_torch_only(monkeypatch):
    import kgen.backend.common
    import kgen.cli.main as cli_main

    calls = []
    monkeypatch.setattr(kgen.backend.common, "keep_freed_memory", lambda: calls.append(True))
    monkeypatch.setattr(kgen.backend.common, "hide_tensorflow", lambda: None)
    for backend, expected in (("torch", [True]), ("jax", [])):
        calls.clear()
        monkeypatch.setenv("KERAS_BACKEND", backend)
        cli_main._set_backend(None, None, None)
        assert calls == expected, backend


# TensorFlow's start-up lines on torch: none where kgen imports it (TFDS, --tensorboard)

TINY_TRAIN = ("--epochs", "1", "--limit", "64", "--val-images", "0", "--offline", "--verbose", "0")
TENSORFLOW_LINES = ("absl", "oneDNN", "cuda", "I0000", "W0000", "E0000", "cpu_feature_guard", "tensorflow/")


def _tensorflow_lines(tmp_path, *args):
    """The stderr lines of `kgen ARGS` on torch (in a subprocess) that come from TensorFlow's or absl's loggers."""
    import subprocess
    import sys

    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # kgen's own settings, not the test's
    result = subprocess.run(
        [sys.executable, "-m", "kgen.cli.main", *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
    )
    return result, [line for line in result.stderr.splitlines() if any(word in line for word in TENSORFLOW_LINES)]


def test_tensorboard_on_torch_prints_no_tensorflow_line(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorboard")
    result, lines = _tensorflow_lines(tmp_path, "train", "vae", *TINY_TRAIN, "--out", str(tmp_path), "--tensorboard")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not lines, lines
    assert any((tmp_path / "vae").glob("*/logs/train"))  # the logs were written


def test_a_tfds_data_set_on_torch_prints_no_tensorflow_line(tmp_path):
    pytest.importorskip("tensorflow")
    from kgen.data.load import check_network

    try:
        check_network()
    except Exception:
        pass
    else:
        pytest.skip("the network is up: TFDS would download fashion_mnist")
    result, lines = _tensorflow_lines(tmp_path, "train", "vae", "--dataset", "fashion_mnist", "--epochs", "1", "--out", str(tmp_path))
    assert result.returncode == 1 and "fashion_mnist could not be loaded" in result.stderr, result.stderr[-2000:]
    assert not lines, lines


def test_the_command_imports_keras_without_what_it_never_uses(tmp_path):
    # `import keras` imports jax, scikit-learn, pandas, matplotlib, IPython and requests for features no command
    # uses; a sample grid is written without matplotlib; kgen's own imports of them later work as usual
    import subprocess
    import sys

    code = (
        "import sys; from kgen.cli import main as m; m._import_keras('torch'); "
        "from kgen import plots; plots.save_grid('grid.png', [[[0.5]]]); "
        "print(sorted(n for n in m.KERAS_EXTRAS if n in sys.modules)); "
        "import keras, sklearn.manifold, matplotlib.pyplot, pandas; print(keras.config.backend(), 'later imports work')"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["[]", "torch later imports work"], result.stdout
