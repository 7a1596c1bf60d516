"""What kgen's one-optimizer models (AutoEncoder, VAE, PatchLSTM) share in `model.keras`."""

from kgen import optimizers


class PortableCompileConfig:
    """Mixin: the compile config saved in `model.keras` holds an optimizer that loads under any backend.

    The config is `keras.Model`'s own (same keys), with its `"optimizer"`
    entry made portable (`kgen.optimizers.portable`); loading goes through
    `kgen.inputs.CheckedInputs.compile_from_config`. The GAN saves two
    optimizers and has its own.
    """

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:  # the optimizer must load under any backend
            config["optimizer"] = optimizers.portable(config["optimizer"])
        return config
