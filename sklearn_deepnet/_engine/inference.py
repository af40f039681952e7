"""Inference: raw network outputs in bounded memory, bit-identical whatever the batch.

:func:`predict_raw` serves ``predict``/``predict_proba``, early-stopping
scoring and ``net_.predict``. On CPU it runs the network's evaluation plan
(:mod:`.eval_plan`: plain operations walking the layer plan, batch-invariant,
prepared once per layout by :mod:`.plan_cache`) chunk by chunk, or a small
dense request in one piece (serving: padded and cut in numpy), on one CPU
thread when the matrix products are small (like training, see
:func:`~._engine.choose_num_threads`). A network with forward hooks, or a
``forward`` of its own, is simply called in evaluation mode (so its hooks
run); batch invariance then depends on it. :func:`predict_raw_mc` runs MC
dropout's stochastic passes; :func:`weights_copy` and
:data:`GLOBAL_RNG_LOCK` keep predictions apart from fits in other threads.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .data import threads_for, to_tensor, torch_threads
from .eval_plan import padded_rows, prepare, run_padded_modules, run_plan
from .kernels import global_forward_hooks
from .module import MLP
from .plan_cache import cached

__all__ = ["GLOBAL_RNG_LOCK", "PREDICT_BATCH_SIZE", "predict_raw", "predict_raw_mc",
           "seed_forked", "seeded_global_rng", "weights_copy"]


# torch's default generators are shared by every thread of the process: code
# that seeds or draws from them holds this lock, so that fits and predictions
# running in several threads at once (joblib's threading backend, Dask
# threads) neither change each other's random numbers nor restore each
# other's saved states. Switching a fitted module's train/eval mode for a
# prediction holds it too (another thread may be predicting with it).
GLOBAL_RNG_LOCK = threading.RLock()


def seed_forked(seed, cuda_devices):
    """Seed the CPU generator and the given CUDA devices' (those a ``fork_rng`` protects).

    ``torch.manual_seed`` would seed every CUDA device, changing the caller's
    random state on devices the fork does not restore.
    """
    torch.default_generator.manual_seed(seed)
    for index in cuda_devices:
        torch.cuda.default_generators[index].manual_seed(seed)


@contextmanager
def seeded_global_rng(seed, cuda_devices):
    """Use torch's default generators, seeded with ``seed``, then give them back as they were.

    Holds :data:`GLOBAL_RNG_LOCK` (other threads' random numbers are not
    affected) and forks the CPU generator and ``cuda_devices``' (the caller's
    states come back on exit).

    Parameters
    ----------
    seed : int
    cuda_devices : list of int
    """
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=cuda_devices):
        seed_forked(seed, cuda_devices)
        yield


PREDICT_BATCH_SIZE = 8192

# Elements of one densified chunk of a sparse X (16 MB of float32).
_SPARSE_CHUNK_ELEMENTS = 2**22


def _serve(plan, X, threads):
    """:func:`run_plan` on a float32 numpy ``X`` of at most one chunk, padded and
    cut in numpy (a torch pad and slice cost a sixth of a one-row call)."""
    n = len(X)
    with torch_threads(threads), nullcontext() if plan.grad_free else torch.inference_mode():
        rows = padded_rows(plan, n)
        if n < rows:
            x = np.zeros((rows, X.shape[1]), np.float32)
            x[:n] = X
        else:  # (a copy where torch could not share X's memory)
            x = X if X.flags.writeable and X.flags.c_contiguous else np.array(X, order="C")
        x = torch.from_numpy(x)
        for op in plan.ops:
            x = op(x)
    return x.numpy()[:n, : plan.n_outputs].copy()  # (a C-ordered array, as predict_raw's)


def _chunks(X, device, batch_size):
    """``(start, float32 tensor on device)`` for consecutive row chunks of ``X``.

    A sparse ``X`` (or a RowSubset of one) is densified chunk by chunk, with
    chunks of a wide one kept to ``_SPARSE_CHUNK_ELEMENTS``: memory stays bounded.
    """
    if sp.issparse(X) or getattr(X, "sparse", False):
        batch_size = max(1, min(batch_size, _SPARSE_CHUNK_ELEMENTS // max(1, X.shape[1])))
    for start in range(0, X.shape[0], batch_size):
        chunk = X[start : start + batch_size]
        if sp.issparse(chunk):
            chunk = chunk.toarray()
        if not isinstance(chunk, torch.Tensor):
            chunk = to_tensor(chunk, device)
        yield start, chunk.to(device=device, dtype=torch.float32)


def weights_copy(module):
    """A copy of ``module``'s tree with its own parameters and buffers (clones),
    sharing everything else (hooks, settings) with it.

    What predictions use while a fit continues training ``module`` in place
    (a warm start): they keep the weights from before that fit, and their
    mode switches touch only the copy. Unlike ``copy.deepcopy`` it copies no
    hook, so a hook holding an unpicklable object (a lock) is no obstacle.
    """
    clone = object.__new__(type(module))
    state = dict(module.__dict__)
    state["_parameters"] = {
        k: None if p is None else torch.nn.Parameter(p.detach().clone(), requires_grad=False)
        for k, p in module._parameters.items()}
    state["_buffers"] = {k: None if b is None else b.detach().clone()
                         for k, b in module._buffers.items()}
    state["_modules"] = {k: None if c is None else weights_copy(c)
                         for k, c in module._modules.items()}
    clone.__dict__ = state
    return clone


def predict_raw(module, X, device, batch_size=PREDICT_BATCH_SIZE, n_threads=None,
                members=False):
    """Raw network outputs for ``X`` in evaluation mode, as a float32 numpy array.

    No autograd, at most ``batch_size`` rows in flight, results written into
    one preallocated array. On CPU, a row's outputs are bit-identical whatever
    batch it arrives in (see :mod:`.eval_plan`; ``tests/test_inference.py``
    checks it for every activation across chunkings, subsets and thread
    counts).

    Parameters
    ----------
    module : MLP or torch.nn.Module
        Any other module is simply called in evaluation mode.
    X : ndarray, scipy.sparse matrix, torch.Tensor or RowSubset
        Of shape (n_samples, n_features), float32.
    device : torch.device or str
    batch_size : int
        Rows per forward pass; bounds the memory used.
    n_threads : int or None, default=None
        CPU threads; ``None`` picks by problem size. The caller's
        ``torch.get_num_threads()`` is restored.
    members : bool, default=False
        For an ensemble (an :class:`MLP` of ``n_members > 1``): each member's
        raw outputs instead of their combination (as batch-invariant), member
        ``m``'s in columns ``m*n_outputs ..``.

    Returns
    -------
    ndarray of shape (n_samples, n_outputs), float32
        ``(n_samples, n_members * n_outputs)`` with ``members``.
    """
    device = torch.device(device)
    # On CPU an MLP runs as a plan of plain operations, or, when it is no longer
    # what its plan built (a user's activation), through its modules with
    # padded matrix products; an MLP with hooks or a forward of its own (and
    # anything else) is simply called, so that they run. What the module's
    # layout decides is kept between calls (plan_cache); the padded copies of
    # its tensors are refreshed at every call. Global forward hooks
    # (register_module_forward_hook) are the process's, not the layout's: read
    # at every call, and while one is registered the module is called too.
    padded, plan, largest = False, None, 0
    if device.type == "cpu" and isinstance(module, MLP):
        padded, plan, largest = cached(module, prepare)
        if global_forward_hooks():
            padded, plan = False, None
    k = module.plan.n_members if members and isinstance(module, MLP) else 1
    members = k > 1
    toggle = plan is None
    wanted = torch.get_num_threads()
    if device.type == "cpu":
        wanted = n_threads or threads_for(min(X.shape[0], batch_size), largest, wanted)
    if (plan is not None and not members and type(X) is np.ndarray and 0 < len(X) <= batch_size
            and X.dtype == np.float32):
        # A small dense request (serving): the same plan walk as below, in one
        # chunk, without the chunk loop's bookkeeping.
        return _serve(plan, X, wanted)
    # The result is allocated once and filled chunk by chunk: holding on to
    # per-chunk tensors would interleave small long-lived blocks with the
    # large per-chunk temporaries and keep the C allocator from reusing them.
    out = None
    # Switching the module's mode (layers not known to the plan) is shared
    # state: predictions from other threads wait. (No fit trains this module
    # meanwhile: during a warm start predictions use a weights_copy.)
    with torch_threads(wanted), GLOBAL_RNG_LOCK if toggle else nullcontext():
        was_training = module.training  # read under the lock: another prediction
        try:                            # may have switched it meanwhile
            if toggle:
                module.eval()
            with torch.inference_mode():
                for start, chunk in _chunks(X, device, batch_size):
                    if plan is not None:
                        res = run_plan(plan, chunk, members and k)
                    elif padded:
                        res = run_padded_modules(module, chunk, members)
                    elif members:
                        res = module.forward_members(chunk)
                    else:
                        res = module(chunk)
                    if out is None:
                        out = np.empty((X.shape[0], res.shape[1]), dtype=np.float32)
                    out[start : start + len(chunk)] = res.cpu().numpy()
        finally:
            if toggle:
                module.train(was_training)
    if out is None:
        return np.empty((0, module.output.linear.out_features * k), dtype=np.float32)
    return out


def predict_raw_mc(module, X, device, n_passes, seed, batch_size=PREDICT_BATCH_SIZE):
    """Raw outputs of ``n_passes`` stochastic passes with dropout active (MC dropout).

    Dropout (and alpha dropout) layers sample masks as in training; BatchNorm
    uses its running statistics, as in evaluation. The masks come from a CPU
    generator seeded with ``seed`` (and the device's, forked), so the same
    ``X`` gives the same result, and the caller's random state is untouched.
    A row's result depends on the rows it is predicted with (masks are drawn
    per batch), unlike :func:`predict_raw`.

    Parameters
    ----------
    module : MLP
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features), float32
    device : torch.device or str
    n_passes : int
    seed : int
    batch_size : int, default=PREDICT_BATCH_SIZE

    Returns
    -------
    ndarray of shape (n_passes, n_samples, n_outputs), float32
    """
    device = torch.device(device)
    dropouts = [m for m in module.modules() if isinstance(m, nn.Dropout | nn.AlphaDropout)]
    out = np.empty((n_passes, X.shape[0], module.output.linear.out_features), np.float32)
    cuda = [device.index or 0] if device.type == "cuda" else []
    # The lock covers the mode switches too: another thread predicting with
    # the same module must not switch its dropout layers off meanwhile.
    with seeded_global_rng(seed, cuda), torch.inference_mode():
        was_training = module.training
        try:
            module.eval()
            for m in dropouts:
                m.train()
            for start, chunk in _chunks(X, device, batch_size):
                for k in range(n_passes):
                    out[k, start : start + len(chunk)] = module(chunk).cpu().numpy()
        finally:
            module.train(was_training)
    return out
