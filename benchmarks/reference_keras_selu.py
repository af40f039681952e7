"""The chapter's own Keras code for the 100-layer SELU / ReLU networks, as a reference.

Runs the notebook's cell (Fashion-MNIST, 55,000 / 5,000 split, pixels / 255
then standardized per pixel, 100 Dense layers of 100 units with
``kernel_initializer="lecun_normal"`` / ``"he_normal"``, softmax output,
``SGD(learning_rate=0.001, momentum=0.9)``, batch 32, 5 epochs) with
``tf.random.set_seed(seed)`` for several seeds, and prints the validation
accuracy per epoch. TensorFlow is not a dependency of this project: install it
in a separate environment (``pip install tensorflow-cpu==2.13.0`` on Python
3.11, the version of the chapter's notebook); without it the script says so
and exits. Compare with ``benchmarks/bench_selu_depth.py``.

Run::

    python benchmarks/reference_keras_selu.py --seeds 42,43,44
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist  # noqa: E402


def run(tf, data, activation, seed, epochs):
    (X, y), (Xv, yv) = data
    tf.random.set_seed(seed)
    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=[28 * 28])])
    init = "lecun_normal" if activation == "selu" else "he_normal"
    for _ in range(100):
        model.add(tf.keras.layers.Dense(100, activation=activation, kernel_initializer=init))
    model.add(tf.keras.layers.Dense(10, activation="softmax"))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  optimizer=tf.keras.optimizers.SGD(learning_rate=0.001, momentum=0.9))
    history = model.fit(X, y, epochs=epochs, validation_data=(Xv, yv), verbose=0)
    return history.history["val_accuracy"], history.history["loss"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seeds", default="42,43,44")
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    try:
        import tensorflow as tf
    except ImportError:
        print("TensorFlow is not installed (pip install tensorflow-cpu==2.13.0 in a separate "
              "environment); skipping.")
        return
    if not fashion_mnist.available():
        print(fashion_mnist.INSTALL_HINT + "; skipping.")
        return
    (X, y), (Xv, yv), _ = fashion_mnist.chapter_split()
    mean, std = X.mean(axis=0), X.std(axis=0)
    data = ((X - mean) / std, y), ((Xv - mean) / std, yv)
    print(f"# tensorflow {tf.__version__}")
    for activation in ("selu", "relu"):
        finals = []
        for seed in (int(s) for s in args.seeds.split(",")):
            start = time.perf_counter()
            acc, loss = run(tf, data, activation, seed, args.epochs)
            finals.append(acc[-1])
            print(f"{activation} seed {seed}: valid acc per epoch {np.round(acc, 3).tolist()}, "
                  f"train loss {np.round(loss, 3).tolist()} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
        print(f"{activation}: mean {np.mean(finals):.3f} ± {np.std(finals):.3f}")


if __name__ == "__main__":
    main()
