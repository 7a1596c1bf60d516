"""What each model is, declared once: its CLI name, options and defaults, batch size and optimizers.

Each option is declared once, as an `Option` in `OPTIONS` (type, range or
choices, help), and each model's defaults once, in its `ModelSpec`. Everything
else is derived from them: `kgen train`'s flags and their help, the checks
(`check`, one message format, called by the model constructors and by
`TrainConfig.validate`), the defaults of the model classes' constructors
(`ModelSpec.constructor_defaults`), the registry `kgen.models.MODELS`, the
advice printed when a run diverges and the options `kgen compare` shows. What
a model *can do* (conditional, encodes, ...) is declared on its class
(`kgen.capabilities`). This module imports neither Keras nor the models, so
the CLI reads it before it picks the backend, and the models read it.

A new model is one more `ModelSpec` here (and its class in `kgen.models`);
an option it shares with others is one more name in its `options`, a new one
one more `Option` in `OPTIONS`.

Example:

>>> spec = SPECS["vae"]
>>> spec.batch_size, spec.options["latent_dim"], spec.optimizers
(32, 2, {'': {'learning_rate': 0.001}})
>>> spec.defaults()["learning_rate"]
0.001
"""

import dataclasses
import math
import numbers


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of `kgen train`: a model's constructor argument, or one of its optimizers' arguments.

    Args:
        help: what it does, as `--help` shows it after the names of the
            models that take it (and before their defaults).
        type: `int`, `float`, `str` or `bool` (a `--name/--no-name` flag).
        choices: the values a `str` option takes (None: any).
        low, high: the range of a number (None: unbounded).
        low_open, high_open: whether that end is excluded.
        alias: a second, shorter flag (e.g. `"--lr"`).
    """

    help: str
    type: type = float
    choices: tuple = None
    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False
    alias: str = None

    def check(self, name, value):
        """Returns `value` if it is one this option takes, else raises `ValueError`, in one format for every option.

        >>> OPTIONS["latent_dim"].check("latent_dim", 0)
        Traceback (most recent call last):
        ValueError: latent_dim must be an integer of at least 1. Received: latent_dim=0
        """
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and self._in_range(value)
        elif self.type is float:
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                  and self._in_range(value))
        else:
            ok = isinstance(value, str) and (self.choices is None or value in self.choices)
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}. Received: {name}={value!r}")
        return value

    def _in_range(self, value):
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self):
        """What the option takes, as its error message says: `"an integer of at least 1"`, `"one of bce, mse"`."""
        if self.type is bool:
            return "True or False"
        if self.type is str:
            return "a string" if self.choices is None else f"one of {', '.join(self.choices)}"
        kind = "an integer" if self.type is int else "a finite number"
        if self.low is not None and self.high is not None:
            return (f"{kind} in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{kind} {'above' if self.low_open else 'of at least'} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'below' if self.high_open else 'of at most'} {self.high:g}"
        return kind


# every option a model may take, in the order --help lists them; the names are
# the models' constructor arguments, and for optimizers `[net_]learning_rate`, ...;
# a learning rate is at most 1 (Adam moves each weight by about the rate per step:
# more is divergence, not training); the sizes are bounded so that every model, its optimizer's
# state (and a flow's moving average) included, fits one .keras file of at most 1 GiB
# (kgen.checkpoint.MAX_KERAS_BYTES) and trains in a few GB (docs/errors.md, "Bounds")
OPTIONS = {
    "latent_dim": Option("size of the latent code (noise of a GAN).", int, low=1, high=1024),
    "arch": Option("network family.", str, choices=("mlp", "conv")),
    "learning_rate": Option("Adam's step size.", float, low=0, high=1, low_open=True, alias="--lr"),
    "kl_weight": Option("weight of the KL term (0: no-KL ablation).", float, low=0),
    "recon_loss": Option("per-pixel loss.", str, choices=("bce", "mse")),
    "binarize": Option("dynamically binarize the training images.", bool),
    "iwae_k": Option("importance samples in the training bound (1: the VAE's ELBO; k > 1: the IWAE).", int, low=1,
                     high=1000),
    "loss": Option("hinge or non-saturating BCE loss.", str, choices=("bce", "hinge")),
    "d_dropout": Option("discriminator's dropout.", float, low=0, high=1, high_open=True),
    "ema": Option("decay of the weight average that draws samples (0: off).", float, low=0, high=1, high_open=True),
    "spectral_norm": Option("spectral normalization of the discriminator.", bool),
    "diffaugment": Option("DiffAugment policy, e.g. translation,cutout (empty: off).", str),
    "codes": Option("values of an InfoGAN code the generator takes and the discriminator reads back (0: none).",
                    int, low=0, high=100),
    "code_weight": Option("weight of the InfoGAN code's cross-entropy in both losses.", float, low=0, low_open=True),
    "clusters": Option("k-means clusters of the training images that the GAN conditions on (labels of its own).",
                       int, low=2, high=1000),
    "aux_weight": Option("weight of the discriminator's auxiliary classifier (0: none).", float, low=0),
    "projection": Option("add the label-projection term to the discriminator's logit.", bool),
    "d_learning_rate": Option("discriminator's Adam step size.", float, low=0, high=1, low_open=True, alias="--d-lr"),
    "g_learning_rate": Option("generator's Adam step size.", float, low=0, high=1, low_open=True, alias="--g-lr"),
    "d_beta_1": Option("discriminator's Adam beta_1.", float, low=0, high=1, high_open=True),
    "g_beta_1": Option("generator's Adam beta_1.", float, low=0, high=1, high_open=True),
    "d_beta_2": Option("discriminator's Adam beta_2.", float, low=0, high=1, high_open=True),
    "g_beta_2": Option("generator's Adam beta_2.", float, low=0, high=1, high_open=True),
    "num_layers": Option("stacked LSTM layers.", int, low=1, high=4),
    "units": Option("units per LSTM layer.", int, low=1, high=1024),
    "dropout": Option("dropout after each LSTM layer.", float, low=0, high=1, high_open=True),
    "width": Option("channels of the U-Net at full resolution (a multiple of 8).", int, low=8, high=128),
    "depth": Option("residual blocks per U-Net level and direction.", int, low=1, high=4),
    "label_dropout": Option("share of training labels replaced by the null label (classifier-free guidance).",
                            float, low=0, high=1, high_open=True),
    "time_sampling": Option("how training times are drawn.", str, choices=("logit_normal", "uniform")),
    "guidance": Option("classifier-free guidance weight of the samples (1: none).", float, low=0),
    "guidance_from": Option("flow time (0: the noise, 1: the image) from which the guidance applies; before it the "
                            "conditional velocity alone (guided near the noise, samples lose variety).", float,
                            low=0, high=1),
    "steps": Option("ODE solver steps per sample.", int, low=1, high=1000),
    "sampler": Option("ODE solver of the samples.", str, choices=("heun", "euler")),
    "patch_head": Option("dense: a patch's 49 pixels independent; made: each given the pixels before it.", str,
                         choices=("dense", "made")),
}

# the CLI flags whose names differ from the option's (--layers for num_layers)
FLAGS = {"num_layers": "--layers"}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What one model is, for training and the CLI.

    Args:
        name: its name on the CLI and in run folders (`"vae"`).
        class_name: its class in `kgen.models`.
        batch_size: images per step unless told otherwise.
        options: its constructor arguments that `kgen train` sets, with
            their defaults (the class's own too, except `class_defaults`).
        optimizers: the Adam arguments of each optimizer, by network: `""`
            for a model with one (`compile(optimizer=)`), `"d"` and `"g"` for
            `compile(d_optimizer=, g_optimizer=)`.
        class_defaults: the class's own default of an option whose
            `kgen train` default is a measured recipe that the class does not
            take by default (the gan's InfoGAN code: a plain `GAN()` must
            work with your own generator of noise alone).
    """

    name: str
    class_name: str
    batch_size: int
    options: dict
    optimizers: dict
    class_defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def recipe(self):
        """The options whose `kgen train` default is not the class's own."""
        return tuple(self.class_defaults)

    def constructor_defaults(self):
        """The defaults of the model class's constructor: `options`, with the class's own where they differ.

        The model classes take theirs from here (`kgen.models`), so a default
        is written once.
        """
        return {**self.options, **self.class_defaults}

    def optimizer_options(self):
        """The optimizer arguments as options: `{"learning_rate": 1e-3}`, or `{"d_learning_rate": ..., ...}`."""
        return as_options(self.optimizers)

    def defaults(self):
        """Every option this model takes, with its default: model options, then optimizer options."""
        return {**self.options, **self.optimizer_options()}

    def config_fields(self, options):
        """`TrainConfig` fields from options of this model: `learning_rate`, `model_options`, `gan_optimizers`.

        Example:

        >>> SPECS["gan"].config_fields({"arch": "mlp", "d_learning_rate": 1e-4})
        {'learning_rate': None, 'model_options': {'arch': 'mlp'}, 'gan_optimizers': {'d': {'learning_rate': 0.0001}, 'g': {}}}
        """
        optimizers = self.optimizer_options()
        return {
            "learning_rate": options.get("learning_rate") if "" in self.optimizers else None,
            "model_options": {k: v for k, v in options.items() if k not in optimizers},
            "gan_optimizers": {
                net: {key: options[f"{net}_{key}"] for key in arguments if f"{net}_{key}" in options}
                for net, arguments in self.optimizers.items() if net
            },
        }

    def rates(self):
        """The names of its learning-rate options (what to lower when training diverges)."""
        return [name for name in self.optimizer_options() if name.endswith("learning_rate")]


