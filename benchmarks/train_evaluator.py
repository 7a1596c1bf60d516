"""Trains the evaluator CNN that kgen ships and records its hash and accuracy.

MNIST: the 60,000 official training digits read from IDX files
(`--data-dir`), with light augmentation (shifts, small rotations and
scalings), validated on the 10,000 test digits; without `--data-dir`, the
5,000 digits bundled with kgen. Fashion-MNIST: its 60,000 training images from IDX files
(`--data-dir`), with shifts and horizontal flips, validated on its 10,000 test
images.

The weights go to `kgen/evaluation/weights/<dataset>.weights.h5` and their
SHA-256 hash, test accuracy and this command to
`kgen/evaluation/weights/evaluators.json`, which `kgen.evaluation` checks
when it loads them.

Example:

    KERAS_BACKEND=tensorflow python benchmarks/train_evaluator.py --dataset mnist \
        --data-dir ~/data/mnist --epochs 6
    KERAS_BACKEND=torch python benchmarks/train_evaluator.py --dataset fashion_mnist \
        --data-dir /usr/share/datasets/fashion-mnist --epochs 6
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from kgen import data  # noqa: E402
from kgen.evaluation import evaluator  # noqa: E402


class Augmented(keras.utils.PyDataset):
    """Batches of randomly shifted, rotated, scaled (and maybe flipped) images."""

    def __init__(self, x, y, batch_size, rotate, scale, shift, flip, seed):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rotate, self.scale, self.shift, self.flip = rotate, scale, shift, flip
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return np.stack([self.augment(img) for img in self.x[idx]])[..., None], self.y[idx]

    def augment(self, img):  # (28, 28) float32
        angle = np.deg2rad(self.rng.uniform(-self.rotate, self.rotate))
        scale = self.rng.uniform(1 - self.scale, 1 + self.scale)
        shift = self.rng.uniform(-self.shift, self.shift, size=2)
        c, s = np.cos(angle) / scale, np.sin(angle) / scale
        matrix = np.array([[c, -s], [s, c]])
        center = np.array([13.5, 13.5])
        offset = center - matrix @ (center + shift)
        out = ndimage.affine_transform(img, matrix, offset=offset, order=1, mode="constant")
        if self.flip and self.rng.random() < 0.5:
            out = out[:, ::-1]
        return out


def load(dataset, data_dir):
    if dataset == "mnist" and not data_dir:
        (x_train, y_train), (x_test, y_test) = data.load_bundled("train"), data.load_bundled("test")
    else:
        train = data.load_dataset(dataset, "train", data_dir=data_dir)
        test = data.load_dataset(dataset, "test", data_dir=data_dir)
        (x_train, y_train), (x_test, y_test) = (train.images, train.labels), (test.images, test.labels)
    scale = lambda x: np.asarray(x, np.float32) / 255.0  # noqa: E731
    return scale(x_train), y_train.astype("int32"), scale(x_test)[..., None], y_test.astype("int32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    parser.add_argument("--data-dir", help="IDX files (needed for fashion_mnist; mnist: else the bundled 5k)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 30 (mnist), 8 (fashion_mnist)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-freq", type=int, default=5)
    parser.add_argument("--out", default=evaluator.WEIGHTS_DIR)
    args = parser.parse_args(argv)
    epochs = args.epochs or (30 if args.dataset == "mnist" else 8)

    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, y_test = load(args.dataset, args.data_dir)
    if args.dataset == "mnist":
        aug = dict(rotate=10.0, scale=0.1, shift=2.0, flip=False)
    else:
        aug = dict(rotate=0.0, scale=0.0, shift=2.0, flip=True)
    train_set = Augmented(x_train, y_train, args.batch_size, seed=args.seed, **aug)

    network = evaluator.build_network()
    classifier = keras.Model(network.input, network.outputs[1])  # logits only, same layers
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=epochs * len(train_set))
    classifier.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.time()
    classifier.fit(
        train_set, epochs=epochs, validation_data=(x_test, y_test), validation_freq=args.validation_freq, verbose=2
    )
    seconds = time.time() - start

    logits = classifier.predict(x_test, batch_size=500, verbose=0)
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.dataset}.weights.h5")
    network.save_weights(path)

    manifest_path = os.path.join(args.out, "evaluators.json")
    entries = {}
    if os.path.isfile(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            entries = json.load(f)
    entries[args.dataset] = {
        "file": os.path.basename(path),
        "sha256": evaluator.sha256(path),
        "num_classes": 10,
        "test_accuracy": round(accuracy, 4),
        "train_images": len(x_train),
        "train_source": "bundled 5k sample" if args.dataset == "mnist" and not args.data_dir else "IDX files",
        "test_images": len(x_test),
        "epochs": epochs,
        "augmentation": aug,
        "backend": keras.config.backend(),
        "train_seconds": round(seconds),
        "command": " ".join(
            [f"KERAS_BACKEND={keras.config.backend()}", "python", "benchmarks/train_evaluator.py"] + sys.argv[1:]
        ),
    }
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=2)
        f.write("\n")
    print(f"{args.dataset}: test accuracy {accuracy:.4f}, {os.path.getsize(path) / 1024:.0f} KiB, "
          f"sha256 {entries[args.dataset]['sha256']}")


if __name__ == "__main__":
    main()
