"""``solver="lbfgs"``: full-batch L-BFGS, as scikit-learn's MLP runs it.

One call of :meth:`LbfgsStep.run_epoch` runs one whole optimization the way
``MLPClassifier._fit_lbfgs`` does: SciPy's L-BFGS-B
(``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``) on the flattened
trainable parameters in float64, with ``maxiter=max_iter``,
``maxfun=max_fun`` and ``gtol=tol`` and SciPy's other defaults (10 curvature
pairs, ``ftol`` 2.2e-9). Each call (a warm start) is a new run, as in
scikit-learn.

The objective is the full-data weighted mean loss plus the penalty
``alpha * ... / sum(w)``, the same as a mini-batch step's with the batch
being all rows (with ``l1_ratio=0`` and unit weights it is scikit-learn's
``loss + 0.5 * alpha * ||W||**2 / n``). It is evaluated in chunks of
:data:`LBFGS_CHUNK_ROWS` rows so that memory stays bounded (in one piece with
BatchNorm, whose statistics must be those of all rows), and it must be
deterministic: dropout, gradient clipping, max-norm and per-batch callbacks
are refused for this solver (see ``BaseDeepMLP._check_params``);
``early_stopping`` is ignored, as in scikit-learn.

The network is evaluated in float64 (see :class:`LbfgsStep`); the float32
module receives the result at the end of the run.
"""

from __future__ import annotations

import copy
from types import MappingProxyType

import numpy as np
import scipy.optimize
import torch

from .optim import LbfgsSettings
from .steps import weight_penalty

__all__ = ["LBFGS_CHUNK_ROWS", "LbfgsSettings", "LbfgsStep"]

# Rows per forward/backward pass of one loss evaluation.
LBFGS_CHUNK_ROWS = 8192


def _settings(group):
    """``(max_iter, max_fun, tol)`` of a param group.

    A group loaded from a state saved when the solver was ``torch.optim.LBFGS``
    names them ``max_iter``, ``max_eval`` and ``tolerance_grad``.
    """
    return (int(group["max_iter"]), int(group.get("max_fun", group.get("max_eval", 15000))),
            float(group.get("tol", group.get("tolerance_grad", 1e-4))))


