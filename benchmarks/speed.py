"""Training speed of kgen beside a hand-written PyTorch loop of the same networks.

For each model, one process builds the kgen model (`kgen.training.build_model`,
as `kgen train` does) and its plain-PyTorch twin (`benchmarks/reference.py`:
the same networks with the Keras model's initial weights copied in, the same
batch size, the data a tensor on the device), warms both up, then times them
in turn, alternating, `--reps` times each. One repetition is one pass over
`--images` training digits:

- kgen: `model.fit` on the torch backend over `kgen.data.EpochBatches`, with
  the callbacks `kgen train` runs at every step (the epoch follower and the
  `TrainingGuard` NaN check). Left out: the per-epoch file writers (sample
  grid, history, checkpoint) and the progress bar (`verbose=0`). Timed from
  the epoch's start to its end, inside `fit`.
- reference: a loop over the same number of batches in a `torch.randperm`
  order, the losses kept as tensors (no `.item()` per step), timed to the end
  of its last step.

Every torch process keeps freed memory for reuse, as the `kgen` command does
(`kgen.backend.common.keep_freed_memory`), for kgen and the reference alike;
`--system-allocator` leaves glibc's malloc as it comes.

Both clocks are read: wall time, and the process's CPU time (`--threads 1`
makes that the steadier measure on a machine shared with other work). It
prints images per second (median over the repetitions) and the ratio
kgen / reference: the median of the per-pair ratios (each kgen repetition over
the reference repetition right after it, which cancels slow drifts in the
machine's load) with their spread, min–max and interquartile range, on the
CPU and, where CUDA is present, on the GPU. Five repetitions at least
(the default) make the median one that a single noisy minute cannot move. It
also times the same kgen models with `jit_compile=True` on torch (`--jit`),
on jax and tensorflow (`--backends`, each in a subprocess: a process has one
Keras backend), and `kgen evaluate RUN --num-samples N` (`--evaluate N`).

Example:

    python benchmarks/speed.py                                   # 4 models, CPU (and GPU)
    python benchmarks/speed.py --models gan-mlp vae --reps 7 --threads 1
    python benchmarks/speed.py --jit --backends jax tensorflow --evaluate 10000 --json speed.json
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kgen import callbacks, checkpoint, data, specs, training  # noqa: E402
from kgen.data.batches import EpochBatches  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (kgen model, model options); batch sizes are the models' `kgen train` defaults
MODELS = {
    # the classic pair exactly
    "gan-mlp": ("gan", {"arch": "mlp", "loss": "bce", "spectral_norm": False, "ema": 0.0, "diffaugment": "", "codes": 0}),
    # the DCGAN conv pair (7x7x256 -> 28x28x64 -> 1; 64 -> 128 channels), plain: BCE, no spectral
    # norm, EMA, DiffAugment or InfoGAN code, so that the hand-written PyTorch twin is the same algorithm
    "gan-conv": ("gan", {"arch": "conv", "loss": "bce", "spectral_norm": False, "ema": 0.0, "diffaugment": "", "codes": 0}),
    "vae": ("vae", {}),
    # the dense head: the hand-written twin has a Linear head (the default MADE head is not timed here)
    "lstm": ("lstm", {"patch_head": "dense", "binarize": False}),
}


class Clock:
    """Wall and CPU seconds since `start()`."""

    def start(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self):
        return time.perf_counter() - self._wall, time.process_time() - self._cpu


def train_images(n):
    """`n` bundled real training digits, float32 (n, 28, 28, 1) in [0, 1] (repeated past 5,000)."""
    images, _ = data.load_bundled("train")
    if n > len(images):
        images = np.concatenate([images] * -(-n // len(images)))
    return data.to_float(images[:n])


def make_config(name, batch_size=None, seed=0):
    if name not in MODELS:
        raise SystemExit(f"Unknown model; use one of {', '.join(MODELS)}. Received: {name!r}")
    model, options = MODELS[name]
    config = specs.TrainConfig(model=model, model_options=dict(options), batch_size=batch_size, seed=seed)
    config.validate()
    return config


class EpochTimer(keras.callbacks.Callback):
    """Records the (wall, CPU) seconds each epoch takes, from its start to its end."""

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.start()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.clock.stop())


class KgenRun:
    """kgen's training of one model, as `kgen train` runs it; `rep()` trains epochs."""

    def __init__(self, name, x, batch_size=None, jit=False, device=None, seed=0):
        self.device = device
        with self._device():
            keras.utils.set_random_seed(seed)
            self.config = make_config(name, batch_size, seed)
            self.model = training.build_model(self.config)
            if jit:
                self.model.jit_compile = True
            self.batches = EpochBatches((x,), self.config.batch_size, seed)
        self.folder = tempfile.mkdtemp(prefix="kgen-speed-")
        self.epoch = 0
        self.images = len(x)

    def _device(self):
        return keras.device(self.device) if self.device else _nothing()

    def rep(self, epochs=1):
        """Trains `epochs` epochs in one `fit`; returns the (wall, CPU) seconds of each."""
        timer = EpochTimer()
        guard = callbacks.TrainingGuard(checkpoint.Checkpoint(self.folder), self.folder)
        with self._device():
            self.model.fit(
                self.batches,
                epochs=self.epoch + epochs,
                initial_epoch=self.epoch,
                shuffle=False,
                callbacks=[self.batches.follow_epochs(), guard, timer],
                verbose=0,
            )
        self.epoch += epochs
        return timer.seconds


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ReferenceRun:
    """The plain-PyTorch loop of the same model, same weights; `rep()` trains epochs."""

    def __init__(self, kgen_run, x, device="cpu"):
        import torch

        import reference

        self.torch = torch
        self.device = device
        self.step = reference.MAKERS[kgen_run.config.model](kgen_run.model, device)
        self.x = torch.as_tensor(x, device=device)  # (n, 28, 28, 1), on the device
        self.batch_size = kgen_run.config.batch_size
        self.images = len(x)

    def rep(self, epochs=1):
        """Trains `epochs` epochs; returns the (wall, CPU) seconds of each."""
        clock, seconds = Clock(), []
        for _ in range(epochs):
            clock.start()
            order = self.torch.randperm(len(self.x), device=self.device)
            for i in range(0, len(self.x), self.batch_size):
                out = self.step(self.x[order[i : i + self.batch_size]])
            float(out[0])  # wait for the last step (a sync on a GPU)
            seconds.append(clock.stop())
        return seconds


