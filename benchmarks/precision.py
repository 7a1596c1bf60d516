"""Training steps per second of each model under float32 and under bfloat16 (`--precision bfloat16`).

Each model is built as `kgen train MODEL` builds it (its defaults,
`kgen.training.build_model`), once per precision, and timed on the same
batches of real digits: `--reps` timed `fit`s of `--steps` steps each,
float32 and bfloat16 alternating so that a busy machine slows both alike,
after one untimed `fit` that compiles or warms up. Prints, per model, the
median seconds per step of each and their ratio (above 1: bfloat16 is
faster), and whether the CPU has native bfloat16 arithmetic (the
`avx512_bf16` or `amx_bf16` flags of /proc/cpuinfo, on Linux).

Usage:

    OMP_NUM_THREADS=2 python benchmarks/precision.py --models cgan vae flow --steps 20 --reps 3
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kgen import capabilities as caps  # noqa: E402
from kgen import files  # noqa: E402
from kgen import specs  # noqa: E402
from kgen.backend.common import hide_tensorflow  # noqa: E402
from kgen.data import load_bundled, to_float  # noqa: E402
from kgen.training import build_model  # noqa: E402

hide_tensorflow()  # as the `kgen` command: no TensorFlow import on torch and jax

MODELS = ("ae", "vae", "gan", "cgan", "scgan", "lstm", "flow")


def cpu_bf16():
    """The CPU's bfloat16 flags (`avx512_bf16`, `amx_bf16`), or [] where none or unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(set(flags) & {"avx512_bf16", "amx_bf16"})


def build(name, precision, batch_size):
    """The model `kgen train NAME --precision PRECISION` trains, and its training data, batch-sized."""
    keras.config.set_dtype_policy(specs.PRECISIONS[precision])
    try:
        model = build_model(specs.TrainConfig(model=name, batch_size=batch_size, precision=precision, seed=0))
    finally:
        keras.config.set_dtype_policy("float32")
    return model


def seconds_per_step(model, x, y, batch_size, steps):
    args = (x,) if y is None else (x, y)
    n = batch_size * steps
    start = time.perf_counter()
    model.fit(*(a[:n] for a in args), batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=20, help="steps of each timed fit")
    parser.add_argument("--reps", type=int, default=3, help="timed fits of each precision")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    images, labels = load_bundled("train")
    x = to_float(images)
    results = {"backend": keras.config.backend(), "cpu_bf16": cpu_bf16(), "models": {}}
    print(f"backend {results['backend']}; CPU bfloat16 flags: {', '.join(results['cpu_bf16']) or 'none'}")
    for name in args.models:
        batch_size = specs.get(name).batch_size  # what `kgen train NAME` uses
        models = {p: build(name, p, batch_size) for p in ("float32", "bfloat16")}
        y = labels if caps.has(models["float32"], caps.CONDITIONAL) else None  # a conditional model trains on labels
        for model in models.values():  # as `kgen train` does once: the scgan's k-means clusters
            model.prepare(*((x,) if y is None else (x, y)))
        for p, model in models.items():  # compiles (jax, tensorflow) or warms up (torch)
            seconds_per_step(model, x, y, batch_size, 2)
        times = {p: [] for p in models}
        for _ in range(args.reps):
            for p, model in models.items():
                times[p].append(seconds_per_step(model, x, y, batch_size, args.steps))
        median = {p: statistics.median(t) for p, t in times.items()}
        ratio = median["float32"] / median["bfloat16"]
        results["models"][name] = {
            "batch_size": batch_size, "seconds_per_step": median, "bf16_speedup": ratio,
            "policies": {p: model.dtype_policy.name for p, model in models.items()},
        }
        print(f"{name:6s} batch {batch_size:4d}  float32 {median['float32'] * 1e3:8.1f} ms/step  "
              f"bfloat16 {median['bfloat16'] * 1e3:8.1f} ms/step  bfloat16 speed-up {ratio:.2f}x", flush=True)
    if args.json:
        files.write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
