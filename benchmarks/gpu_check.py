"""One command for a CUDA machine: kgen's torch fast paths, every model, speed against plain PyTorch.

    python benchmarks/gpu_check.py                 # on a machine with CUDA, a few minutes
    python benchmarks/gpu_check.py --cpu           # the same checks on the CPU, tiny (what the test runs)
    KGEN_GPU_CHECK_CPU=1 python benchmarks/gpu_check.py    # the same as --cpu

Without CUDA (and without `--cpu`) it says so in one line and exits 0. On
CUDA it runs, on the GPU, in one process:

1. **Fast paths** (`kgen/backend/torch.py`) against Keras's own calls, on the
   same weights and inputs, from the same state: `forward` against
   `network(x)` for kgen's MLP and conv generators, discriminators, encoder,
   decoder and the conditional (functional) generator and discriminator, in
   training and inference mode (outputs, gradients of a loss with respect to
   every weight, batch-norm statistics after); `lstm` and `lstm_step` against
   the `LSTM` layer and its cell (outputs, gradients with respect to inputs,
   states and weights); `update_metrics` against `Mean.update_state`;
   `gradient_step` against Keras's gradients and `optimizer.apply` (the
   weights after a few Adam steps). Each row says whether the fast path is
   *taken* on this device: on CUDA the conv, fused-LSTM and fused-Adam paths
   step aside (they were checked on the CPU's kernels), so the public call
   is Keras's and the row checks the dispatch. Those three are then also
   called directly on the device (`_conv`, `_fused_lstm`, `_apply_adam`,
   rows marked "direct"), which says whether they would be right there.
   A row passes when the largest difference is at most `rtol` (1e-4 on the
   CPU, 1e-3 on CUDA: TF32 convolutions and other summation orders) of the
   largest value it is compared with.
2. **Training**: every model of `kgen.specs.SPECS` (ae, vae, gan, cgan,
   scgan, lstm, flow), built and compiled as `kgen train` builds it, fits
   `--steps` steps on the bundled digits (with their labels where the model
   is conditional; the scGAN's clusters from its k-means first), with the
   NaN guard `kgen train` runs; steps per second after `--warmup-steps`
   untimed ones, the last losses (all finite, or the row fails), the peak GPU
   memory (`torch.cuda.max_memory_allocated`, reset before each model).
3. **Speed**: `benchmarks/speed.py`'s `compare` on the device for its models
   (gan-mlp, gan-conv, vae, lstm: the ones `benchmarks/reference.py` has a
   plain PyTorch loop for): kgen's `fit` and the hand-written loop of the
   same networks, alternating, `--reps` epochs of `--images` digits each;
   images per second and the ratio kgen / reference (median of the pairs).

It prints a table per part and writes all of it as JSON (`--json`, default
`gpu_check.json`); the exit status is 1 when a fast path differs, a model
fails to train or a loss is not finite. Parts run in the order above; with
`--max-seconds` spent (default 285, inside 5 minutes) what is left is marked
skipped instead of run.
"""

import argparse
import json
import os
import sys
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

CPU_ENV = "KGEN_GPU_CHECK_CPU"
# the calls kgen makes; the other rows call a fast path's private function directly, which counts
# toward passing only where kgen takes that path on the device
PUBLIC = {"forward", "lstm", "lstm_step", "update_metrics", "gradient_step"}

# (default on CUDA, default with --cpu): the CUDA run fits in 5 minutes on one modern GPU (an estimate)
SETTINGS = {
    "steps": (300, 3),  # training steps per model
    "warmup_steps": (20, 1),  # of them, untimed (the first builds the step; cuDNN picks its algorithms)
    "batch_size": (None, 8),  # None: each model's `kgen train` default
    "images": (5000, 16),  # speed: digits per epoch (repetition)
    "reps": (5, 1),  # speed: timed epochs of each loop
    "speed_warmup": (1, 0),  # speed: untimed epochs first
    "rtol": (1e-3, 1e-4),
    "max_seconds": (285.0, 600.0),
}


def _rel(got, want):
    """max |got - want| / max |want| (the absolute difference where `want` is all zeros)."""
    got, want = (np.asarray(_numpy(v), dtype=np.float64) for v in (got, want))
    if got.shape != want.shape:
        return float("inf")
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def _numpy(v):
    import torch

    if torch.is_tensor(v):
        return v.detach().float().cpu().numpy().copy()  # a copy: a CPU tensor's numpy() shares its memory
    return np.array(v)


