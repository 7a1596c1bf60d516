"""Gradient step and network calls on the torch backend, without Keras's per-call overhead.

On torch every step runs eagerly, so Python work per layer and per operation
is paid at every step (on jax and tensorflow it is paid once, when the step is
traced). These make kgen's step faster than Keras's own torch step, with the
same results (what each saves, measured: docs/results/2026-performance.md;
the method: docs/performance.md):

- `forward` runs a built `keras.Sequential` of float32 layers straight through
  its layers' `call` methods. `network(x)` goes through `Layer.__call__` of the
  network and of every layer in it (argument binding, name scopes, autocast,
  input checks, mask bookkeeping) and Keras's graph walk, a fixed cost per
  layer that is a large share of a small network's forward pass on a CPU. The
  layers' own `call` are what `__call__` runs in the end, so the outputs are
  the same tensors. A plain `Dense` layer's `call` is three torch operations
  (matmul, add, activation) behind Keras's operation dispatch (conversions,
  dtype checks and casts); `forward` runs the three directly, and a plain
  `BatchNormalization` as torch's fused batch-norm kernel with Keras's
  statistics (equal to float32 rounding; see `_batch_norm`), and a
  `GroupNormalization` as torch's group-norm kernel (see `_group_norm`). One
  float32 layer passed alone takes the same path (see `_plain_layer`). A plain
  channels-last `Conv2D` on the CPU skips Keras's two layout copies around
  torch's convolution (NHWC to NCHW memory and back to channels-last, which
  is where it started: the same bits) and `Conv2DTranspose` with an even
  crop (kgen's 4x4, stride-2 layers) is one padded torch transposed
  convolution on the channels-last memory, no copy and no crop (equal to
  float32 rounding; see `_conv`). With both, the conv GAN's generator's
  forward and backward pass costs less CPU time than the same `torch.nn`
  layers'.
- `gradient_step`'s forward pass computes a float16, one-filter `Conv2D` on
  the CPU on NCHW memory (see `_keras_conv`): torch's float16 CPU kernel
  cannot take its weight gradient on the channels-last memory Keras gives
  it, so under `mixed_float16` every conv generator and decoder failed.
- `no_grad` is `torch.no_grad`: the GAN's generated images for the
  discriminator's step need no autograd graph.
- `update_metrics` adds a float32 scalar to a `keras.metrics.Mean` in place
  (total += value, count += 1) and returns total / count: the same numbers as
  `update_state` and `result`, which go through a dozen Keras operations per
  metric, a noticeable share of a small model's step.
- The gradients are taken with `torch.autograd.grad` with respect to
  `variables` only. `loss.backward()` also computes the gradients of every
  other weight the loss depends on: in a GAN's generator step, all of the
  discriminator's weight gradients, which are thrown away.
- A plain Keras `Adam` on CPU is applied by torch's fused Adam kernel, one
  call for all variables, with Keras's update (see `_apply_adam`). Keras's
  torch Adam runs each of its ~10 operations over all variables in turn
  (`torch._foreach_*`), each pass a trip through memory and a new tensor; the
  fused kernel reads and writes each weight and moment once, an order of
  magnitude faster. Every other optimizer, an Adam with clipping, weight
  decay, EMA, gradient accumulation or AMSGrad, and any GPU run go through
  `optimizer.apply`.
- `lstm` runs a plain Keras `LSTM` layer on the CPU through torch's fused LSTM
  kernel (`torch._VF.lstm`, what `torch.nn.LSTM` calls), with the layer's own
  weights: the call Keras's torch backend already makes on CUDA (cuDNN), where
  on the CPU it steps the cell in Python, a dozen operations per time step
  (see `_fused_lstm`). `lstm_step` is one time step of the same, through
  torch's fused cell (`torch._VF.lstm_cell`).
"""

import math
import warnings
import weakref

import keras
import torch

