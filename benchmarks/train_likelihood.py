"""Trains the VAE (or the IWAE, or the PatchLSTM) for the likelihood table, with a decaying learning rate.

`kgen train` keeps Adam's step size constant. The runs of the
likelihood table in docs/likelihood.md also decay it: constant for the
first half of the epochs, then a cosine down to `--final-lr` at the last
epoch, through Keras's own `keras.callbacks.LearningRateScheduler` passed to
`kgen.training.train` (the run, its checkpoint and `kgen evaluate` are the
usual ones). The protocol: the 60,000 official training digits, dynamically
binarized; the VAE with latent 50, MLP 512-256, batch 100; the PatchLSTM
(`--model lstm`) with 2 layers of 256 units (`--units`), no dropout
(`--dropout`) and the within-patch MADE head (`patch_head="made"`), batch
128. `--resume RUN` continues a run (one of this script's, or a `kgen
train` run with the same options and learning rate, whose first half ran
at that constant rate) up to `--epochs` on the same schedule.

Example:

    OMP_NUM_THREADS=1 KERAS_BACKEND=jax python benchmarks/train_likelihood.py \\
        --data-dir ~/data/mnist --epochs 150
    OMP_NUM_THREADS=1 KERAS_BACKEND=jax python benchmarks/train_likelihood.py \\
        --data-dir ~/data/mnist --epochs 120 --iwae-k 10
    OMP_NUM_THREADS=1 KERAS_BACKEND=jax python benchmarks/train_likelihood.py \\
        --data-dir ~/data/mnist --model lstm --epochs 16 --lr 2e-3
    OMP_NUM_THREADS=2 KERAS_BACKEND=jax python benchmarks/train_likelihood.py \\
        --data-dir ~/data/mnist --model lstm --epochs 32 --lr 2e-3 --units 512 --dropout 0.2

then measure with `benchmarks/likelihood.py RUN --k 5000`.
"""

import argparse
import math
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from kgen.specs import TrainConfig  # noqa: E402
from kgen.training import resume, train  # noqa: E402


def schedule(epochs, lr, final_lr):
    """Adam's step size for epoch `e` (0-based): `lr` for the first half, then a cosine to `final_lr`."""
    half = epochs // 2

    def rate(epoch, _current=None):
        if epoch < half:
            return lr
        t = (epoch - half) / max(1, epochs - 1 - half)  # 0 .. 1 over the second half
        return final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * t))

    return rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="the full MNIST's IDX files (not with --resume)")
    parser.add_argument("--model", choices=("vae", "lstm"), default="vae")
    parser.add_argument("--resume", help="a run to continue up to --epochs on the same schedule")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--iwae-k", type=int, default=1, help="importance samples in the training bound (1: VAE)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--final-lr", type=float, default=1e-4)
    parser.add_argument("--out", default="artifacts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--units", type=int, default=256, help="units of each of the PatchLSTM's 2 LSTM layers")
    parser.add_argument("--dropout", type=float, default=0.0, help="the PatchLSTM's dropout after each LSTM layer")
    args = parser.parse_args(argv)

    rate = schedule(args.epochs, args.lr, args.final_lr)
    callbacks = [keras.callbacks.LearningRateScheduler(rate)]
    if args.resume:
        print(resume(args.resume, epochs=args.epochs, verbose=2, callbacks=callbacks))
        return
    if not args.data_dir:
        parser.error("--data-dir is required (the full MNIST's IDX files)")
    if args.model == "vae":
        options = {"latent_dim": 50, "arch": "mlp", "binarize": True, "iwae_k": args.iwae_k}
        batch_size, name = 100, f"likelihood-k{args.iwae_k}"
    else:
        options = {"num_layers": 2, "units": args.units, "binarize": True, "patch_head": "made", "dropout": args.dropout}
        batch_size, name = 128, "likelihood-lstm-made" + ("" if args.units == 256 else f"-{args.units}")
        name += f"-dropout{args.dropout:g}" if args.dropout else ""
    config = TrainConfig(
        model=args.model,
        epochs=args.epochs,
        batch_size=batch_size,
        learning_rate=args.lr,
        data_dir=args.data_dir,
        offline=True,
        seed=args.seed,
        out=args.out,
        name=name,
        model_options=options,
    )
    run = train(config, verbose=2, callbacks=callbacks)
    print(run)


if __name__ == "__main__":
    main()