def _worst(pairs):
    """The largest `_rel` over (got, want) pairs (None pairs: both must be None)."""
    worst = 0.0
    for got, want in pairs:
        if got is None or want is None:
            if (got is None) != (want is None):
                return float("inf")
            continue
        worst = max(worst, _rel(got, want))
    return worst


def _draw(shape, device, seed=0, normal=False):
    """Random numbers drawn on the CPU from `seed`, then moved to `device`: the same numbers on every device."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return (torch.randn if normal else torch.rand)(tuple(shape), generator=generator).to(device)


def _states(network):
    return [np.array(v.numpy()) for v in network.non_trainable_weights]


def _restore(network, states):
    for variable, value in zip(network.non_trainable_weights, states):
        variable.assign(value)


def keras_then_fast(network, inputs, keras_call, fast_call, wrt=(), seed=3):
    """Outputs, gradients and states by `keras_call`, then by `fast_call`, from the same state.

    Both calls take `inputs` and return a tensor or a list of them; the loss
    weighs each output differently (sum(out**2) * (i + 1)); gradients are taken
    with respect to the network's trainable weights and the tensors of `wrt`
    (which must be among `inputs`, with `requires_grad`). The non-trainable
    weights (batch-norm statistics, spectral-norm vectors, seed states) are
    restored before each call and the Keras seed set, so dropout draws the same.
    Returns [(outputs, grads, states) of Keras, (...) of the fast path].
    """
    import keras
    import torch

    weights = [v.value for v in network.trainable_variables]
    before = _states(network)
    results = []
    for call in (keras_call, fast_call):
        _restore(network, before)
        keras.utils.set_random_seed(seed)
        out = call(inputs)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        loss = sum((o.float() ** 2).sum() * (i + 1) for i, o in enumerate(outs))
        grads = torch.autograd.grad(loss, weights + list(wrt), allow_unused=True)
        results.append(([o.detach() for o in outs], grads, _states(network)))
    _restore(network, before)
    return results


def _row(check, path, taken, diffs, rtol, note=""):
    worst = max(diffs.values()) if diffs else float("inf")
    return {"check": check, "path": path, "taken": bool(taken), "rtol": rtol, "worst": worst,
            **{f"{k}_rel": v for k, v in diffs.items()}, "passed": bool(worst <= rtol), "note": note}


def _compare(results):
    (want, want_grads, want_states), (got, got_grads, got_states) = results
    return {
        "outputs": _worst(zip(got, want)),
        "gradients": _worst(zip(got_grads, want_grads)),
        "states": _worst(zip(got_states, want_states)),
    }


def _networks():
    """kgen's networks that `forward` runs: (name, network, input maker(batch, device))."""
    import torch

    from kgen import nets

    # uniform [0, 1) inputs drawn on the CPU from a fixed seed, as tests/test_torch_backend.py draws them, then
    # moved: the same numbers on every device. (Normal noise gives one case on the CPU where batch norm over a
    # batch of 16 is ill-conditioned and the two summation orders differ by 2 % in a gradient.)
    def uniform(*shape):
        return lambda b, d: _draw((b, *shape), d)

    def noise(dim):
        return uniform(dim)

    images = uniform(28, 28, 1)

    def labelled(first):
        return lambda b, d: [first(b, d), (torch.arange(b, dtype=torch.int32) % 10).to(d)]

    return [
        ("mlp generator (batch norm)", lambda: nets.generator("mlp", 8), noise(8)),
        ("conv generator (batch norm)", lambda: nets.generator("conv", 8), noise(8)),
        ("mlp discriminator (dropout)", lambda: nets.discriminator("mlp", dropout=0.3), images),
        ("conv discriminator", lambda: nets.discriminator("conv"), images),
        ("conv encoder", lambda: nets.encoder("conv", 4), images),
        ("conv decoder", lambda: nets.decoder("conv", 4), noise(4)),
        ("conditional conv generator", lambda: nets.generator("conv", 8, num_classes=10), labelled(noise(8))),
        (
            "conditional conv discriminator (projection, classifier, spectral norm)",
            lambda: nets.discriminator("conv", num_classes=10, spectral_norm=True, aux_classifier=True, projection=True),
            labelled(images),
        ),
    ]


