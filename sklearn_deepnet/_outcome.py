"""What a fit call reports when training ends: warnings, and the interrupt message.

Called by ``RunsFits._record_call`` (``_fitting.py``) once the network and the fitted
attributes are in place; the warnings are emitted only after the fit has
completed (with warnings turned into errors they must not undo it, as with
scikit-learn's MLP).
"""

from __future__ import annotations

import re
import warnings

from sklearn.exceptions import ConvergenceWarning

from ._engine.optim import SOLVERS

__all__ = ["fit_outcome", "show_setting_warning"]


# (estimator class, message) of the settings warnings this process has shown
_SHOWN = set()


def _action(message, category):
    """The action the warning filters in force give ``message``, as far as they
    can be read without knowing the module the warning is attributed to."""
    for action, text, cat, module, _ in warnings.filters:
        module = getattr(module, "pattern", module)  # (a compiled pattern or a string)
        if module not in (None, "", ".*"):
            continue  # a filter for one module: not decidable here
        if isinstance(text, str):
            text = re.compile(text, re.IGNORECASE)
        if issubclass(category, cat) and (text is None or text.match(message)):
            return action
    return "default"


def show_setting_warning(owner, message, category):
    """Whether to show a warning the settings alone cause (SELU's conditions, a
    parameter without effect): once per process for an estimator class and
    message, every time under an ``"always"`` (or ``"error"``) filter.

    A warning ignored by the filters in force is not counted as shown.
    Python's default filter would show a repeated warning once, but
    scikit-learn's parallel helpers reset its registry around every fit, so a
    search repeated the same warning for every fold of every candidate.
    """
    action = _action(message, category)
    if action in ("always", "error"):
        return True
    if action == "ignore":  # not shown now: a later fit under other filters shows it
        return False
    key = (owner, message)
    if key in _SHOWN:
        return False
    if len(_SHOWN) > 10_000:  # (bounded: a long-running process)
        _SHOWN.clear()
    _SHOWN.add(key)
    return True


def fit_outcome(est, net, n_done, kept, pending, *, incremental, continuing):
    """Append the call's outcome warnings to ``pending``; return the interrupt message.

    Parameters
    ----------
    est : BaseDeepMLP
        The estimator, with this call's fitted attributes.
    net : TrainingNet
        Its trainer after training (``stop_reason``, history).
    n_done : int
        Epochs this call finished.
    kept : str
        Which weights the model keeps ("of the best validation score" or "of
        the last complete epoch"), for the messages.
    pending : list of (str, type)
        Warnings to emit once the fit is complete; extended in place.
    incremental, continuing : bool
        ``partial_fit``; a call that continues a fitted network.

    Returns
    -------
    str or None
        The message of the ``KeyboardInterrupt`` to re-raise after a Ctrl-C,
        or ``None``.
    """
    pretrained = len(est.pretrain_loss_curve_ or ()) if not continuing else None
    if pretrained is not None and est.pretrain is not None and (
            pretrained < est.pretrain_epochs):
        pending.append((
            f"Pretraining diverged: the autoencoder's loss or weights became NaN or inf "
            f"in epoch {pretrained + 1} of {est.pretrain_epochs}, so pretraining "
            f"stopped with the weights of epoch {pretrained}. Try a lower "
            f"learning_rate_init (now {est.learning_rate_init}) or standardized inputs.",
            ConvergenceWarning,
        ))
    interrupted = None
    if net.stop_reason == "interrupted":
        interrupted = (
            f"Training was interrupted after {n_done} complete epoch(s) of this call; "
            f"the model keeps the weights {kept} and can be used or trained further "
            "(warm_start=True or partial_fit)."
        )
    elif net.stop_reason == "diverged":
        pending.append((
            f"Training diverged: in epoch {n_done + 1} of this call the loss or the "
            f"weights became NaN or inf, so training stopped and the weights "
            f"{kept.replace('complete', 'finite')} are kept ({n_done} epoch(s) of this "
            "call). Remedies: a lower "
            f"learning_rate_init (now {est.learning_rate_init}), gradient clipping "
            "(e.g. clip_norm=1.0), batch_norm='before', standardized inputs "
            "(StandardScaler), or a smaller alpha.",
            ConvergenceWarning,
        ))
    elif net.stop_reason is not None and net.stop_reason.startswith("callback "):
        pass  # a user's callback stopped training on purpose
    elif not SOLVERS[est.solver].stochastic:
        last = net.history[-1] if n_done else {}
        if n_done and not last.get("lbfgs_converged", True):
            n_iter, n_evals = last["lbfgs_iterations"], last["lbfgs_evaluations"]
            status = last.get("lbfgs_status", 1)  # 1: a limit (states before it was kept)
            if status == 1:
                limit = "max_iter" if n_iter >= est.max_iter else "max_fun"
                why = f"it reached {limit}={getattr(est, limit)}. Increase {limit}"
            else:  # SciPy's line search found no decrease (status 2)
                why = (f"the line search failed ({last.get('lbfgs_message', 'ABNORMAL')}). "
                       "Try a larger tol")
            pending.append((
                f"lbfgs failed to converge after {n_iter} iteration(s) and {n_evals} loss "
                f"evaluation(s): {why} or scale the data (e.g. StandardScaler).",
                ConvergenceWarning,
            ))
    elif (not incremental and net.stop_reason is None and n_done == est.max_iter
          and est.learning_rate != "1cycle"):  # 1cycle runs max_iter epochs by design
        pending.append((
            f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and "
            "the optimization hasn't converged yet.",
            ConvergenceWarning,
        ))
    return interrupted
