"""Where a kgen training step on the torch backend spends its time, from a py-spy profile.

Run kgen's training (the `benchmarks/speed.py` set-up: `model.fit` over
`EpochBatches` with the per-step callbacks of `kgen train`) under py-spy,
then sort the samples into the parts of a step:

    py-spy record --format raw --rate 200 -o profile.txt -- \
        python benchmarks/profile_step.py run gan-mlp --epochs 3
    python benchmarks/profile_step.py summarize profile.txt

(`run --reference` profiles the plain-PyTorch loop of `benchmarks/reference.py`
the same way.) `networks MODEL` times each network's forward and backward
pass alone, Keras layers against the same torch modules, in CPU time;
`jit-check MODEL` trains a short epoch eager and with `jit_compile=True` from
the same weights and seed and prints both epochs' logs.

Each sample goes to the part named by the innermost frame of its stack that
matches one (`PARTS`), else to "other" (the rest of `fit`'s loop and the
model's `train_step`). A part's share is its samples over all the samples
taken in the timed `fit` (the warm-up epoch before it is left out).
"""

import argparse
import collections
import os
import sys

# part: frames (substrings of "function (file:line)") that put a sample there
PARTS = {
    "callbacks (logs to floats, NaN check)": ["on_train_batch_end", "on_train_batch_begin", "pythonify_logs"],
    "data (batch gather, host to device)": [
        "__getitem__ (kgen/data/batches.py",
        "py_dataset_adapter.py",
        "data_adapter_utils.py",
        "torch/utils/data/",
        "epoch_iterator.py",
    ],
    "metric updates and results": [
        "update_state (keras/src/metrics", "result (keras/src/metrics", "update_metrics (kgen/backend",
    ],
    "optimizer apply": ["apply (keras/src/optimizers", "_apply_adam (kgen/backend", "torch/optim/"],
    "backward": ["backward (torch/_tensor.py", "torch/autograd/"],
    "forward (layers, losses)": [
        "Layer.__call__ (", "forward (kgen/backend", "loss_fn (", "sample_noise (", "Operation.__call__ (", "Module._call_impl (", "<locals>.step (",
    ],
}
OTHER = "other (fit loop, train_step glue)"


def summarize(path):
    """Shares of the parts of a step in a py-spy raw profile; returns {part: share}."""
    counts = collections.Counter()
    for line in open(path):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if "run_epochs (" not in stack or ("fit (" not in stack and "ReferenceRun.rep (" not in stack):
            continue
        part = OTHER
        for frame in reversed(stack.split(";")):  # the innermost frame that names a part decides
            found = [name for name, patterns in PARTS.items() if any(p in frame for p in patterns)]
            if found:
                part = found[0]
                break
        counts[part] += int(n)
    total = sum(counts.values())
    return {part: counts[part] / total for part in list(PARTS) + [OTHER] if total}, total


def run(name, epochs, images, batch_size=None, threads=None, reference=False):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import speed

    if threads:
        import torch

        torch.set_num_threads(threads)
    x = speed.train_images(images)
    kgen_run = speed.KgenRun(name, x, batch_size)
    if reference:
        kgen_run = speed.ReferenceRun(kgen_run, x)
    kgen_run.rep()  # warm-up
    run_epochs(kgen_run, epochs)


def run_epochs(kgen_run, epochs):
    seconds = kgen_run.rep(epochs)
    print(" ".join(f"{kgen_run.images / wall:.1f}" for wall, _ in seconds), "images/s (wall)")


