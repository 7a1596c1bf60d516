"""Gradient step on the jax backend: `value_and_grad` over stateless variables.

Keras's jax trainer passes the training state as values:
`train_step(self, state, data)` with `state = (trainable, non_trainable,
optimizer, metrics)` variable values, and expects the new state back. The
`train_step` decorator maps those values onto the model's variables in a
`StatelessScope`, runs the model's ordinary `train_step(self, data)`, and reads
the new values back. Inside it, `gradient_step` differentiates a loss with
respect to some variables by re-running the loss in an inner scope where those
variables are the traced arguments of `jax.value_and_grad`.

Only `model.optimizer.variables` travel in the state, so a model with two
optimizers must expose both through that one `optimizer` (see
`kgen.optimizers`), or the second optimizer's state is lost between steps.
"""

import contextlib
import functools
import threading
import weakref

import jax
import keras
from keras import StatelessScope

from kgen.backend import common
from kgen.backend.common import lstm, lstm_step, no_grad, unsupported_precision, update_metrics  # noqa: F401

DATA_PARALLEL = True  # keras.distribution.DataParallel runs on jax


def process_index():
    """This process's index in a multi-host job (`jax.process_index()`; 0 on one host)."""
    return jax.process_index()


# a network's compiled inference call, per network and `training` flag (see `forward`)
_compiled = weakref.WeakKeyDictionary()


def forward(network, inputs, training=None):
    """`network(inputs, training=training)` with float32 outputs; an eager inference call runs compiled.

    Inside a traced step (Keras's jitted `train_step`, `test_step`,
    `predict_step`) this is the plain call. Called eagerly (a sample grid at
    the end of an epoch, `generate`, a flow's sampler steps), jax would
    dispatch, and on first use compile, every operation of the network
    separately; here a `keras.Model` called for inference (`training` None
    or False) runs instead as one `jax.jit` of its public `stateless_call`,
    compiled once per input shape, with the variables' current values (a
    `StatelessScope`'s, inside one). The outputs are the same.

    Example:

    >>> forward(model.generator, z, training=False)  # (n, 28, 28, 1), float32
    """
    if training or not isinstance(network, keras.Model) or _symbolic(inputs):
        return common.forward(network, inputs, training=training)
    calls = _compiled.setdefault(network, {})
    if training not in calls:
        ref = weakref.ref(network)  # the cache must not keep the network alive

        def call(trainable, non_trainable, inputs):
            outputs, _ = ref().stateless_call(trainable, non_trainable, inputs, training=training)
            return common.float32(outputs)

        calls[training] = jax.jit(call)
    trainable = [v.value for v in network.trainable_variables]
    non_trainable = [v.value for v in network.non_trainable_variables]
    return calls[training](trainable, non_trainable, inputs)


def _symbolic(inputs):
    """Whether any input is a jax tracer or a Keras symbolic tensor: a call being traced, not run."""
    return any(isinstance(x, (jax.core.Tracer, keras.KerasTensor)) for x in jax.tree_util.tree_leaves(inputs))


def gradient_step(loss_fn, variables, optimizer):
    """Takes one optimizer step on `variables` to lower `loss_fn()["loss"]`.

    As Keras's own jax `train_step`: `value_and_grad` differentiates
    `optimizer.scale_loss(loss)` (multiplied by the loss scale of a
    `LossScaleOptimizer`, what `compile` wraps the optimizer in under
    `mixed_float16`), and `optimizer.apply` unscales the gradients.
    """
    outer = _training_scope()
    ids = [id(v) for v in variables]
    values = [_current(outer, v) for v in variables]

    def compute(trainable_values):
        with StatelessScope() as inner:
            inner.state_mapping = dict(outer.state_mapping)
            inner.state_mapping.update(zip(ids, trainable_values))
            out = loss_fn()
        updates = {k: v for k, v in inner.state_mapping.items() if k not in ids}
        return optimizer.scale_loss(out["loss"]), (out, updates)

    (_, (out, updates)), grads = jax.value_and_grad(compute, has_aux=True)(values)
    outer.state_mapping.update(updates)  # e.g. seed generator, batch norm stats
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # its `apply` assigns its loss scale inside the branches of `ops.cond`, which would leak
        # jax tracers out of `lax.cond`; `stateless_apply` returns the new values instead (what
        # Keras's own jax trainer calls for every optimizer)
        slots = optimizer.variables
        new_values, new_slots = optimizer.stateless_apply([_current(outer, v) for v in slots], grads, values)
        outer.state_mapping.update(zip(ids, new_values))
        outer.state_mapping.update(zip([id(v) for v in slots], new_slots))
    else:
        optimizer.apply(grads, variables)  # recorded in the outer scope
    return out


# the StatelessScopes that `train_step` opened, innermost last (per thread). kgen keeps its own
# record, public API only, rather than asking Keras for the current scope (its
# `get_stateless_scope` is private, in keras.src.backend.common.stateless_scope)
_scopes = threading.local()


@contextlib.contextmanager
def _scope(mapping):
    """A `StatelessScope` over `mapping`, recorded as the training scope while it is open."""
    stack = _scopes.__dict__.setdefault("stack", [])
    with StatelessScope(state_mapping=mapping) as scope:
        stack.append(scope)
        try:
            yield scope
        finally:
            stack.pop()


def _training_scope():
    """The innermost scope `train_step` opened: where the variables' current values are."""
    stack = getattr(_scopes, "stack", None)
    if not stack:
        raise RuntimeError(
            "On jax, gradient_step runs inside a model's train_step decorated with "
            "kgen.backend.train_step (it takes the variables' values from that step's scope). "
            "Received: no training scope"
        )
    return stack[-1]


def _current(scope, variable):
    value = scope.get_current_value(variable)
    return variable.value if value is None else value


def train_step(fn):
    """Runs a stateful `train_step(self, data)` under Keras's stateless jax trainer."""

    @functools.wraps(fn)
    def stateless_train_step(self, state, data):
        groups = (
            self.trainable_variables,
            self.non_trainable_variables,
            self.optimizer.variables,
            self.metrics_variables,
        )
        mapping = [
            (v, value) for vs, values in zip(groups, state) for v, value in zip(vs, values)
        ]
        with _scope(mapping) as scope:
            logs = fn(self, data)
        new_state = tuple(
            [_current(scope, v) for v in vs] for vs in groups
        )
        return logs, new_state

    return stateless_train_step


def test_step(fn):
    """Runs a stateful `test_step(self, data)` under Keras's stateless jax evaluator."""

    @functools.wraps(fn)
    def stateless_test_step(self, state, data):
        groups = (self.trainable_variables, self.non_trainable_variables, self.metrics_variables)
        mapping = [
            (v, value) for vs, values in zip(groups, state) for v, value in zip(vs, values)
        ]
        with StatelessScope(state_mapping=mapping) as scope:
            logs = fn(self, data)
        return logs, tuple([_current(scope, v) for v in vs] for vs in groups)

    return stateless_test_step
