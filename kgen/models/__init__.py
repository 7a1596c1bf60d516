"""The generative models of kgen, one file each, and their names on the CLI."""

from kgen.models.autoencoder import AutoEncoder
from kgen.models.patch_lstm import PatchLSTM
from kgen.models.vae import VAE

MODELS = {"ae": AutoEncoder, "vae": VAE, "lstm": PatchLSTM}

__all__ = ["AutoEncoder", "VAE", "PatchLSTM", "MODELS"]