# The fast paths use Keras's private API: the modules imported below and attributes of Keras's
# layers and optimizers (`layer._kernel`, `layer._reduction_axes`, `layer._call_has_training_arg`,
# Adam's `_momentums`, `_velocities`, `_get_variable_index`), as they are in the Keras versions
# tested. Guarded: on another Keras minor version, or where one of these modules has moved, every
# fast path is off, a warning says so, and kgen runs Keras's public calls (`network(x)`,
# `optimizer.apply`, `layer(x)`): the same results at Keras's speed.
TESTED_KERAS = ("3.15",)
try:
    if ".".join(keras.__version__.split(".")[:2]) not in TESTED_KERAS:
        raise ImportError(f"they were checked on Keras {', '.join(TESTED_KERAS)} only")
    from keras.src.backend.common import global_state
    from keras.src.backend.common.stateless_scope import in_stateless_scope
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope
    from keras.src.backend.torch import nn as torch_nn
    from keras.src.backend.torch.optimizers.torch_adam import Adam as TorchAdam
    from keras.src.models.functional import Functional  # functional models, whose graph `_graph` walks

    FAST_PATHS = True
except (ImportError, AttributeError) as error:  # a Keras that changed: its public calls
    warnings.warn(
        f"kgen's torch fast paths are off ({error}); kgen runs Keras's own calls instead, slower. "
        f"Received: keras=={keras.__version__}",
        stacklevel=2,
    )
    FAST_PATHS = False
    global_state = in_stateless_scope = in_symbolic_scope = torch_nn = TorchAdam = Functional = None

from torch.optim.adam import adam as torch_adam  # torch's public functional Adam; fused=True: torch._fused_adam_

from kgen.backend import common
from kgen.backend.common import DATA_PARALLEL, process_index  # noqa: F401

no_grad = torch.no_grad

# Keras versions whose LSTM layer the fused path was checked against (the
# layer's weight layout, gate order and call); any other takes Keras's call.
FUSED_LSTM_KERAS = ("3.15",)


def forward(network, inputs, training=None):
    """`network(inputs, training=training)`, straight through the layers of a plain network.

    Takes the direct path when `network` is a built `keras.Sequential` (or a
    functional `keras.Model`, such as a conditional GAN's networks, whose
    graph is walked as Keras walks it, see `_graph`) whose layers compute in
    float32 with no masks or activity regularizers, and `inputs` are tensors,
    the float ones float32; anything else goes through
    `network(inputs, training=training)`. `training=None` means what it means
    to Keras: the enclosing call's value, else each layer's default.
    """
    layer = _plain_layer(network, inputs)
    if not (layer or _direct(network, inputs)):
        return common.forward(network, inputs, training=training)
    if training is None:
        context = global_state.get_global_attribute("current_call_ctx")
        training = context.training if context is not None else None
    if layer:
        return _call(network, inputs, training)
    if type(network) is not keras.Sequential:
        return _graph(network, inputs, training)
    x = inputs
    for layer in network.layers:
        x = _call(layer, x, training)
    return x


def _call(layer, x, training):
    """`layer(x, training=training)` through the layer's own `call` (or kgen's same torch operations)."""
    if isinstance(x, torch.Tensor):
        if type(layer) is keras.layers.Dense and layer.quantization_mode is None and not layer.lora_enabled:
            return _dense(layer, x)
        if _plain_batch_norm(layer):
            return _batch_norm(layer, x, training)
        if _plain_conv(layer, x):
            return _conv(layer, x)
        if _plain_group_norm(layer, x):
            return _group_norm(layer, x)
    if layer._call_has_training_arg:
        return layer.call(x, training=training)
    return layer.call(x)


def _graph(network, inputs, training):
    """A functional model's outputs, its graph walked by Keras's own walk with each layer's `call`.

    `Functional.call` is `_run_through_graph` (Keras's walk over the graph's
    nodes by depth) with each layer's `__call__`; here the same walk calls
    `_call`. `_run_through_graph` is private Keras API: `_direct` takes this
    path only for a `Functional` that has it, with the fast paths on (a Keras
    version they were checked with, `TESTED_KERAS`); any other model is
    called as Keras calls it.
    """
    return network._run_through_graph(inputs, operation_fn=lambda layer: _node(layer, training))


