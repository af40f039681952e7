"""Training engine: tensor-resident data, seeded batching, the skorch net.

The public estimators build a :class:`TrainingNet` in ``fit``. It keeps skorch's
machinery (callbacks, history, the optimizer-closure train step, pickling
across devices) and replaces the parts that cost the most on small MLPs:
the per-row ``Dataset.__getitem__`` + collate data path (batches here are
slices of tensors converted once), shuffling from torch's global generator
(here a dedicated, seeded ``torch.Generator``), and a host sync per batch
(the epoch loss is accumulated on the device and read once per epoch).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer

from ._optim import build_optimizer

__all__ = ["BatchIterator", "TensorData", "TrainingNet", "predict_raw", "to_tensor"]

PREDICT_BATCH_SIZE = 8192


def to_tensor(array, device, dtype=None):
    """Convert a numpy array to a tensor on ``device`` without an extra copy on CPU."""
    with warnings.catch_warnings():
        # Read-only inputs (e.g. memory maps) are never written to.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        t = torch.from_numpy(np.ascontiguousarray(array))
    if dtype is not None:
        t = t.to(dtype)
    return t.to(device)


class TensorData(torch.utils.data.Dataset):
    """Training data held as three tensors on the training device.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    y : torch.Tensor
        Targets (``int64`` class indices or ``float32`` values).
    w : torch.Tensor of shape (n_samples,)
        Sample weights.
    """

    def __init__(self, X, y, w):
        self.X, self.y, self.w = X, y, w

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], (self.y[i], self.w[i])


class BatchIterator:
    """Mini-batches as tensor slices of a seeded permutation.

    Parameters
    ----------
    data : TensorData
    batch_size : int
    shuffle : bool
    generator : torch.Generator or None
        CPU generator drawing the permutation of each epoch.
    min_batch : int, default=1
        A trailing batch smaller than this is merged into the previous one
        (BatchNorm cannot normalize a single sample).
    """

    def __init__(self, data, batch_size, shuffle, generator=None, min_batch=1):
        self.data = data
        self.shuffle = shuffle
        self.generator = generator
        n = len(data)
        bounds = list(range(0, n, batch_size)) + [n]
        if len(bounds) > 2 and n - bounds[-2] < min_batch:
            del bounds[-2]
        self.bounds = bounds

    def __len__(self):
        return len(self.bounds) - 1

    def __iter__(self):
        d = self.data
        if self.shuffle:
            perm = torch.randperm(len(d), generator=self.generator).to(d.X.device)
        for start, stop in zip(self.bounds[:-1], self.bounds[1:], strict=False):
            if self.shuffle:
                idx = perm[start:stop]
                yield d.X[idx], (d.y[idx], d.w[idx])
            else:
                yield d.X[start:stop], (d.y[start:stop], d.w[start:stop])


def weight_penalty(module, alpha, l1_ratio):
    """Elastic-net penalty on all weight matrices (not biases, not BatchNorm).

    ``alpha * (l1_ratio * sum|W| + 0.5 * (1 - l1_ratio) * sum W**2)``; with
    ``l1_ratio=0`` this is ``MLPClassifier``'s L2 term.
    """
    weights = [lin.weight for lin in module.linears()]
    total = 0.0
    if l1_ratio < 1:
        total = total + 0.5 * (1 - l1_ratio) * sum(w.pow(2).sum() for w in weights)
    if l1_ratio > 0:
        total = total + l1_ratio * sum(w.abs().sum() for w in weights)
    return alpha * total


class TrainingNet(NeuralNet):
    """skorch ``NeuralNet`` specialised for the estimators (private).

    Parameters
    ----------
    module : MLP
        Already initialized network.
    criterion : WeightedLoss
        Sample-weighted loss.
    solver : str
        Key of the optimizer table.
    solver_params : dict
        Hyperparameters handed to the optimizer factory.
    alpha, l1_ratio : float
        Penalty strength and L1 share; the penalty is divided by the batch's
        total sample weight, as in scikit-learn's MLP.
    shuffle : bool
        Shuffle the training data each epoch.
    min_batch : int
        Smallest allowed trailing batch (2 with BatchNorm).
    **kwargs
        Passed to ``skorch.NeuralNet`` (``batch_size``, ``max_epochs``,
        ``callbacks``, ``device``).
    """

    def __init__(
        self, module, criterion, *, solver, solver_params, alpha=0.0, l1_ratio=0.0,
        shuffle=True, min_batch=1, **kwargs,
    ):
        super().__init__(
            module, criterion, train_split=None, verbose=0, predict_nonlinearity=None,
            **kwargs,
        )
        self.solver = solver
        self.solver_params = solver_params
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.shuffle = shuffle
        self.min_batch = min_batch
        self.stop_reason = None

    def get_default_callbacks(self):
        """Only the epoch timer: losses are recorded by :meth:`run_single_epoch`."""
        return [("epoch_timer", EpochTimer())]

    def initialize_optimizer(self, triggered_directly=None):
        """Build the optimizer from the solver table."""
        self.optimizer_ = build_optimizer(
            self.solver, self.module_.named_parameters(), self.solver_params
        )
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Weighted data loss, plus the weight penalty while training."""
        y, w = y_true
        loss = self.criterion_(y_pred, y, w)
        if training and self.alpha > 0:
            loss = loss + weight_penalty(self.module_, self.alpha, self.l1_ratio) / w.sum()
        return loss

    def fit_loop(self, X, y=None, epochs=None, generator=None, **fit_params):
        """Run up to ``epochs`` epochs over ``X`` (a :class:`TensorData`).

        Stops early when a callback sets ``stop_reason``.
        """
        epochs = self.max_epochs if epochs is None else epochs
        batches = BatchIterator(X, self.batch_size, self.shuffle, generator, self.min_batch)
        self.stop_reason = None
        for _ in range(epochs):
            try:
                self.notify("on_epoch_begin", dataset_train=X, dataset_valid=None)
                self.run_single_epoch(batches, True, "train", self.train_step)
            except KeyboardInterrupt:
                # skorch's partial_fit swallows the interrupt and still runs
                # on_train_end; drop the unfinished epoch's record first.
                if "train_loss" not in self.history[-1]:
                    del self.history[-1]
                self.stop_reason = "interrupted"
                raise
            self.notify("on_epoch_end", dataset_train=X, dataset_valid=None)
            if self.stop_reason is not None:
                break
        return self

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """One pass; the loss is summed on the device and read once."""
        total = torch.zeros((), device=self.device)
        n_seen = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            size = len(batch[0])
            total += step["loss"].detach() * size
            n_seen += size
            self.notify("on_batch_end", batch=batch, training=training, **step)
        self.history.record(prefix + "_loss", float(total / max(n_seen, 1)))
        self.history.record(prefix + "_batch_count", len(iterator))
        self.history.record(prefix + "_samples", n_seen)


