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
- `forward(network, inputs, training=None)`: `network(inputs,
  training=training)`, for a network or one layer. On torch, where every
  step runs eagerly, a plain `keras.Sequential` or functional model goes
  straight through its layers' `call` methods, skipping `Layer.__call__`'s
  per-call work, and so does one float32 layer (a custom layer's `call` can
  pass its own layers); the result is the same. On jax, a `keras.Model`
  called for inference outside a traced step (a sample grid, a sampler's
  steps) runs as one compiled `stateless_call` instead of one dispatch per
  operation.
- `no_grad()`: a context in which the torch backend records no autograd
  graph (a tensor that is only an input to the loss needs none); nothing on
  the other backends, which differentiate only inside `gradient_step`.
- `update_metrics(metrics, values)`: `metric.update_state(values[name])` for
  each metric, returning `{name: metric.result()}`, the end of every
  `train_step`. On torch a `keras.metrics.Mean` given a float32 scalar is
  updated in place (total += value, count += 1), what `update_state` does
  through a dozen Keras operations.
- `lstm(layer, inputs, initial_state=None, training=None)`: `layer(inputs,
  initial_state=initial_state, training=training)` for a Keras `LSTM` layer,
  and `lstm_step(layer, inputs, states)`: one time step, `layer.cell(inputs,
  states)`. On torch, a plain LSTM layer on the CPU runs through torch's fused
  LSTM kernel with the layer's own weights, as Keras already does on CUDA.

- `float32(outputs)`: floating tensors (of a nest) cast to float32. Under a
  mixed-precision policy the networks return float16 or bfloat16; `forward`
  returns float32, so every loss is computed in float32. `gradient_step`
  differentiates `optimizer.scale_loss(loss)`, as Keras's own `train_step`
  does, so a `LossScaleOptimizer` (`compile` under `mixed_float16`) scales the
  loss and unscales the gradients.

- `unsupported_precision(layers)`: a line saying why this backend cannot
  train these layers under their dtype policy, else None. Only torch without
  its fast paths has such a case (a float16 one-filter `Conv2D` on the CPU,
  whose weight gradient torch's CPU kernel cannot take; with them, kgen
  computes it another way); `compile` raises it as a `ValueError`.

- `DATA_PARALLEL`: whether `keras.distribution.DataParallel` trains on this
  backend (jax only in Keras 3.15); `process_index()`: this process's index
  in a multi-host job (0 off jax).

Models import this package and never ask which backend runs.
"""

import keras

_name = keras.config.backend()

if _name == "torch":
    from kgen.backend.torch import (
        DATA_PARALLEL, forward, gradient_step, lstm, lstm_step, no_grad, process_index, test_step, train_step,
        unsupported_precision, update_metrics,
    )
elif _name == "jax":
    from kgen.backend.jax import (
        DATA_PARALLEL, forward, gradient_step, lstm, lstm_step, no_grad, process_index, test_step, train_step,
        unsupported_precision, update_metrics,
    )
elif _name == "tensorflow":
    from kgen.backend.tensorflow import (
        DATA_PARALLEL, forward, gradient_step, lstm, lstm_step, no_grad, process_index, test_step, train_step,
        unsupported_precision, update_metrics,
    )
else:
    raise ValueError(
        "kgen runs on the torch, jax and tensorflow backends of Keras; set "
        f"KERAS_BACKEND to one of them. Received: backend={_name!r}"
    )

from kgen.backend.common import float32  # noqa: E402 - the same on every backend

__all__ = ["DATA_PARALLEL", "float32", "process_index", "forward", "gradient_step", "lstm", "lstm_step", "no_grad", "test_step", "train_step", "unsupported_precision", "update_metrics"]