def networks(name, reps=5, calls=10):
    """CPU ms of a forward (and forward + backward) pass of each network, Keras vs torch.

    The same networks and weights (`benchmarks/reference.py`), one batch of the
    model's batch size, in training mode, alternating; medians of `reps`
    rounds of `calls` calls. The difference is what Keras's layers add.
    """
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import statistics
    import time

    import torch
    from keras import ops

    import reference
    import speed

    run = speed.KgenRun(name, speed.train_images(8))
    b, model = run.config.batch_size, run.model
    step = reference.MAKERS[run.config.model](model, "cpu")
    x = torch.as_tensor(speed.train_images(b))
    pairs = {}  # network: (keras fn, torch fn, keras weights, torch weights)
    if hasattr(model, "discriminator"):
        g, d = step.modules
        z = torch.randn(b, model.latent_dim)
        pairs["generator"] = (lambda: model.generator(z, training=True), lambda: g(z), model.generator, g)
        pairs["discriminator"] = (
            lambda: model.discriminator(x, training=True), lambda: d(x.view(-1, 1, 28, 28)), model.discriminator, d
        )
    elif hasattr(model, "encoder"):
        enc, dec = step.modules
        z = torch.randn(b, model.latent_dim)
        pairs["encoder"] = (lambda: model.encoder(x, training=True), lambda: enc(x), model.encoder, enc)
        pairs["decoder"] = (lambda: model.decoder(z, training=True), lambda: dec(z), model.decoder, dec)
    else:
        (net,) = step.modules
        patches = reference.to_patches(x)
        pairs["lstm stack"] = (
            lambda: model.head_logits(model.run_layers(model.sequence_inputs(patches), training=True)[0]),
            lambda: net(patches), model, net
        )
    fns = {}
    for net_name, (kf, tf, kn, tn) in pairs.items():
        kw, tw = [v.value for v in kn.trainable_variables], list(tn.parameters())
        fns[f"{net_name} forward, Keras"] = kf
        fns[f"{net_name} forward, torch"] = tf
        fns[f"{net_name} forward + backward, Keras"] = lambda kf=kf, kw=kw: torch.autograd.grad(ops.mean(kf()), kw)
        fns[f"{net_name} forward + backward, torch"] = lambda tf=tf, tw=tw: torch.autograd.grad(tf().mean(), tw)
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(reps):
        for k, f in fns.items():
            start = time.process_time()
            for _ in range(calls):
                f()
            times[k].append((time.process_time() - start) / calls * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def jit_check(name, images=96):
    """Trains one epoch eager and with `jit_compile=True` from the same start; returns both logs and the weight gap."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import time

    import numpy as np

    import speed

    x = speed.train_images(images)
    out = {}
    for jit in (False, True):
        run = speed.KgenRun(name, x, jit=jit)
        start = time.perf_counter()
        history = run.model.fit(run.batches, epochs=1, shuffle=False, verbose=0, callbacks=[run.batches.follow_epochs()])
        out["jit" if jit else "eager"] = {
            "seconds": time.perf_counter() - start,
            "logs": {k: v[0] for k, v in history.history.items()},
            "weights": run.model.get_weights(),
        }
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(out["eager"]["weights"], out["jit"]["weights"]))
    return out, gap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train one model for a few epochs (run it under py-spy)")
    r.add_argument("model", help="gan-mlp, gan-conv, vae or lstm")
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--images", type=int, default=5000)
    r.add_argument("--batch-size", type=int, help="default: the model's `kgen train` default")
    r.add_argument("--reference", action="store_true", help="profile the plain-PyTorch loop instead")
    r.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    s = sub.add_parser("summarize", help="shares of the parts of a step in a py-spy raw profile")
    s.add_argument("profile")
    n = sub.add_parser("networks", help="CPU ms of each network's passes, Keras layers vs torch modules")
    n.add_argument("model", help="gan-mlp, gan-conv, vae or lstm")
    n.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    j = sub.add_parser("jit-check", help="one short epoch eager and with jit_compile=True: logs and weight gap")
    j.add_argument("model", help="gan-mlp, gan-conv, vae or lstm")
    j.add_argument("--images", type=int, default=96)
    args = parser.parse_args(argv)
    if args.command == "jit-check":
        out, gap = jit_check(args.model, args.images)
        for mode, r in out.items():
            logs = ", ".join(f"{k} {v:.4f}" for k, v in r["logs"].items())
            print(f"{mode}: {r['seconds']:.1f} s (compile included); {logs}")
        print(f"largest |eager - jit| weight difference after the epoch: {gap:.2g}")
        return
    if args.command == "run":
        run(args.model, args.epochs, args.images, args.batch_size, args.threads, args.reference)
        return
    if args.command == "networks":
        import torch

        torch.set_num_threads(args.threads)
        print("| pass (CPU ms, median) | ms |\n|---|---:|")
        for k, v in networks(args.model).items():
            print(f"| {k} | {v:.2f} |")
        return
    shares, total = summarize(args.profile)
    print(f"{total} samples in the timed epochs")
    print("| part of a step | share |\n|---|---:|")
    for part, share in shares.items():
        print(f"| {part} | {share:.1%} |")


if __name__ == "__main__":
    main()