def _median_rate(images, seconds, which):
    return images / statistics.median(s[which] for s in seconds)


def compare(name, x, device="cpu", reps=5, warmup=1, batch_size=None, log=print):
    """Times kgen and the reference on `device`, alternating; returns a result row.

    Example:

    >>> row = compare("vae", train_images(5000), "cpu", reps=5)
    >>> row["ratio_wall"], row["ratio_cpu"]
    """
    kgen_run = KgenRun(name, x, batch_size, device=device)
    ref = ReferenceRun(kgen_run, x, device)
    kgen_s, ref_s = [], []
    for i in range(warmup + reps):
        (k,), (r,) = kgen_run.rep(), ref.rep()
        if i >= warmup:
            kgen_s.append(k)
            ref_s.append(r)
            log(
                f"  {name} {device} rep {i - warmup + 1}/{reps}: kgen {len(x) / k[0]:8.1f} img/s, "
                f"reference {len(x) / r[0]:8.1f} img/s (wall)"
            )
    row = {"model": name, "device": device, "batch_size": kgen_run.config.batch_size, "images": len(x), "reps": reps}
    for which, clock in enumerate(("wall", "cpu")):
        row[f"kgen_{clock}"] = _median_rate(len(x), kgen_s, which)
        row[f"reference_{clock}"] = _median_rate(len(x), ref_s, which)
        ratios = [r[which] / k[which] for k, r in zip(kgen_s, ref_s)]  # one per pair, in the order run
        row[f"ratios_{clock}"] = ratios
        row[f"ratio_{clock}"] = statistics.median(ratios)
        row[f"ratio_{clock}_min"], row[f"ratio_{clock}_max"] = min(ratios), max(ratios)
        row[f"ratio_{clock}_iqr"] = _quartiles(ratios)
    return row


def _quartiles(values):
    """First and third quartiles of `values` (inclusive method: within min..max; both the value if one)."""
    if len(values) < 2:
        return [values[0], values[0]]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [q1, q3]


