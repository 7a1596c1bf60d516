"""The classification accuracy score (CAS) of a conditional model, beside its real-data ceiling.

Ravuri & Vinyals (2019), "Classification Accuracy Score for Conditional
Generative Models": train a classifier on the model's labelled samples only,
then test it on real test data. A model that draws every asked digit
recognisably but in too few styles (too thin, one slant, one stroke width)
passes the evaluator's label check — each sample is read as asked — yet a
classifier that learned digits from those samples alone misreads the real
test digits it never saw the like of. CAS is read against its ceiling: the
same protocol on as many real training digits.

The protocol (`classification_accuracy_score`):

- N labelled samples (`DEFAULT_NUM_SAMPLES`, 10,000), labels cycling 0..9
  (N/10 of each), drawn as `kgen evaluate` draws its samples (1,000 at a
  time, chunk i with seed `seed + i`, the model's own `generate` options,
  e.g. a flow's guidance and steps);
- a fresh network of the evaluator's architecture (`build_network`: three
  convolutions, 128 features, dropout 0.3, 10 logits), initialised and
  shuffled with `seed`; trained with Keras `fit` on those samples only, no
  augmentation: `DEFAULT_EPOCHS` (5) epochs of batches of `BATCH_SIZE` (128),
  Adam with a learning rate decaying from 3e-3 (`LEARNING_RATE`) to 0 on a
  cosine, sparse categorical cross-entropy;
- its accuracy on the 10,000 real test digits (the official MNIST test set);
- the ceiling: the same, on N real training digits of the run's own data
  source drawn as the real-data floor draws them (without replacement,
  `FLOOR_SEED`; all of them when there are fewer than N, e.g. the 5,000
  bundled digits of an offline run). Computed once per process for a data
  source, N, epochs and seed.
"""

import functools
import time

import keras
import numpy as np

from kgen import capabilities as caps
from kgen.errors import KgenError
from kgen.evaluation.evaluator import build_network, check_images

DEFAULT_NUM_SAMPLES = 10_000
DEFAULT_EPOCHS = 5
BATCH_SIZE = 128  # of training, and of the test predictions (twice as fast on torch as 500)
LEARNING_RATE = 3e-3  # the peak of the cosine: 3e-3 reads 97.3 % after 5 epochs on the 5,000 bundled digits


def classification_accuracy_score(model, num_samples=DEFAULT_NUM_SAMPLES, seed=0, epochs=DEFAULT_EPOCHS,
                                  generate_options=None, dataset="mnist", data_dir=None, samples=None):
    """The accuracy on real test digits of a classifier trained on `model`'s labelled samples only.

    Args:
        model: a conditional kgen model (`generate(n, labels=...)`).
        num_samples: labelled samples drawn (labels cycling 0..9) and real
            training digits of the ceiling.
        seed: seed of the samples (chunk i: `seed + i`) and of the
            classifier's initial weights and shuffling (the same for the
            ceiling, so both classifiers start alike).
        epochs: passes of the classifier over its training images.
        generate_options: more keyword arguments of `generate`, e.g.
            `{"guidance": 1.5, "steps": 4}` for a flow (default: its own).
        dataset, data_dir: the run's data source: the test digits, and the
            training digits of the ceiling (`evaluate.reference`).
        samples: `(images, labels)` already drawn this way (`kgen evaluate`
            reuses its own when N and the seed agree), or None to draw them.

    Returns:
        A dict: `accuracy` (CAS), `ceiling` (the same protocol on real
        training digits), `per_class` accuracy and `worst_class`,
        `num_samples`, `ceiling_num_samples`, `epochs`, `seed`,
        `test_images`, `seconds`.

    Example:

    >>> cas = classification_accuracy_score(checkpoint.load_model(run), 10_000)
    >>> cas["accuracy"], cas["ceiling"]
    """
    from kgen.evaluation import evaluate as ev

    if not caps.has(model, caps.CONDITIONAL):
        raise KgenError(
            f"The classification accuracy score needs a conditional model (generate(n, labels=...)); "
            f"this is a {type(model).__name__}."
        )
    if num_samples < model.num_classes:
        raise KgenError(f"num_samples must be at least {model.num_classes} (one of each label). "
                        f"Received: num_samples={num_samples}")
    if epochs < 1:
        raise KgenError(f"epochs must be 1 or more. Received: epochs={epochs}")
    start = time.time()
    if samples is None:
        labels = np.arange(num_samples) % model.num_classes
        images = ev.generate(model, num_samples, seed, labels, options=dict(generate_options or {}))
    else:
        images, labels = samples
    ref = ev.reference(dataset, data_dir)
    result = train_and_test(images, labels, ref["x_test"], ref["y_test"], epochs, seed, model.num_classes)
    ceiling = real_data_ceiling(dataset, data_dir, num_samples, epochs, seed)
    return {
        "accuracy": result["accuracy"],
        "ceiling": ceiling["accuracy"],
        "per_class": result["per_class"],
        "worst_class": result["worst_class"],
        "worst_accuracy": result["worst_accuracy"],
        "ceiling_worst_accuracy": ceiling["worst_accuracy"],
        "num_samples": int(num_samples),
        "ceiling_num_samples": ceiling["num_samples"],
        "epochs": int(epochs),
        "seed": seed,
        "test_images": len(ref["y_test"]),
        "seconds": round(time.time() - start, 1),
    }


