"""The metrics of `kgen.evaluation.metrics` on cases whose answer is known."""

import math

import numpy as np
import pytest

from kgen.evaluation import metrics


def gaussian(rng, mean, cov, n):
    return rng.multivariate_normal(mean, cov, size=n)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(2000, 16))
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    # commuting covariances: ||mu1 - mu2||^2 + sum (sigma1 - sigma2)^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_closed_form_for_non_commuting_2x2():
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[1.0, -0.4], [-0.4, 3.0]])
    product = s1 @ s2
    # for a 2x2 matrix with non-negative eigenvalues: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M))
    trace_sqrt = math.sqrt(np.trace(product) + 2 * math.sqrt(np.linalg.det(product)))
    mu1, mu2 = np.array([0.5, -1.0]), np.array([0.0, 0.0])
    expected = 1.25 + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


def test_fid_of_samples_of_two_gaussians_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    s1 = np.array([[1.0, 0.5], [0.5, 2.0]])
    s2 = np.array([[3.0, 0.0], [0.0, 0.5]])
    mu1, mu2 = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    expected = metrics.frechet_distance(mu1, s1, mu2, s2)
    got = metrics.fid(gaussian(rng, mu1, s1, 50000), gaussian(rng, mu2, s2, 50000))
    assert got == pytest.approx(expected, rel=0.02)
    assert got > 5  # far from the 0 of a set with itself


def test_fid_is_exact_in_float64_for_large_features():
    # features with a large common offset: float32 would lose the small differences
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 8)) + 1e4
    y = rng.normal(size=(4000, 8)) + 1e4 + 0.5
    assert metrics.fid(x, y) == pytest.approx(8 * 0.25, rel=0.1)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2000, 32)), rng.normal(size=(2000, 32))
    same, same_std = metrics.kid(a, b, num_subsets=10, subset_size=500)
    assert abs(same) < 3 * same_std + 1e-3
    far, _ = metrics.kid(a, b + 1.0, num_subsets=10, subset_size=500)
    assert far > 100 * abs(same)


def test_kid_estimate_is_unbiased():
    # averaged over many small subsets of one distribution it centres on 0, not above
    rng = np.random.default_rng(4)
    values = [metrics.kid(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), num_subsets=1, subset_size=50)[0] for _ in range(300)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def test_inception_score_is_classes_for_confident_uniform_and_one_for_one_class():
    confident = np.eye(10)[np.arange(1000) % 10]  # each prediction certain, classes even
    score, std = metrics.inception_score(confident, splits=10)
    assert score == pytest.approx(10.0, rel=0.05)  # shuffled splits hold the classes nearly evenly
    assert std < 0.2
    assert metrics.inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-9)
    one_class = np.eye(10)[np.zeros(1000, int)]
    assert metrics.inception_score(one_class)[0] == pytest.approx(1.0)
    uncertain = np.full((1000, 10), 0.1)  # no confidence at all
    assert metrics.inception_score(uncertain)[0] == pytest.approx(1.0)


def test_inception_score_does_not_depend_on_sample_order():
    # a cGAN's grid order: 100 confident 0s, then 100 1s, ...; unshuffled, each
    # split would hold one class and score 1
    rng = np.random.default_rng(0)
    sorted_probs = np.eye(10)[np.repeat(np.arange(10), 100)]
    score = metrics.inception_score(sorted_probs)[0]
    assert score > 9.5
    shuffled = sorted_probs[rng.permutation(1000)]
    assert metrics.inception_score(shuffled)[0] == pytest.approx(score, rel=0.05)


def test_inception_score_rejects_too_few_predictions():
    with pytest.raises(ValueError, match="splits"):
        metrics.inception_score(np.eye(10)[:5])


def test_precision_recall_on_constructed_sets():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(1000, 2))
    p, r = metrics.precision_recall(real, real.copy(), k=3)
    assert (p, r) == (1.0, 1.0)
    p, r = metrics.precision_recall(real, real + 100.0, k=3)
    assert (p, r) == (0.0, 0.0)
    # samples from one small corner of the real cloud: precise but with low recall
    corner = real[np.linalg.norm(real - [1.0, 1.0], axis=1) < 0.5]
    p, r = metrics.precision_recall(real, corner, k=3)
    assert p == 1.0 and r < 0.2


def test_class_coverage_on_constructed_cases():
    even = metrics.class_coverage(np.arange(1000) % 10)
    assert even["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert even["min_share"] == pytest.approx(0.1) and even["missing"] == []
    collapsed = metrics.class_coverage(np.full(500, 3))
    assert collapsed["kl_to_uniform"] == pytest.approx(math.log(10))
    assert collapsed["min_share"] == 0.0 and collapsed["missing"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    half = metrics.class_coverage(np.eye(10)[np.arange(100) % 5])  # probabilities: argmax taken
    assert half["kl_to_uniform"] == pytest.approx(math.log(2))
    assert half["shares"][:5] == pytest.approx([0.2] * 5)


def test_conditional_accuracy_on_constructed_case():
    conditioned = np.arange(1000) % 10
    predicted = conditioned.copy()
    predicted[conditioned == 7] = 1  # every 7 drawn as a 1
    predicted[np.flatnonzero(conditioned == 2)[:50]] = 0  # half of the 2s wrong
    out = metrics.conditional_accuracy(predicted, conditioned)
    assert out["accuracy"] == pytest.approx(0.85)
    assert out["worst_class"] == 7 and out["worst_accuracy"] == 0.0
    assert out["per_class"][2] == pytest.approx(0.5)
    assert out["per_class"][0] == 1.0


def test_conditional_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one length"):
        metrics.conditional_accuracy(np.zeros(5), np.zeros(6))


def test_reconstruction_errors_on_known_values():
    x = np.array([[0.0, 1.0, 1.0, 0.0]])
    out = metrics.reconstruction_errors(x, np.array([[0.5, 0.5, 1.0, 0.0]]))
    assert out["mse"] == pytest.approx(0.125)
    assert out["bce"] == pytest.approx(2 * math.log(2), rel=1e-5)  # two pixels at p = 0.5
    assert metrics.reconstruction_errors(x, x)["bce"] == pytest.approx(0.0, abs=1e-5)


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="Received: shape"):
        metrics.fid(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="more than k"):
        metrics.precision_recall(np.zeros((3, 2)), np.zeros((3, 2)))
