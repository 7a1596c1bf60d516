"""Images per second of data-parallel training on 1 and on N jax devices.

Each row trains the same model with the same global batch on the bundled
digits, once per device count, after one warm-up epoch (compilation), and
reports training images per second. On a CPU the devices are virtual
(`--xla_force_host_platform_device_count`), sharing the same cores, so no
gain is expected there: the row shows that the path runs. On a machine with
several GPUs it measures the real scaling.

Example:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \\
        python benchmarks/devices.py --devices 1 2 --models vae gan

Prints a markdown table.
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from kgen import data, devices  # noqa: E402
from kgen.models import MODELS  # noqa: E402
from kgen.data import to_float  # noqa: E402


def images_per_second(name, n, x, batch_size, epochs):
    with devices.scope(n):
        model = MODELS[name](arch="mlp")  # jax's CPU convolutions are slow (docs/performance.md)
        if name in ("gan", "cgan"):
            model.compile()
        else:
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(x, batch_size=batch_size, epochs=1, verbose=0)  # compiles
        start = time.perf_counter()
        model.fit(x, batch_size=batch_size, epochs=epochs, verbose=0)
        return epochs * len(x) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["vae", "gan"], choices=["ae", "vae", "gan"])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    x = to_float(data.load_bundled("train")[0][: args.images])
    print(f"{devices.available()} {keras.config.backend()} devices: {', '.join(map(str, keras.distribution.list_devices()))}")
    print("| model | " + " | ".join(f"{n} device{'s' if n > 1 else ''}" for n in args.devices) + " |")
    print("|---|" + "---|" * len(args.devices))
    for name in args.models:
        rates = [images_per_second(name, devices.count(n), x, args.batch_size, args.epochs) for n in args.devices]
        print(f"| {name} | " + " | ".join(f"{r:,.0f} images/s" for r in rates) + " |")


if __name__ == "__main__":
    main()