def time_kgen(name, x, reps=5, warmup=1, batch_size=None, jit=False, device=None):
    """Images per second of kgen alone (any backend); returns a result row."""
    run = KgenRun(name, x, batch_size, jit=jit, device=device)
    clock = Clock()
    clock.start()
    run.rep(warmup)
    first = clock.stop()[0]
    seconds = run.rep(reps)
    return {
        "model": name,
        "backend": keras.config.backend() + (" jit_compile" if jit else ""),
        "batch_size": run.config.batch_size,
        "warmup_s": first,
        "wall": _median_rate(len(x), seconds, 0),
        "cpu": _median_rate(len(x), seconds, 1),
    }


# `--system-allocator` turns it off: glibc's malloc as it comes, for the difference it makes
KEEP_FREED_MEMORY = True


def in_subprocess(call, backend="torch", threads=None, log=print):
    """Evaluates `call` (code using `speed` and `sys`) in a fresh process; returns its JSON result.

    Each model is timed in a process of its own, as `kgen train` runs it: what
    an earlier model left in the allocator or the caches does not count, and
    a process has one Keras backend.
    """
    code = "import json, sys; sys.path.insert(0, 'benchmarks'); import speed\n"
    if threads and backend == "torch":
        code += f"import torch; torch.set_num_threads({threads})\n"
    if backend == "torch" and KEEP_FREED_MEMORY:  # as the `kgen` command does on torch
        code += "from kgen.backend.common import keep_freed_memory; keep_freed_memory()\n"
    code += f"print('RESULT', json.dumps({call}), flush=True)\n"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if threads and backend != "torch":  # the matching knobs of jax (XLA) and tensorflow
        env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
        env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = str(threads)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    result = None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        else:
            log(line.rstrip("\n"))
    err = proc.stderr.read()
    if proc.wait() or result is None:
        lines = [l for l in err.strip().splitlines() if l.strip()]
        return {"error": lines[-1:] or [f"exit status {proc.returncode}"]}
    return result


def compare_call(name, images, device, reps, warmup):
    return f"speed.compare({name!r}, speed.train_images({images}), {device!r}, {reps}, {warmup})"


def kgen_call(name, images, reps, warmup, jit=False):
    return f"speed.time_kgen({name!r}, speed.train_images({images}), {reps}, {warmup}, jit={jit})"


def time_evaluate(num_samples, out):
    """Seconds of `kgen evaluate RUN --num-samples N` on a 1-epoch MLP GAN run (a subprocess)."""
    config = specs.TrainConfig(model="gan", epochs=1, limit=512, offline=True, out=out, seed=0, model_options={"arch": "mlp"})
    run = training.train(config, verbose=0)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "from kgen.cli.main import main; main()", "evaluate", run, "--num-samples", str(num_samples)],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, KERAS_BACKEND="torch"),
    )
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"kgen evaluate failed:\n{proc.stderr[-2000:]}")
    inside = json.load(open(os.path.join(run, "metrics.json"))).get("seconds")
    return {"num_samples": num_samples, "command_s": seconds, "evaluate_s": inside, "model": "gan (mlp)"}


def _load():
    """The machine's 1-minute load average (other processes included), or None."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine():
    """A short description of this machine and the software versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "keras": keras.__version__,
    }


def _loads(pair):
    return ", ".join("?" if v is None else f"{v:.1f}" for v in pair) if pair else ""


