"""The speed benchmark runs (tiny sizes; nothing here is timed or compared with a number)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import profile_step  # noqa: E402
import reference  # noqa: E402
import speed  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return speed.train_images(40)


@pytest.mark.parametrize("name", list(speed.MODELS))
def test_reference_networks_compute_what_the_kgen_networks_compute(name):
    run = speed.KgenRun(name, speed.train_images(8), batch_size=8)
    step = reference.MAKERS[run.config.model](run.model, "cpu")
    assert reference.check_same_outputs(run.model, step, "cpu") < 1e-4


def test_compare_trains_both_in_turn_and_reports_rates(digits):
    lines = []
    row = speed.compare("vae", digits[:16], "cpu", reps=2, warmup=0, batch_size=8, log=lines.append)
    assert len(lines) == 2
    assert row["batch_size"] == 8 and row["images"] == 16
    for key in ("kgen_wall", "reference_wall", "kgen_cpu", "reference_cpu", "ratio_wall"):
        assert np.isfinite(row[key]) and row[key] > 0
    for clock in ("wall", "cpu"):  # the ratio is the median of the per-pair ratios, with their spread
        ratios = row[f"ratios_{clock}"]
        assert len(ratios) == 2 and row[f"ratio_{clock}"] == pytest.approx(sum(ratios) / 2)
        assert row[f"ratio_{clock}_min"] == min(ratios) and row[f"ratio_{clock}_max"] == max(ratios)
        q1, q3 = row[f"ratio_{clock}_iqr"]
        assert min(ratios) <= q1 <= row[f"ratio_{clock}"] <= q3 <= max(ratios)


def test_quartiles_of_the_ratios():
    assert speed._quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == [2.0, 4.0]
    assert speed._quartiles([0.9]) == [0.9, 0.9]


def test_reference_step_lowers_the_vae_loss(digits):
    run = speed.KgenRun("vae", digits, batch_size=40)
    step = reference.make_vae(run.model, "cpu")
    import torch

    x = torch.as_tensor(digits)
    first = float(step(x)[0])
    for _ in range(20):
        last = float(step(x)[0])
    assert last < first


def test_main_times_each_model_in_its_own_process(tmp_path, capsys):
    out = tmp_path / "speed.json"
    results = speed.main(
        ["--models", "vae", "--images", "40", "--reps", "1", "--warmup", "0", "--threads", "1", "--json", str(out)]
    )
    printed = capsys.readouterr().out
    assert "| vae | 32 | cpu |" in printed
    assert "| 1 | " in printed.split("| vae | 32 | cpu |")[1].splitlines()[0]  # the number of repetitions
    assert "| vae |  | cuda | not measured" in printed or "| vae | 32 | cuda |" in printed
    assert out.exists() and results["compare"][0]["model"] == "vae"


def test_unknown_model_stops_before_any_timing():
    with pytest.raises(SystemExit, match=r"^Unknown model; use one of gan-mlp, gan-conv, vae, lstm\. Received: 'gan-xl'$"):
        speed.main(["--models", "vae", "gan-xl"])


def test_profile_summary_sorts_samples_into_parts(tmp_path):
    profile = tmp_path / "profile.txt"
    fit = "run_epochs (profile_step.py:1);TorchTrainer.fit (keras/src/backend/torch/trainer.py:2)"
    profile.write_text(
        f"{fit};GAN.train_step (kgen/models/gan.py:3);gradient_step (kgen/backend/torch.py:4);"
        "_apply_adam (kgen/backend/torch.py:5) 3\n"
        f"{fit};GAN.train_step (kgen/models/gan.py:3);Layer.__call__ (keras/src/layers/layer.py:6) 1\n"
        f"{fit};CallbackList.on_train_batch_end (keras/src/callbacks/callback_list.py:7) 1\n"
        "import_module (importlib:8) 5\n"  # outside the timed epochs: left out
    )
    shares, total = profile_step.summarize(str(profile))
    assert total == 5
    assert shares["optimizer apply"] == pytest.approx(0.6)
    assert shares["forward (layers, losses)"] == pytest.approx(0.2)
    assert shares["callbacks (logs to floats, NaN check)"] == pytest.approx(0.2)


@pytest.mark.slow
def test_other_backends_and_evaluate_run(tmp_path):
    row = speed.in_subprocess(speed.kgen_call("vae", 64, reps=1, warmup=0), backend="jax")
    assert row["backend"] == "jax" and row["wall"] > 0
    timing = speed.time_evaluate(100, str(tmp_path))
    assert timing["command_s"] > 0


def test_top_half_bound_cuts_after_the_given_patches_and_trains(tmp_path, capsys):
    import top_half_bound

    from kgen.data import load_dataset

    images = np.random.default_rng(0).uniform(0.1, 1.0, size=(3, 28, 28, 1)).astype("float32")
    cut = top_half_bound.given_only(images, 8)
    np.testing.assert_array_equal(cut[:, :14], images[:, :14])  # patches 1-8: the top 14 rows, kept
    assert not cut[:, 14:].any()
    np.testing.assert_array_equal(top_half_bound.given_only(images, 1)[:, :7, :7], images[:, :7, :7])
    assert not top_half_bound.given_only(images, 1)[:, :, 7:].any()

    train, test = load_dataset("mnist", "train", offline=True), load_dataset("mnist", "test", offline=True)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=train.images[:1024], y_train=train.labels[:1024], x_test=test.images[:200], y_test=test.labels[:200])
    top_half_bound.main(["--data-dir", str(path), "--given", "4", "16", "--epochs", "3", "--batch-size", "64"])
    out = capsys.readouterr().out
    results = __import__("json").loads(out[out.index("{"):])
    assert results["test_digits"] == 200 and set(results["given"]) == {"4", "16"}
    # the whole digit (16 patches) is read far better than its top quarter (4): 0.74 against 0.27-0.35 here
    assert results["given"]["16"]["test_accuracy"] > results["given"]["4"]["test_accuracy"] + 0.2


def test_train_likelihood_sets_the_lstm_width_and_dropout(tmp_path, capsys):
    import json

    import train_likelihood

    from kgen.data import load_dataset

    train = load_dataset("mnist", "train", offline=True)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=train.images[:256], y_train=train.labels[:256], x_test=train.images[:8], y_test=train.labels[:8])
    out = tmp_path / "runs"
    train_likelihood.main(["--data-dir", str(path), "--model", "lstm", "--units", "8", "--dropout", "0.25", "--epochs", "1", "--out", str(out)])
    (run,) = os.listdir(out / "lstm")
    assert run.endswith("likelihood-lstm-made-8-dropout0.25")  # width and dropout in the run's name
    config = json.loads((out / "lstm" / run / "config.json").read_text())
    assert config["model_config"]["units"] == 8 and config["model_config"]["patch_head"] == "made"
    assert config["model_config"]["dropout"] == 0.25
    assert config["model_config"]["binarize"] is True


def test_lstm_completion_reads_the_averaged_completions_once_per_seed(tmp_path, capsys):
    import json

    import lstm_completion

    from kgen import checkpoint
    from kgen.data import load_dataset, to_float
    from kgen.evaluation.evaluator import load_evaluator
    from kgen.specs import TrainConfig
    from kgen.training import train

    digits = load_dataset("mnist", "train", offline=True)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=digits.images[:128], y_train=digits.labels[:128], x_test=digits.images[:24], y_test=digits.labels[:24])
    options = {"num_layers": 1, "units": 8, "patch_head": "made"}
    config = TrainConfig(model="lstm", epochs=1, batch_size=64, data_dir=str(path), offline=True, out=str(tmp_path / "runs"), model_options=options)
    run = str(train(config, verbose=0))
    lstm_completion.main([run, "--num", "24", "--givens", "8", "--timing-num", "4", "--seeds", "0", "1", "--draws", "2"])
    assert "seed 0:" in capsys.readouterr().out

    results = json.loads(open(os.path.join(run, "lstm_completion.json")).read())
    assert "timing" not in results  # the MADE head's completion is not one re-run per patch: no comparison
    agreement = results["agreement"]
    assert agreement["draws"] == 2 and set(agreement["seeds"]) == {"0", "1"}
    # each reading is the evaluator's on the model's own averaged completions with that seed
    completed = checkpoint.load_model(run).complete(to_float(digits.images[:24]), given=8, sampling="average", candidates=2, seed=1)
    expected = np.mean(load_evaluator("mnist").predict(completed) == digits.labels[:24])
    assert agreement["seeds"]["1"] == pytest.approx(expected)


def test_gpu_check_runs_its_cpu_half_and_the_fast_paths_equal_keras(tmp_path, capsys, monkeypatch):
    import json

    import gpu_check

    from kgen import specs

    out = tmp_path / "gpu_check.json"
    monkeypatch.setenv(gpu_check.CPU_ENV, "1")  # the variable, as a CUDA-less CI would set it; --cpu does the same
    results = gpu_check.main(["--json", str(out), "--steps", "2", "--warmup-steps", "1", "--images", "8"])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text())["device"] == results["device"] == "cpu"
    assert set(results) >= {"machine", "settings", "torch_flags", "fast_paths", "training", "speed", "passed", "seconds"}
    # every fast path kgen takes on the CPU, called and compared with Keras's own call: all within rounding
    paths = {r["path"] for r in results["fast_paths"]}
    assert paths == gpu_check.PUBLIC | {"_conv", "_fused_lstm", "_apply_adam"}
    assert all(r["taken"] and r["passed"] and r["worst"] <= 1e-4 for r in results["fast_paths"]), [
        (r["check"], r["worst"], r["note"]) for r in results["fast_paths"] if not (r["taken"] and r["passed"])]
    assert results["fast_paths_passed"] and results["direct_not_taken_passed"]
    # every model of kgen train trained its steps, the losses finite
    assert [r["model"] for r in results["training"]] == list(specs.SPECS)
    for r in results["training"]:
        assert r["steps"] == 2 and r["batch_size"] == 8 and r["finite"] and r["steps_per_s"] > 0, r
        assert r["peak_mib"] is None  # GPU memory: none on the CPU
    # kgen against the plain PyTorch loop, each model that has one
    assert [r["model"] for r in results["speed"]] == list(speed.MODELS)
    assert all(r["device"] == "cpu" and r["ratio_wall"] > 0 and r["images"] == 8 for r in results["speed"])
    assert results["passed"]
    assert "| forward: conv generator (batch norm), training=True | `forward` | yes |" in printed
    assert "| flow | 8 | 2 |" in printed and "| gan-conv | 8 |" in printed
    assert printed.rstrip().splitlines()[-1].startswith("passed in ")


def test_gpu_check_without_cuda_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    import gpu_check
    import torch

    monkeypatch.delenv(gpu_check.CPU_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--json", str(tmp_path / "out.json")]) is None
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and printed.startswith("No CUDA device") and "--cpu" in printed
    assert not (tmp_path / "out.json").exists()


def test_grid_time_draws_a_grid_of_16_after_a_warm_up():
    import grid_time

    from kgen.models import FlowMatching

    calls = []

    class Counted(FlowMatching):
        def generate(self, n, **options):
            calls.append((n, sorted(options)))
            return super().generate(n, **options)

    model = Counted(width=8, steps=2)
    assert grid_time.draw_time(model, steps=1, repeats=2) > 0
    assert calls == [(16, ["labels", "seed", "steps"])] * 3  # one warm-up draw, then the repeats
    assert grid_time.fit_time(model, steps=2, batch_size=8) > 0
    from kgen.models import ConditionalGAN

    assert grid_time.fit_time(ConditionalGAN(arch="mlp", latent_dim=8), steps=2, batch_size=8) > 0  # two optimizers


def test_precision_times_each_model_under_both_policies(tmp_path):
    import json

    import precision

    path = tmp_path / "precision.json"
    precision.main(["--models", "ae", "--steps", "1", "--reps", "1", "--json", str(path)])
    result = json.loads(path.read_text())["models"]["ae"]
    assert result["policies"] == {"float32": "float32", "bfloat16": "mixed_bfloat16"}
    assert all(t > 0 for t in result["seconds_per_step"].values()) and result["bf16_speedup"] > 0
    assert isinstance(precision.cpu_bf16(), list)