def _node(layer, training):
    """The call of `layer` at one node of a graph: `_call` on its input (the node's `mask=None` dropped)."""

    def call(x, **kwargs):
        recorded = kwargs.pop("training", None)  # as Keras's walk: the call's value, else the node's own
        if kwargs.pop("mask", None) is not None or kwargs:
            if layer._call_has_training_arg:  # not a case of kgen's networks: Keras's own call
                kwargs["training"] = training if training is not None else recorded
            return layer(x, **kwargs)
        return _call(layer, x, training if training is not None else recorded)

    return call


def _dense(layer, x):
    """`Dense.call`'s torch operations (matmul, add, activation) without Keras's per-call dispatch."""
    x = torch.matmul(x, layer._kernel.value)
    if layer.bias is not None:
        x = torch.add(x, layer.bias.value)
    return layer.activation(x)


def _plain_conv(layer, x):
    """Whether `layer` is a channels-last, ungrouped, undilated 2D `Conv2D` or `Conv2DTranspose` on a 4D CPU `x`."""
    kind = type(layer)
    if kind is keras.layers.Conv2D:
        if layer.lora_enabled or layer.groups != 1:
            return False
    elif kind is not keras.layers.Conv2DTranspose or layer.output_padding is not None:
        return False
    return (
        layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding in ("same", "valid")
        and x.dim() == 4
        and x.device.type == "cpu"  # the same bits were checked on the CPU's kernels
    )


def _conv(layer, x):
    """`Conv2D.call` / `Conv2DTranspose.call` on NHWC `x` without Keras's two layout copies.

    Keras's torch `conv` permutes the NHWC input to NCHW, copies it to NCHW
    memory (`contiguous()`), then copies it back to channels-last memory
    (`contiguous(memory_format=torch.channels_last)`), which is the memory of
    the NHWC input it started from; autograd makes both copies again
    backwards. Here `Conv2D` gets the NCHW view of the NHWC memory
    (channels-last already; a copy only if `x` is not laid out so), so torch's
    convolution reads the same memory with the same strides as under Keras
    and computes the same bits, forwards and backwards. `Conv2DTranspose` is
    torch's transposed convolution with `padding` equal to Keras's crop when
    the crop is even, else Keras's NCHW copy, unpadded transposed
    convolution and crop (bit for bit). The kernel and padding are
    Keras's (its own `_apply_same_padding` and transposed-convolution crops),
    then Keras's bias add and activation; the Keras operation dispatch around
    each torch call is what else is saved.
    """
    inputs = x.permute(0, 3, 1, 2)  # NCHW view; channels-last memory if x is NHWC-contiguous
    strides = tuple(layer.strides)
    if type(layer) is keras.layers.Conv2D:
        if not inputs.is_contiguous(memory_format=torch.channels_last):
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        kernel = layer._kernel.value.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        if layer.padding == "same":
            inputs, padding = torch_nn._apply_same_padding(inputs, kernel.shape[2:], strides, "channels_last", "conv")
        else:
            padding = 0
        outputs = torch.nn.functional.conv2d(inputs, kernel, stride=strides, padding=padding)
    else:
        kernel = layer.kernel.value
        crops = torch_nn.compute_conv_transpose_output_crops_for_torch(
            input_shape=x.shape,
            kernel_shape=kernel.shape,
            strides=strides,
            padding=layer.padding,
            output_padding=None,
            dilation_rate=layer.dilation_rate,
        )
        if any(left < 0 or right < 0 for left, right in crops):
            return layer.call(x)  # Keras zero-pads these; not a case of kgen's networks
        if all(left == right for left, right in crops):
            # an even crop is torch's own `padding`: one call on the channels-last memory, no copy
            # and no crop (the same sums as Keras's, in another order: equal to float32 rounding)
            padding = tuple(left for left, _ in crops)
            outputs = torch.nn.functional.conv_transpose2d(inputs, kernel.permute(3, 2, 0, 1), stride=strides, padding=padding)
        else:
            # Keras's NCHW copy, unpadded transposed convolution and crop
            outputs = torch.nn.functional.conv_transpose2d(inputs.contiguous(), kernel.permute(3, 2, 0, 1), stride=strides)
            h, w = outputs.shape[2:]
            outputs = outputs[:, :, crops[0][0] : h - crops[0][1], crops[1][0] : w - crops[1][1]]
    outputs = outputs.permute(0, 2, 3, 1)  # NHWC
    if layer.use_bias:
        outputs = torch.add(outputs, layer.bias.value.reshape(1, 1, 1, -1))
    return outputs if layer.activation is None else layer.activation(outputs)