def table(results):
    """The results as Markdown tables."""
    lines = []
    if results["compare"]:
        lines += [
            "| model | batch | device | kgen img/s | reference img/s | kgen / reference (wall): median | min–max | IQR "
            "| kgen / reference (CPU time): median | min–max | reps | load (1 min) before, after |",
            "|---|---:|---|---:|---:|---:|---|---|---:|---|---:|---|",
        ]
    for r in results["compare"]:
        if "error" in r:
            lines.append(f"| {r['model']} | | {r['device']} | failed: {' '.join(r['error'])} | | | | | | | | |")
            continue
        if "kgen_wall" not in r:
            lines.append(
                f"| {r['model']} | {r.get('batch_size', '')} | {r['device']} | not measured | not measured | | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['device']} | {r['kgen_wall']:.0f} | "
            f"{r['reference_wall']:.0f} | {r['ratio_wall']:.2f} | {r['ratio_wall_min']:.2f}–{r['ratio_wall_max']:.2f} | "
            f"{r['ratio_wall_iqr'][0]:.2f}–{r['ratio_wall_iqr'][1]:.2f} | {r['ratio_cpu']:.2f} | "
            f"{r['ratio_cpu_min']:.2f}–{r['ratio_cpu_max']:.2f} | {r['reps']} | {_loads(r.get('load_1min'))} |"
        )
    if results.get("backends"):
        if lines:
            lines.append("")
        lines += ["| model | backend | batch | img/s (wall) | img/s (CPU time) | first epoch s |", "|---|---|---:|---:|---:|---:|"]
        for r in results["backends"]:
            if "error" in r:
                lines.append(f"| {r['model']} | {r['backend']} | | failed: {' '.join(r['error'])} | | |")
                continue
            lines.append(
                f"| {r['model']} | {r['backend']} | {r['batch_size']} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['warmup_s']:.1f} |"
            )
    if results.get("evaluate"):
        e = results["evaluate"]
        lines += [
            "",
            f"`kgen evaluate RUN --num-samples {e['num_samples']}` ({e['model']} run): "
            f"{e['command_s']:.1f} s for the command ({e['evaluate_s']:.1f} s inside `evaluate`).",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"of {', '.join(MODELS)}")
    parser.add_argument("--images", type=int, default=5000, help="training digits per repetition (one epoch)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of each, alternating (5 or more for a median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--kgen-only", action="store_true", help="time kgen alone on torch (no reference loop in the process)")
    parser.add_argument("--jit", action="store_true", help="also time kgen with jit_compile=True (torch.compile)")
    parser.add_argument("--backends", nargs="*", default=[], choices=["jax", "tensorflow"], help="also time kgen on these")
    parser.add_argument("--evaluate", type=int, metavar="N", help="also time `kgen evaluate RUN --num-samples N`")
    parser.add_argument("--gpu-epoch", action="store_true", help="on a GPU, also time an MLP GAN epoch of 60,000 images")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--system-allocator", action="store_true",
                        help="leave glibc's malloc settings as they come (the `kgen` command keeps freed memory)")
    args = parser.parse_args(argv)
    global KEEP_FREED_MEMORY
    KEEP_FREED_MEMORY = not args.system_allocator

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.models:
        make_config(name)  # unknown names fail before any timing
    results = {"machine": machine(), "command": " ".join(["python", "benchmarks/speed.py"] + (argv or sys.argv[1:])),
               "compare": [], "backends": []}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if not args.kgen_only:
        for device in devices:
            for name in args.models:
                load = _load()
                row = in_subprocess(compare_call(name, args.images, device, args.reps, args.warmup), threads=args.threads)
                results["compare"].append({"model": name, "device": device, **row, "load_1min": [load, _load()]})
        if "cuda" not in devices:
            results["compare"] += [{"model": name, "device": "cuda"} for name in args.models]
    runs = [("torch", False)] * args.kgen_only + [("torch", True)] * args.jit + [(b, False) for b in args.backends]
    for backend, jit in runs:
        for name in args.models:
            row = in_subprocess(kgen_call(name, args.images, args.reps, args.warmup, jit), backend, args.threads)
            results["backends"].append({"model": name, "backend": backend + (" jit_compile" if jit else ""), **row})
    if args.gpu_epoch and "cuda" in devices:
        row = in_subprocess(f"speed.time_kgen('gan-mlp', speed.train_images(60000), 3, batch_size=128, device='cuda')")
        results["gpu_epoch_60k_s"] = 60000 / row["wall"]
    if args.evaluate:
        results["evaluate"] = time_evaluate(args.evaluate, tempfile.mkdtemp(prefix="kgen-speed-eval-"))
    results["machine"]["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    m = results["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, GPU {m['gpu'] or 'none'}; "
          f"load average before {tuple(round(v, 1) for v in m['load_average'])}, "
          f"after {tuple(round(v, 1) for v in m['load_average_after'])}")
    print(table(results))
    if "gpu_epoch_60k_s" in results:
        print(f"\nMLP GAN, 60,000 images, batch 128, GPU: {results['gpu_epoch_60k_s']:.2f} s per epoch")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
