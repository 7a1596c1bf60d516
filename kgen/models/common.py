"""What kgen's models share: a portable compile config, and their codes of many images."""

import keras
import numpy as np

from kgen.backend.common import portable_config


class PortableCompileConfig:
    """Mixin: the compile config saved in `model.keras` holds an optimizer that loads under any backend.

    The config is `keras.Model`'s own (same keys), with its `"optimizer"`
    entry made portable (`kgen.backend.common.portable_config`); loading goes
    through `kgen.inputs.CheckedInputs.compile_from_config`. The GAN saves two
    optimizers and has its own.
    """

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:  # the optimizer must load under any backend
            config["optimizer"] = portable_config(config["optimizer"])
        return config


def check_count(n):
    """`n` as an int: the number of images `generate` draws, a positive integer; else a one-line ValueError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer. Received: n={n!r}")
    return int(n)


def encode(model, x, batch_size=1000):
    """Codes (n, latent_dim) of images, as float64 NumPy: the posterior mean for a VAE.

    Args:
        model: a model that encodes (`kgen.capabilities.ENCODES`).
        x: float images (n, 28, 28, 1) in [0, 1].
        batch_size: images encoded at a time.
    """
    out = []
    for start in range(0, len(x), batch_size):
        z = model.encode(x[start : start + batch_size])
        z = z[0] if isinstance(z, (tuple, list)) else z
        out.append(keras.ops.convert_to_numpy(z))
    return np.concatenate(out).astype(np.float64)