def _guarded(check, path, rtol, fn):
    """`fn()`'s row, or a failed row with the error."""
    try:
        return fn()
    except Exception as error:  # a check that cannot run on this device is a result, not a crash
        row = _row(check, path, False, {}, rtol, note=f"error: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        row["traceback"] = traceback.format_exc()[-2000:]
        return row


def check_forward(device, rtol, batch=16):
    """`backend.forward` against `network(x)` for each of `_networks()`, training and inference."""
    import keras
    import torch

    from kgen import backend
    from kgen.backend import torch as torch_backend

    rows = []
    for name, make, inputs in _networks():
        for training in (True, False):
            check = f"forward: {name}, training={training}"

            def run():
                with keras.device(device):
                    keras.utils.set_random_seed(0)
                    network = make()
                    x = inputs(batch, device)
                    taken = torch_backend._direct(network, x)
                    probe = torch.zeros(1, 4, 4, 1, device=device)
                    conv = any(torch_backend._plain_conv(layer, probe) for layer in network.layers)
                    results = keras_then_fast(
                        network, x,
                        lambda x: network(x, training=training),
                        lambda x: backend.forward(network, x, training=training),
                    )
                note = "dense and batch-norm paths" + (", conv path" if conv else ", Keras's convolutions")
                return _row(check, "forward", taken, _compare(results), rtol, note if taken else "Keras's call")

            rows.append(_guarded(check, "forward", rtol, run))
    return rows


def check_conv_direct(device, rtol):
    """`_conv` called directly on the device against the layer's call (it is taken on the CPU only)."""
    import keras

    from kgen.backend import torch as torch_backend

    layers = {
        "Conv2D 3x3 same": (lambda: keras.layers.Conv2D(8, 3, padding="same", activation="relu"), (16, 14, 14, 4)),
        "Conv2D 4x4 stride 2 same": (lambda: keras.layers.Conv2D(8, 4, strides=2, padding="same"), (16, 28, 28, 1)),
        "Conv2DTranspose 4x4 stride 2 same": (
            lambda: keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same"), (16, 7, 7, 8)),
    }
    rows = []
    for name, (make, shape) in layers.items():
        check = f"conv direct: {name}"

        def run():
            with keras.device(device):
                keras.utils.set_random_seed(0)
                layer = make()
                layer.build(shape)
                x = _draw(shape, device).requires_grad_(True)
                taken = torch_backend._plain_conv(layer, x)
                results = keras_then_fast(layer, x, lambda x: layer(x), lambda x: torch_backend._conv(layer, x), wrt=[x])
            return _row(check, "_conv", taken, _compare(results), rtol, "" if taken else "direct: not taken on this device")

        rows.append(_guarded(check, "_conv", rtol, run))
    return rows


def check_lstm(device, rtol):
    """`backend.lstm`, `_fused_lstm` and `lstm_step` against Keras's `LSTM` layer and cell."""
    import keras
    import torch

    from kgen import backend
    from kgen.backend import torch as torch_backend

    def setup():
        keras.utils.set_random_seed(0)
        layer = keras.layers.LSTM(8, return_sequences=True, return_state=True)
        layer.build((None, 5, 6))
        with torch.no_grad():  # a non-zero bias, so that a misplaced one shows
            layer.cell.bias.value.copy_(_draw((32,), device, 1, normal=True))
        x = _draw((4, 5, 6), device, 2, normal=True).requires_grad_(True)
        states = [_draw((4, 8), device, 3 + i, normal=True).requires_grad_(True) for i in range(2)]
        return layer, x, states

    rows = []

    def sequence():
        with keras.device(device):
            layer, x, states = setup()
            taken = torch_backend._fused_lstm_ok(layer, x, states, True)
            results = keras_then_fast(
                layer, x,
                lambda x: layer(x, initial_state=states, training=True),
                lambda x: backend.lstm(layer, x, states, training=True),
                wrt=[x, *states],
            )
        return _row("lstm: LSTM layer, given state", "lstm", taken, _compare(results), rtol,
                    "torch._VF.lstm" if taken else "Keras's call (cuDNN on CUDA)")

    def direct():
        with keras.device(device):
            layer, x, states = setup()
            taken = torch_backend._fused_lstm_ok(layer, x, states, True)
            results = keras_then_fast(
                layer, x,
                lambda x: layer(x, initial_state=states, training=True),
                lambda x: torch_backend._fused_lstm(layer.cell, x, states),
                wrt=[x, *states],
            )
        return _row("lstm direct: _fused_lstm", "_fused_lstm", taken, _compare(results), rtol,
                    "" if taken else "direct: not taken on this device")

    def step():
        with keras.device(device):
            layer, x, states = setup()
            first = x[:, 0].detach().requires_grad_(True)
            taken = torch_backend._fused_lstm_ok(layer, first[:, None], states, False)
            results = keras_then_fast(
                layer, first,
                lambda x: _h_and_c(layer.cell(x, states)),
                lambda x: _h_and_c(backend.lstm_step(layer, x, states)),
                wrt=[first, *states],
            )
        return _row("lstm_step: one step of the cell", "lstm_step", taken, _compare(results), rtol,
                    "torch._VF.lstm_cell" if taken else "Keras's cell")

    for check, path, fn in (("lstm: LSTM layer, given state", "lstm", sequence),
                            ("lstm direct: _fused_lstm", "_fused_lstm", direct),
                            ("lstm_step: one step of the cell", "lstm_step", step)):
        rows.append(_guarded(check, path, rtol, fn))
    return rows


def _h_and_c(step):
    h, (_, c) = step
    return [h, c]


def check_metrics(device, rtol):
    """`update_metrics` against `Mean.update_state` and `result` (the same float32 numbers)."""
    import keras
    import torch

    from kgen import backend
    from kgen.backend import torch as torch_backend

    def run():
        with keras.device(device):
            fast = [keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="kl")]
            slow = [keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="kl")]
            got, want = [], []
            taken = True
            for v in (2.5, 0.1, 7.0, 1e-3):
                step = {"loss": torch.tensor(v, device=device), "kl": torch.tensor(v / 3, device=device)}
                taken = taken and all(torch_backend._plain_mean(m, step[m.name]) for m in fast)
                out = backend.update_metrics(fast, step)
                for metric in slow:
                    metric.update_state(step[metric.name])
                got += [out[m.name] for m in fast]
                want += [m.result() for m in slow]
            counts = _worst((a.count.value, b.count.value) for a, b in zip(fast, slow))
        return _row("update_metrics: two Means, four steps", "update_metrics", taken,
                    {"outputs": _worst(zip(got, want)), "states": counts}, rtol, "")

    return [_guarded("update_metrics: two Means, four steps", "update_metrics", rtol, run)]


