"""The GAN techniques of `docs/gan.md`, each turned off (or on) alone, same seed and steps.

Trains one run per row with `kgen train` (the defaults, then one option
changed), measures each with `kgen evaluate RUN --num-samples N`, and prints a
markdown table (also written to `benchmarks/results/gan_ablation.md`). Every
row has the same seed, data, batch size and number of steps; only the named
option differs from the first row.

Example (the bundled 5,000 digits, one torch thread per run, two runs at a
time):

    OMP_NUM_THREADS=1 python benchmarks/gan_ablation.py --model cgan --offline --epochs 3 --num-samples 5000 --jobs 3

`--data-dir DIR` trains on another set (the full MNIST) instead.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

ROWS = {  # name: options added to the defaults
    "defaults": [],
    "no EMA": ["--ema", "0"],
    "spectral norm on": ["--spectral-norm"],
    "DiffAugment on": ["--diffaugment", "translation,cutout"],
    "BCE instead of hinge": ["--loss", "bce"],
    "projection added": ["--projection"],
    "projection instead of classifier": ["--projection", "--aux-weight", "0"],
    "no InfoGAN code": ["--codes", "0"],
}
CONDITIONAL_ONLY = ("projection added", "projection instead of classifier")
UNCONDITIONAL_ONLY = ("no InfoGAN code",)


def kgen(*args):
    result = subprocess.run([sys.executable, "-m", "kgen", *args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"kgen {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]  # the run directory is the last line


def row(name, options, args):
    data = ["--data-dir", args.data_dir] if args.data_dir else ["--offline"]
    slug = name.replace(" ", "-")
    start = time.time()
    run = kgen(
        "train", args.model, *data, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--seed", str(args.seed), "--out", args.out, "--name", f"ablation-{slug}", "--backend", args.backend, *options,
    )
    wall = time.time() - start
    kgen("evaluate", run, "--num-samples", str(args.num_samples), "--no-figures", "--backend", args.backend)
    with open(os.path.join(run, "metrics.json")) as f:
        m = json.load(f)
    return {"name": name, "options": " ".join(options) or "(none)", "run": run, "wall": wall, **m}


def table(rows):
    head = "| row | options | wall | FID ↓ | precision | recall | smallest class | label read as asked | worst class |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        s, c = r["samples"], r.get("conditional")
        label = f"{100 * c['accuracy']:.1f} %" if c else "–"
        worst = f"{c['worst_class']}: {100 * c['worst_accuracy']:.1f} %" if c else "–"
        lines.append(
            f"| {r['name']} | `{r['options']}` | {r['wall'] / 60:.1f} min | {s['fid']:.1f} | {s['precision']:.3f} "
            f"| {s['recall']:.3f} | {s['min_class_share']:.3f} | {label} | {worst} |"
        )
    floor = rows[0]["floor"]
    lines.append(f"\nReal-data floor at N = {rows[0]['floor_num_samples']}: FID {floor['fid']:.2f}, "
                 f"precision {floor['precision']:.3f}, recall {floor['recall']:.3f}.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cgan", choices=("gan", "cgan"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offline", action="store_true", help="the bundled 5,000 digits (the default without --data-dir)")
    parser.add_argument("--data-dir")
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--out", default="artifacts/ablation")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--rows", nargs="*", choices=list(ROWS), help="only these rows (default: all)")
    args = parser.parse_args(argv)

    names = args.rows or list(ROWS)
    skip = CONDITIONAL_ONLY if args.model == "gan" else UNCONDITIONAL_ONLY
    names = [n for n in names if n not in skip]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda n: row(n, ROWS[n], args), names))
    text = table(rows)
    print(text)
    os.makedirs("benchmarks/results", exist_ok=True)
    with open("benchmarks/results/gan_ablation.md", "w") as f:
        f.write(f"`python benchmarks/gan_ablation.py {' '.join(argv or sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
