"""Resume, interruption, NaN guard, atomic writes, determinism, cross-backend loading."""

import errno
import json
import os
import signal

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kgen.cli.main import main
from kgen import callbacks, checkpoint, figures, files, runs, specs, training
from kgen.errors import Diverged, Interrupted


OPTIONS = {"vae": {"latent_dim": 2, "arch": "mlp"}, "flow": {"width": 8, "steps": 2}}  # small and quick


def config(artifacts, model="vae", epochs=3, **kwargs):
    return specs.TrainConfig(
        model=model, epochs=epochs, batch_size=32, limit=128, offline=True, seed=7,
        out=str(artifacts), model_options=OPTIONS.get(model, {}), **kwargs,
    )


def weights(run):
    model = keras.saving.load_model(os.path.join(run, "model.keras"))
    return model.get_weights() + [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]


def assert_same_run(a, b):
    assert open(os.path.join(a, "history.csv")).read() == open(os.path.join(b, "history.csv")).read()
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(x, y)
    assert sorted(os.listdir(os.path.join(a, "samples"))) == sorted(os.listdir(os.path.join(b, "samples")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted 3-epoch runs of the VAE, the GAN and the flow (4 steps an epoch)."""
    root = tmp_path_factory.mktemp("reference")
    return {m: training.train(config(root, m), verbose=0) for m in ("vae", "gan", "flow")}


# resume


@pytest.mark.parametrize("model", ["vae", "gan", "flow"])
def test_resume_after_an_epoch_is_exact(model, reference, artifacts):
    run = training.train(config(artifacts, model, epochs=2), verbose=0)
    training.resume(run, epochs=3, verbose=0)
    assert_same_run(reference[model], run)


@pytest.mark.parametrize("model", ["vae", "gan", "flow"])
def test_sigint_mid_epoch_then_resume_is_exact(model, reference, artifacts, monkeypatch):
    def interrupt(self, batch, logs=None):
        if self.model.optimizer.iterations == 6:  # during epoch 2, step 3 (this runs after the guard)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(callbacks.HistoryCSV, "on_train_batch_end", interrupt, raising=False)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    with pytest.raises(Interrupted, match=r"SIGINT at epoch 2, step 3: checkpoint saved\. Resume with"):
        training.train(config(artifacts, model), verbose=0)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    run = runs.list_runs(str(artifacts))[0]["path"]
    state = checkpoint.read(run)
    assert (state["epoch"], state["step"]) == (1, 3)
    assert not os.path.exists(os.path.join(run, "model.keras"))
    monkeypatch.undo()
    training.resume(run, verbose=0)
    assert_same_run(reference[model], run)


def test_resume_refuses_a_finished_run(reference):
    with pytest.raises(Exception, match="already has 3 epochs; pass --epochs larger than 3"):
        training.resume(reference["vae"], epochs=3)


def test_second_signal_exits_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", lambda code: exits.append(code))
    guard = callbacks.TrainingGuard(checkpoint.Checkpoint("unused"), "run")
    guard._handle(signal.SIGTERM, None)
    assert guard.signal == "SIGTERM" and exits == []
    guard._handle(signal.SIGINT, None)
    assert exits == [130]


# NaN guard


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(artifacts, monkeypatch):
    original = checkpoint.Checkpoint.on_epoch_end

    def poison_after_epoch_1(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            variable = self.model.decoder.trainable_variables[0]
            variable.assign(np.full(variable.shape, np.nan, "float32"))

    monkeypatch.setattr(checkpoint.Checkpoint, "on_epoch_end", poison_after_epoch_1)
    with pytest.raises(Diverged, match=r"loss became nan at epoch 2, step 1; the checkpoint of epoch 1 is kept"):
        training.train(config(artifacts), verbose=0)
    run = runs.list_runs(str(artifacts))[0]["path"]
    assert checkpoint.read(run)["epoch"] == 1
    model = checkpoint.load_model(run)  # the checkpoint loads and is finite
    assert np.all(np.isfinite(model.generate(4, seed=0)))
    assert len(files.read_csv(os.path.join(run, "history.csv"))) == 1


def test_nan_exit_code_on_the_cli(artifacts, monkeypatch):
    def diverge(*args, **kwargs):
        raise Diverged("The loss became nan at epoch 1, step 1")

    monkeypatch.setattr(training, "train", diverge)
    result = CliRunner().invoke(main, ["train", "vae", "--out", str(artifacts)])
    assert result.exit_code == 3 and "Error: The loss became nan" in result.output


# atomic writes


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"fid": 1.0})
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"fid": 2')  # half written
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"fid": 1.0}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_failed_checkpoint_keeps_the_previous_checkpoint(artifacts, monkeypatch):
    original = keras.Model.save
    calls = []

    def save_fails_on_epoch_2(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if "model-0002" in str(filepath):
            with open(filepath, "wb") as f:
                f.write(b"PK half a zip")
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_fails_on_epoch_2)
    with pytest.raises(OSError):
        training.train(config(artifacts), verbose=0)
    monkeypatch.undo()
    run = runs.list_runs(str(artifacts))[0]["path"]
    state = checkpoint.read(run)
    assert state["epoch"] == 1
    assert sorted(os.listdir(os.path.join(run, "checkpoint"))) == ["model-0001-00000.keras", "state.json"]
    checkpoint.load_model(run)  # still loadable
    training.resume(run, epochs=2, verbose=0)  # and resumable
    assert checkpoint.read(run)["epoch"] == 2


def test_full_disk_on_the_cli_is_one_line(artifacts, monkeypatch):
    def full(self, filepath, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(keras.Model, "save", full)
    result = CliRunner().invoke(main, ["train", "ae", "--epochs", "1", "--limit", "64", "--offline", "--out", str(artifacts)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "No space left on device while writing" in errors[0]
    assert "Traceback" not in result.output


# determinism


def test_same_seed_same_history(artifacts):
    a = training.train(config(artifacts / "a", epochs=2), verbose=0)
    b = training.train(config(artifacts / "b", epochs=2), verbose=0)
    c = training.train(config(artifacts / "c", epochs=2, learning_rate=1e-3 * 1.01), verbose=0)
    history = [open(os.path.join(r, "history.csv")).read() for r in (a, b, c)]
    assert history[0] == history[1]
    assert history[0] != history[2]


# issue 17: no poisoned checkpoint; every stopped run finishable


def poison_at_step(monkeypatch, step):
    """Makes the weights NaN right after optimizer step `step`, after the guard saw that step's loss."""

    def poison(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == step:
            variable = self.model.trainable_variables[0]
            variable.assign(np.full(variable.shape, np.nan, "float32"))

    monkeypatch.setattr(callbacks.HistoryCSV, "on_train_batch_end", poison, raising=False)


def all_finite(model):
    return all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_nan_weights_of_an_epochs_last_step_are_never_checkpointed(artifacts, monkeypatch):
    poison_at_step(monkeypatch, 8)  # the last step of epoch 2 (4 steps an epoch)
    with pytest.raises(
        Diverged,
        match=r"The weights became non-finite \(NaN or inf in .*\) at the end of epoch 2; the checkpoint "
        r"of epoch 1 is kept\. Lower --learning-rate and train again, or resume the checkpoint with `kgen resume",
    ):
        training.train(config(artifacts), verbose=0)
    run = runs.list_runs(str(artifacts))[0]["path"]
    assert checkpoint.read(run)["epoch"] == 1
    assert all_finite(checkpoint.load_model(run))
    assert len(files.read_csv(os.path.join(run, "history.csv"))) == 1  # nothing of epoch 2 saved
    assert sorted(os.listdir(os.path.join(run, "samples"))) == ["epoch_001.png"]
    assert not os.path.exists(os.path.join(run, "model.keras"))


def test_nan_weights_in_the_first_epoch_say_there_is_no_checkpoint(artifacts, monkeypatch):
    poison_at_step(monkeypatch, 4)
    with pytest.raises(Diverged, match=r"at the end of epoch 1; no checkpoint was saved\. Lower --learning-rate and train again\.$"):
        training.train(config(artifacts), verbose=0)
    run = runs.list_runs(str(artifacts))[0]["path"]
    assert checkpoint.read(run) is None


def test_the_guard_counts_the_steps_of_a_resumed_epoch_from_where_it_stopped():
    guard = callbacks.TrainingGuard()
    guard.attach(checkpoint.Checkpoint("unused", saved=(1, 3)), "RUN")
    guard.resume_at(3)  # epoch 2 resumed after 3 steps
    with pytest.raises(Diverged, match=r"The loss became nan at epoch 1, step 5;"):
        guard.on_train_batch_end(1, {"loss": float("nan")})
    guard.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    guard.on_epoch_end(1)  # the resumed epoch ends: the next counts from its first step
    with pytest.raises(Diverged, match=r"step 2;"):
        guard.on_train_batch_end(1, {"loss": float("nan")})


def test_a_checkpoint_is_never_written_with_nan_weights(tmp_path):
    model = training.build_model(config(tmp_path))
    saver = checkpoint.Checkpoint(str(tmp_path), saved=(1, 0), run="RUN")
    saver.set_model(model)
    variable = model.trainable_variables[-1]
    variable.assign(np.full(variable.shape, np.inf, "float32"))
    with pytest.raises(Diverged, match=r"at epoch 2, step 3; the checkpoint of epoch 1 is kept\. .* `kgen resume RUN`\."):
        saver.write(1, 3)  # what a SIGINT mid-epoch does
    assert os.listdir(tmp_path) == []


def test_gan_divergence_names_the_gan_learning_rates(artifacts, monkeypatch):
    poison_at_step(monkeypatch, 4)
    with pytest.raises(Diverged, match=r"Lower --d-learning-rate and --g-learning-rate and train again"):
        training.train(config(artifacts, "gan", epochs=1), verbose=0)


def test_sigint_during_the_end_of_run_figures_is_finishable(reference, artifacts, monkeypatch):
    original = figures.reconstructions

    def interrupt(*args):
        os.kill(os.getpid(), signal.SIGINT)
        original(*args)

    monkeypatch.setattr(figures, "reconstructions", interrupt)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    with pytest.raises(Interrupted, match=r"SIGINT after epoch 3, before model.keras was written: the checkpoint "
                       r"of epoch 3 is saved\. Finish with: kgen resume"):
        training.train(config(artifacts), verbose=0)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    run = runs.list_runs(str(artifacts))[0]["path"]
    assert not os.path.exists(os.path.join(run, "model.keras"))
    monkeypatch.undo()
    training.resume(run, verbose=0)  # finishes the run instead of "already has 3 epochs"
    assert_same_run(reference["vae"], run)
    for name in ("reconstructions.png", "latent_map.png", "loss_curves.png"):
        assert os.path.isfile(os.path.join(run, "plots", name))
    with pytest.raises(Exception, match="already has 3 epochs"):  # and once finished, it is finished
        training.resume(run, verbose=0)


def test_full_disk_on_the_final_save_is_finishable(reference, artifacts, monkeypatch):
    original = keras.Model.save

    def full(self, filepath, *args, **kwargs):
        if str(filepath).endswith("-model.keras"):
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", full)
    with pytest.raises(OSError):
        training.train(config(artifacts), verbose=0)
    monkeypatch.undo()
    run = runs.list_runs(str(artifacts))[0]["path"]
    assert checkpoint.read(run)["epoch"] == 3 and not os.path.exists(os.path.join(run, "model.keras"))
    training.resume(run, verbose=0)
    assert_same_run(reference["vae"], run)


SIGTERM_SCRIPT = """
import os, signal, sys
import keras
from kgen import figures, specs, training
where = sys.argv[2]
if where == "figures":
    original = figures.reconstructions
    def stop(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        original(*args)
    figures.reconstructions = stop
else:  # during the write of the final model.keras
    original = keras.Model.save
    def stop(self, filepath, *args, **kwargs):
        if str(filepath).endswith("-model.keras"):
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, filepath, *args, **kwargs)
    keras.Model.save = stop
config = specs.TrainConfig(model="ae", epochs=1, batch_size=32, limit=64, offline=True, out=sys.argv[1])
print(training.train(config, verbose=0))
"""


@pytest.mark.parametrize("where", ["figures", "final save"])
def test_sigterm_after_the_last_checkpoint_leaves_a_finishable_run(where, tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(tmp_path), where], env=env,
                          capture_output=True, text=True, timeout=600)
    (run,) = [os.path.join(tmp_path, "ae", d) for d in os.listdir(tmp_path / "ae")]
    temporaries = [f for _, _, files in os.walk(run) for f in files if f.startswith(".tmp-")]
    assert temporaries == []
    if where == "figures":
        assert proc.returncode == 1 and "SIGTERM after epoch 1" in proc.stderr, proc.stderr[-2000:]
        assert not os.path.exists(os.path.join(run, "model.keras"))
        training.resume(run, verbose=0)
    else:  # the signal waits for the save: the run is complete
        assert proc.returncode == 0, proc.stderr[-2000:]
    checkpoint.load_model_file(os.path.join(run, "model.keras"))
    assert os.path.isfile(os.path.join(run, "plots", "reconstructions.png"))


KILL_SCRIPT = """
import contextlib, os, signal, sys
from kgen import callbacks, files, training
out, plan = sys.argv[1], sys.argv[2]
target, sig = (None, None) if plan == "count" else (int(plan.split(":")[0]), getattr(signal, plan.split(":")[1]))
count = [0]
def event():
    count[0] += 1
    if count[0] == target:
        os.kill(os.getpid(), sig)
atomic = files.atomic_path
@contextlib.contextmanager
def watched(path):  # a stop before each write and after it, before the rename
    with atomic(path) as tmp:
        event()
        yield tmp
        event()
files.atomic_path = watched
callbacks.HistoryCSV.on_train_batch_end = lambda self, batch, logs=None: event()  # and after each step
from kgen.cli.main import main
try:  # the CLI, as a user runs it
    main(["train", "ae", "--epochs", "3", "--batch-size", "32", "--limit", "64", "--offline", "--seed", "5", "--out", out])
finally:
    sys.stderr.write(f"EVENTS {count[0]}\\n")
"""


def _subprocess(*args):
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, *args], env=env, cwd=root, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_stops_at_every_point_then_resume_give_the_uninterrupted_run(tmp_path):
    """SIGINT, SIGTERM and SIGKILL at 21+ points of a run, after every step and around every
    file write, the end-of-run figures and the final model.keras included; then `kgen
    resume RUN` (the command the stop message prints) finishes it to the uninterrupted run."""
    reference = _subprocess("-c", KILL_SCRIPT, str(tmp_path / "reference"), "count")
    assert reference.returncode == 0, reference.stderr[-3000:]
    events = int(reference.stderr.rsplit("EVENTS ", 1)[1].split()[0])
    reference_run = reference.stdout.strip().splitlines()[-1]
    # 14 points spread over the run (from the write of config.json on), and the last 7 (the end-of-run figures and the final save)
    spread = np.linspace(1, events - 7, 14).round().astype(int).tolist()
    points = sorted(set(spread) | set(range(events - 6, events + 1)))
    signals = ["SIGINT", "SIGTERM", "SIGKILL"]
    finished = 0
    for i, point in enumerate(points):
        sig = signals[i % 3]
        out = tmp_path / f"stop-{point}-{sig}"
        stopped = _subprocess("-c", KILL_SCRIPT, str(out), f"{point}:{sig}")
        assert "Traceback" not in stopped.stderr, (point, sig, stopped.stderr[-3000:])
        (run,) = [os.path.join(out, "ae", d) for d in os.listdir(out / "ae")]
        assert stopped.returncode in (0, 130, -9), (point, sig, stopped.returncode, stopped.stderr[-3000:])
        if stopped.returncode == 0:  # stopped while model.keras was written: complete
            pass
        else:
            resumed = _subprocess("-m", "kgen", "resume", run)
            if checkpoint.read(run) is None or not os.path.isfile(os.path.join(run, "config.json")):
                assert resumed.returncode == 1 and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
                continue  # stopped before the first checkpoint: nothing to resume, one line says so
            assert resumed.returncode == 0, (point, sig, resumed.stderr[-3000:])
        assert not [f for _, _, files in os.walk(run) for f in files if f.startswith(".tmp-")]
        assert_same_run(reference_run, run)
        finished += 1
    assert len(points) >= 21 and finished >= 15


def test_a_second_resume_of_a_run_is_one_line(reference, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference["vae"], run)
    with runs.locked(str(run)):  # as a first resume holds it
        with pytest.raises(Exception, match=r"is being trained by another process; wait for it"):
            training.resume(str(run), epochs=4, verbose=0)
    assert checkpoint.read(str(run))["epoch"] == 3  # untouched


def test_sigint_while_the_run_starts_ends_in_a_checkpoint(artifacts, monkeypatch):
    original = files.write_json

    def interrupt_on_config(path, obj):
        original(path, obj)
        if str(path).endswith("config.json"):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(files, "write_json", interrupt_on_config)
    with pytest.raises(Interrupted, match=r"SIGINT at epoch 1, step 1: checkpoint saved"):
        training.train(config(artifacts), verbose=0)
    monkeypatch.undo()
    run = runs.list_runs(str(artifacts))[0]["path"]
    assert checkpoint.read(run)["step"] == 1


def test_full_disk_names_the_file_even_when_the_writer_does_not(artifacts, monkeypatch):
    def full(self, filepath, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as h5py and zipfile raise it: no file name

    monkeypatch.setattr(keras.Model, "save", full)
    result = CliRunner().invoke(main, ["train", "ae", "--epochs", "1", "--limit", "64", "--offline", "--out", str(artifacts)])
    assert result.exit_code == 1
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "No space left on device while writing " in error and "checkpoint/model-0001-00000.keras;" in error


@pytest.mark.parametrize("model", ["vae"])
def test_sigint_in_an_epochs_last_step_checkpoints_the_whole_epoch(model, reference, artifacts, monkeypatch):
    def interrupt(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == 7:  # during epoch 2's last step (4 steps an epoch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(callbacks.HistoryCSV, "on_train_batch_end", interrupt, raising=False)
    with pytest.raises(Interrupted, match=r"SIGINT at the end of epoch 2: checkpoint saved\. Resume with"):
        training.train(config(artifacts, model), verbose=0)
    run = runs.list_runs(str(artifacts))[0]["path"]
    state = checkpoint.read(run)
    assert (state["epoch"], state["step"]) == (2, 0)  # not a "mid-epoch" checkpoint at step 4 of 4
    monkeypatch.undo()
    training.resume(run, verbose=0)
    assert_same_run(reference[model], run)


# learning-rate decay


def rates(run):
    optimizer = keras.saving.load_model(os.path.join(run, "model.keras")).optimizer
    return [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in (optimizer.d_optimizer, optimizer.g_optimizer)]


def test_lr_decay_steps_each_gan_optimizer_down_from_its_own_rate_and_resumes_exactly(reference, artifacts, monkeypatch):
    seen = []
    record = lambda self, epoch, logs=None: seen.append(  # noqa: E731
        [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in self.model.optimizer.optimizers]
    )
    monkeypatch.setattr(callbacks.HistoryCSV, "on_epoch_begin", record, raising=False)
    decayed = training.train(config(artifacts / "whole", "gan", lr_decay=True), verbose=0)
    d, g = 8e-4, 4e-4  # the GAN's defaults
    np.testing.assert_allclose(seen, [[d, g], [d * 2 / 3, g * 2 / 3], [d / 3, g / 3]], rtol=1e-6)
    np.testing.assert_allclose(rates(decayed), [d / 3, g / 3], rtol=1e-6)
    assert runs.load_run(decayed)["train"]["lr_decay"] is True
    assert open(os.path.join(decayed, "history.csv")).read() != open(os.path.join(reference["gan"], "history.csv")).read()

    def interrupt(self, batch, logs=None):
        if self.model.optimizer.iterations == 6:  # during epoch 2, step 3
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(callbacks.HistoryCSV, "on_train_batch_end", interrupt, raising=False)
    with pytest.raises(Interrupted):
        training.train(config(artifacts / "stopped", "gan", lr_decay=True), verbose=0)
    monkeypatch.undo()
    run = runs.list_runs(str(artifacts / "stopped"))[0]["path"]
    training.resume(run, verbose=0)
    assert_same_run(decayed, run)


def test_lr_decay_on_the_cli(artifacts):
    result = CliRunner().invoke(main, ["train", "ae", "--epochs", "2", "--limit", "64", "--offline", "--lr-decay",
                                       "--val-images", "0", "--out", str(artifacts), "--verbose", "0"])
    assert result.exit_code == 0, result.output
    run = result.output.strip().splitlines()[-1]
    assert runs.load_run(run)["train"]["lr_decay"] is True
    rate = keras.saving.load_model(os.path.join(run, "model.keras")).optimizer.learning_rate
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(rate)), 1e-3 / 2, rtol=1e-6)


# bounded memory, runs that resume exactly or refuse, readers that cannot be crashed


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path, monkeypatch):
    from kgen.data import idx
    from kgen.errors import DataError

    path = tmp_path / "train-images-idx3-ubyte.gz"
    with idx.gzip.open(path, "wb") as f:  # 300 images promised, then 8 MB of zeros (10 GiB in the attack)
        f.write(b"\x00\x00\x08\x03" + np.array([300, 28, 28], ">u4").tobytes())
        f.write(bytes(8 << 20))
    inflated = []

    class Counting(idx.gzip.GzipFile):
        def read(self, size=-1):  # readinto reads through it too
            data = super().read(size)
            inflated.append(len(data))
            return data

    monkeypatch.setattr(idx.gzip, "GzipFile", Counting)
    with pytest.raises(DataError, match=r"longer than its header says: the header promises 235200 bytes .* holds more"):
        idx.read_idx(path, ndim=3)
    assert sum(inflated) <= 16 + 235_200 + 1  # the header, the promised bytes and one more: not the 8 MB
    monkeypatch.setattr(idx, "MAX_BYTES", 100_000)  # a header promising more than kgen reads: refused before reading
    with pytest.raises(DataError, match=r"promises 235,200 bytes .* at most 100,000 bytes"):
        idx.read_idx(path, ndim=3)