def _plain_group_norm(layer, x):
    """Whether `layer` is a `GroupNormalization` over the last axis of a 4D `x`."""
    return type(layer) is keras.layers.GroupNormalization and x.dim() == 4 and layer.axis in (-1, 3)


def _group_norm(layer, x):
    """`GroupNormalization.call` on NHWC `x` as torch's group-norm kernel on its NCHW view.

    Keras's call is a dozen operations (reshape into groups, moments, rsqrt,
    scale and shift); torch's kernel reads the channels-last memory once and
    normalizes with the same statistics and epsilon (equal to float32
    rounding).
    """
    outputs = torch.nn.functional.group_norm(
        x.permute(0, 3, 1, 2),  # NCHW view of the NHWC memory
        layer.groups,
        layer.gamma.value if layer.scale else None,
        layer.beta.value if layer.center else None,
        layer.epsilon,
    )
    return outputs.permute(0, 2, 3, 1)


def _plain_batch_norm(layer):
    """Whether `layer` is a `BatchNormalization` without renorm, sync or missing scale/center."""
    return (
        type(layer) is keras.layers.BatchNormalization
        and layer.scale
        and layer.center
        and not layer.renorm
        and not layer.synchronized
    )


def _batch_norm(layer, x, training):
    """`BatchNormalization.call` as torch's fused batch-norm kernel, with Keras's statistics.

    Keras's torch `BatchNormalization` is a dozen operations (its `moments`,
    the normalization's subtract, multiply and add), each with an autograd
    node; `torch.nn.functional.batch_norm` is one kernel forwards and one
    backwards, on the channels-first view of the channels-last memory (no
    copy). The math is Keras's: the batch's mean and biased variance normalize
    it, and the moving statistics move by Keras's rule (moving = moving *
    momentum + batch * (1 - momentum), the biased variance; torch's kernel
    reports the unbiased one, rescaled here). Equal to Keras to float32
    rounding, not bit for bit (another order of the same sums).
    """
    if layer.axis not in (-1, x.ndim - 1):
        return layer.call(x, training=training)  # not a case of kgen's networks
    channels = x.permute(0, x.ndim - 1, *range(1, x.ndim - 1)) if x.ndim > 2 else x  # (batch, C, ...) view
    gamma, beta = layer.gamma.value, layer.beta.value
    if training and layer.trainable:
        batch_mean = torch.zeros_like(layer.moving_mean.value)
        batch_var = torch.zeros_like(layer.moving_variance.value)
        # momentum 1: the kernel writes the batch's mean and unbiased variance into the two buffers
        out = torch.nn.functional.batch_norm(channels, batch_mean, batch_var, gamma, beta, True, 1.0, layer.epsilon)
        n = channels.numel() // channels.shape[1]
        momentum = layer.momentum
        with torch.no_grad():
            variance = batch_var * ((n - 1) / n)  # the biased variance Keras keeps
            layer.moving_mean.value.copy_(layer.moving_mean.value * momentum + batch_mean * (1.0 - momentum))
            layer.moving_variance.value.copy_(layer.moving_variance.value * momentum + variance * (1.0 - momentum))
    else:
        out = torch.nn.functional.batch_norm(
            channels, layer.moving_mean.value, layer.moving_variance.value, gamma, beta, False, 0.0, layer.epsilon
        )
    return out.permute(0, *range(2, x.ndim), 1) if x.ndim > 2 else out  # back to channels last


def update_metrics(metrics, values):
    """`metric.update_state(values[metric.name])` for each of `metrics`; returns their results by name."""
    results = {}
    for metric in metrics:
        value = values[metric.name]
        if _plain_mean(metric, value):
            total, count = metric.total.value, metric.count.value
            total.add_(value)
            count.add_(1)
            results[metric.name] = total / count
        else:
            results.update(common.update_metrics([metric], values))
    return results


