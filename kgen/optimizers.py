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

    def build(self, d_variables, g_variables=None):
        """Creates both optimizers' slots for the two networks' variables."""
        if g_variables is None:
            raise ValueError(
                "GANOptimizer.build takes the discriminator's and the generator's "
                "variables as two lists; the GAN models call it in `compile`. "
                f"Received: one list of {len(d_variables)} variables"
            )
        self.d_optimizer.build(list(d_variables))
        self.g_optimizer.build(list(g_variables))
        super().build([])

    @property
    def optimizers(self):
        """`[d_optimizer, g_optimizer]` (Keras's learning-rate callbacks read this)."""
        return [self.d_optimizer, self.g_optimizer]

    @property
    def variables(self):
        return self._variables[:] + self.d_optimizer.variables + self.g_optimizer.variables

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
        for optimizer in self.optimizers:
            optimizer.finalize_variable_values(optimizer._trainable_variables)

    def save_own_variables(self, store):
        # the pair's own counter only; Keras saves each sub-optimizer under its name
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        for i, variable in enumerate(self._variables):
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


def portable(config):
    """An optimizer's serialized config that loads under every backend.

    On torch, Keras records a backend module such as
    `keras.src.backend.torch.optimizers.torch_adam`, and `load_model` under
    jax or tensorflow would import that torch class. The public module
    `keras.optimizers` resolves to the loading backend's own class.

    Example:

    >>> config = portable(keras.optimizers.serialize(keras.optimizers.Adam()))
    >>> config["module"]
    'keras.optimizers'
    """
    if str(config.get("module", "")).startswith("keras.src.backend."):
        config = {**config, "module": "keras.optimizers"}
    return config
