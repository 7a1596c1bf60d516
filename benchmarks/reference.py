"""The reference: kgen's networks as plain PyTorch modules, trained by a hand-written loop.

Each `make_<model>(keras_model, device)` builds the kgen model's networks as
`torch.nn.Sequential`s of `nn.Linear`, `nn.BatchNorm1d`, `nn.Conv2d`, ...
(`torch_network` maps each Keras layer to its torch module, so the reference
follows `kgen.nets` whatever its sizes), copies the Keras model's initial
weights into them (both start from weights drawn the same way, by Keras's
initializers), and returns a `step(batch)` function that trains one batch the
way a careful PyTorch user writes it: data already a tensor on the device,
`torch.optim.Adam` with the Keras optimizer's settings,
`zero_grad(set_to_none=True)`, no per-step `.item()`. It returns the losses of
the step as tensors.

Images are NCHW in torch and NHWC in Keras; with one channel both are the same
memory, so the same (n, 28, 28, 1) tensor feeds both (viewed as (n, 1, 28, 28)
here). Where Keras flattens or reshapes (h, w, c) features, the copied dense
weights are permuted to torch's (c, h, w) order, so the two networks compute
the same function (`check_same_outputs` measures it).

The algorithms are kgen's: the GAN draws new noise for the generator's step
and computes no gradients for the discriminator's weights in it; the VAE draws
one posterior sample per image; the PatchLSTM is teacher-forced over 16
patches of 7x7.
"""

import keras
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"linear": None, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _t(array, device):
    return torch.tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)


def _chw(h, w, c):
    """Index that reorders (h, w, c)-flattened features into torch's (c, h, w) order."""
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _same_padding(layer):
    """torch's symmetric padding for a Keras "same" convolution of stride s and kernel k."""
    (k, _), (s, _) = layer.kernel_size, layer.strides
    total = k - s  # "same" padding in all, for sizes that are multiples of the stride
    if layer.padding != "same" or total % 2 or total < 0:
        raise NotImplementedError(f"no symmetric torch padding for {layer.name} (k={k}, s={s}, {layer.padding})")
    return total // 2


