"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (no download).

Install with ``apt-get install dataset-fashion-mnist``; the IDX files land in
``/usr/share/datasets/fashion-mnist``. Shared by the benchmark scripts.
"""

import gzip
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "Fashion-MNIST not installed: apt-get install dataset-fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


def available():
    """Whether the Debian package's files are present."""
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file()


def load(part="train"):
    """Images and labels of one part of Fashion-MNIST.

    Parameters
    ----------
    part : {"train", "t10k"}
        The 60,000 training images or the 10,000 test images.

    Returns
    -------
    X : ndarray of shape (n, 784), uint8
        Pixels, row-major 28 x 28.
    y : ndarray of shape (n,), int64
        Class indices (see ``CLASS_NAMES``).
    """
    with gzip.open(FASHION_DIR / f"{part}-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28 * 28)
    with gzip.open(FASHION_DIR / f"{part}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return X, y


def chapter_split():
    """The chapter's split: 55,000 train, the last 5,000 training images as validation,
    the 10,000 test images; pixels scaled to [0, 1] (float32).

    Returns
    -------
    (X_train, y_train), (X_valid, y_valid), (X_test, y_test)
    """
    X, y = load("train")
    X_test, y_test = load("t10k")
    X = X.astype(np.float32) / 255.0
    X_test = X_test.astype(np.float32) / 255.0
    return (X[:-5000], y[:-5000]), (X[-5000:], y[-5000:]), (X_test, y_test)