def check_gradient_step(device, rtol, steps=1):
    """`gradient_step` (and `_apply_adam` directly) against Keras's gradients and `optimizer.apply`.

    Two copies of the MLP encoder from the same seed; one takes `steps` Adam
    steps through `backend.gradient_step` (the forward path, `autograd.grad`
    with respect to the variables, the fused Adam where taken), the other
    through `network(x)`, `torch.autograd.grad` and `optimizer.apply`. The
    difference of the weights is measured against how far they moved. One
    step: after that the weights differ by rounding, so do the next
    gradients, and Adam moves a weight whose gradient is near zero by about
    the learning rate whatever its sign, which makes rounding a 1e-3 share of
    the movement after 5 steps on the CPU. `_apply_adam` is checked over 20
    steps of the same gradients given to both.
    """
    import keras
    import torch

    from kgen import backend, nets
    from kgen.backend import torch as torch_backend

    def build():
        keras.utils.set_random_seed(0)
        network = nets.encoder("mlp", 4)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(network.trainable_variables)
        return network, optimizer

    def moved_rel(fast, slow, start):
        moved = max(np.abs(_numpy(v.value) - s).max() for v, s in zip(slow.trainable_variables, start))
        diff = max(np.abs(_numpy(a.value) - _numpy(b.value)).max()
                   for a, b in zip(fast.trainable_variables, slow.trainable_variables))
        return float(diff / moved) if moved > 0 else float("inf")

    def step_run():
        with keras.device(device):
            fast, fast_opt = build()
            slow, slow_opt = build()
            start = [_numpy(v.value) for v in slow.trainable_variables]
            xs = [_draw((16, 28, 28, 1), device, i) for i in range(steps)]
            grads = [torch.ones(tuple(v.shape), device=device) for v in fast.trainable_variables]
            taken = torch_backend._plain_adam(fast_opt, fast.trainable_variables, grads)
            for x in xs:
                backend.gradient_step(lambda: {"loss": (backend.forward(fast, x) ** 2).mean()},
                                      fast.trainable_variables, fast_opt)
                loss = (slow(x) ** 2).mean()
                g = torch.autograd.grad(loss, [v.value for v in slow.trainable_variables])
                with torch.no_grad():
                    slow_opt.apply(list(g), slow.trainable_variables)
            rel = moved_rel(fast, slow, start)
        return _row(f"gradient_step: MLP encoder, {steps} Adam step{'s' * (steps > 1)}", "gradient_step", taken,
                    {"weights": rel}, rtol, "fused Adam" if taken else "optimizer.apply")

    def adam_direct():
        with keras.device(device):
            fast, fast_opt = build()
            slow, slow_opt = build()
            start = [_numpy(v.value) for v in slow.trainable_variables]
            grads0 = [torch.ones(tuple(v.shape), device=device) for v in fast.trainable_variables]
            taken = torch_backend._plain_adam(fast_opt, fast.trainable_variables, grads0)
            with torch.no_grad():
                for i in range(20):
                    grads = [_draw(v.shape, device, 100 * i + j, normal=True) * 1e-2
                             for j, v in enumerate(fast.trainable_variables)]
                    torch_backend._apply_adam(fast_opt, grads, fast.trainable_variables)
                    slow_opt.apply([g.clone() for g in grads], slow.trainable_variables)
            rel = moved_rel(fast, slow, start)
            moments = _worst((a.value, b.value) for a, b in zip(fast_opt.variables, slow_opt.variables))
        return _row("adam direct: _apply_adam, 20 steps", "_apply_adam", taken, {"weights": rel, "moments": moments},
                    rtol, "" if taken else "direct: not taken on this device")

    return [
        _guarded(f"gradient_step: MLP encoder, {steps} Adam step{'s' * (steps > 1)}", "gradient_step", rtol, step_run),
        _guarded("adam direct: _apply_adam, 20 steps", "_apply_adam", rtol, adam_direct),
    ]


