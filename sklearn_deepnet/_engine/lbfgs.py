"""``solver="lbfgs"``: full-batch L-BFGS, as scikit-learn's MLP offers for small data.

One call of :meth:`LbfgsStep.run_epoch` runs the whole optimization: torch's
``LBFGS`` with a strong-Wolfe line search, at most ``max_iter`` iterations and
``max_fun`` loss evaluations, stopping once the largest gradient component is
at most ``tol`` (scikit-learn passes the same three numbers to SciPy's
L-BFGS-B as ``maxiter``, ``maxfun`` and ``gtol``). The objective is the
full-data weighted mean loss plus the penalty ``alpha * ... / sum(w)``, the
same as a mini-batch step's with the batch being all rows; it is evaluated
in chunks so that memory stays bounded (in one piece with BatchNorm, whose
statistics must be those of all rows), and it must be deterministic:
dropout, gradient clipping, max-norm and per-batch callbacks are refused for
this solver (see ``BaseDeepMLP._check_params``); ``early_stopping`` is
ignored, as in scikit-learn.
"""

from __future__ import annotations

import torch

from .kernels import optimizer_zero_grad
from .steps import EagerStep, weight_penalty

__all__ = ["LBFGS_CHUNK_ROWS", "LbfgsStep"]

# Rows per forward/backward pass of one loss evaluation.
LBFGS_CHUNK_ROWS = 8192


class LbfgsStep(EagerStep):
    """Full-batch L-BFGS over all training rows (see the module docstring).

    Parameters
    ----------
    module, per_sample_loss, optimizer, regularization
        As for :class:`~.steps.EagerStep`; ``optimizer`` is a
        ``torch.optim.LBFGS`` whose group holds ``max_iter``, ``max_eval``
        and ``tolerance_grad``.

    Attributes
    ----------
    n_iter, n_evals : int
        L-BFGS iterations and loss evaluations of the last :meth:`run_epoch`.
    converged : bool
        Whether it stopped because the gradient fell below the tolerance (or
        the loss stopped changing), rather than at a limit.
    """

    def run_epoch(self, batches, events=None):
        """Run L-BFGS to convergence or its limits; return ``loss * n_rows``."""
        data = batches.data
        # BatchNorm must see all rows at once, or the objective would depend
        # on the chunking (and a 1-row chunk could not be normalized).
        uses_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in self.module.modules())
        chunk = len(data) if uses_bn else LBFGS_CHUNK_ROWS
        spans = [(s, min(s + chunk, len(data))) for s in range(0, len(data), chunk)]
        order = batches.order() if data.rows is not None else None
        total_weight = float((data.w if data.rows is None else data.w[data.rows]).sum())
        reg = self.reg

        def evaluate(backward):
            loss = torch.zeros((), device=data.device)
            for start, stop in spans:
                xb, yb, wb = data.batch(order, start, stop)
                part = torch.dot(self.per_sample_loss(self.module(xb), yb), wb) / total_weight
                if backward:
                    part.backward()
                loss += part.detach()
            if reg.alpha > 0:
                penalty = weight_penalty(self.weights, reg.alpha, reg.l1_ratio) / total_weight
                if backward:
                    penalty.backward()
                loss += penalty.detach()
            return loss

        def closure():
            optimizer_zero_grad(self.optimizer, set_to_none=False)
            return evaluate(backward=True)

        state = self.optimizer.state[self.optimizer.param_groups[0]["params"][0]]
        iter_before, evals_before = state.get("n_iter", 0), state.get("func_evals", 0)
        self.optimizer.step(closure)
        self.n_iter = state["n_iter"] - iter_before
        self.n_evals = state["func_evals"] - evals_before
        group = self.optimizer.param_groups[0]
        self.converged = self.n_iter < group["max_iter"] and self.n_evals < group["max_eval"]
        with torch.no_grad():  # the loss at the final weights
            final = evaluate(backward=False)
        optimizer_zero_grad(self.optimizer, set_to_none=True)
        return final * len(data)

    def release(self):
        """Forget the curvature pairs: a warm start begins a new L-BFGS run, as in sklearn."""
        self.optimizer.state.clear()