def _plain_mean(metric, value):
    """Whether `metric` is a float32 `keras.metrics.Mean` and `value` a float32 scalar tensor."""
    return (
        type(metric) is keras.metrics.Mean
        and not torch.compiler.is_compiling()  # in-place updates of variables: Keras's path when compiled
        and metric.dtype == "float32"
        and isinstance(value, torch.Tensor)
        and value.dtype == torch.float32
        and value.dim() == 0
        and not value.requires_grad
    )


def _direct(network, inputs):
    """Whether `forward` may skip `Layer.__call__` for `network` on `inputs`."""
    if not FAST_PATHS:
        return False
    if not network.built:
        return False
    if type(network) is keras.Sequential:
        tensors = [inputs]
    elif _functional(network):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(tensors) != len(network.inputs):
            return False
    else:
        return False
    return _eager_inputs(tensors) and all(_plain_float32(layer) and _maskless(layer) for layer in network.layers)


def _eager_inputs(tensors):
    """Whether `tensors` are unmasked torch tensors (float32 where floating) outside any Keras trace."""
    for x in tensors:
        if not isinstance(x, torch.Tensor) or hasattr(x, "_keras_mask"):
            return False
        if x.is_floating_point() and x.dtype != torch.float32:
            return False
    # under `jit_compile=True`, torch.compile traces Keras's own calls
    return not (in_symbolic_scope() or in_stateless_scope() or torch.compiler.is_compiling())


def _plain_float32(layer):
    """Whether `layer` is built, computes in float32 and has no activity regularizer."""
    return layer.built and layer.dtype_policy.name == "float32" and layer.activity_regularizer is None


def _plain_layer(layer, inputs):
    """Whether `forward` may call `layer`, one built float32 Keras layer (not a network), as `_call` does.

    A custom layer's `call` passes its own layers to `forward`, as kgen's
    flow U-Net blocks do; what `_direct` asks of a network's layers is asked
    of this one.
    """
    return (
        FAST_PATHS
        and isinstance(layer, keras.layers.Layer)
        and not isinstance(layer, keras.Model)
        and isinstance(inputs, torch.Tensor)
        and inputs.is_floating_point()
        and _eager_inputs([inputs])
        and _plain_float32(layer)
    )


def _functional(network):
    """Whether `network` is a functional `keras.Model` whose graph `_graph` can walk."""
    return (
        type(network) is Functional  # FAST_PATHS: a Keras version it was checked with
        and hasattr(network, "_run_through_graph")
    )


def _maskless(layer):
    """Whether `layer` makes no mask of its own (inputs without masks then have none downstream)."""
    if type(layer).compute_mask is keras.layers.Layer.compute_mask:
        return True
    if type(layer) is keras.layers.Embedding:
        return not layer.mask_zero
    return type(layer) in (keras.layers.Concatenate, keras.layers.Add, keras.layers.Dot)  # pass input masks only


