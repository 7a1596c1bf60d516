"""Test negative log-likelihood of a VAE or PatchLSTM run on binarized MNIST, in nats.

The protocol of Burda et al. (2016): the test digits binarized once (each
pixel drawn as Bernoulli of its grey level, seed 0: the same binarization
`kgen evaluate` uses), and for the VAE the k-sample importance-weighted
estimate of log p(x) with k = 5,000 posterior draws per digit. The
PatchLSTM's likelihood is exact (a product of its next-patch Bernoullis).
The mean is printed with its standard error over the digits, beside
published numbers.

`--images N` measures the first N test digits only (`--start S`: from the
S-th on, so that parts can run side by side and combine; each part's
per-digit NLL is saved as `likelihood-S-E.npy`), when k = 5,000 on all
10,000 costs more CPU time than there is (about 0.1 s per digit on one CPU
core for the MLP VAE); the result says how many were used.

Example:

    KERAS_BACKEND=jax python benchmarks/likelihood.py artifacts/vae/<run> --k 5000
    KERAS_BACKEND=jax python benchmarks/likelihood.py artifacts/lstm/<run>

writes `likelihood.json` into the run.
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kgen import checkpoint, data  # noqa: E402
from kgen.evaluation.evaluate import BINARIZE_SEED, binarized, lstm_nll_per_image  # noqa: E402
from kgen.data import to_float  # noqa: E402

PUBLISHED = {  # nats on binarized MNIST, as reported
    "VAE, one stochastic layer, k=1 training (Burda et al. 2016)": 86.76,
    "IWAE, one stochastic layer, k=50 (Burda et al. 2016)": 84.78,
    "NADE (Uria et al. 2014)": 88.86,
    "PixelCNN (van den Oord et al. 2016)": 81.30,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--k", type=int, default=5000, help="VAE: importance samples per digit")
    parser.add_argument("--images", type=int, default=10000, help="the first N test digits (from --start)")
    parser.add_argument("--start", type=int, default=0, help="skip the first S test digits (to measure in parts)")
    parser.add_argument("--batch-size", type=int, default=50, help="VAE: digits per batch")
    args = parser.parse_args(argv)

    model = checkpoint.load_model(args.run)
    x = binarized(to_float(data.load_bundled("test")[0]))[args.start : args.start + args.images]
    start = time.time()
    if hasattr(model, "log_likelihood"):
        nll = np.concatenate(
            [-model.log_likelihood(x[i : i + args.batch_size], k=args.k) for i in range(0, len(x), args.batch_size)]
        )
        method = f"importance sampling, k={args.k}"
    else:
        nll = lstm_nll_per_image(model, x)
        method = "exact (autoregressive)"
    out = {
        "run": os.fspath(args.run),
        "model_class": type(model).__name__,
        "test_nll": float(nll.mean()),
        "standard_error": float(nll.std(ddof=1) / np.sqrt(len(nll))),
        "method": method,
        "test_images": len(x),
        "test_set": f"official MNIST test digits {args.start} to {args.start + len(x) - 1}, binarized once (seed {BINARIZE_SEED})",
        "backend": keras.config.backend(),
        "seconds": round(time.time() - start, 1),
    }
    part = "" if (args.start, len(x)) == (0, 10000) else f"-{args.start}-{args.start + len(x)}"
    with open(os.path.join(args.run, f"likelihood{part}.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    np.save(os.path.join(args.run, f"likelihood{part}.npy"), nll)  # per digit: parts combine exactly
    print(f"{out['model_class']}: test NLL {out['test_nll']:.2f} ± {out['standard_error']:.2f} nats "
          f"({method}, {len(x)} digits, {out['seconds']:.0f} s)")
    for name, value in PUBLISHED.items():
        print(f"  published: {name}: {value:.2f}")


if __name__ == "__main__":
    main()
