"""The only backend-aware code of kgen, chosen once, as Keras chooses its trainer.

Every backend module offers the same names:

- `gradient_step(loss_fn, variables, optimizer)`: calls `loss_fn()`, which
  returns a dict of scalars with a `"loss"` entry, differentiates `"loss"`
  with respect to `variables`, lets `optimizer` apply the gradients to them
  and returns the dict. A GAN makes two such steps per batch.
- `train_step`: a decorator for a model's `train_step(self, data)`. Keras's
  torch and tensorflow trainers call it as it is; Keras's jax trainer calls
  `train_step(self, state, data)` with the training state as values, so on jax
  the decorator runs the step inside a `StatelessScope` over that state and
  returns the new state. `test_step` does the same for `test_step(self, data)`
  (so `model.evaluate` works on every backend).

Models import this package and never ask which backend runs.
"""

import keras

_name = keras.config.backend()

if _name == "torch":
    from kgen.backend.torch import gradient_step, test_step, train_step
elif _name == "jax":
    from kgen.backend.jax import gradient_step, test_step, train_step
elif _name == "tensorflow":
    from kgen.backend.tensorflow import gradient_step, test_step, train_step
else:
    raise ValueError(
        "kgen runs on the torch, jax and tensorflow backends of Keras; set "
        f"KERAS_BACKEND to one of them. Received: backend={_name!r}"
    )

__all__ = ["gradient_step", "test_step", "train_step"]