def _keras_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Keras's torch `conv` (`keras.ops.conv`), with a one-filter float16 2D convolution on the CPU that trains.

    torch's CPU kernel for float16 convolutions (`slow_conv2d`) cannot take
    the weight gradient of a convolution with one output channel on
    channels-last input ("slow_conv2d: grad_weight must be contiguous"),
    and Keras's `conv` always lays a channels-last input out so: under
    `mixed_float16` every network ending in a `Conv2D(1, ...)` (kgen's conv
    generators and decoders, the usual image head) failed its first backward
    pass. That case alone is computed here on the input in NCHW memory
    (Keras's permute and a plain `contiguous()`), with Keras's kernel
    transpose and "same" padding, then Keras's permute back: the same
    convolution, equal to float16 rounding (another memory layout, another
    order of the sums). Every other call is Keras's own. Swapped in for
    Keras's during `gradient_step`'s forward pass only (see `_half_conv`).
    """
    if not _one_filter_half(inputs, kernel, data_format):
        return _KERAS_CONV(inputs, kernel, strides, padding, data_format, dilation_rate)
    strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
    dilation = (dilation_rate, dilation_rate) if isinstance(dilation_rate, int) else tuple(dilation_rate)
    x = inputs.permute(0, 3, 1, 2).contiguous()  # NCHW memory, not channels-last
    kernel = keras.ops.convert_to_tensor(kernel).permute(3, 2, 0, 1)
    if padding == "same":
        x, padding = torch_nn._apply_same_padding(x, kernel.shape[2:], strides, "channels_last", "conv", dilation)
    else:
        padding = 0
    outputs = torch.nn.functional.conv2d(x, kernel, stride=strides, padding=padding, dilation=dilation)
    return outputs.permute(0, 2, 3, 1)


def _one_filter_half(inputs, kernel, data_format):
    """Whether Keras's `conv` of `inputs` with `kernel` is the float16, one-filter, channels-last case torch fails."""
    return (
        isinstance(inputs, torch.Tensor)
        and inputs.dim() == 4
        and len(kernel.shape) == 4  # a tensor, or a Keras variable (autocast to float16 inside the layer's call)
        and kernel.shape[-1] == 1
        and inputs.dtype == torch.float16
        and inputs.device.type == "cpu"
        and (data_format or keras.config.image_data_format()) == "channels_last"
        and torch.is_grad_enabled()
    )


_KERAS_CONV = torch_nn.conv if FAST_PATHS else None


class _half_conv:
    """A context in which `keras.ops.conv` is `_keras_conv`; Keras's own again on leaving it.

    Private API: the module `keras.src.backend.torch.nn` and its `conv`,
    which `keras.ops.conv` (every `Conv` layer) calls at each call. Only with
    the fast paths on (a Keras version this was checked with); otherwise
    nothing is swapped, and `unsupported_precision` makes `compile` refuse
    a float16 one-filter convolution on the CPU, naming `mixed_bfloat16`.
    """

    def __enter__(self):
        if FAST_PATHS:
            torch_nn.conv = _keras_conv

    def __exit__(self, *exc):
        if FAST_PATHS:
            torch_nn.conv = _KERAS_CONV


def unsupported_precision(layers):
    """A line saying why torch cannot train these layers under their dtype policy, or None when it can.

    Only without the fast paths (`_half_conv`): a `Conv2D` with one filter
    that computes in float16 on the CPU, whose weight gradient torch's CPU
    kernel cannot take.
    """
    if FAST_PATHS or torch.cuda.is_available():
        return None
    for layer in layers:
        if (
            isinstance(layer, keras.layers.Conv2D)
            and layer.filters == 1
            and layer.dtype_policy.compute_dtype == "float16"
        ):
            return (
                f"torch's CPU kernel cannot train a float16 convolution with one filter (layer {layer.name!r}): "
                "use the 'mixed_bfloat16' policy on the CPU, e.g. keras.config.set_dtype_policy('mixed_bfloat16'). "
                "Received: dtype_policy='mixed_float16'"
            )
    return None


def gradient_step(loss_fn, variables, optimizer):
    """Takes one optimizer step on `variables` to lower `loss_fn()["loss"]`.

    The loss is differentiated as `optimizer.scale_loss(loss)`, as Keras's own
    torch `train_step` does: a `keras.optimizers.LossScaleOptimizer` (what
    `compile` wraps the optimizer in under `mixed_float16`) multiplies it by its
    loss scale and divides the gradients by the same in `apply`; any other
    optimizer returns it unchanged (or scaled by its `loss_scale_factor`, which
    its `apply` undoes).
    """
    with _half_conv():  # a float16 one-filter convolution on the CPU that torch can differentiate
        out = loss_fn()
    params = [v.value for v in variables]
    grads = torch.autograd.grad(optimizer.scale_loss(out["loss"]), params, allow_unused=True)
    with torch.no_grad():
        if _plain_adam(optimizer, variables, grads):
            _apply_adam(optimizer, grads, variables)
        else:
            optimizer.apply(list(grads), variables)
    return {k: v.detach() for k, v in out.items()}


def _plain_adam(optimizer, variables, grads):
    """Whether `optimizer` is a built Keras Adam on CPU with nothing to do but the update."""
    return (
        FAST_PATHS
        and type(optimizer) is TorchAdam
        and not torch.compiler.is_compiling()  # torch.compile cannot trace the fused kernel's in-place update
        and optimizer.built
        and not optimizer.amsgrad
        and optimizer.weight_decay is None
        and optimizer.clipnorm is None
        and optimizer.clipvalue is None
        and optimizer.global_clipnorm is None
        and not optimizer.use_ema
        and not optimizer.gradient_accumulation_steps
        and optimizer.loss_scale_factor is None
        and all(g is not None for g in grads)
        and all(v.value.device.type == "cpu" and v.constraint is None for v in variables)
    )


# per optimizer, {ids of its variables: the per-variable step counts torch's Adam takes}
_STEP_COUNTS = weakref.WeakKeyDictionary()


def _step_counts(optimizer, variables, step):
    """The step counts (t - 1) torch's functional Adam takes, one tensor per variable.

    torch adds 1 to each before its update, so the tensors of the last call
    already hold t - 1 when no other update came between; they are kept
    (making a dozen scalar tensors costs time at every step), and made anew
    otherwise.
    """
    counts = _STEP_COUNTS.setdefault(optimizer, {})
    key = tuple(id(v) for v in variables)
    steps = counts.get(key)
    if steps is None or float(steps[0]) != step - 1:
        steps = counts[key] = [torch.tensor(float(step - 1)) for _ in variables]
    return steps


def _apply_adam(optimizer, grads, variables):
    """Keras's Adam update of `variables` in one call of torch's fused CPU kernel.

    Through torch's public functional Adam, `torch.optim.adam.adam(...,
    fused=True)`, which counts the steps and calls the fused kernel
    (`torch._fused_adam_`). Keras's Adam takes
    var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    ("epsilon hat" of the Adam paper); torch's takes
    var -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps'), the same
    update when eps' = eps / sqrt(1 - b2^t). The moments are Keras's (private:
    Adam's `_momentums`, `_velocities` and `_get_variable_index`), updated in
    place; only the rounding of the last bits can differ from
    `optimizer.apply`.
    """
    step = int(optimizer.iterations.value) + 1  # t; reading it is free on a CPU
    lr = float(optimizer.learning_rate)  # the current value (of a schedule too)
    indices = [optimizer._get_variable_index(v) for v in variables]
    steps = _step_counts(optimizer, variables, step)
    torch_adam(
        [v.value for v in variables],
        [g.contiguous() for g in grads],
        [optimizer._momentums[i].value for i in indices],
        [optimizer._velocities[i].value for i in indices],
        [],
        steps,
        fused=True,
        amsgrad=False,
        lr=lr,
        beta1=optimizer.beta_1,
        beta2=optimizer.beta_2,
        weight_decay=0.0,
        eps=optimizer.epsilon / math.sqrt(1 - optimizer.beta_2**step),
        maximize=False,
    )
    optimizer.iterations.assign_add(1)


def train_step(fn):
    """Keras's torch trainer calls `train_step(self, data)` as written."""
    return fn


def test_step(fn):
    """Keras's torch evaluator calls `test_step(self, data)` as written."""
    return fn


def lstm(layer, inputs, initial_state=None, training=None):
    """`layer(inputs, initial_state=initial_state, training=training)` for a Keras `LSTM` layer.

    A plain LSTM layer on the CPU (tanh and sigmoid activations, a bias, no
    dropout of its own, no mask, forwards, not stateful or unrolled, float32)
    runs as one call of torch's fused LSTM kernel with the layer's own weights
    (see `_fused_lstm`); anything else goes through the layer's call. The
    result has the layer's form: the outputs (all steps with
    `return_sequences`, else the last), then the final `h` and `c` with
    `return_state`.
    """
    if not _fused_lstm_ok(layer, inputs, initial_state, training):
        return layer(inputs, initial_state=initial_state, training=training)
    outputs, h, c = _fused_lstm(layer.cell, inputs, initial_state)
    output = outputs if layer.return_sequences else h
    return (output, h, c) if layer.return_state else output


def lstm_step(layer, inputs, states):
    """One time step of the `LSTM` `layer`: `layer.cell(inputs, states)`, i.e. `(h, [h, c])`.

    Where `lstm` would take the fused kernel, this takes torch's fused cell
    (`torch._VF.lstm_cell`, what `torch.nn.LSTMCell` calls) with the same
    weights; else the cell's call. (`torch._VF.lstm` over a one-step sequence
    would do too, but on the CPU it sets up a oneDNN primitive per call: ten
    times the cell's time for one image.)
    """
    if not _fused_input(inputs, 2) or not _fused_lstm_ok(layer, inputs[:, None], states, False) or states is None:
        return layer.cell(inputs, states)
    cell = layer.cell
    h, c = torch._VF.lstm_cell(
        inputs, (states[0], states[1]), cell.kernel.value.t(), cell.recurrent_kernel.value.t(), cell.bias.value, None
    )
    return h, [h, c]


def _fused_lstm(cell, inputs, initial_state):
    """The LSTM `cell`'s recurrence over `inputs` (batch, steps, features) in one `torch._VF.lstm` call.

    Keras's LSTM and torch's compute the same cell: gates i, f, c (torch's g),
    o in that order along the 4 * units columns, c' = sig(f) c + sig(i) tanh(g),
    h' = sig(o) tanh(c'). Keras's kernels are (features, 4 units) and
    (units, 4 units), torch's their transposes; Keras has one bias, torch two
    that are added (the second is zeros here). This is the weight layout
    Keras's own torch backend passes to the same kernel on CUDA
    (`keras.src.backend.torch.rnn.prepare_lstm_params`). The transposes are
    autograd operations on the variables' tensors, so the gradients reach the
    layer's weights. Only the order of the float32 additions differs from the
    Keras cell's. Returns the outputs (batch, steps, units) and the final h and
    c (batch, units).
    """
    units = cell.units
    batch = inputs.shape[0]
    if initial_state is None:
        h0 = c0 = torch.zeros((1, batch, units), dtype=inputs.dtype, device=inputs.device)
    else:
        h0, c0 = initial_state[0][None], initial_state[1][None]
    bias = cell.bias.value
    # contiguous once here: the oneDNN kernel would copy a transposed view more than once
    kernel, recurrent_kernel = cell.kernel.value.t().contiguous(), cell.recurrent_kernel.value.t().contiguous()
    params = [kernel, recurrent_kernel, bias, torch.zeros_like(bias)]
    outputs, h, c = torch._VF.lstm(
        inputs,
        (h0, c0),
        params,
        True,  # has_biases
        1,  # num_layers
        0.0,  # dropout
        torch.is_grad_enabled(),  # train (only matters to the dropout between layers)
        False,  # bidirectional
        True,  # batch_first
    )
    return outputs, h[0], c[0]


def _fused_lstm_ok(layer, inputs, initial_state, training):
    """Whether `lstm` may run `layer` on `inputs` through the fused kernel."""
    if type(layer) is not keras.layers.LSTM or not layer.built or type(layer.cell) is not keras.layers.LSTMCell:
        return False
    if not FAST_PATHS or ".".join(keras.__version__.split(".")[:2]) not in FUSED_LSTM_KERAS:
        return False
    cell = layer.cell
    if (
        layer.go_backwards
        or layer.unroll
        or layer.stateful
        or layer.use_cudnn is False
        or layer.activity_regularizer is not None
        or layer.dtype_policy.name != "float32"
        or cell.activation is not keras.activations.tanh
        or cell.recurrent_activation is not keras.activations.sigmoid
        or not cell.use_bias
        or cell.recurrent_dropout
        or (cell.dropout and training is not False)  # None: maybe an enclosing training call
    ):
        return False
    if not _fused_input(inputs, 3) or inputs.shape[-1] != cell.kernel.shape[0] or inputs.shape[1] == 0:
        return False
    if initial_state is not None:
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
            return False
        if not all(_fused_input(s, 2) and tuple(s.shape) == (inputs.shape[0], cell.units) for s in initial_state):
            return False
    if in_symbolic_scope() or in_stateless_scope() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.compiler.is_compiling():
        return False
    return all(v.value.device.type == "cpu" for v in (cell.kernel, cell.recurrent_kernel, cell.bias))


def _fused_input(x, ndim):
    """Whether `x` is a float32 CPU tensor of `ndim` dimensions without a Keras mask."""
    return (
        isinstance(x, torch.Tensor)
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() == ndim
        and not hasattr(x, "_keras_mask")
    )
