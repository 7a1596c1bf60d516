"""The figures `kgen evaluate` writes into a run's `plots/`, chosen by what the model offers.

- any model: `eval_samples.png`, 100 of the evaluated samples;
- `encode` (AE, VAE): `latent_map.png` of test digits coloured by label
  (the codes for a 2-D latent space, else their PCA and t-SNE projections);
- `generate(z=...)` (AE, VAE, GAN, cGAN): `traversal.png`, one latent
  dimension varied at a time; `interpolation.png`, between pairs of test
  digits (with an encoder) or of noise vectors (without: one label, code
  or cluster per row, changing from row to row, see `decode_rows`);
- `generate(labels=...)` (cGAN, flow): `class_interpolation.png`, the label
  embedding moved from one class to the next at fixed noise (a model
  without a latent code, or whose generator is not built that way: one
  noise, every class);
- `complete` (PatchLSTM): `completions.png`, test digits, their given part
  and the completion.
"""

import os

import keras
import numpy as np

from kgen import capabilities as caps
from kgen import plots, runs
from kgen.models.common import encode

TSNE_POINTS = 2000  # t-SNE of more points takes minutes on a laptop CPU


def write_figures(model, run, images, ref, labels=None, given=8, seed=0, generate_options=None):
    """Writes the figures that fit `model` into `run/plots/`; returns their file names.

    `generate_options`: more keyword arguments of `generate` for the figures
    that draw (a flow's `guidance`, `steps`).
    """
    folder = os.path.join(run, runs.PLOTS)
    os.makedirs(folder, exist_ok=True)
    written = []

    def path(name):
        written.append(name)
        return os.path.join(folder, name)

    # a cGAN's samples come in label order 0, 1, ..., 9: one class per column
    plots.save_grid(path("eval_samples.png"), images[:100], ncol=10)

    x_test, y_test = ref["x_test"], ref["y_test"]
    codes = None
    if caps.has(model, caps.ENCODES):
        codes = encode(model, x_test[: min(len(x_test), 10000)])
        tsne_points = min(TSNE_POINTS, len(images))  # as many as the samples evaluated
        latent_map(path("latent_map.png"), codes, y_test[: len(codes)], seed, tsne_points)
    if caps.has(model, caps.LATENT):
        traversal(path("traversal.png"), model, codes, seed, centre_label=y_test[0])
        interpolation(path("interpolation.png"), model, x_test, y_test, codes, seed)
    if caps.has(model, caps.CONDITIONAL):
        class_interpolation(path("class_interpolation.png"), model, seed, options=generate_options)
    if caps.has(model, caps.COMPLETES):
        x = x_test[:10]
        completed = model.complete(x, given=given)
        plots.save_grid(path("completions.png"), np.concatenate([x, completed]), ncol=10)
    return written


def latent_map(path, codes, labels, seed=0, tsne_points=TSNE_POINTS):
    """The codes of test digits, directly (2-D) or by PCA (all) and t-SNE (`tsne_points`)."""
    if codes.shape[1] == 2:
        return plots.save_latent_panels(path, [codes], labels, ["latent codes of the test digits"])
    rng = np.random.default_rng(seed)
    some = rng.choice(len(codes), min(tsne_points, len(codes)), replace=False)
    return plots.save_latent_panels(
        path,
        [plots.pca(codes), plots.tsne(codes[some], seed)],
        [labels, labels[some]],
        [f"PCA of the {codes.shape[1]}-D codes", f"t-SNE of {len(some)} codes"],
        suptitle=f"latent space of the test digits ({codes.shape[1]}-D)",
    )


def traversal(path, model, codes, seed=0, dims=8, steps=9, centre_label=None):
    """One row per latent dimension: that dimension swept over +-2.5 std, the others fixed.

    With an encoder the others stay at the code of one test digit (the first
    of the test set) and each dimension's spread is its standard deviation
    over the test codes; the rows are the dimensions that vary most (the
    ones the model uses). Without one (GAN) the centre is one noise vector
    and the spread 1.
    """
    latent_dim = model.latent_dim
    if codes is not None:
        centre, spread = codes[0], codes.std(axis=0)
        chosen = np.argsort(-spread)[: min(dims, latent_dim)]
        title = "latent traversal around the code of the first test digit"
        if centre_label is not None:
            title += f" (a {centre_label})"
    else:
        centre = np.random.default_rng(seed).normal(size=latent_dim)
        spread = np.ones(latent_dim)
        chosen = np.arange(min(dims, latent_dim))
        title = "latent traversal around one noise vector"
    values = np.linspace(-2.5, 2.5, steps)
    z = np.repeat(centre[None], len(chosen) * steps, axis=0).reshape(len(chosen), steps, latent_dim)
    for row, d in enumerate(chosen):
        z[row, :, d] = centre[d] + values * spread[d]
    images = decode_rows(model, z, seed, vary=False)  # one digit, one dimension varied per row
    return plots.save_labelled_grid(
        path, images, [f"z[{d}]" for d in chosen], [f"{v:+.1f}σ" for v in values], title=title
    )


