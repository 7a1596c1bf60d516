"""Training on several devices through Keras's own distribution API.

Data parallelism is `keras.distribution.DataParallel` over a one-axis
`DeviceMesh`: every device holds a copy of the weights, each global batch is
split along its first axis across the devices, and the gradients are reduced
by XLA. Keras 3.15 implements `keras.distribution` for the jax backend only,
so `--devices` above 1 needs `KERAS_BACKEND=jax`; on torch and tensorflow it
is refused before anything starts.

kgen adds no training loop of its own: a model built inside
`distribution(n).scope()` gets replicated variables, and Keras's jax trainer
shards each batch and compiles the model's `train_step` (the GANs' two
optimizer steps included) over the mesh.

Several hosts: each process calls `keras.distribution.initialize()` (which
wraps `jax.distributed.initialize`) before kgen builds anything; only
process 0 writes the run directory (`is_chief`).

Example:

>>> from kgen import devices
>>> with devices.distribution(2).scope():   # two jax devices
...     model = VAE(latent_dim=2)
...     model.compile(optimizer="adam")
...     model.fit(x, batch_size=64)             # 32 images per device
"""

import contextlib
import os

import keras

from kgen import backend


def join_hosts():
    """Joins a multi-host jax job when `KERAS_DISTRIBUTION_JOB_ADDRESSES` is set.

    `keras.distribution.initialize()` (which calls `jax.distributed.initialize`)
    reads the coordinator's address, the number of processes and this
    process's id from `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
    `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`.
    Returns whether it joined.
    """
    if not backend.DATA_PARALLEL or not os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        return False
    keras.distribution.initialize()
    return True


def available():
    """The number of devices Keras's distribution API sees (1 off jax)."""
    if not backend.DATA_PARALLEL:
        return 1
    return len(keras.distribution.list_devices())


def count(devices):
    """The number of devices asked for: a positive integer, or `"all"`.

    Args:
        devices: an int, a string of one, or `"all"` (every device jax sees).

    Raises:
        ValueError: not a positive integer or "all", more than 1 off the jax
            backend, or more devices than there are.
    """
    if isinstance(devices, str) and devices.strip().lower() == "all":
        return available()
    try:
        n = int(devices)
    except (TypeError, ValueError):
        n = 0
    if isinstance(devices, bool) or n < 1 or (isinstance(devices, float) and devices != n):
        raise ValueError(f"devices must be a positive integer or 'all'. Received: devices={devices!r}")
    if n > 1 and not backend.DATA_PARALLEL:
        raise ValueError(
            "Training on several devices uses keras.distribution, which Keras implements for the jax "
            f"backend only; set KERAS_BACKEND=jax (or --backend jax). Received: devices={n} on "
            f"backend={keras.config.backend()!r}"
        )
    if n > available():
        raise ValueError(
            f"There are only {available()} devices ({_kinds()}). Received: devices={n}"
        )
    return n


def distribution(n):
    """The `keras.distribution.DataParallel` over the first `n` devices (None for one device)."""
    if n <= 1:
        return None
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:n])


def scope(n):
    """A context in which models are built and trained on `n` devices (nothing for one)."""
    dist = distribution(n)
    return dist.scope() if dist is not None else contextlib.nullcontext()


def is_chief():
    """Whether this process writes files: process 0 of a multi-host jax job, else always."""
    return backend.process_index() == 0


def _kinds():
    return ", ".join(sorted({d.split(":")[0] for d in keras.distribution.list_devices()}))
