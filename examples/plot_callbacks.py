"""skorch callbacks in a scikit-learn estimator: schedules, checkpoints, early stopping
====================================================================================

On the 8x8 digits (standardized; 1,347 training and 450 test images), the same
(128, 128) network is trained four ways, each with ``callbacks=[...]``:

* a constant learning rate (no callback),
* ``LRScheduler("ExponentialLR")``: the rate times 0.85 after every epoch,
* ``LRScheduler(OneCycleLR, step_every="batch")``: the 1cycle schedule per batch
  (its momentum is cycled too),
* ``LRScheduler("ReduceLROnPlateau", monitor="valid_loss")`` with skorch's
  ``EarlyStopping``: the rate halves when the validation loss stalls, training
  stops once it stops improving.

A ``Checkpoint`` keeps the weights of the epoch with the lowest validation loss
on disk; ``net_.load_params`` loads them back into the fitted estimator. The figure shows
the learning rate and the validation loss per epoch; the script prints each
run's test accuracy. With ``tensorboard`` installed the 1cycle run also logs to
``runs/`` through skorch's ``TensorBoard`` callback.

Run: python examples/plot_callbacks.py [--epochs 30] [--output callbacks.png]
"""

import argparse
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Checkpoint, EarlyStopping, LRScheduler, TensorBoard
from torch.optim.lr_scheduler import OneCycleLR

from sklearn_deepnet import DeepMLPClassifier


def main(epochs, output):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    base = dict(hidden_layer_sizes=(128, 128), solver="momentum", learning_rate_init=0.05,
                batch_size=64, max_iter=epochs, early_stopping=True, n_iter_no_change=epochs,
                random_state=0)
    n_batches = int(np.ceil(len(X_train) * (1 - 0.1) / 64))  # 10% held out for validation
    one_cycle = [LRScheduler(OneCycleLR, max_lr=0.1, total_steps=epochs * n_batches,
                             step_every="batch")]
    try:
        from torch.utils.tensorboard import SummaryWriter

        one_cycle.append(TensorBoard(SummaryWriter("runs/one_cycle")))
        print("1cycle run logs to TensorBoard: tensorboard --logdir runs")
    except ImportError:
        print("(tensorboard not installed: no TensorBoard logging)")
    runs = {
        "constant": [],
        "exponential": [LRScheduler("ExponentialLR", gamma=0.85)],
        "1cycle": one_cycle,
        "plateau + EarlyStopping": [
            LRScheduler("ReduceLROnPlateau", monitor="valid_loss", patience=2, factor=0.5),
            EarlyStopping(monitor="valid_loss", patience=6),
        ],
    }
    fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    with tempfile.TemporaryDirectory() as ckpt:
        for name, callbacks in runs.items():
            callbacks = [*callbacks, Checkpoint(monitor="valid_loss_best", dirname=ckpt,
                                                fn_prefix=f"{name.split()[0]}_")]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = DeepMLPClassifier(**base, callbacks=callbacks).fit(X_train, y_train)
            hist = clf.history_
            epochs_run = np.arange(1, len(hist) + 1)
            lrs = [epoch["batches"][0].get("event_lr", epoch.get("event_lr", base[
                "learning_rate_init"])) for epoch in hist]
            ax_lr.plot(epochs_run, lrs, label=name)
            ax_loss.plot(epochs_run, hist[:, "valid_loss"], label=name)
            last = clf.score(X_test, y_test)  # the estimator's early stopping is off
            # Load the checkpoint with the lowest validation loss back into the model.
            clf.net_.load_params(f_params=f"{ckpt}/{name.split()[0]}_params.pt")
            print(f"{name:<24} epochs {len(hist):>3}   test accuracy: last epoch "
                  f"{last:.3f}, best checkpoint {clf.score(X_test, y_test):.3f}   "
                  f"stopped by: {clf.net_.stop_reason or 'max_iter'}")
    ax_lr.set(xlabel="epoch", ylabel="learning rate (first batch of the epoch)",
              yscale="log", title="Learning rate")
    ax_loss.set(xlabel="epoch", ylabel="validation log-loss", yscale="log",
                title="Validation loss")
    for ax in (ax_lr, ax_loss):
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output", default="callbacks.png")
    args = parser.parse_args()
    main(args.epochs, args.output)
