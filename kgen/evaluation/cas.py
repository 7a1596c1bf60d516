"""The classification accuracy score (CAS) of a conditional model, beside its real-data ceiling.

Ravuri & Vinyals (2019), "Classification Accuracy Score for Conditional
Generative Models": train a classifier on the model's labelled samples only,
then test it on real test data. A model that draws every asked digit
recognisably but in too few styles (too thin, one slant, one stroke width)
passes the evaluator's label check — each sample is read as asked — yet a
classifier that learned digits from those samples alone misreads the real
test digits it never saw the like of. CAS is read against its ceiling: the
same protocol on as many real training digits.

The protocol (`kgen.evaluation.evaluate.classification_accuracy_score`,
which draws the samples and the real digits; this module trains and tests):

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

import keras
import numpy as np

from kgen.evaluation.evaluator import build_network, check_images

DEFAULT_NUM_SAMPLES = 10_000
DEFAULT_EPOCHS = 5
BATCH_SIZE = 128  # of training, and of the test predictions (twice as fast on torch as 500)
LEARNING_RATE = 3e-3  # the peak of the cosine: 3e-3 reads 97.3 % after 5 epochs on the 5,000 bundled digits


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