# the DCGAN paper's Adam at 4e-4 for both networks: with the generator at 1e-4 (TTUR), the
# offline cGAN was still a dot grid after 79 steps, at 4e-4 it drew the labelled digits (docs/results/2026-gan.md)
GAN_ADAM = {"learning_rate": 4e-4, "beta_1": 0.5, "beta_2": 0.999}
# spectral norm off: on the full MNIST in 3 epochs it left the discriminator too weak to teach the
# generator clean strokes (worse FID and labels with it; docs/results/2026-gan.md)
# the discriminator at twice the generator's rate: on 6 full-MNIST epochs both GANs' FID was lower and
# the cGAN's recall higher, and the GAN's every class between 7 % and 13 % (docs/results/2026-gan.md)
GAN_D_ADAM = {**GAN_ADAM, "learning_rate": 8e-4}
# the self-conditioned GAN's discriminator at five times the generator's rate: on 10 full-MNIST epochs
# with 50 clusters (and its classifier at 0.25) it keeps more of each cluster's variety (higher recall,
# on two seeds); 1.6e-3 measured within the seeds' spread (docs/results/2026-gan.md)
SCGAN_D_ADAM = {**GAN_ADAM, "learning_rate": 2e-3}
GAN_OPTIONS = {"latent_dim": 64, "arch": "conv", "loss": "hinge", "d_dropout": 0.0, "ema": 0.999,
               "spectral_norm": False, "diffaugment": ""}

SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec("ae", "AutoEncoder", 32, {"latent_dim": 2, "arch": "mlp"}, {"": {"learning_rate": 1e-3}}),
        ModelSpec(
            "vae", "VAE", 32,
            {"latent_dim": 2, "arch": "mlp", "kl_weight": 1.0, "recon_loss": "bce", "binarize": False, "iwae_k": 1},
            {"": {"learning_rate": 1e-3}},
        ),
        # an InfoGAN code of 10 values at weight 2: it splits the digits into families, so fewer shapes
        # between two digits (lower FID, higher precision; docs/results/2026-gan.md); the Python class GAN() stays plain (codes=0),
        # so that your own generator of the noise alone works
        ModelSpec("gan", "GAN", 64, {**GAN_OPTIONS, "codes": 10, "code_weight": 2.0}, {"d": GAN_D_ADAM, "g": GAN_ADAM},
                  class_defaults={"codes": 0, "code_weight": 1.0}),
        # batch 16: on a CPU more, smaller steps reach the goals in half the time of batch 64 (the
        # same FID, labels and recall after 8 full-MNIST epochs as batch 64 after 11; docs/results/2026-gan.md)
        ModelSpec(
            "cgan", "ConditionalGAN", 16, {**GAN_OPTIONS, "aux_weight": 1.0, "projection": False},
            {"d": GAN_D_ADAM, "g": GAN_ADAM},
        ),
        # unconditional: the cGAN on k-means clusters of the training images instead of labels; 50 clusters
        # and a classifier at a quarter weight: lower FID and higher precision than 20 clusters at full
        # weight, recall kept; batch 16 as the cGAN's, its goals in half the time of batch 64
        # (docs/results/2026-gan.md)
        ModelSpec(
            "scgan", "SelfConditionedGAN", 16, {**GAN_OPTIONS, "clusters": 50, "aux_weight": 0.25, "projection": False},
            {"d": SCGAN_D_ADAM, "g": GAN_ADAM},
        ),
        ModelSpec(
            "lstm", "PatchLSTM", 64,
            # binarized: the MADE head's samples are Bernoulli draws fed back, so it trains on binary
            # patches; on grey ones its offline samples were speckled fragments (docs/patch_lstm.md)
            {"num_layers": 2, "units": 256, "dropout": 0.0, "recon_loss": "bce", "binarize": True,
             "patch_head": "made"},
            {"": {"learning_rate": 1e-3}},
        ),
        ModelSpec(
            "flow", "FlowMatching", 128,
            {"width": 32, "depth": 1, "label_dropout": 0.1, "ema": 0.999, "time_sampling": "logit_normal",
             "guidance": 2.0, "guidance_from": 0.3, "steps": 5, "sampler": "heun"},
            {"": {"learning_rate": 1e-3}},
        ),
    )
}

NAMES = tuple(SPECS)


def get(name):
    """The `ModelSpec` of a model name; `ValueError` naming the choices for another."""
    if name not in SPECS:
        raise ValueError(f"Unknown model; use one of {', '.join(SPECS)}. Received: model={name!r}")
    return SPECS[name]