def test_sampling_to_an_npz_streams(reference, tmp_path):
    import tracemalloc

    from kgen.cli import main as cli

    model = checkpoint.load_model(reference["vae"])
    cli._write_samples(str(tmp_path / "a.npy"), model, 12_000, 1, "labels", None)
    tracemalloc.start()
    cli._write_samples(str(tmp_path / "a.npz"), model, 12_000, 1, "labels", None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12_000 * 784 * 4 / 4  # chunks of 1,000, never the 37.6 MB of all the images
    with np.load(tmp_path / "a.npz") as f:
        assert f.files == ["images"]
        np.testing.assert_array_equal(f["images"], np.load(tmp_path / "a.npy"))


def test_a_model_size_above_its_bound_is_refused_before_the_run_exists(artifacts):
    for model, options in (("vae", {"iwae_k": 100_000_000}), ("lstm", {"units": 100_000}), ("flow", {"depth": 1000})):
        with pytest.raises(ValueError, match=r"must be an integer in \[\d+, \d+\]"):
            training.train(specs.TrainConfig(model=model, out=str(artifacts), offline=True, model_options=options))
    assert os.listdir(artifacts) == []


def test_a_relative_data_dir_is_stored_absolute_and_resumes_on_the_same_data(tmp_path, monkeypatch):
    from kgen.data import idx

    rng = np.random.default_rng(0)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    for folder in (work / "data", elsewhere / "data"):  # the same relative name, other data
        folder.mkdir(parents=True)
        for prefix, n in (("train", 64), ("t10k", 16)):
            idx.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            idx.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    monkeypatch.chdir(work)
    run = training.train(specs.TrainConfig(model="ae", epochs=1, batch_size=32, data_dir="data", out=str(tmp_path / "runs")),
                         verbose=0)
    assert json.loads(open(os.path.join(run, "config.json")).read())["train"]["data_dir"] == str(work / "data")
    monkeypatch.chdir(elsewhere)
    training.resume(run, epochs=2, verbose=0)
    assert training.saved_config(run).data_dir == str(work / "data")


def test_resume_finishes_a_run_stopped_before_its_last_figures(reference, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference["vae"], run)
    os.remove(run / "plots" / "loss_curves.png")  # killed between model.keras and the curves (an older kgen)
    (run / "plots" / ".tmp-99999-loss_curves.png").write_bytes(b"half a png")
    training.resume(str(run), verbose=0)
    assert (run / "plots" / "loss_curves.png").is_file()
    assert not [n for _, _, names in os.walk(run) for n in names if n.startswith(".tmp-")]
    assert_same_run(reference["vae"], str(run))
    with pytest.raises(Exception, match="already has 3 epochs"):
        training.resume(str(run), verbose=0)


def test_the_model_file_is_written_after_every_figure(artifacts, monkeypatch):
    written = []
    original = os.replace

    def record(source, target):  # every file of a run is renamed into place (kgen.files.atomic_path)
        written.append(os.path.basename(str(target)))
        return original(source, target)

    monkeypatch.setattr(os, "replace", record)
    training.train(config(artifacts, epochs=1), verbose=0)
    monkeypatch.undo()
    assert written[-1] == "model.keras" and "loss_curves.png" in written  # a run with model.keras is finished


def inconsistent(run):
    """The rewound checkpoint of a 3-epoch run: its state and model file say epoch 1, its model took 12 steps."""
    folder = run / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    os.rename(folder / state["model"], folder / "model-0001-00000.keras")
    state.update(epoch=1, model="model-0001-00000.keras")
    (folder / "state.json").write_text(json.dumps(state))
    os.remove(run / "model.keras")


@pytest.mark.parametrize("history_rows, words", [
    (3, r"history.csv is damaged: it has 3 rows, and the checkpoint has only 1 epochs"),
    (1, r"state.json is damaged: it says epoch 1, step 0 \(4 steps\), and its model took 12"),
])
def test_a_rewound_checkpoint_is_refused_before_anything_is_written(reference, tmp_path, history_rows, words):
    import hashlib
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference["vae"], run)
    inconsistent(run)
    lines = (run / "history.csv").read_text().splitlines(keepends=True)
    (run / "history.csv").write_text("".join(lines[: history_rows + 1]))
    digest = lambda: sorted((str(p), hashlib.sha256(p.read_bytes()).hexdigest()) for p in run.rglob("*") if p.is_file())
    before = digest()
    result = CliRunner().invoke(main, ["resume", str(run)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert __import__("re").search(words, error), error
    assert digest() == before


def test_a_linked_lock_creates_nothing_outside_the_run(reference, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference["vae"], run)
    os.remove(run / ".lock")
    os.symlink(tmp_path / "outside", run / ".lock")
    with pytest.raises(Exception, match=r"\.lock is a symbolic link; kgen locks a run with a plain file of its own"):
        training.resume(str(run), epochs=4, verbose=0)
    assert not (tmp_path / "outside").exists() and checkpoint.read(str(run))["epoch"] == 3


def test_full_disk_before_the_first_checkpoint_says_there_is_none(artifacts, monkeypatch):
    def full(self, filepath, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(keras.Model, "save", full)
    result = CliRunner().invoke(main, ["train", "ae", "--epochs", "1", "--limit", "64", "--offline", "--out", str(artifacts)])
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and "the run had saved no checkpoint yet, so there is nothing to resume" in error
    assert "kgen resume" not in error


def test_full_disk_after_a_checkpoint_names_the_resume_command(artifacts, monkeypatch):
    original = keras.Model.save

    def full_on_epoch_2(self, filepath, *args, **kwargs):
        if "model-0002" in str(filepath):
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", full_on_epoch_2)
    result = CliRunner().invoke(main, ["train", "ae", "--epochs", "2", "--limit", "64", "--offline", "--out", str(artifacts)])
    run = runs.list_runs(str(artifacts))[0]["path"]
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert error.endswith(f"the run keeps its last checkpoint. Free some space, then continue with: kgen resume {run}")