def fast_path_checks(device, rtol, log=print):
    rows = []
    for part in (check_forward, check_conv_direct, check_lstm, check_metrics, check_gradient_step):
        start = time.perf_counter()
        rows += part(device, rtol)
        log(f"  {part.__name__}: {time.perf_counter() - start:.1f} s")
    return rows


# training


def _peak_reset(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def training_arrays(model, n):
    """(x,) or (x, labels) of `n` bundled training digits (repeated past 5,000), as `kgen train` gives them."""
    from kgen import capabilities, data

    images, labels = data.load_bundled("train")
    reps = -(-n // len(images))
    x = data.to_float(np.concatenate([images] * reps)[:n])
    if capabilities.has(model, capabilities.CONDITIONAL):
        return x, np.concatenate([labels] * reps)[:n]
    return (x,)


def train_model(name, device, steps, warmup, batch_size=None, seed=0):
    """Trains the `kgen train` model `name` for `steps` steps on `device`; returns a result row."""
    import keras

    from kgen import callbacks, checkpoint, specs, training
    from kgen.data.batches import EpochBatches

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.marks = {}

        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 in (1, warmup, steps):
                _sync(device)
                self.marks[batch + 1] = time.perf_counter()

    import tempfile

    _peak_reset(device)
    with keras.device(device):
        keras.utils.set_random_seed(seed)
        config = specs.TrainConfig(model=name, batch_size=batch_size, seed=seed)
        config.validate()
        built = time.perf_counter()
        model = training.build_model(config)
        arrays = training_arrays(model, steps * config.batch_size)
        model.prepare(*training_arrays(model, 5000))  # the scGAN's k-means clusters; a no-op for the others
        batches = EpochBatches(arrays, config.batch_size, seed)
        folder = tempfile.mkdtemp(prefix="kgen-gpu-check-")
        guard = callbacks.TrainingGuard(checkpoint.Checkpoint(folder), folder)
        clock = Clock()
        start = clock.marks[0] = time.perf_counter()
        history = model.fit(batches, epochs=1, shuffle=False, verbose=0,
                            callbacks=[batches.follow_epochs(), guard, clock]).history
    losses = {k: float(v[-1]) for k, v in history.items()}
    timed = steps - warmup
    rate = timed / (clock.marks[steps] - clock.marks[warmup]) if timed > 0 and warmup in clock.marks else None
    return {
        "model": name,
        "batch_size": config.batch_size,
        "steps": steps,
        "timed_steps": timed,
        "build_s": start - built,
        "first_step_s": clock.marks[1] - start,
        "steps_per_s": rate,
        "images_per_s": rate * config.batch_size if rate else None,
        "losses": losses,
        "finite": bool(losses) and all(np.isfinite(v) for v in losses.values()),
        "peak_mib": _peak_mib(device),
    }


def train_all(device, names, steps, warmup, batch_size, deadline, log=print):
    rows = []
    for name in names:
        if time.perf_counter() > deadline:
            rows.append({"model": name, "skipped": "time budget spent"})
            continue
        try:
            row = train_model(name, device, steps, warmup, batch_size)
        except Exception as error:
            row = {"model": name, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}",
                   "traceback": traceback.format_exc()[-2000:], "finite": False}
        rows.append(row)
        log(f"  {name}: " + (f"{row['steps_per_s']:.1f} steps/s" if row.get("steps_per_s") else row.get("error", "")))
    return rows


def speed_all(device, images, reps, warmup, batch_size, deadline, log=print):
    """`speed.compare` on `device` for each of `speed.MODELS` (kgen's fit against the plain PyTorch loop)."""
    import speed

    x = speed.train_images(images)
    rows = []
    for name in speed.MODELS:
        if time.perf_counter() > deadline:
            rows.append({"model": name, "device": device, "skipped": "time budget spent"})
            continue
        _peak_reset(device)
        try:
            row = speed.compare(name, x, device, reps=reps, warmup=warmup, batch_size=batch_size, log=log)
            row["peak_mib"] = _peak_mib(device)
        except Exception as error:
            row = {"model": name, "device": device, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}",
                   "traceback": traceback.format_exc()[-2000:]}
        rows.append(row)
    return rows


