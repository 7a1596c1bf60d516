"""Sample-quality and likelihood metrics, each a plain function on NumPy arrays.

Features and probabilities come from the shipped evaluator
(`kgen.evaluation.Evaluator.embed`); nothing here knows about models or
backends, so every function can be checked against cases with a known answer.
"""

import numpy as np


def _as_2d(features, name):
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name} must be a (n, d) array with n >= 2. Received: shape={x.shape}")
    return x


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)), in
    float64. The trace of the matrix square root is the sum of the square
    roots of the eigenvalues of the symmetric positive semi-definite matrix
    sqrt(sigma1) sigma2 sqrt(sigma1), which has the same eigenvalues as
    sigma1 sigma2 and, being symmetric, can be handled by `eigvalsh`.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    sqrt1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # symmetric square root of sigma1
    product = sqrt1 @ sigma2 @ sqrt1
    eig = np.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


def fid(features1, features2):
    """Fréchet Inception-style Distance between two sets of features (n, d).

    Example:

    >>> x = np.random.default_rng(0).normal(size=(1000, 4))
    >>> fid(x, x)  # 0 up to rounding
    """
    f1, f2 = _as_2d(features1, "features1"), _as_2d(features2, "features2")
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def kid(features1, features2, num_subsets=100, subset_size=1000, seed=0):
    """Kernel Inception-style Distance: unbiased MMD^2, cubic polynomial kernel.

    k(x, y) = (x . y / d + 1)^3. The unbiased estimate is averaged over
    `num_subsets` random subsets of `subset_size` (or fewer, if a set is
    smaller) drawn from each set.

    Returns:
        `(mean, std)` over the subsets. The mean can be slightly negative
        when the two sets come from one distribution.
    """
    f1, f2 = _as_2d(features1, "features1"), _as_2d(features2, "features2")
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = _cubic(x, x, d), _cubic(y, y, d), _cubic(x, y, d)
        off_diag = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(off_diag - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def _cubic(a, b, d):
    k = a @ b.T / d + 1
    return k * k * k


def inception_score(probs, splits=10, seed=0):
    """Inception-style score exp(E_x KL(p(y|x) || p(y))) over `splits` splits.

    It is the number of classes for confident predictions spread evenly over
    all classes, and 1 when every prediction is the same distribution. The
    rows are shuffled (with `seed`) before splitting, so that the score does
    not depend on their order: class-sorted samples, such as a cGAN's rows of
    one digit each, score as the same samples in any order.

    Returns:
        `(mean, std)` over the splits.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits:
        raise ValueError(
            f"probs must be (n, classes) with n >= splits={splits}. Received: shape={p.shape}"
        )
    p = p[np.random.default_rng(seed).permutation(len(p))]
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (_log(part) - _log(marginal)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _log(p):
    return np.log(np.clip(p, 1e-300, None))


def kth_neighbour_radii(features, k=3, chunk=1000):
    """Distance of each point (n, d) to its k-th nearest other point of the set."""
    features = _as_2d(features, "features")
    radii = np.empty(len(features))
    for start in range(0, len(features), chunk):
        d = _distances(features[start : start + chunk], features)  # (chunk, n)
        radii[start : start + chunk] = np.partition(d, k, axis=1)[:, k]  # column 0: the point itself
    return radii


def _distances(a, b):
    """Euclidean distances (len(a), len(b)), in float32: only their order matters."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _inside_manifold(points, centres, radii, chunk=1000):
    """Whether each point lies within radii[j] of some centre j."""
    inside = np.empty(len(points), dtype=bool)
    for start in range(0, len(points), chunk):
        d = _distances(points[start : start + chunk], centres)  # (chunk, n_centres)
        inside[start : start + chunk] = np.any(d <= radii[None, :], axis=1)
    return inside


def precision_recall(real_features, fake_features, k=3, real_radii=None):
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k neighbours.

    The real manifold is the union of balls around each real feature reaching
    its k-th nearest real neighbour; precision is the share of generated
    features inside it. Recall swaps the roles: the share of real features
    inside the generated manifold.

    Args:
        real_features: features of real images (n, d).
        fake_features: features of generated images (m, d).
        k: the neighbour that sets each ball's radius.
        real_radii: `kth_neighbour_radii(real_features, k)`, if already
            computed (it depends on the real set only).

    Returns:
        `(precision, recall)`, each in [0, 1].
    """
    real = _as_2d(real_features, "real_features")
    fake = _as_2d(fake_features, "fake_features")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"Each set needs more than k={k} points. Received: {len(real)} and {len(fake)}")
    real_radii = kth_neighbour_radii(real, k) if real_radii is None else real_radii
    fake_radii = kth_neighbour_radii(fake, k)
    precision = _inside_manifold(fake, real, real_radii).mean()
    recall = _inside_manifold(real, fake, fake_radii).mean()
    return float(precision), float(recall)


def class_coverage(labels, num_classes=10):
    """How evenly predicted classes cover all classes.

    Args:
        labels: predicted class of each image (n,), or probabilities
            (n, classes) whose argmax is taken.
        num_classes: number of classes.

    Returns:
        A dict: `shares` (share of images per class), `kl_to_uniform`
        (KL(shares || uniform) in nats: 0 when even, log(classes) when one
        class), `min_share` (share of the rarest class) and `missing`
        (classes never predicted).
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty (n,) array. Received: shape={labels.shape}")
    shares = np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes] / len(labels)
    nonzero = shares > 0
    kl = float(np.sum(shares[nonzero] * np.log(shares[nonzero] * num_classes)))
    return {
        "shares": [float(s) for s in shares],
        "kl_to_uniform": kl,
        "min_share": float(shares.min()),
        "missing": [int(c) for c in np.flatnonzero(~nonzero)],
    }


def conditional_accuracy(predicted, conditioned, num_classes=10):
    """Share of generated images whose predicted class is the one asked for.

    Args:
        predicted: the evaluator's class of each generated image (n,).
        conditioned: the label each image was generated for (n,).
        num_classes: number of classes.

    Returns:
        A dict: `accuracy` (over all images), `per_class` (accuracy for each
        conditioning label; NaN for labels never asked for), `worst_class`
        and `worst_accuracy`.
    """
    predicted, conditioned = np.asarray(predicted).reshape(-1), np.asarray(conditioned).reshape(-1)
    if predicted.shape != conditioned.shape or len(predicted) == 0:
        raise ValueError(
            f"predicted and conditioned must be non-empty and of one length. "
            f"Received: {predicted.shape} and {conditioned.shape}"
        )
    correct = predicted == conditioned
    per_class = [
        float(correct[conditioned == c].mean()) if np.any(conditioned == c) else float("nan")
        for c in range(num_classes)
    ]
    worst = int(np.nanargmin(per_class))
    return {
        "accuracy": float(correct.mean()),
        "per_class": per_class,
        "worst_class": worst,
        "worst_accuracy": per_class[worst],
    }


def reconstruction_errors(images, reconstructions, eps=1e-7):
    """Test reconstruction errors of an autoencoder.

    Returns:
        A dict: `mse` (mean squared error per pixel) and `bce` (binary
        cross-entropy summed over the pixels of an image, mean over images,
        in nats: the units of a Bernoulli VAE's loss).
    """
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    x_hat = np.asarray(reconstructions, np.float64).reshape(len(reconstructions), -1)
    if x.shape != x_hat.shape:
        raise ValueError(f"images and reconstructions differ in shape. Received: {x.shape} and {x_hat.shape}")
    p = np.clip(x_hat, eps, 1 - eps)
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    return {"mse": float(np.mean((x - x_hat) ** 2)), "bce": float(bce.mean())}