def torch_network(network, device):
    """The torch twin of a Keras `Sequential` of kgen's layers, its weights copied in.

    Handles Dense, BatchNormalization, ReLU, LeakyReLU, Dropout, Flatten,
    Reshape, Conv2D and Conv2DTranspose (with "same" padding). Image tensors
    are NCHW.
    """
    modules, shape = [], tuple(network.input_shape[1:])  # the Keras shape, without the batch
    last_dense = None  # (Linear, BatchNorm1d or None): rows to permute if a Reshape to (h, w, c) follows
    pending_cols = None  # columns to permute in the next Linear, after a Flatten of (h, w, c)
    with torch.no_grad():
        for layer in network.layers:
            kind = type(layer).__name__
            if kind == "Dense":
                n_in, n_out = shape[-1], layer.units
                linear = nn.Linear(n_in, n_out, bias=layer.use_bias)
                w = _np(layer.kernel).T  # (out, in)
                if pending_cols is not None:
                    w, pending_cols = w[:, pending_cols], None
                linear.weight.copy_(_t(w, device))
                if layer.use_bias:
                    linear.bias.copy_(_t(_np(layer.bias), device))
                modules.append(linear)
                last_dense = [linear, None]
                shape = (n_out,)
            elif kind == "BatchNormalization":
                c = shape[-1]
                bn = (nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d)(
                    c, eps=layer.epsilon, momentum=1 - layer.momentum
                )
                for name, src in (
                    ("weight", layer.gamma), ("bias", layer.beta),
                    ("running_mean", layer.moving_mean), ("running_var", layer.moving_variance),
                ):
                    getattr(bn, name).copy_(_t(_np(src), device))
                modules.append(bn)
                if len(shape) == 1 and last_dense is not None:
                    last_dense[1] = bn
            elif kind == "Reshape":
                target = tuple(layer.target_shape)
                if len(target) == 3:  # (h, w, c): torch's (c, h, w); permute the dense rows before it
                    h, w, c = target
                    if c > 1 and last_dense is not None:
                        rows = _chw(h, w, c)
                        linear, bn = last_dense
                        linear.weight.copy_(linear.weight[rows])
                        if linear.bias is not None:
                            linear.bias.copy_(linear.bias[rows])
                        if bn is not None:
                            for name in ("weight", "bias", "running_mean", "running_var"):
                                getattr(bn, name).copy_(getattr(bn, name)[rows])
                    modules.append(nn.Unflatten(1, (c, h, w)))
                else:
                    modules.append(nn.Unflatten(1, target))
                shape = target
            elif kind == "Flatten":
                if len(shape) == 3 and shape[-1] > 1:
                    pending_cols = _chw(*shape)
                modules.append(nn.Flatten())
                shape = (int(np.prod(shape)),)
            elif kind in ("Conv2D", "Conv2DTranspose"):
                transpose = kind == "Conv2DTranspose"
                cin, cout = shape[-1], layer.filters
                k, s = layer.kernel_size[0], layer.strides[0]
                conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(
                    cin, cout, k, stride=s, padding=_same_padding(layer), bias=layer.use_bias
                )
                kernel = _np(layer.kernel)  # Conv2D (kh, kw, in, out), Conv2DTranspose (kh, kw, out, in)
                conv.weight.copy_(_t(kernel.transpose(3, 2, 0, 1), device))  # torch (out, in) / (in, out), kh, kw
                if layer.use_bias:
                    conv.bias.copy_(_t(_np(layer.bias), device))
                modules.append(conv)
                h, w = shape[0], shape[1]
                shape = (h * s, w * s, cout) if transpose else (-(-h // s), -(-w // s), cout)
            elif kind == "ReLU":
                modules.append(nn.ReLU())
            elif kind == "LeakyReLU":
                modules.append(nn.LeakyReLU(layer.negative_slope))
            elif kind == "Dropout":
                if layer.rate > 0:
                    modules.append(nn.Dropout(layer.rate))
            else:
                raise NotImplementedError(f"no torch counterpart for the Keras layer {kind}")
            activation = getattr(layer, "activation", None)
            if kind in ("Dense", "Conv2D", "Conv2DTranspose") and activation is not None:
                module = ACTIVATIONS[activation.__name__]
                if module is not None:
                    modules.append(module())
    return nn.Sequential(*modules).to(device)


def _adam(params, optimizer):
    """`torch.optim.Adam` with a Keras Adam's settings."""
    c = optimizer.get_config()
    return torch.optim.Adam(
        params, lr=float(c["learning_rate"]), betas=(c["beta_1"], c["beta_2"]), eps=c["epsilon"]
    )


# GAN


def make_gan(model, device):
    """A reference training step of a `kgen.models.GAN` `model` (compiled, BCE loss)."""
    if model.loss_name != "bce":
        raise ValueError(f"the reference GAN has the BCE loss. Received: loss={model.loss_name!r}")
    g, d = torch_network(model.generator, device), torch_network(model.discriminator, device)
    opt_d = _adam(d.parameters(), model.optimizer.d_optimizer)
    opt_g = _adam(g.parameters(), model.optimizer.g_optimizer)
    d_params = list(d.parameters())
    latent = model.latent_dim

    def step(real):  # (b, 28, 28, 1)
        real = real.view(-1, 1, 28, 28)
        b = real.shape[0]
        # discriminator: real images vs generated ones, generator frozen
        with torch.no_grad():
            fake = g(torch.randn(b, latent, device=device))
        real_logits, fake_logits = d(real), d(fake)
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator: fool the discriminator, no gradients for its weights
        for p in d_params:
            p.requires_grad_(False)
        g_loss = F.softplus(-d(g(torch.randn(b, latent, device=device)).view(-1, 1, 28, 28))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        return d_loss.detach(), g_loss.detach()

    step.modules = (g, d)
    return step


# VAE


def make_vae(model, device):
    """A reference training step of a `kgen.models.VAE` (Bernoulli decoder, grey-level targets)."""
    if model.recon_loss != "bce" or model.binarize:
        raise ValueError("the reference VAE has the BCE loss on grey levels. Received: "
                         f"recon_loss={model.recon_loss!r}, binarize={model.binarize}")
    enc, dec = torch_network(model.encoder, device), torch_network(model.decoder, device)
    opt = _adam(list(enc.parameters()) + list(dec.parameters()), model.optimizer)
    kl_weight = model.kl_weight

    def step(images):  # (b, 28, 28, 1)
        x = images.reshape(-1, 784)
        # encode, sample, decode: negative ELBO
        mean, log_var = enc(images.view(-1, 1, 28, 28)).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = dec(z).reshape(-1, 784)
        recon = (F.softplus(logits) - x * logits).sum(1).mean()
        kl = (-0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(1)).mean()
        loss = recon + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach(), recon.detach(), kl.detach()

    step.modules = (enc, dec)
    return step


# PatchLSTM


def to_patches(images):
    """(b, 28, 28, 1) -> (b, 16, 49): a 4x4 grid of 7x7 patches, row-major."""
    b = images.shape[0]
    return images.reshape(b, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(b, 16, 49)


class PatchLSTMNet(nn.Module):
    def __init__(self, num_layers, units):
        super().__init__()
        self.lstm = nn.LSTM(49 + 16, units, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(units, 49)

    def forward(self, patches):  # (b, 16, 49)
        b = patches.shape[0]
        shifted = torch.cat([torch.zeros_like(patches[:, :1]), patches[:, :-1]], dim=1)
        position = torch.eye(16, device=patches.device).expand(b, 16, 16)
        h, _ = self.lstm(torch.cat([shifted, position], dim=-1))  # (b, 16, units)
        return self.head(h)  # (b, 16, 49)


def make_lstm(model, device):
    """A reference training step of a `kgen.models.PatchLSTM` (no dropout)."""
    if model.dropout:
        raise ValueError(f"the reference PatchLSTM has no dropout. Received: dropout={model.dropout}")
    if model.patch_head != "dense":
        raise ValueError(f"the reference PatchLSTM has a dense head. Received: patch_head={model.patch_head!r}")
    net = PatchLSTMNet(model.num_layers, model.units).to(device)
    with torch.no_grad():
        for i, layer in enumerate(model.lstms):
            cell = layer.cell  # Keras gates i, f, c, o = torch's i, f, g, o
            getattr(net.lstm, f"weight_ih_l{i}").copy_(_t(_np(cell.kernel).T, device))
            getattr(net.lstm, f"weight_hh_l{i}").copy_(_t(_np(cell.recurrent_kernel).T, device))
            getattr(net.lstm, f"bias_ih_l{i}").copy_(_t(_np(cell.bias), device))
            getattr(net.lstm, f"bias_hh_l{i}").zero_()
        net.head.weight.copy_(_t(_np(model.head.kernel).T, device))
        net.head.bias.copy_(_t(_np(model.head.bias), device))
    opt = _adam(net.parameters(), model.optimizer)

    def step(x):  # (b, 28, 28, 1)
        patches = to_patches(x)
        # teacher forcing: the true patches 1..t in, patch t+1 out
        logits = net(patches)
        loss = (F.softplus(logits) - patches * logits).mean()
        mse = (patches - torch.sigmoid(logits)).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach(), mse.detach()

    step.modules = (net,)
    return step


MAKERS = {"gan": make_gan, "vae": make_vae, "lstm": make_lstm}


def check_same_outputs(model, step, device, n=8, seed=0):
    """Max |difference| between the Keras networks and their torch copies on the same input.

    For the GAN: generator on the same noise, discriminator on the same
    images; for the VAE: the encoder and the decoder; for the PatchLSTM: the
    next-patch logits. Inference mode (batch norm moving statistics, no dropout).
    """
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    xt = torch.tensor(x, device=device)
    diffs = []
    for m in step.modules:
        m.eval()
    with torch.no_grad():
        if hasattr(model, "discriminator"):
            g, d = step.modules
            z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
            keras_img = _np(model.generator(z, training=False))  # (n, 28, 28, 1)
            torch_img = g(torch.tensor(z, device=device)).reshape(n, 28, 28, 1).cpu().numpy()
            diffs.append(np.abs(keras_img - torch_img).max())
            keras_logit = _np(model.discriminator(x, training=False))
            torch_logit = d(xt.view(n, 1, 28, 28)).cpu().numpy()
            diffs.append(np.abs(keras_logit - torch_logit).max())
        elif hasattr(model, "encoder"):
            enc, dec = step.modules
            h = _np(model.encoder(x))
            diffs.append(np.abs(h - enc(xt.view(n, 1, 28, 28)).cpu().numpy()).max())
            z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
            keras_logits = _np(model.decoder(z)).reshape(n, 784)
            torch_logits = dec(torch.tensor(z, device=device)).reshape(n, 784).cpu().numpy()
            diffs.append(np.abs(keras_logits - torch_logits).max())
        else:
            (net,) = step.modules
            keras_probs = _np(model(x))  # (n, 16, 49)
            torch_probs = torch.sigmoid(net(to_patches(xt))).cpu().numpy()
            diffs.append(np.abs(keras_probs - torch_probs).max())
    for m in step.modules:
        m.train()
    return float(max(diffs))
