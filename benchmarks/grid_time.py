"""Seconds to draw a grid of 16, as `kgen demo` answers "Ask for a digit", per preset or run.

Each model draws 16 images (the digits 0 to 9 in turn for a conditional
model, seed 0) once to warm up, then `--repeats` times; the median is
printed. On torch the same draws are also timed with kgen's fast paths off
(Keras's own layer calls throughout), the reference of the ratio.
`--fit-steps N` also times N training steps of a fresh model of the same
configuration (batch 128 of the bundled digits, Adam; one warm-up step),
the same way.

    python benchmarks/grid_time.py cgan-mnist flow-mnist
    python benchmarks/grid_time.py flow-mnist --steps 5 --fit-steps 20
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


def fit_time(model, steps, batch_size=128):
    """Seconds per training step of a fresh, compiled model with `model`'s configuration."""
    import keras

    from kgen import capabilities as caps
    from kgen.data import load_bundled

    fresh = type(model).from_config(model.get_config())
    if caps.has(fresh, caps.ADVERSARIAL):  # one optimizer per player
        fresh.compile(d_optimizer=keras.optimizers.Adam(2e-4), g_optimizer=keras.optimizers.Adam(2e-4))
    else:
        fresh.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = load_bundled("train")
    x = (x[: batch_size * (steps + 1)].astype("float32") / 255.0)[..., None]  # (n, 28, 28, 1) in [0, 1]
    y = y[: batch_size * (steps + 1)]
    fresh.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)  # the warm-up step
    start = time.perf_counter()
    fresh.fit(x[batch_size:], y[batch_size:], batch_size=batch_size, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="presets (kgen presets) or run directories")
    parser.add_argument("--steps", type=int, help="a flow's sampler steps (default: its own)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fit-steps", type=int, default=0, help="also time this many training steps (0: none)")
    args = parser.parse_args()

    import keras

    from kgen import checkpoint, presets

    rows = []
    for run in args.runs:
        model = checkpoint.load_model(presets.find(run) or run)  # a preset name or a run directory
        steps = args.steps if "steps" in model.get_config() else None
        row = {"model": run, "grid (s)": draw_time(model, steps, args.repeats)}
        if args.fit_steps:
            row["step (s)"] = fit_time(model, args.fit_steps)
        if keras.config.backend() == "torch":
            from kgen.backend import torch as torch_backend

            fast, torch_backend.FAST_PATHS = torch_backend.FAST_PATHS, False
            try:
                row["grid, Keras's calls (s)"] = draw_time(model, steps, args.repeats)
                if args.fit_steps:
                    row["step, Keras's calls (s)"] = fit_time(model, args.fit_steps)
            finally:
                torch_backend.FAST_PATHS = fast
            row["grid speed-up"] = row["grid, Keras's calls (s)"] / row["grid (s)"]
            if args.fit_steps:
                row["step speed-up"] = row["step, Keras's calls (s)"] / row["step (s)"]
        rows.append(row)
    print(f"backend {keras.config.backend()}, grid of 16, median of {args.repeats}")
    for row in rows:
        print("  ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
