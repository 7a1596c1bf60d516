"""The reference: kgen's networks written in plain PyTorch and trained by a hand-written loop.

Each `make_<model>(keras_model, device)` builds the same networks as the kgen
model with `torch.nn` modules, copies the Keras model's initial weights into
them (so both start from weights drawn the same way, by Keras's initializers),
and returns a `step(batch)` function that trains one batch the way a careful
PyTorch user writes it: data already a tensor on the device, `torch.optim.Adam`
with Keras's settings, `zero_grad(set_to_none=True)`, no per-step `.item()`.
The losses of the last step are returned as tensors.

Images are NCHW in torch and NHWC in Keras; with one channel both are the same
memory, so the same (n, 28, 28, 1) tensor feeds both (viewed as (n, 1, 28, 28)
here). Where Keras flattens (h, w, c) features, the copied dense weights are
permuted to torch's (c, h, w) order, so the two networks compute the same
function (`check_same_outputs` tests this).

The algorithms are kgen's: the GAN draws new noise for the generator's step,
and in that step computes no gradients for the discriminator's weights; the
VAE draws one posterior sample per image; the PatchLSTM is teacher-forced over
16 patches of 7x7.
"""

import keras
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KERAS_BN = {"eps": 1e-3, "momentum": 0.01}  # Keras BatchNormalization(momentum=0.99, epsilon=1e-3)


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _t(array, device):
    return torch.tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)


def _chw_rows(c, h=7, w=7):
    """Index that reorders (h, w, c)-flattened features into (c, h, w) order."""
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _copy_layers(keras_layers, torch_layers, device, rows=None, cols=None):
    """Copies Dense / BatchNormalization / Conv2D / Conv2DTranspose weights in order.

    `rows` (permutation of a dense layer's output units, and of the batch norm
    after it) and `cols` (permutation of a dense layer's inputs) map layers by
    their position in the weighted-layer list.
    """
    rows, cols = rows or {}, cols or {}
    weighted = [l for l in keras_layers if l.weights]
    targets = [m for m in torch_layers if any(True for _ in m.parameters(recurse=False))]
    assert len(weighted) == len(targets), (len(weighted), len(targets))
    for i, (k, t) in enumerate(zip(weighted, targets)):
        r, c = rows.get(i), cols.get(i)
        with torch.no_grad():
            if isinstance(k, keras.layers.Dense):
                w = _np(k.kernel).T  # (out, in)
                w = w[r] if r is not None else w
                w = w[:, c] if c is not None else w
                t.weight.copy_(_t(w, device))
                if k.use_bias:
                    b = _np(k.bias)
                    t.bias.copy_(_t(b[r] if r is not None else b, device))
            elif isinstance(k, keras.layers.BatchNormalization):
                for name, src in (
                    ("weight", k.gamma), ("bias", k.beta), ("running_mean", k.moving_mean), ("running_var", k.moving_variance)
                ):
                    v = _np(src)
                    getattr(t, name).copy_(_t(v[r] if r is not None else v, device))
            elif isinstance(k, keras.layers.Conv2DTranspose):
                # Keras (kh, kw, out, in) -> torch (in, out, kh, kw)
                w = _np(k.kernel).transpose(3, 2, 0, 1)
                t.weight.copy_(_t(w, device))
                if k.use_bias:
                    t.bias.copy_(_t(_np(k.bias), device))
            elif isinstance(k, keras.layers.Conv2D):
                t.weight.copy_(_t(_np(k.kernel).transpose(3, 2, 0, 1), device))  # (out, in, kh, kw)
                t.bias.copy_(_t(_np(k.bias), device))
            else:
                raise TypeError(f"no torch counterpart for {type(k).__name__}")


def _adam(params, optimizer):
    """`torch.optim.Adam` with a Keras Adam's settings."""
    c = optimizer.get_config()
    return torch.optim.Adam(
        params, lr=float(c["learning_rate"]), betas=(c["beta_1"], c["beta_2"]), eps=c["epsilon"]
    )


# GAN


class ConvTranspose(nn.ConvTranspose2d):
    """Keras's Conv2DTranspose(k=4, s=2, "same"): 7 -> 14 -> 28."""

    def __init__(self, cin, cout, bias):
        super().__init__(cin, cout, 4, stride=2, padding=1, bias=bias)


def gan_networks(arch, latent_dim):
    """The generator and discriminator of `kgen.nets` for `arch`, as torch modules."""
    if arch == "mlp":
        g = nn.Sequential(
            nn.Linear(latent_dim, 256, bias=False), nn.BatchNorm1d(256, **KERAS_BN), nn.ReLU(),
            nn.Linear(256, 512, bias=False), nn.BatchNorm1d(512, **KERAS_BN), nn.ReLU(),
            nn.Linear(512, 1024, bias=False), nn.BatchNorm1d(1024, **KERAS_BN), nn.ReLU(),
            nn.Linear(1024, 784), nn.Sigmoid(),
        )
        d = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 1),
        )
    else:
        g = nn.Sequential(
            nn.Linear(latent_dim, 7 * 7 * 64, bias=False), nn.BatchNorm1d(7 * 7 * 64, **KERAS_BN), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            ConvTranspose(64, 32, bias=False), nn.BatchNorm2d(32, **KERAS_BN), nn.ReLU(),  # (b, 32, 14, 14)
            ConvTranspose(32, 1, bias=True), nn.Sigmoid(),  # (b, 1, 28, 28)
        )
        d = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Dropout(0.3),  # (b, 32, 14, 14)
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Dropout(0.3),  # (b, 64, 7, 7)
            nn.Flatten(),
            nn.Linear(7 * 7 * 64, 1),
        )
    return g, d


def make_gan(model, device):
    """A reference training step of `kgen.models.GAN` `model` (compiled)."""
    g, d = gan_networks(model.arch, model.latent_dim)
    g, d = g.to(device), d.to(device)
    conv = model.arch == "conv"
    _copy_layers(model.generator.layers, list(g.modules())[1:], device, rows={0: _chw_rows(64), 1: _chw_rows(64)} if conv else None)
    _copy_layers(model.discriminator.layers, list(d.modules())[1:], device, cols={2: _chw_rows(64)} if conv else None)
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
    """A reference training step of a `kgen.models.VAE` with the MLP networks."""
    if model.arch != "mlp":
        raise ValueError(f"the reference VAE is the MLP one. Received: arch={model.arch!r}")
    latent = model.latent_dim
    enc = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 2 * latent)
    ).to(device)
    dec = nn.Sequential(
        nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784)
    ).to(device)
    _copy_layers(model.encoder.layers, list(enc.modules())[1:], device)
    _copy_layers(model.decoder.layers, list(dec.modules())[1:], device)
    opt = _adam(list(enc.parameters()) + list(dec.parameters()), model.optimizer)
    kl_weight = model.kl_weight

    def step(x):  # (b, 28, 28, 1)
        x = x.reshape(-1, 784)
        # encode, sample, decode: negative ELBO
        mean, log_var = enc(x).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = dec(z)
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
            diffs.append(np.abs(h - enc(xt).cpu().numpy()).max())
            z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
            keras_logits = _np(model.decoder(z)).reshape(n, 784)
            diffs.append(np.abs(keras_logits - dec(torch.tensor(z, device=device)).cpu().numpy()).max())
        else:
            (net,) = step.modules
            keras_probs = _np(model(x))  # (n, 16, 49)
            torch_probs = torch.sigmoid(net(to_patches(xt))).cpu().numpy()
            diffs.append(np.abs(keras_probs - torch_probs).max())
    for m in step.modules:
        m.train()
    return float(max(diffs))
