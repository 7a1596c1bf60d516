"""Completion error of a trained PatchLSTM run on the test digits, beside a trivial baseline.

For each K, the first K of the 16 patches of every test digit are given and
the model writes the rest (`PatchLSTM.complete`, pixel means fed back). The
error is the mean squared error over the pixels of the missing patches,
averaged over the digits. The baseline fills the missing patches with the
mean training image of the run's own training data.

It also times `complete` (LSTM states carried from step to step, one cell
call per layer and patch) against re-running the whole teacher-forced
sequence for every new patch, and checks that both give the same images;
with the dense head only (`patch_head="dense"`): the MADE head writes a
patch pixel by pixel, which one re-run per patch does not do.

Example:

    KERAS_BACKEND=torch python benchmarks/lstm_completion.py artifacts/lstm/<run>

prints a Markdown table and writes `lstm_completion.json` into the run.
`--seeds S ...` also reads the completions from the top half (K = 8), each
the average of `--draws` drawn completions (`complete(...,
sampling="average")`, what `kgen evaluate` reports), with the shipped
evaluator, once per seed of the draws: how much the agreement with the true
labels moves with the draws alone (docs/likelihood.md's seeds 0, 1, 2):

    KERAS_BACKEND=jax python benchmarks/lstm_completion.py artifacts/lstm/<run> \
        --givens 8 --seeds 0 1 2

The README's numbers and plot:

    KERAS_BACKEND=torch python benchmarks/lstm_completion.py artifacts/lstm/<run> \
        --givens 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 \
        --plot artifacts/showcase/lstm_completion_error.png
"""

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kgen import checkpoint, data, files, plots, runs  # noqa: E402
from kgen.evaluation.evaluator import load_evaluator  # noqa: E402
from kgen.data import to_float  # noqa: E402


def rerun_complete(model, images, given, batch_size=1000):
    """Completion by re-running the teacher-forced sequence for each new patch."""
    out = []
    for start in range(0, len(images), batch_size):
        patches = data.to_patches(np.array(images[start : start + batch_size], np.float32))
        for t in range(given, 16):
            probs = keras.ops.convert_to_numpy(model(data.from_patches(patches)))  # (b, 16, 49)
            patches[:, t] = probs[:, t]
        out.append(data.from_patches(patches))
    return np.concatenate(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory of `kgen train lstm`")
    parser.add_argument("--givens", type=int, nargs="+", default=[4, 8, 12], help="numbers of given patches K")
    parser.add_argument("--num", type=int, default=10000, help="test digits (the first N)")
    parser.add_argument("--timing-num", type=int, default=1000, help="test digits for the timing (dense head)")
    parser.add_argument("--plot", help="also plot the error against K into this PNG")
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="seeds of the drawn completions to read")
    parser.add_argument("--draws", type=int, default=16, help="drawn completions averaged into each (with --seeds)")
    args = parser.parse_args(argv)

    model = checkpoint.load_model(args.run)
    config = runs.load_run(args.run)["train"]
    train, test = (data.load_dataset(config["dataset"], s, config["data_dir"], config["offline"]) for s in ("train", "test"))
    mean_image = to_float(train.images[: config["limit"]]).mean(axis=0)  # (28, 28, 1)
    x, labels = to_float(test.images[: args.num]), np.asarray(test.labels[: args.num])

    results = {"run": args.run, "test_digits": len(x), "backend": keras.config.backend(), "given": {}}
    for k in args.givens:
        start = time.perf_counter()
        completed = model.complete(x, given=k)
        seconds = time.perf_counter() - start
        baseline = data.fill_missing(x, mean_image, k)
        results["given"][k] = {
            "lstm_mse": data.missing_patch_mse(completed, x, k),
            "mean_image_mse": data.missing_patch_mse(baseline, x, k),
            "complete_seconds": seconds,
        }

    # the evaluator's reading of the averaged completions, once per seed of the draws, K = 8
    if args.seeds:
        evaluator = load_evaluator(config["dataset"])
        results["agreement"] = {"given": 8, "draws": args.draws, "seeds": {}}
        for seed in args.seeds:
            completed = model.complete(x, given=8, sampling="average", candidates=args.draws, seed=seed)
            results["agreement"]["seeds"][seed] = float(np.mean(evaluator.predict(completed) == labels))

    # carried states against re-running the sequence, K = 8 (the dense head only: the MADE head reads a
    # patch's own earlier pixels, so one re-run per patch is not its completion)
    if model.patch_head == "dense":
        small = x[: args.timing_num]
        model.complete(small[:10], given=8)  # warm up
        start = time.perf_counter()
        stepped = model.complete(small, given=8)
        step_s = time.perf_counter() - start
        start = time.perf_counter()
        rerun = rerun_complete(model, small, 8)
        rerun_s = time.perf_counter() - start
        results["timing"] = {
            "digits": len(small),
            "given": 8,
            "carried_states_seconds": step_s,
            "rerun_seconds": rerun_s,
            "max_abs_difference": float(np.abs(stepped - rerun).max()),
        }
    files.write_json(os.path.join(args.run, "lstm_completion.json"), results)
    if args.plot:
        rows = results["given"].values()
        errors = {
            "PatchLSTM": [r["lstm_mse"] for r in rows],
            "mean training image": [r["mean_image_mse"] for r in rows],
        }
        plots.save_completion_error(args.plot, list(results["given"]), errors, title=f"completion error of {len(x)} test digits")

    print(f"MSE on the missing patches of {len(x)} test digits ({results['backend']})\n")
    print("| given patches K | PatchLSTM | mean training image |")
    print("|---|---|---|")
    for k, r in results["given"].items():
        print(f"| {k} | {r['lstm_mse']:.4f} | {r['mean_image_mse']:.4f} |")
    if args.seeds:
        a = results["agreement"]
        readings = ", ".join(f"seed {seed}: {value:.2%}" for seed, value in a["seeds"].items())
        print(f"\ncompleted from the top half, each the average of {a['draws']} draws, read as the true digit: {readings}")
    if "timing" in results:
        t = results["timing"]
        print(
            f"\ncomplete(given=8) of {t['digits']} digits: {t['carried_states_seconds']:.2f} s with carried "
            f"states, {t['rerun_seconds']:.2f} s re-running the sequence (max difference "
            f"{t['max_abs_difference']:.1e})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