def as_options(optimizers):
    """Adam arguments by network (`{"d": {"learning_rate": ...}}`) as option names (`d_learning_rate`); `""`: none."""
    return {f"{net}_{key}" if net else key: value for net, arguments in optimizers.items() for key, value in arguments.items()}


def check(**values):
    """Checks options by name (`check(latent_dim=2, arch="mlp")`): `ValueError` naming the first bad one.

    The model constructors call it on their options, and `TrainConfig.validate`
    on a run's, so a value is refused in the same words from Python and the CLI.
    """
    for name, value in values.items():
        OPTIONS[name].check(name, value)


def takers(option):
    """The names of the models that take `option`, in `SPECS` order."""
    return [name for name, spec in SPECS.items() if option in spec.defaults()]


def flag(option):
    """The CLI flag of an option: `--latent-dim`, `--layers`."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


@dataclasses.dataclass
class TrainConfig:
    """Everything `kgen train` needs to make (and remake) a run.

    `None` and missing entries mean the model's own (its `ModelSpec`):
    `validate()` fills them in, so a run's `config.json` holds every value it
    trained with. The annotations are the types `config.json` holds
    (`kgen.training.saved_config` checks a run's against them).
    """

    model: str = "vae"  # short name of the model: ae, vae, ... (SPECS)
    epochs: int = 10  # epochs in all (a resumed run continues up to this)
    batch_size: int | None = None  # images per step; None: the model's own
    learning_rate: float | None = None  # Adam's step size of a model with one optimizer; None: the model's own
    dataset: str = "mnist"  # mnist, fashion_mnist, or another 28x28 TFDS set
    data_dir: str | None = None  # folder of IDX files or an .npz, before any download
    offline: bool = False  # skip the network: data_dir or the bundled sample
    limit: int | None = None  # train on the first N training images only
    lr_decay: bool = False  # lower every learning rate linearly over the epochs (kgen.callbacks.LinearDecay)
    val_images: int = 1000  # test images evaluated after every epoch (val_* in history.csv; at most `limit`); 0: none
    seed: int = 0  # seeds Keras, NumPy and the model's own generator
    out: str = "artifacts"  # root of the run directories
    name: str | None = None  # suffix of the run directory's name
    model_options: dict = dataclasses.field(default_factory=dict)  # e.g. latent_dim, arch; missing: the model's own
    gan_optimizers: dict = dataclasses.field(default_factory=dict)  # GANs: Adam options per network, {"d": {...}, "g": {...}}
    precision: str = "float32"  # float32, or bfloat16: Keras's mixed_bfloat16 policy (bfloat16 compute, float32 weights)
    devices: int = 1  # data-parallel devices (jax: keras.distribution.DataParallel); each takes batch_size / devices images

    def validate(self):
        """Checks every field and fills in the model's own defaults; `ValueError` naming the first bad one."""
        from kgen import devices, runs

        spec = get(self.model)
        if self.batch_size is None:
            self.batch_size = spec.batch_size
        if self.learning_rate is None and "" in spec.optimizers:
            self.learning_rate = spec.optimizers[""]["learning_rate"]
        self.model_options = {**spec.options, **(self.model_options or {})}
        self.gan_optimizers = {
            net: {**arguments, **(self.gan_optimizers or {}).get(net, {})}
            for net, arguments in spec.optimizers.items() if net
        }
        for field, option in FIELDS.items():
            if getattr(self, field) is not None:
                option.check(field, getattr(self, field))
        self.devices = devices.count(self.devices)  # "all" to a number; above 1 on jax only
        if self.batch_size % self.devices:
            raise ValueError(
                f"batch_size must be a multiple of devices ({self.devices}), each device taking an equal share. "
                f"Received: batch_size={self.batch_size}"
            )
        options = {**self.model_options, **self.optimizer_options()}
        for name, value in options.items():
            if name not in spec.defaults():
                raise ValueError(
                    f"{self.model} takes no option {name}; it takes {', '.join(spec.defaults())}. Received: {name}={value!r}"
                )
        check(**options)
        runs.check_name(self.name)

    def optimizer_options(self):
        """The optimizers' arguments as options: `{"learning_rate": ...}`, or `{"d_learning_rate": ..., ...}`."""
        if self.gan_optimizers or self.learning_rate is None:
            return as_options(self.gan_optimizers)
        return as_options({"": {"learning_rate": self.learning_rate}})


PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # --precision: Keras's dtype policy

# what TrainConfig's own fields take (its model's options are OPTIONS')
FIELDS = {
    "epochs": Option("epochs in all.", int, low=1),
    "batch_size": Option("images per step.", int, low=1),
    "limit": Option("training images used.", int, low=1),
    "val_images": Option("test images evaluated after every epoch.", int, low=0),
    "precision": Option("dtype policy.", str, choices=tuple(PRECISIONS)),
}
