"""DiffAugment (Zhao et al., 2020): differentiable augmentations of a GAN discriminator's input.

A discriminator that sees few real images memorizes them and its feedback to
the generator turns to noise. DiffAugment shows it real *and* generated images
through the same random augmentations, each differentiable, so the generator
still gets gradients through them and never learns to draw the augmentations
themselves. Written once with `keras.ops`; every random draw comes from the
`keras.random.SeedGenerator` passed in (the model's own), so a checkpoint that
carries its state resumes the same augmentations.

Example:

>>> policy = parse_policy("translation,cutout")
>>> augmented = diff_augment(images, policy, keras.random.SeedGenerator(0))
"""

import keras
from keras import ops


def translation(images, seed_generator, ratio=0.125):
    """Shifts each image by up to `ratio` of its size (here +-4 pixels) in x and y, zero-filled.

    A shift is a product with 0/1 shift matrices, out = S_y . image . S_x^T,
    so the gradient flows to every pixel that stays inside.
    """
    n, h, w = ops.shape(images)[0], images.shape[1], images.shape[2]
    shift = int(h * ratio + 0.5)
    t = keras.random.randint((n, 2), -shift, shift + 1, seed=seed_generator, dtype="int32")  # (n, 2): dy, dx

    def shifts(size, offset):  # (n, size, size): [b, i, k] = 1 where k = i - offset[b]
        i = ops.arange(size, dtype="int32")
        return ops.cast(ops.equal(i[None, None, :], i[None, :, None] - offset[:, None, None]), images.dtype)

    out = ops.einsum("bik,bkjc->bijc", shifts(h, t[:, 0]), images)  # rows
    return ops.einsum("bjl,bilc->bijc", shifts(w, t[:, 1]), out)  # columns


def cutout(images, seed_generator, ratio=0.5):
    """Zeroes one square of `ratio` of the image's size (here 14x14) per image, at a random place.

    The square's centre may sit anywhere in the image, so it is often partly
    outside (as in the paper).
    """
    n, h, w = ops.shape(images)[0], images.shape[1], images.shape[2]
    size = int(h * ratio + 0.5)
    centre = keras.random.randint((n, 2), 0, h + (1 - size % 2), seed=seed_generator, dtype="int32")  # (n, 2)

    def inside(length, c):  # (n, length): whether each row (column) is in the square
        i = ops.arange(length, dtype="int32")[None, :]
        start = c[:, None] - size // 2
        return ops.logical_and(i >= start, i < start + size)

    square = ops.logical_and(inside(h, centre[:, 0])[:, :, None], inside(w, centre[:, 1])[:, None, :])
    return images * ops.cast(ops.logical_not(square), images.dtype)[..., None]


AUGMENTATIONS = {"translation": translation, "cutout": cutout}


def parse_policy(policy):
    """`"translation,cutout"` to `("translation", "cutout")`; `""` to `()` (no augmentation)."""
    names = tuple(p.strip() for p in str(policy).split(",") if p.strip())
    for name in names:
        if name not in AUGMENTATIONS:
            raise ValueError(
                f"Unknown DiffAugment augmentation {name!r}; use a comma-separated list of "
                f"{', '.join(AUGMENTATIONS)} (or \"\" for none). Received: diffaugment={policy!r}"
            )
    return names


def diff_augment(images, policy, seed_generator):
    """Applies the augmentations of `policy` (a tuple of names) in order, each image drawn apart.

    Args:
        images: (batch, height, width, channels) floats.
        policy: names from `AUGMENTATIONS`, e.g. `("translation", "cutout")`.
        seed_generator: the `keras.random.SeedGenerator` of every draw.

    Returns:
        The augmented images, same shape; `images` itself for an empty policy.
    """
    for name in policy:
        images = AUGMENTATIONS[name](images, seed_generator)
    return images