def predict_raw(module, X, device, batch_size=PREDICT_BATCH_SIZE):
    """Raw network outputs for ``X`` in evaluation mode, as a numpy array.

    On CPU the forward pass runs in float64 (weights cast for this call
    only): float32 matrix products differ by ~1e-6 relative depending on how
    many rows are multiplied together, and a prediction should not change
    with the batch it arrives in; in float64 the differences stay at rounding
    level (~1e-15). On CUDA it runs in float32.

    Parameters
    ----------
    module : torch.nn.Module
    X : ndarray of shape (n_samples, n_features), float32, or torch.Tensor
    device : torch.device or str
    batch_size : int
        Rows per forward pass; bounds the memory used.

    Returns
    -------
    ndarray of shape (n_samples, n_outputs)
        float64 on CPU, float32 on CUDA.
    """
    device = torch.device(device)
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    state = {
        k: v.to(dtype) if v.is_floating_point() else v
        for k, v in module.state_dict().items()
    }
    was_training = module.training
    module.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, len(X), batch_size):
                chunk = X[start : start + batch_size]
                if not isinstance(chunk, torch.Tensor):
                    chunk = to_tensor(chunk, device)
                chunk = chunk.to(device=device, dtype=dtype)
                outputs.append(torch.func.functional_call(module, state, (chunk,)).cpu())
    finally:
        module.train(was_training)
    return torch.cat(outputs).numpy()
