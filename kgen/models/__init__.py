"""The generative models of kgen, one file each, and their names on the CLI."""

from kgen import specs
from kgen.models.autoencoder import AutoEncoder
from kgen.models.cgan import ConditionalGAN
from kgen.models.flow import FlowMatching
from kgen.models.gan import GAN
from kgen.models.patch_lstm import PatchLSTM
from kgen.models.scgan import SelfConditionedGAN
from kgen.models.vae import VAE
from kgen.presets import from_preset

# the model class of each CLI name, from kgen.specs (which names each class)
MODELS = {name: globals()[spec.class_name] for name, spec in specs.SPECS.items()}

__all__ = ["AutoEncoder", "VAE", "GAN", "ConditionalGAN", "SelfConditionedGAN", "PatchLSTM", "FlowMatching", "MODELS", "from_preset"]