# output


def _f(v, spec):
    return "" if v is None else format(v, spec)


def table(results):
    """The results as Markdown tables."""
    lines = ["| fast-path check | path | taken here | outputs | gradients | states / weights | passed | note |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for r in results["fast_paths"]:
        states = r.get("states_rel", r.get("weights_rel"))
        lines.append(
            f"| {r['check']} | `{r['path']}` | {'yes' if r['taken'] else 'no'} | {_f(r.get('outputs_rel'), '.1e')} | "
            f"{_f(r.get('gradients_rel'), '.1e')} | {_f(states, '.1e')} | {'yes' if r['passed'] else '**NO**'} | {r['note']} |"
        )
    lines += ["", "| model | batch | steps | first step s | steps/s | images/s | peak GPU MiB | last losses |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["training"]:
        if "skipped" in r or "error" in r:
            lines.append(f"| {r['model']} | | | | {r.get('skipped') or 'failed: ' + r['error']} | | | |")
            continue
        losses = ", ".join(f"{k} {v:.3g}" for k, v in r["losses"].items())
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['steps']} | {r['first_step_s']:.1f} | {_f(r['steps_per_s'], '.1f')} | "
            f"{_f(r['images_per_s'], '.0f')} | {_f(r['peak_mib'], '.0f')} | {losses}{'' if r['finite'] else ' **NOT FINITE**'} |"
        )
    lines += ["", "| model (kgen vs plain PyTorch) | batch | kgen img/s | reference img/s | kgen / reference: median | min–max | reps | peak GPU MiB |",
              "|---|---:|---:|---:|---:|---|---:|---:|"]
    for r in results["speed"]:
        if "skipped" in r or "error" in r:
            lines.append(f"| {r['model']} | | {r.get('skipped') or 'failed: ' + r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['kgen_wall']:.0f} | {r['reference_wall']:.0f} | {r['ratio_wall']:.2f} | "
            f"{r['ratio_wall_min']:.2f}–{r['ratio_wall_max']:.2f} | {r['reps']} | {_f(r.get('peak_mib'), '.0f')} |"
        )
    return "\n".join(lines)


