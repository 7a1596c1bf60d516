"""An optimizer pair that Keras sees as one: the discriminator's and the generator's.

A GAN steps its two networks with two optimizers. Keras knows one
`model.optimizer`: on jax, only `model.optimizer.variables` travel in the
training state, and saving walks `model.optimizer` for optimizer state. So the
GANs put their two optimizers inside one `GANOptimizer`, whose `variables` are
both optimizers' variables: the jax trainer threads both Adam states from step
to step, and `model.keras` holds both.

The model applies each sub-optimizer to its own network
(`model.optimizer.d_optimizer`, `model.optimizer.g_optimizer`); the pair itself
applies nothing.

Under `mixed_float16` each of the two is wrapped in its own
`keras.optimizers.LossScaleOptimizer` (`GANOptimizer.scale_losses`,
`loss_scaled`): two losses, two loss scales. Why this is not Keras's
`keras.optimizers.MultiOptimizer`: see docs/keras.md.
"""

import keras



@keras.saving.register_keras_serializable(package="kgen")
class GANOptimizer(keras.optimizers.Optimizer):
    """Holds a discriminator optimizer and a generator optimizer as one.

    Args:
        d_optimizer: the discriminator's optimizer (instance, name or config).
        g_optimizer: the generator's optimizer (instance, name or config).
        name: name of the pair.

    Example:

    >>> opt = GANOptimizer(keras.optimizers.Adam(2e-4), keras.optimizers.Adam(2e-4))
    >>> opt.build(discriminator.trainable_variables, generator.trainable_variables)
    >>> opt.d_optimizer.apply(d_grads, discriminator.trainable_variables)
    """

    def __init__(self, d_optimizer="adam", g_optimizer="adam", name="gan_optimizer", **kwargs):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)
        if self.d_optimizer is self.g_optimizer:
            raise ValueError(
                "The discriminator and the generator need two optimizer instances, "
                "not one shared. Received: d_optimizer is g_optimizer"
            )

    def scale_losses(self):
        """Wraps each optimizer of the pair in a `keras.optimizers.LossScaleOptimizer` (once).

        What `keras.Model.compile` does to a model's one optimizer under the
        `mixed_float16` policy, done to each player's: the discriminator's and
        the generator's losses are scaled (and their gradients unscaled) each
        by its own dynamic loss scale, which halves when that player's
        gradients overflow. Called by the models' `compile`, before `build`.
        """
        if self.built:
            raise ValueError(
                "GANOptimizer.scale_losses wraps the optimizers before they are built. "
                "Received: a built GANOptimizer"
            )
        self.d_optimizer = _loss_scaled(self.d_optimizer)
        self.g_optimizer = _loss_scaled(self.g_optimizer)

    def build(self, d_variables, g_variables=None):
        """Creates both optimizers' slots for the two networks' variables."""
        if g_variables is None:
            raise ValueError(
                "GANOptimizer.build takes the discriminator's and the generator's "
                "variables as two lists; the GAN models call it in `compile`. "
                f"Received: one list of {len(d_variables)} variables"
            )
        self.network_variables = _NetworkVariables(list(d_variables), list(g_variables))
        self.d_optimizer.build(self.network_variables.d)
        self.g_optimizer.build(self.network_variables.g)
        super().build([])

    @property
    def optimizers(self):
        """`[d_optimizer, g_optimizer]` (Keras's learning-rate callbacks read this)."""
        return [self.d_optimizer, self.g_optimizer]

    @property
    def variables(self):
        """The pair's own (its iteration counter), then the discriminator's, then the generator's optimizer variables."""
        return self.own_variables + self.d_optimizer.variables + self.g_optimizer.variables

    @property
    def own_variables(self):
        """The variables of the pair itself (what `keras.optimizers.Optimizer.variables` lists)."""
        return list(super().variables)

    @property
    def iterations(self):
        """Training steps taken: the generator's update count (one per batch)."""
        return self.g_optimizer.iterations

    @property
    def learning_rate(self):
        raise AttributeError(
            "A GANOptimizer has no learning rate of its own; read "
            "`d_optimizer.learning_rate` or `g_optimizer.learning_rate`."
        )

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError(
            "A GANOptimizer has no learning rate of its own; set "
            "`d_optimizer.learning_rate` or `g_optimizer.learning_rate`."
        )

    def apply(self, grads, trainable_variables=None):
        raise NotImplementedError(
            "Apply gradients with `d_optimizer` or `g_optimizer`, each to its "
            "own network's variables."
        )

    def finalize_variable_values(self, var_list):
        # e.g. swap in the weights' moving averages when a sub-optimizer keeps them
        if self.built:
            self.d_optimizer.finalize_variable_values(self.network_variables.d)
            self.g_optimizer.finalize_variable_values(self.network_variables.g)

    def save_own_variables(self, store):
        # the pair's own counter only; Keras saves each sub-optimizer under its name
        for i, variable in enumerate(self.own_variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        for i, variable in enumerate(self.own_variables):
            if str(i) in store:
                variable.assign(store[str(i)])

    def get_config(self):
        return {
            "name": self.name,
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("d_optimizer", "g_optimizer"):
            config[key] = keras.optimizers.deserialize(config[key], custom_objects=custom_objects)
        return cls(**config)


class _NetworkVariables:
    """The variable lists the pair was built with, `d` and `g`.

    A plain object: Keras's optimizer tracks Variables (and lists of them)
    assigned to its attributes as its own slots; these are the networks'.
    """

    def __init__(self, d, g):
        self.d, self.g = d, g


def loss_scaled(optimizer):
    """`optimizer` (an instance or a name) with dynamic loss scaling, for a model that computes in float16.

    A `GANOptimizer` wraps each of its two optimizers (see
    `GANOptimizer.scale_losses`); any other optimizer is wrapped in a
    `keras.optimizers.LossScaleOptimizer`, as `keras.Model.compile` does under
    `mixed_float16`; one already wrapped comes back as it is. The models'
    `compile` calls it.

    Example:

    >>> type(loss_scaled("adam")).__name__
    'LossScaleOptimizer'
    >>> pair = loss_scaled(GANOptimizer("adam", "adam"))
    >>> type(pair.d_optimizer).__name__, type(pair.g_optimizer).__name__
    ('LossScaleOptimizer', 'LossScaleOptimizer')
    """
    if isinstance(optimizer, GANOptimizer):
        optimizer.scale_losses()
        return optimizer
    return _loss_scaled(keras.optimizers.get(optimizer), "loss_scale_optimizer")


def _loss_scaled(optimizer, name=None):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer, name=name or f"loss_scaled_{optimizer.name}")

