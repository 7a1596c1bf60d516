"""Figures: image grids, reconstructions, latent maps and training curves.

Every function writes one PNG atomically (see `kgen.runs.atomic_path`) and
returns its path. Images are arrays in [0, 1] of shape (n, 28, 28) or
(n, 28, 28, 1).
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kgen.runs import atomic_path  # noqa: E402


def tile(images, ncol=None, pad=2):
    """Arranges images (n, h, w[, 1]) in a grid with `ncol` columns, padded white-on-black.

    Returns a 2-D array (rows * (h + pad) + pad, ncol * (w + pad) + pad).
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[..., 0]  # (n, h, w)
    n, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), 0.5, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = img
    return np.clip(grid, 0.0, 1.0)


def save_grid(path, images, ncol=None, scale=2):
    """Saves images as one grid PNG, each pixel `scale` x `scale` (no smoothing).

    Example:

    >>> save_grid("samples.png", model.generate(16))  # a 4x4 grid
    """
    grid = tile(images, ncol)
    grid = np.kron(grid, np.ones((scale, scale), np.float32))
    with atomic_path(path) as tmp:
        plt.imsave(tmp, grid, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return path


def save_reconstructions(path, originals, reconstructions, ncol=10):
    """Saves rows of originals, each above a row of their reconstructions."""
    originals = np.asarray(originals)[..., :1].reshape(-1, 28, 28)
    reconstructions = np.asarray(reconstructions)[..., :1].reshape(-1, 28, 28)
    rows = []
    for start in range(0, len(originals), ncol):
        rows += [originals[start : start + ncol], reconstructions[start : start + ncol]]
    return save_grid(path, np.concatenate(rows), ncol=ncol)


def save_latent_map(path, codes, labels, title="latent space of the test digits"):
    """Scatters 2-D codes coloured by digit label."""
    codes = np.asarray(codes)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return _save(fig, path)


def save_curves(path, history, groups=None, title=None):
    """Plots per-epoch training curves from history rows (dicts with `epoch`).

    Args:
        path: the PNG to write.
        history: list of dicts, one per epoch (as in `history.csv`).
        groups: lists of column names sharing one panel; by default one
            panel per column.
        title: optional figure title.
    """
    epochs = [row["epoch"] for row in history]
    if groups is None:
        groups = [[k] for k in history[0] if k != "epoch"] if history else []
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(4 * max(len(groups), 1), 3.2), squeeze=False)
    for ax, keys in zip(axes[0], groups):
        for key in keys:
            ax.plot(epochs, [row.get(key, np.nan) for row in history], marker=".", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(", ".join(keys))
        if len(keys) > 1:
            ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
