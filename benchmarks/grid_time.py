"""Seconds to draw a grid of 16, as `kgen demo` answers "Ask for a digit", per preset or run.

Each model draws 16 images (the digits 0 to 9 in turn for a conditional
model, seed 0) once to warm up, then `--repeats` times; the median is
printed. On torch the same draws are also timed with kgen's fast paths off
(Keras's own layer calls throughout), the reference of the ratio.

    python benchmarks/grid_time.py cgan-mnist flow-mnist
    python benchmarks/grid_time.py flow-mnist --steps 5
"""

import argparse
import statistics
import time

import numpy as np


def draw_time(model, steps, repeats):
    """Median seconds of `model.generate(16, ...)` after one warm-up draw."""
    from kgen import capabilities as caps

    options = {"seed": 0}
    if caps.has(model, caps.CONDITIONAL):
        options["labels"] = np.arange(16) % model.num_classes
    if steps is not None:
        options["steps"] = steps
    model.generate(16, **options)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(16, **options)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="presets (kgen presets) or run directories")
    parser.add_argument("--steps", type=int, help="a flow's sampler steps (default: its own)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import keras

    from kgen import checkpoint, presets

    rows = []
    for run in args.runs:
        model = checkpoint.load_model(presets.find(run) or run)  # a preset name or a run directory
        steps = args.steps if "steps" in model.get_config() else None
        row = {"model": run, "kgen (s)": draw_time(model, steps, args.repeats)}
        if keras.config.backend() == "torch":
            from kgen.backend import torch as torch_backend

            fast, torch_backend.FAST_PATHS = torch_backend.FAST_PATHS, False
            try:
                row["Keras's calls (s)"] = draw_time(model, steps, args.repeats)
            finally:
                torch_backend.FAST_PATHS = fast
            row["speed-up"] = row["Keras's calls (s)"] / row["kgen (s)"]
        rows.append(row)
    print(f"backend {keras.config.backend()}, grid of 16, median of {args.repeats}")
    for row in rows:
        print("  ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