class LbfgsStep:
    """Full-batch L-BFGS over all training rows (see the module docstring).

    Implements the step interface of :mod:`.steps` (``run_epoch``,
    ``release``, ``fallback_reason``, ``epoch_records``) by itself: it calls
    the network, the loss and :func:`~.steps.weight_penalty`, and SciPy.

    Why float64: scikit-learn computes in float64, and an L-BFGS-B run is
    sensitive to rounding: in float32 the loss is known to about 1e-7
    relative, the size of the decreases SciPy's line search and its ``ftol``
    test (2.2e-9 relative) look at near the end of a run. Measured from
    scikit-learn's initial weights (its user-guide example, seeds 0-19),
    a float64 run reproduces ``MLPClassifier``'s iterations and loss (to
    1e-11) and its answers (15 of 20 seeds), a float32 run does not (14 of
    20); on ``make_moons`` (``(10, 10)``, ``alpha=0.1``) a float32 run ended
    with ``ABNORMAL_TERMINATION_IN_LNSRCH`` where the float64 one converged.
    So the run trains a float64 copy of the module (one extra copy of the
    weights; the data are converted chunk by chunk) and copies its
    parameters and buffers back into the module at the end.
    ``dtype=torch.float32`` evaluates the module itself (for comparison).

    Parameters
    ----------
    module : MLP
        The network, in training mode.
    per_sample_loss : callable
        ``per_sample_loss(outputs, y)`` returns one loss per sample.
    optimizer : LbfgsSettings
        Its trainable parameters and settings (``max_iter``, ``max_fun``,
        ``tol``), read at every run.
    regularization : Regularization, optional
        ``alpha`` and ``l1_ratio``; clipping and max-norm are refused for
        this solver before a step is built.
    dtype : torch.dtype, default=torch.float64
        Precision of the network during the run.

    Attributes
    ----------
    n_iter, n_evals : int
        Iterations (SciPy's ``nit``) and loss evaluations (``nfev``) of the
        last :meth:`run_epoch`.
    converged : bool
        SciPy's ``success``: the projected gradient or the relative decrease
        fell below its tolerance, rather than a limit being hit or the line
        search failing.
    status : int
        SciPy's ``status``: 0 converged, 1 a limit (``max_iter`` or
        ``max_fun``) reached, 2 the line search failed.
    message : str
        SciPy's ``message``.
    losses : list of float
        Objective after each iteration of the last run (``n_iter`` values).
    fallback_reason : None
        This step has no fast path to give up.
    """

    fallback_reason = None

    def __init__(self, module, per_sample_loss, optimizer, regularization=None,
                 dtype=torch.float64):
        self.module = module
        self.per_sample_loss = per_sample_loss
        self.optimizer = optimizer
        self.reg = regularization
        self.dtype = dtype
        self.n_iter = self.n_evals = self.status = 0
        self.converged = True
        self.message = ""
        self.losses = []

    @property
    def epoch_records(self):
        """History entries of the last run, recorded by the trainer with the epoch's."""
        return MappingProxyType({
            "lbfgs_iterations": self.n_iter,
            "lbfgs_evaluations": self.n_evals,
            "lbfgs_converged": self.converged,
            "lbfgs_status": self.status,
            "lbfgs_message": self.message,
            "lbfgs_losses": list(self.losses),
        })

    def _network(self):
        """The module the run evaluates: the module itself, or a copy in ``dtype``."""
        if all(t.dtype == self.dtype for t in self.module.state_dict().values()
               if t.is_floating_point()):
            return self.module
        return copy.deepcopy(self.module).to(self.dtype)

    def run_epoch(self, batches, events=None):
        """Run L-BFGS-B to convergence or its limits; return ``loss * n_rows``.

        Parameters
        ----------
        batches : Batches
            All rows (their batch boundaries are not used).
        events : None
            Per-batch callbacks are refused for this solver.

        Returns
        -------
        torch.Tensor
            The objective at the final weights times the number of rows
            (0-d, float64, on the device).
        """
        data = batches.data
        net = self._network()
        # BatchNorm must see all rows at once, or the objective would depend
        # on the chunking (and a 1-row chunk could not be normalized).
        uses_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
        chunk = len(data) if uses_bn else LBFGS_CHUNK_ROWS
        spans = [(s, min(s + chunk, len(data))) for s in range(0, len(data), chunk)]
        order = batches.order() if data.rows is not None else None
        total_weight = float((data.w if data.rows is None else data.w[data.rows]).sum())
        alpha = 0.0 if self.reg is None else self.reg.alpha
        l1_ratio = 0.0 if self.reg is None else self.reg.l1_ratio
        params = [p for p in net.parameters() if p.requires_grad]
        sizes = [p.numel() for p in params]
        device, dtype = data.device, self.dtype

        def load(x):
            flat = torch.from_numpy(x).to(device=device, dtype=dtype)
            with torch.no_grad():
                for p, part in zip(params, flat.split(sizes), strict=True):
                    p.copy_(part.view_as(p))

        def cast(t):
            return t.to(dtype) if t.is_floating_point() else t

        last = {}

        def objective(x):
            load(x)
            for p in params:
                p.grad = None
            loss = torch.zeros((), dtype=torch.float64, device=device)
            for start, stop in spans:
                xb, yb, wb = data.batch(order, start, stop)
                xb, yb, wb = cast(xb), cast(yb), cast(wb)
                part = torch.dot(self.per_sample_loss(net(xb), yb), wb) / total_weight
                part.backward()
                loss += part.detach()
            if alpha > 0:  # a parametrized weight is computed anew at every access
                weights = [lin.weight for lin in net.linears()]
                penalty = weight_penalty(weights, alpha, l1_ratio) / total_weight
                penalty.backward()
                loss += penalty.detach()
            grad = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1)
                              for p in params])
            last["fun"] = float(loss)
            return last["fun"], grad.to(torch.float64).cpu().numpy()

        def iteration_done(xk):
            # L-BFGS-B's last evaluation before a new iterate is at that iterate.
            self.losses.append(last["fun"])

        max_iter, max_fun, tol = _settings(self.optimizer.param_groups[0])
        self.losses = []
        x0 = torch.cat([p.detach().reshape(-1) for p in params]).to(torch.float64).cpu().numpy()
        result = scipy.optimize.minimize(
            objective, x0, method="L-BFGS-B", jac=True, callback=iteration_done,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
        load(np.asarray(result.x, dtype=np.float64))
        for p in params:
            p.grad = None
        if net is not self.module:  # parameters and BatchNorm statistics
            with torch.no_grad():
                own = self.module.state_dict()
                for name, value in net.state_dict().items():
                    own[name].copy_(value)
        self.n_iter, self.n_evals = int(result.nit), int(result.nfev)
        self.converged, self.status = bool(result.success), int(result.status)
        self.message = str(result.message)
        return torch.tensor(float(result.fun) * len(data), dtype=torch.float64, device=device)

    def release(self):
        """Nothing to leave behind: each run starts afresh, as in scikit-learn."""
        self.optimizer.state.clear()
