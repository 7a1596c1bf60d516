"""How well can a digit be told from its top half alone? The ceiling of completion.

`kgen evaluate` scores a PatchLSTM's completions by whether the shipped
evaluator reads the completed digit as the true one. A completion is a
function of the given patches only, so "the evaluator reads the completion"
is itself a classifier of the given part: its accuracy cannot beat the best
classifier of the given part. This script estimates that best: the
evaluator's own network (`kgen.evaluation.evaluator.build_network`), trained
from scratch on the 60,000 training digits with everything after the first
K patches set to 0 (the input `label_agreement_given_only` shows the
evaluator), tested on the 10,000 test digits cut the same way.

A trained network's accuracy is an estimate from below of the best possible
one; on MNIST a CNN of this size gets close to it (99.4 % on whole digits).

Example:

    KERAS_BACKEND=torch python benchmarks/top_half_bound.py \
        --data-dir ~/data/mnist --given 8 --epochs 8
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kgen import data  # noqa: E402
from kgen.data.patches import from_patches, to_patches  # noqa: E402
from kgen.evaluation import evaluator  # noqa: E402


def given_only(x, given):
    """`x` (n, 28, 28, 1) in [0, 1] with every pixel after the first `given` patches set to 0."""
    patches = np.asarray(to_patches(x))  # (n, 16, 49)
    patches[:, given:] = 0.0
    return np.asarray(from_patches(patches))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the full MNIST's IDX files")
    parser.add_argument("--given", type=int, nargs="+", default=[8], help="numbers of given patches K")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train = data.load_dataset("mnist", "train", data_dir=args.data_dir)
    test = data.load_dataset("mnist", "test", data_dir=args.data_dir)
    x_train = (np.asarray(train.images, np.float32) / 255.0)[..., None]  # (60000, 28, 28, 1)
    x_test = (np.asarray(test.images, np.float32) / 255.0)[..., None]
    y_train, y_test = train.labels.astype("int32"), test.labels.astype("int32")

    results = {"backend": keras.config.backend(), "epochs": args.epochs, "test_digits": len(x_test), "given": {}}
    for k in args.given:
        keras.utils.set_random_seed(args.seed)
        network = evaluator.build_network()
        classifier = keras.Model(network.input, network.outputs[1])  # logits
        steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
        classifier.compile(
            optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        start = time.time()
        classifier.fit(given_only(x_train, k), y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
        logits = classifier.predict(given_only(x_test, k), batch_size=500, verbose=0)
        accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
        results["given"][k] = {"test_accuracy": accuracy, "train_seconds": round(time.time() - start)}
        print(f"given {k} of 16 patches: a classifier of the given part alone reads {accuracy:.2%} of test digits")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