def _setting(args, name, cpu):
    value = getattr(args, name)
    return SETTINGS[name][1 if cpu else 0] if value is None else value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help=f"run on the CPU with tiny settings (also: {CPU_ENV}=1)")
    parser.add_argument("--models", nargs="+", help="models to train (default: all of kgen.specs.SPECS)")
    parser.add_argument("--steps", type=int, help="training steps per model (CUDA 300, --cpu 3)")
    parser.add_argument("--warmup-steps", type=int, help="of those, untimed (CUDA 20, --cpu 1)")
    parser.add_argument("--batch-size", type=int, help="batch size of every part (default: each model's; --cpu 8)")
    parser.add_argument("--images", type=int, help="speed: digits per epoch (CUDA 5000, --cpu 16)")
    parser.add_argument("--reps", type=int, help="speed: timed epochs of each loop (CUDA 5, --cpu 1)")
    parser.add_argument("--speed-warmup", type=int, help="speed: untimed epochs first (CUDA 1, --cpu 0)")
    parser.add_argument("--rtol", type=float, help="fast paths: largest difference relative to the largest value "
                                                   "(CUDA 1e-3, --cpu 1e-4)")
    parser.add_argument("--max-seconds", type=float, help="skip what is left after this long (CUDA 285, --cpu 600)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["fast-paths", "training", "speed"])
    parser.add_argument("--json", default="gpu_check.json", help="where to write the results (default gpu_check.json)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    cpu = args.cpu or os.environ.get(CPU_ENV, "") not in ("", "0")
    import torch

    if not cpu and not torch.cuda.is_available():
        print(f"No CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False): nothing checked; "
              f"--cpu or {CPU_ENV}=1 runs the same checks on the CPU.")
        return None
    import keras

    from kgen import specs

    names = args.models or list(specs.SPECS)
    for name in names:
        specs.get(name)  # an unknown name fails before anything runs
    device = "cpu" if cpu else "cuda"
    s = {name: _setting(args, name, cpu) for name in SETTINGS}
    deadline = start + s["max_seconds"]

    import speed

    results = {
        "device": device,
        "machine": speed.machine(),
        "keras_backend": keras.config.backend(),
        "settings": {**s, "models": names},
        "torch_flags": {
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "command": " ".join(["python", "benchmarks/gpu_check.py"] + (sys.argv[1:] if argv is None else list(argv))),
    }
    m = results["machine"]
    print(f"gpu_check on {device}: {m['gpu'] or m['cpu']}, torch {m['torch']}, keras {m['keras']}")
    print("fast paths against Keras's own calls ...")
    results["fast_paths"] = [] if "fast-paths" in args.skip else fast_path_checks(device, s["rtol"])
    print(f"training each model {s['steps']} steps ...")
    results["training"] = [] if "training" in args.skip else train_all(
        device, names, s["steps"], s["warmup_steps"], s["batch_size"], deadline)
    print("kgen against the plain PyTorch loop ...")
    results["speed"] = [] if "speed" in args.skip else speed_all(
        device, s["images"], s["reps"], s["speed_warmup"], s["batch_size"], deadline, log=lambda line: print(line))
    peaks = [r["peak_mib"] for r in results["training"] + results["speed"] if r.get("peak_mib") is not None]
    results["peak_mib"] = max(peaks) if peaks else None
    counted = [r for r in results["fast_paths"] if r["path"] in PUBLIC or r["taken"]]
    results["fast_paths_passed"] = all(r["passed"] for r in counted)
    results["direct_not_taken_passed"] = all(r["passed"] for r in results["fast_paths"] if r not in counted)
    results["trained"] = all(r.get("finite") for r in results["training"] if "skipped" not in r)
    results["speed_ran"] = all("error" not in r for r in results["speed"])
    results["passed"] = results["fast_paths_passed"] and results["trained"] and results["speed_ran"]
    results["seconds"] = time.perf_counter() - start
    print()
    print(table(results))
    if results["peak_mib"] is not None:
        print(f"\npeak GPU memory: {results['peak_mib']:.0f} MiB (torch.cuda.max_memory_allocated)")
    if not results["direct_not_taken_passed"]:
        print("a fast path that kgen does not take on this device differs from Keras there when called directly "
              "(rows 'direct: not taken'): it must stay off on this device")
    print(f"\n{'passed' if results['passed'] else 'FAILED'} in {results['seconds']:.0f} s; results in {args.json}")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1, default=float)
    return results


if __name__ == "__main__":
    out = main()
    sys.exit(0 if out is None or out["passed"] else 1)
