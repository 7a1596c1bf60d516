"""DiffAugment: what each augmentation does to known images, its gradients, its seeding."""

import keras
import numpy as np
import pytest
from keras import ops

from kgen import augment


def dot_images(n, row=10, col=12):
    """`n` black 28x28 images with one white pixel at (row, col)."""
    images = np.zeros((n, 28, 28, 1), "float32")
    images[:, row, col] = 1.0
    return images


def test_translation_moves_each_image_by_at_most_4_pixels_and_keeps_it():
    images = dot_images(64)
    out = ops.convert_to_numpy(augment.translation(ops.convert_to_tensor(images), keras.random.SeedGenerator(0)))
    shifts = set()
    for image in out[..., 0]:
        (r,), (c,) = np.nonzero(image == 1.0)[0], np.nonzero(image == 1.0)[1]
        assert image.sum() == 1.0  # moved, not blurred or lost
        shifts.add((r - 10, c - 12))
    assert all(abs(dr) <= 4 and abs(dc) <= 4 for dr, dc in shifts)
    assert len(shifts) > 20  # each image drawn apart


def test_translation_zero_fills_what_comes_in():
    ones = ops.ones((64, 28, 28, 1))
    out = ops.convert_to_numpy(augment.translation(ones, keras.random.SeedGenerator(1)))
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert np.any(out == 0) and np.all(out.reshape(64, -1).sum(1) >= 24 * 24)


def test_cutout_zeroes_one_square_of_at_most_14x14():
    ones = ops.ones((64, 28, 28, 1))
    out = ops.convert_to_numpy(augment.cutout(ones, keras.random.SeedGenerator(2)))[..., 0]
    assert set(np.unique(out)) <= {0.0, 1.0}
    for image in out:
        rows, cols = np.nonzero(image == 0)
        assert len(rows) <= 14 * 14
        if len(rows):  # the zeros form one full rectangle (the square, clipped by the border)
            height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            assert len(rows) == height * width and height <= 14 and width <= 14
    assert (out == 0).sum(axis=(1, 2)).max() == 14 * 14  # some squares fall wholly inside


def test_policy_is_seeded_and_differentiable():
    images = ops.convert_to_tensor(np.random.default_rng(0).random((8, 28, 28, 1), dtype="float32"))
    policy = augment.parse_policy("translation, cutout")
    assert policy == ("translation", "cutout")
    a = augment.diff_augment(images, policy, keras.random.SeedGenerator(5))
    b = augment.diff_augment(images, policy, keras.random.SeedGenerator(5))
    np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    assert not np.array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(images))
    assert augment.diff_augment(images, (), keras.random.SeedGenerator(5)) is images

    import torch  # the test process runs torch: gradients reach the pixels that stay in view

    x = torch.tensor(ops.convert_to_numpy(images), requires_grad=True)
    out = augment.diff_augment(x, policy, keras.random.SeedGenerator(5))
    (grad,) = torch.autograd.grad(out.sum(), x)
    kept = grad.numpy() > 0
    assert 0.3 < kept.mean() < 1.0 and set(np.unique(grad.numpy())) <= {0.0, 1.0}


def test_bad_policy():
    assert augment.parse_policy("") == ()
    with pytest.raises(ValueError, match=r"Received: diffaugment='translation,color'"):
        augment.parse_policy("translation,color")