def real_data_ceiling(dataset, data_dir, num_samples, epochs, seed):
    """The protocol on N real training digits drawn as the real-data floor draws them: `accuracy`, `per_class`, ...

    N is `num_samples`, or all the training digits when there are fewer
    (`num_samples` in the result says which). Computed once per process.
    """
    return dict(_ceiling(dataset, data_dir or None, int(num_samples), int(epochs), seed))


@functools.lru_cache(maxsize=8)
def _ceiling(dataset, data_dir, num_samples, epochs, seed):
    from kgen.evaluation import evaluate as ev

    ref = ev.reference(dataset, data_dir)
    n = min(num_samples, len(ref["x_train"]))
    pick = np.random.default_rng(ev.FLOOR_SEED).permutation(len(ref["x_train"]))[:n]
    num_classes = int(np.max(ref["y_test"])) + 1
    result = train_and_test(ref["x_train"][pick], ref["y_train"][pick], ref["x_test"], ref["y_test"], epochs, seed,
                            num_classes)
    return {**result, "num_samples": int(n)}


def train_and_test(x, y, x_test, y_test, epochs, seed, num_classes=10):
    """Trains a fresh evaluator-architecture classifier on (x, y); its accuracy on (x_test, y_test).

    Seeded with `seed` (`keras.utils.set_random_seed`: the initial weights,
    the dropout and the shuffling), so the same images give the same number
    on one backend.
    """
    x = check_images(x)
    y = np.asarray(y).reshape(-1).astype("int32")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of one length. Received: {len(x)} images, {len(y)} labels")
    keras.utils.set_random_seed(seed)
    network = build_network(num_classes)
    classifier = keras.Model(network.input, network.outputs[1])  # logits only, the same layers
    steps = int(np.ceil(len(x) / BATCH_SIZE)) * epochs
    classifier.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    classifier.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0)
    predicted = classifier.predict(check_images(x_test), batch_size=BATCH_SIZE, verbose=0).argmax(axis=1)
    y_test = np.asarray(y_test).reshape(-1)
    correct = predicted == y_test
    per_class = [float(correct[y_test == c].mean()) if np.any(y_test == c) else float("nan")
                 for c in range(num_classes)]
    worst = int(np.nanargmin(per_class))
    return {"accuracy": float(correct.mean()), "per_class": per_class, "worst_class": worst,
            "worst_accuracy": per_class[worst]}
