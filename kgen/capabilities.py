"""What each model can do, declared once on its class and read everywhere else.

Every kgen model class lists its capabilities in a `capabilities` class
attribute (a frozenset of the names below); training, the callbacks,
evaluation, reports and the CLI ask `has(model, ...)` instead of guessing from
the methods a model happens to have. A model of your own declares what it
offers the same way:

>>> class MyVAE(kgen.models.VAE):
...     capabilities = kgen.models.VAE.capabilities | {kgen.capabilities.CONDITIONAL}
"""

CONDITIONAL = "conditional"  # trains on and generates given labels: `num_classes`, `generate(n, labels=...)`
LATENT = "latent"  # generates from a latent code: `generate(n, z=...)`, `latent_dim`
ENCODES = "encodes"  # `encode(x)` to a latent code of `latent_dim`
RECONSTRUCTS = "reconstructs"  # `reconstruct(x)`
COMPLETES = "completes"  # `complete(images, given=k)`: finishes partial digits
LIKELIHOOD = "likelihood"  # `log_likelihood(x, k)`: an importance-sampled log p(x)
ADVERSARIAL = "adversarial"  # two networks, two optimizers: `compile(d_optimizer=, g_optimizer=)`

ALL = frozenset({CONDITIONAL, LATENT, ENCODES, RECONSTRUCTS, COMPLETES, LIKELIHOOD, ADVERSARIAL})


def of(model):
    """The capabilities a model (or model class) declares; none for a class that declares none."""
    cls = model if isinstance(model, type) else type(model)
    return frozenset(getattr(cls, "capabilities", ()))


def has(model, capability):
    """Whether `model` (or its class) declares `capability`."""
    if capability not in ALL:
        raise ValueError(f"Unknown capability; use one of {', '.join(sorted(ALL))}. Received: {capability!r}")
    return capability in of(model)
