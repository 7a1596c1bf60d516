"""The classification accuracy score (kgen.evaluation.cas) and `kgen evaluate --cas`."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

from kgen import capabilities as caps
from kgen import files, runs, specs, training
from kgen.cli.main import main
from kgen.data import load_bundled, to_float
from kgen.errors import KgenError
from kgen.evaluation import cas
from kgen.evaluation import evaluate as ev


class RealDigits:
    """A fake conditional model: `generate` returns real training digits of the asked label (plus `shift`)."""

    capabilities = frozenset({caps.CONDITIONAL})
    num_classes = 10

    def __init__(self, images, labels, shift=0):
        self.images, self.labels, self.shift = images, labels, shift
        self.calls = []

    def generate(self, n, labels=None, seed=None, guidance=None):
        self.calls.append({"n": n, "seed": seed, "guidance": guidance})
        rng = np.random.default_rng(seed)
        drawn = (np.asarray(labels) + self.shift) % self.num_classes
        return np.stack([self.images[rng.choice(np.flatnonzero(self.labels == c))] for c in drawn])


@pytest.fixture
def tiny_reference(monkeypatch):
    """`evaluate.reference` on little data: 2,000 training digits, 1,000 test digits (a data_dir of its own)."""
    (x_train, y_train), (x_test, y_test) = load_bundled("train"), load_bundled("test")
    tiny = {"x_train": to_float(x_train[:2000]), "y_train": y_train[:2000],
            "x_test": to_float(x_test[:1000]), "y_test": y_test[:1000]}
    monkeypatch.setattr(ev, "reference", lambda dataset="mnist", data_dir=None: tiny)
    monkeypatch.setattr(cas, "BATCH_SIZE", 32)  # more steps from few images
    ev._ceiling.cache_clear()
    yield tiny
    ev._ceiling.cache_clear()


def test_cas_of_real_digits_is_near_the_ceiling_and_of_wrong_labels_low(tiny_reference):
    x, y = tiny_reference["x_train"], tiny_reference["y_train"]
    options = dict(num_samples=600, seed=0, epochs=2, data_dir="tiny")
    right = ev.classification_accuracy_score(RealDigits(x, y), **options)
    assert right["num_samples"] == right["ceiling_num_samples"] == 600 and right["epochs"] == 2
    assert right["test_images"] == 1000
    assert right["ceiling"] > 0.6
    assert right["accuracy"] == pytest.approx(right["ceiling"], abs=0.1)
    wrong = ev.classification_accuracy_score(RealDigits(x, y, shift=1), **options)
    assert wrong["accuracy"] < 0.1  # the classifier learned each digit under its neighbour's label
    assert wrong["ceiling"] == right["ceiling"]  # computed once


def test_cas_draws_as_evaluate_does_and_passes_generate_options(tiny_reference, monkeypatch):
    trained = []

    def train_and_test(x, y, x_test, y_test, epochs, seed, num_classes=10):
        trained.append((len(x), np.bincount(y, minlength=10), epochs, seed))
        return {"accuracy": 0.5, "per_class": [0.5] * 10, "worst_class": 0, "worst_accuracy": 0.5}

    monkeypatch.setattr(cas, "train_and_test", train_and_test)
    model = RealDigits(tiny_reference["x_train"], tiny_reference["y_train"])
    m = ev.classification_accuracy_score(model, num_samples=1200, seed=5, epochs=1, data_dir="tiny",
                                          generate_options={"guidance": 1.5})
    assert [c["n"] for c in model.calls] == [1000, 200] and [c["seed"] for c in model.calls] == [5, 6]
    assert all(c["guidance"] == 1.5 for c in model.calls)
    samples, ceiling = trained
    assert samples[0] == 1200 and list(samples[1]) == [120] * 10 and samples[2:] == (1, 5)
    assert ceiling[0] == 1200 and ceiling[2:] == (1, 5)
    assert m["accuracy"] == m["ceiling"] == 0.5
    # the ceiling stops at the training digits there are
    again = ev.classification_accuracy_score(model, num_samples=3000, seed=5, epochs=1, data_dir="tiny")
    assert again["ceiling_num_samples"] == 2000 and again["num_samples"] == 3000


def test_cas_refuses_a_model_that_is_not_conditional(tiny_reference):
    class Unconditional(RealDigits):
        capabilities = frozenset()

    with pytest.raises(KgenError, match="needs a conditional model"):
        ev.classification_accuracy_score(Unconditional(None, None), num_samples=100, epochs=1)


@pytest.fixture(scope="module")
def tiny_cgan(tmp_path_factory):
    config = specs.TrainConfig(model="cgan", epochs=1, batch_size=32, limit=64, offline=True,
                               out=str(tmp_path_factory.mktemp("artifacts")), name="cgan")
    return training.train(config, verbose=0)


def test_evaluate_cas_through_the_cli(tiny_cgan, monkeypatch):
    monkeypatch.setattr(cas, "DEFAULT_EPOCHS", 1)
    result = CliRunner().invoke(main, ["evaluate", tiny_cgan, "-n", "100", "--cas", "--cas-samples", "100",
                                       "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "classification accuracy score (CAS)" in result.output and "CAS: a classifier trained" in result.output
    m = files.read_json(os.path.join(tiny_cgan, runs.METRICS))
    c = m["cas"]
    assert c["num_samples"] == 100 and c["epochs"] == 1 and c["test_images"] == 10000
    assert 0 <= c["accuracy"] <= 1 and 0 <= c["ceiling"] <= 1


def test_evaluate_cas_of_a_model_that_is_not_conditional_is_a_usage_error(tmp_path):
    config = specs.TrainConfig(model="ae", epochs=1, batch_size=32, limit=32, offline=True, out=str(tmp_path),
                               name="ae", model_options={"latent_dim": 2})
    run = training.train(config, verbose=0)
    result = CliRunner().invoke(main, ["evaluate", run, "--cas"])
    assert result.exit_code == 2
    assert "--cas applies to conditional runs only" in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1, result.output
    assert not os.path.exists(os.path.join(run, runs.METRICS))
    with pytest.raises(KgenError, match="conditional models") as raised:
        ev.evaluate(run, num_samples=10, figures=False, cas_samples=100)
    assert raised.value.exit_code == 2