def interpolation(path, model, x_test, y_test, codes, seed=0, pairs=6, steps=10):
    """Rows of images along straight lines between two codes.

    With an encoder: between the codes of two test digits of different
    classes (the originals at both ends). Without: between two noise vectors.
    """
    rng = np.random.default_rng(seed)
    if codes is not None:
        ends, names = [], []
        for _ in range(pairs):
            a = rng.integers(len(codes))
            b = rng.choice(np.flatnonzero(y_test[: len(codes)] != y_test[a]))
            ends.append((codes[a], codes[b]))
            names.append((a, b, f"{y_test[a]} → {y_test[b]}"))
    else:
        ends = [tuple(rng.normal(size=(2, model.latent_dim))) for _ in range(pairs)]
        names = [(None, None, f"pair {i + 1}") for i in range(pairs)]
    t = np.linspace(0, 1, steps)[:, None]
    z = np.stack([(1 - t) * a + t * b for a, b in ends])  # (pairs, steps, latent_dim)
    images = decode_rows(model, z, seed)
    if codes is not None:  # real digits at both ends
        originals = np.stack([[x_test[a], x_test[b]] for a, b, _ in names])  # (pairs, 2, 28, 28, 1)
        images = np.concatenate([originals[:, :1], images, originals[:, 1:]], axis=1)
        cols = ["real"] + [f"{v:.2f}" for v in t[:, 0]] + ["real"]
    else:
        cols = [f"{v:.2f}" for v in t[:, 0]]
    return plots.save_labelled_grid(path, images, [n for _, _, n in names], cols, title="interpolation in latent space")


def class_interpolation(path, model, seed=0, steps=10, options=None):
    """A cGAN's label embedding moved from class c to c+1, at one noise vector per row.

    The generator embeds the label and concatenates it to the noise; here the
    embedding is interpolated between two classes and fed to the rest of the
    generator. When the generator is not built that way, the figure shows
    the ten classes at fixed noise instead; a model without a latent code
    (the flow) draws each class from the same seed, which gives it the same
    noise. `options`: more keyword arguments of `generate`.
    """
    options = options or {}
    classes = model.num_classes  # a conditional model declares it (kgen.capabilities)
    if not caps.has(model, caps.LATENT):
        images = np.concatenate([model.generate(1, labels=c, seed=seed, **options) for c in range(classes)])
        return plots.save_labelled_grid(
            path, images[None], ["one seed"], [str(c) for c in range(classes)], title="one noise, every class"
        )
    z = np.random.default_rng(seed).normal(size=(1, model.latent_dim)).astype("float32")
    head = _embedding_head(model.sampler)
    if head is None:
        images = model.generate(classes, labels=np.arange(classes), z=np.repeat(z, classes, 0), **options)
        return plots.save_labelled_grid(
            path, images[None], ["fixed noise"], [str(c) for c in range(classes)], title="one noise, every class"
        )
    table, rest = head
    t = np.linspace(0, 1, steps)[:, None]
    rows = []
    for c in range(classes - 1):
        emb = (1 - t) * table[c] + t * table[c + 1]  # (steps, embed_dim)
        rows.append(keras.ops.convert_to_numpy(rest([np.repeat(z, steps, 0), emb.astype("float32")])))
    images = np.stack(rows)  # (classes - 1, steps, 28, 28, 1)
    return plots.save_labelled_grid(
        path, images, [f"{c} → {c + 1}" for c in range(classes - 1)], [f"{v:.2f}" for v in t[:, 0]],
        title="cGAN: interpolating the label embedding at fixed noise",
    )


def _embedding_head(generator):
    """The label embedding table and a model from (noise, embedding) to images, if the generator has that shape."""
    embeddings = [layer for layer in generator.layers if isinstance(layer, keras.layers.Embedding)]
    concats = [layer for layer in generator.layers if isinstance(layer, keras.layers.Concatenate)]
    if len(embeddings) != 1 or len(concats) != 1:
        return None
    embedding, concat = embeddings[0], concats[0]
    try:
        noise_in = keras.Input(generator.inputs[0].shape[1:])
        emb_in = keras.Input(embedding.output.shape[1:])
        h = concat([noise_in, emb_in])
        # replay the layers after the concatenation, in order
        after = generator.layers[generator.layers.index(concat) + 1 :]
        for layer in after:
            h = layer(h)
        rest = keras.Model([noise_in, emb_in], h)
        table = keras.ops.convert_to_numpy(embedding.embeddings)
        return table, rest
    except Exception:  # a generator with branches after the concatenation
        return None


def decode_rows(model, z, seed=0, vary=True):
    """Images (rows, steps, 28, 28, 1) of codes z (rows, steps, latent_dim), one `generate(z=...)` call per row.

    What else a model's samples depend on stays fixed along a row, so that a
    row shows one path through the noise: a cGAN's label, an InfoGAN's code,
    a self-conditioned GAN's cluster. With `vary` (interpolations) it changes
    from row to row: row r is a cGAN's class r mod num_classes, and the
    others draw their code or cluster with seed `seed + r`; without
    (traversals, all rows around one centre) every row keeps row 0's.

    Args:
        model: a model with `generate(n, z=..., seed=...)`.
        z: codes (rows, steps, latent_dim).
        seed: the seed of row 0.
        vary: change the label, code or cluster from row to row.
    """
    z = np.asarray(z, np.float32)
    rows = []
    for r in range(len(z)):
        row = r if vary else 0
        label = {"labels": row % model.num_classes} if caps.has(model, caps.CONDITIONAL) else {}
        rows.append(np.asarray(model.generate(len(z[r]), z=z[r], seed=seed + row, **label)))
    return np.stack(rows)
