"""Figures: image grids, reconstructions, latent maps and training curves.

Every function writes one PNG atomically (see `kgen.files.atomic_path`) and
returns its path. Images are arrays in [0, 1] of shape (n, 28, 28) or
(n, 28, 28, 1).
"""

import math

import numpy as np

from kgen.files import atomic_path


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, imported on the first figure.

    Image grids are written with Pillow, so commands that only write grids
    (`kgen sample`, the per-epoch samples) do not pay for importing matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    from PIL import Image

    grid = tile(images, ncol)
    grid = np.kron(grid, np.ones((scale, scale), np.float32))
    with atomic_path(path) as tmp:
        Image.fromarray(np.round(grid * 255).astype(np.uint8)).save(tmp, format="PNG")  # (h, w) uint8: 8-bit grey
    return path


def save_reconstructions(path, originals, reconstructions, ncol=10):
    """Saves rows of originals, each above a row of their reconstructions."""
    originals = np.asarray(originals)[..., :1].reshape(-1, 28, 28)
    reconstructions = np.asarray(reconstructions)[..., :1].reshape(-1, 28, 28)
    rows = []
    for start in range(0, len(originals), ncol):
        rows += [originals[start : start + ncol], reconstructions[start : start + ncol]]
    return save_grid(path, np.concatenate(rows), ncol=ncol)


def save_completions(path, originals, given, completions, ncol=10):
    """Saves rows of three: originals, the given part (the rest grey), completions."""
    rows = []
    for start in range(0, len(originals), ncol):
        for images in (originals, given, completions):
            rows.append(np.asarray(images)[start : start + ncol, ..., :1].reshape(-1, 28, 28))
    return save_grid(path, np.concatenate(rows), ncol=ncol)


def save_completion_error(path, givens, errors, title="completion error of the test digits"):
    """Plots the MSE on the missing patches against the number of given patches.

    Args:
        path: the PNG to write.
        givens: the numbers of given patches K.
        errors: a dict of label to one MSE per K (e.g. the model and a baseline).
    """
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for label, values in errors.items():
        ax.plot(givens, values, marker="o", label=label)
    ax.set_xlabel("given patches K (of 16; 8 = top half)")
    ax.set_ylabel("MSE on the missing patches")
    ax.set_xticks(list(givens))
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def save_latent_map(path, codes, labels, title="latent space of the test digits"):
    """Scatters 2-D codes coloured by digit label."""
    codes = np.asarray(codes)
    fig, ax = _pyplot().subplots(figsize=(6.5, 5.5))
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
    fig, axes = _pyplot().subplots(1, max(len(groups), 1), figsize=(4 * max(len(groups), 1), 3.2), squeeze=False)
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


def save_curves_side_by_side(path, histories, titles):
    """One panel per run: all of its logged losses over epochs (accuracies left out).

    Args:
        path: the PNG to write.
        histories: one list of history rows (dicts with `epoch`) per run.
        titles: one title per run.
    """
    fig, axes = _panels(len(histories), 4.0, 3.2)
    for ax in axes[len(histories) :]:
        ax.axis("off")
    for ax, history, title in zip(axes, histories, titles):
        epochs = [row["epoch"] for row in history]
        for key in [k for k in history[0] if k != "epoch" and "acc" not in k]:
            ax.plot(epochs, [row.get(key, np.nan) for row in history], marker=".", label=key)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def pca(codes, dims=2):
    """Projects codes (n, d) on their first `dims` principal components."""
    codes = np.asarray(codes, np.float64)
    centred = codes - codes.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dims].T  # (n, dims)


def tsne(codes, seed=0):
    """A 2-D t-SNE embedding of codes (n, d), with scikit-learn, on one thread.

    One thread: on a CPU busy with other work, scikit-learn's OpenMP threads
    made 2,000 points take 55 s instead of 12 s.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    codes = np.asarray(codes, np.float32)
    perplexity = min(30.0, max(2.0, (len(codes) - 1) / 3))
    with threadpool_limits(1):
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)


def save_latent_panels(path, panels, labels, titles, prior_radius=None, suptitle=None):
    """Scatters several 2-D views of codes side by side, coloured by label.

    Args:
        path: the PNG to write.
        panels: 2-D point sets (n, 2), one per panel (codes, or their PCA or
            t-SNE projection).
        labels: the label of each point (n,), or one array per panel.
        titles: one title per panel.
        prior_radius: if set, draws a circle of this radius around the
            origin in every panel (2 for the 2-sigma circle of N(0, I)).
        suptitle: optional figure title.
    """
    fig, axes = _pyplot().subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.8, 4.4), squeeze=False)
    for i, (ax, points, title) in enumerate(zip(axes[0], panels, titles)):
        points = np.asarray(points)
        c = labels[i] if isinstance(labels, (list, tuple)) else labels
        sc = ax.scatter(points[:, 0], points[:, 1], c=c, cmap="tab10", s=2, vmin=-0.5, vmax=9.5)
        if prior_radius:
            ax.add_patch(_pyplot().Circle((0, 0), prior_radius, fill=False, ls="--", color="k", lw=1))
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(title, fontsize=10)
    fig.colorbar(sc, ax=list(axes[0]), ticks=range(10), label="digit", fraction=0.03)
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path, tight=False)


def save_labelled_grid(path, images, row_labels, col_labels=None, title=None):
    """Saves a grid of images (rows, cols, 28, 28[, 1]) with a label per row and column.

    Used for latent traversals (a row per latent dimension, a column per
    value) and interpolations (a row per pair of end points).
    """
    images = np.asarray(images)
    rows, cols = images.shape[:2]
    grid = tile(images.reshape(rows * cols, 28, 28, -1)[..., :1], ncol=cols)
    fig, ax = _pyplot().subplots(figsize=(0.42 * cols + 1.2, 0.42 * rows + 0.8))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    step = 30  # 28 pixels and the 2-pixel padding of `tile`
    ax.set_yticks([2 + 14 + step * r for r in range(rows)], row_labels, fontsize=8)
    if col_labels is not None:
        ax.set_xticks([2 + 14 + step * c for c in range(cols)], col_labels, fontsize=7)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def save_side_by_side(path, grids, titles, ncol=10):
    """Saves several image sets as grids of one size, side by side (four to a row) with titles.

    Args:
        path: the PNG to write.
        grids: image arrays (n, 28, 28[, 1]), the same n for all.
        titles: one title per grid.
        ncol: columns of each grid.
    """
    tiles = [tile(g, ncol=ncol) for g in grids]
    fig, axes = _panels(len(tiles), 3.6, 3.9)
    for ax in axes:
        ax.axis("off")
    for ax, t, title in zip(axes, tiles, titles):
        ax.imshow(t, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _panels(n, width, height, per_row=4):
    """A figure of n panels, at most `per_row` to a row; returns it and a flat list of axes."""
    cols = min(n, per_row)
    rows = math.ceil(n / cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, list(axes.flat)


def _save(fig, path, tight=True):
    if tight:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _pyplot().close(fig)
    return path
