"""Optimizers: the single table behind ``solver``.

Each entry builds a ``torch.optim`` optimizer from the estimator's flat
hyperparameters and lists which of them it reads, so the documentation and the
validation come from the same place.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .kernels import foreach_mul_, fused_optimizer_usable, make_optimizer

__all__ = ["SOLVERS", "VELOCITY_RATE", "LbfgsSettings", "Solver", "build_optimizer",
           "complete_momentum_buffers", "scikit_learn_velocity_", "separate_step_counters"]


@dataclass(frozen=True)
class Solver:
    """One row of the optimizer table.

    Parameters
    ----------
    factory : callable
        ``factory(param_groups, hp, impl)`` returns the optimizer; ``hp`` maps
        hyperparameter names (``learning_rate_init``, ``momentum``, ...) to values
        and ``impl`` holds implementation switches (``fused``, ``foreach``,
        ``capturable``) that are passed on where the torch class accepts them.
    uses : tuple of str
        Hyperparameters this optimizer reads besides ``learning_rate_init``.
    decoupled_weight_decay : bool
        Whether ``weight_decay`` (decoupled, as in AdamW) is available.
    graph_safe : bool
        Whether a step can be captured in a CUDA graph (all its state lives on
        the device). AdaGrad keeps its step counters on the host.
    fused_devices : tuple of str
        Device types with a fused torch kernel (one call updates every
        parameter); elsewhere the multi-tensor ``foreach`` kernels are used.
    summary : str
        One-line description for the documentation.
    stochastic : bool
        Whether it trains on mini-batches (``partial_fit``, ``batch_size``,
        ``learning_rate_init`` apply) rather than on all rows at once.
    rate_in_velocity : bool
        scikit-learn's SGD arithmetic: the rate inside the velocity, kept by
        :func:`scikit_learn_velocity_` before every step (on the host).
    """

    factory: Callable
    uses: tuple = ()
    decoupled_weight_decay: bool = False
    graph_safe: bool = True
    fused_devices: tuple = ()
    summary: str = ""
    stochastic: bool = True
    rate_in_velocity: bool = False


def _betas(hp):
    return (hp["beta_1"], hp["beta_2"])


def _make(cls, groups, impl, **kwargs):
    """``cls(groups, **kwargs)`` with the implementation switches it accepts.

    ``fused`` kernels are used where the class and the device support them
    (otherwise ``foreach``); ``capturable`` only where the class has it.
    """
    accepted = inspect.signature(cls).parameters
    opts = {k: v for k, v in impl.items() if k in accepted}
    if opts.get("fused") and not fused_optimizer_usable(cls):
        opts.pop("fused")  # its fused kernel failed its check here (kernel_fallbacks)
        opts["foreach"] = True
    if opts.get("fused"):
        opts.pop("foreach", None)
        try:
            return make_optimizer(cls, groups, **kwargs, **opts)
        except (RuntimeError, ValueError):  # no fused kernel for this device/dtype
            opts.pop("fused")
            opts["foreach"] = True
    opts.pop("fused", None)
    return make_optimizer(cls, groups, **kwargs, **opts)


SOLVERS: dict[str, Solver] = {
    "sgd": Solver(
        # scikit-learn's "sgd": momentum 0.9 with Nesterov's by default, the rate
        # inside the velocity (see scikit_learn_velocity_)
        lambda p, hp, impl: _with_velocity_rate(_make(
            torch.optim.SGD, p, impl, lr=hp["learning_rate_init"], momentum=hp["momentum"],
            nesterov=bool(hp["nesterovs_momentum"] and hp["momentum"] > 0),
        )),
        uses=("momentum", "nesterovs_momentum"),
        fused_devices=("cpu", "cuda"),
        rate_in_velocity=True,
        summary="stochastic gradient descent as in MLPClassifier, with its arithmetic: "
                "the rate inside the velocity (v = momentum*v - lr*g; w += v), Nesterov's "
                "momentum when nesterovs_momentum=True; momentum=0 is plain SGD",
    ),
    "momentum": Solver(
        lambda p, hp, impl: _make(
            torch.optim.SGD, p, impl, lr=hp["learning_rate_init"], momentum=hp["momentum"]
        ),
        uses=("momentum",),
        fused_devices=("cpu", "cuda"),
        summary="SGD with momentum in PyTorch's (and Keras') form: v = m*v + g; w -= lr*v "
                "(a rate change rescales the whole velocity; use 'sgd' for scikit-learn's)",
    ),
    "nesterov": Solver(
        lambda p, hp, impl: _make(
            torch.optim.SGD, p, impl, lr=hp["learning_rate_init"], momentum=hp["momentum"],
            nesterov=True,
        ),
        uses=("momentum",),
        fused_devices=("cpu", "cuda"),
        summary="Nesterov accelerated gradient",
    ),
    "adagrad": Solver(
        lambda p, hp, impl: _make(
            torch.optim.Adagrad, p, impl, lr=hp["learning_rate_init"], eps=hp["epsilon"]
        ),
        uses=("epsilon",),
        graph_safe=False,
        fused_devices=("cpu",),
        summary="AdaGrad: per-parameter rates from accumulated squared gradients",
    ),
    "rmsprop": Solver(
        lambda p, hp, impl: _make(
            torch.optim.RMSprop, p, impl, lr=hp["learning_rate_init"], alpha=hp["rho"],
            eps=hp["epsilon"],
        ),
        uses=("rho", "epsilon"),
        summary="RMSProp: exponentially decaying average of squared gradients",
    ),
    "adam": Solver(
        # Adam with decoupled weight decay *is* AdamW; use it only when asked for,
        # so plain Adam stays torch.optim.Adam on every supported torch version.
        lambda p, hp, impl: _make(
            torch.optim.AdamW if hp["weight_decay"] else torch.optim.Adam,
            p,
            impl,
            lr=hp["learning_rate_init"],
            betas=_betas(hp),
            eps=hp["epsilon"],
            weight_decay=hp["weight_decay"],
        ),
        uses=("beta_1", "beta_2", "epsilon", "weight_decay"),
        decoupled_weight_decay=True,
        fused_devices=("cpu", "cuda"),
        summary="Adam: momentum + RMSProp with bias correction",
    ),
    "adamax": Solver(
        lambda p, hp, impl: _make(
            torch.optim.Adamax, p, impl, lr=hp["learning_rate_init"], betas=_betas(hp),
            eps=hp["epsilon"],
        ),
        uses=("beta_1", "beta_2", "epsilon"),
        summary="AdaMax: Adam with the infinity norm",
    ),
    "nadam": Solver(
        lambda p, hp, impl: _make(
            torch.optim.NAdam,
            p,
            impl,
            lr=hp["learning_rate_init"],
            betas=_betas(hp),
            eps=hp["epsilon"],
            weight_decay=hp["weight_decay"],
            decoupled_weight_decay=True,
        ),
        uses=("beta_1", "beta_2", "epsilon", "weight_decay"),
        decoupled_weight_decay=True,
        summary="Nadam: Adam with the Nesterov trick",
    ),
    "adamw": Solver(
        lambda p, hp, impl: _make(
            torch.optim.AdamW,
            p,
            impl,
            lr=hp["learning_rate_init"],
            betas=_betas(hp),
            eps=hp["epsilon"],
            weight_decay=hp["weight_decay"],
        ),
        uses=("beta_1", "beta_2", "epsilon", "weight_decay"),
        decoupled_weight_decay=True,
        fused_devices=("cpu", "cuda"),
        summary="AdamW: Adam with decoupled weight decay (default 0.01)",
    ),
    "lbfgs": Solver(
        # SciPy's L-BFGS-B does the optimization (see .lbfgs); the optimizer
        # object holds the parameters and the settings the run reads.
        lambda p, hp, impl: _lbfgs_settings(p, hp),
        uses=("max_iter", "max_fun", "tol"),
        graph_safe=False,
        stochastic=False,
        summary="full-batch L-BFGS as in MLPClassifier (SciPy's L-BFGS-B, float64): "
                "max_iter iterations, max_fun loss "
                "evaluations, stops when every gradient component is at most tol; for "
                "small data",
    ),
}


class LbfgsSettings(torch.optim.Optimizer):
    """The optimizer object of ``solver="lbfgs"``: the settings SciPy's run reads.

    SciPy's L-BFGS-B does the optimization (:class:`~.lbfgs.LbfgsStep`); this
    optimizer holds the trainable parameters and, in its one param group,
    ``max_iter``, ``max_fun`` and ``tol``, so that the trainer's optimizer
    (skorch's ``optimizer_``) can be saved, pickled, inspected and changed by
    a callback like any other: the step reads the group at every run. It keeps
    no state (each run starts afresh, as in scikit-learn). ``lr`` is 1 and
    unused; it is there because every param group has a rate (the history's
    ``lr`` column).

    Parameters
    ----------
    params : iterable of torch.nn.Parameter or of dict
        The trainable parameters (all groups are merged into one).
    max_iter : int, default=200
        L-BFGS iterations per run (SciPy's ``maxiter``).
    max_fun : int, default=15000
        Loss evaluations per run (SciPy's ``maxfun``).
    tol : float, default=1e-4
        Stop once every component of the projected gradient is at most
        ``tol`` (SciPy's ``gtol``).
    """

    def __init__(self, params, max_iter=200, max_fun=15000, tol=1e-4):
        params = list(params)
        if params and isinstance(params[0], dict):
            params = [p for group in params for p in group["params"]]
        super().__init__(params, dict(lr=1.0, max_iter=max_iter, max_fun=max_fun, tol=tol))

    def step(self, closure=None):
        """Not available: :class:`~.lbfgs.LbfgsStep` runs SciPy's L-BFGS-B on the network."""
        raise RuntimeError(
            "solver='lbfgs' is run by SciPy's L-BFGS-B on the whole data set (fit the "
            "estimator); its optimizer object only holds the settings and has no step()."
        )


def _lbfgs_settings(param_groups, hp):
    return make_optimizer(LbfgsSettings, param_groups, max_iter=hp["max_iter"],
                          max_fun=hp["max_fun"], tol=hp["tol"])


# weight_decay=None means "the optimizer's customary default".
_DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2}


# The param-group key holding the rate the momentum buffers are expressed in.
VELOCITY_RATE = "velocity_lr"


def _with_velocity_rate(optimizer):
    for group in optimizer.param_groups:
        group[VELOCITY_RATE] = group["lr"]
    return optimizer


@torch.no_grad()
def scikit_learn_velocity_(optimizer):
    """Keep scikit-learn's SGD arithmetic across learning-rate changes.

    scikit-learn's SGD keeps the rate inside the velocity (``v = m*v - lr*g;
    w += v``; Nesterov: ``w += m*v - lr*g``), torch's outside (``b = m*b + g;
    w -= lr*b``). With a constant rate both are the same (``v = -lr*b``);
    when the rate changes, torch's form rescales the whole history by the
    new rate. Called before every step of an optimizer built for
    ``solver="sgd"`` (its groups carry the rate their buffers are expressed
    in): when a group's rate changed, its momentum buffers are multiplied by
    ``old / new``, which gives exactly scikit-learn's update with torch's
    (fused) kernel. A rate of 0 leaves the buffers as they are (torch then
    does not move the weights; scikit-learn would keep coasting).
    """
    for group in optimizer.param_groups:
        old = group.get(VELOCITY_RATE)
        new = group["lr"]
        if old is None or not group.get("momentum") or old == new:
            continue
        new = float(new)
        if new != 0 and old != 0:
            buffers = [optimizer.state[p].get("momentum_buffer") for p in group["params"]]
            buffers = [b for b in buffers if b is not None]
            if buffers:
                foreach_mul_(buffers, old / new)
        group[VELOCITY_RATE] = new


def resolve_weight_decay(solver: str, weight_decay):
    """Return the effective decoupled weight decay, or an error message.

    Parameters
    ----------
    solver : str
        Key of :data:`SOLVERS`.
    weight_decay : float or None
        The user's ``weight_decay``.

    Returns
    -------
    value : float
        Effective decay (0.0 when unused).
    error : str or None
        Message when a positive decay is asked of an optimizer without a
        decoupled form.
    """
    if weight_decay is None:
        return _DEFAULT_WEIGHT_DECAY.get(solver, 0.0), None
    if weight_decay > 0 and not SOLVERS[solver].decoupled_weight_decay:
        have = sorted(k for k, s in SOLVERS.items() if s.decoupled_weight_decay)
        return 0.0, (
            f"weight_decay={weight_decay!r} needs an optimizer with decoupled weight "
            f"decay ({', '.join(have)}); solver={solver!r} has none. Use alpha "
            "(L2 penalty) instead."
        )
    return float(weight_decay), None


def build_optimizer(
    solver: str, named_params, hp: dict, *, device_type: str = "cpu", capturable: bool = False
) -> torch.optim.Optimizer:
    """Build the optimizer for ``solver``, with the fastest implementation available.

    Weight decay applies to weight matrices only: biases, BatchNorm and PReLU
    parameters get none, like the L1/L2 penalties. A fused kernel (one call
    updating every parameter) is used where torch has one for the optimizer
    and device (the table's ``fused_devices``), otherwise the multi-tensor
    ``foreach`` implementation.

    Parameters
    ----------
    solver : str
        Key of :data:`SOLVERS`.
    named_params : iterable of (str, torch.nn.Parameter)
        Learnable parameters of the module.
    hp : dict
        Hyperparameters (``learning_rate_init``, ``momentum``,
        ``nesterovs_momentum``, ``beta_1``, ``beta_2``, ``epsilon``, ``rho``,
        ``weight_decay``).
    device_type : str, default="cpu"
        Type of the device holding the parameters.
    capturable : bool, default=False
        Keep the optimizer's step counters on the device so that its step can
        be captured in a CUDA graph.

    Returns
    -------
    torch.optim.Optimizer
    """
    decay, no_decay = [], []
    for name, p in named_params:
        (decay if name.endswith("linear.weight") else no_decay).append(p)
    groups = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    row = SOLVERS[solver]
    impl = {"fused": device_type in row.fused_devices, "foreach": True}
    if capturable:
        impl["capturable"] = True
    return row.factory(groups, hp, impl)


def separate_step_counters(optimizer):
    """Give every parameter its own step-counter tensor, as ``torch.optim`` expects.

    Counters can end up shared after loading a state saved while the direct
    fused-Adam step aliased them, or after ``load_state_dict`` of a deep copy.
    """
    for state in optimizer.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].clone()


@torch.no_grad()
def complete_momentum_buffers(optimizer):
    """Give every trainable parameter of an SGD group a momentum buffer once any has one.

    Parameters that did not train for a while (frozen layers) have no buffer
    when they start training while the others have one, and torch's fused
    SGD kernel accepts all buffers or none. A zero buffer gives exactly the
    update of torch's first step (``buf = grad``; the estimators use no
    dampening).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Changed in place; only ``torch.optim.SGD`` groups with momentum.
    """
    if not isinstance(optimizer, torch.optim.SGD):
        return
    for group in optimizer.param_groups:
        if not group["momentum"] or group["dampening"]:
            continue
        params = [p for p in group["params"] if p.requires_grad]
        state = optimizer.state
        if any(state[p].get("momentum_buffer") is not None for p in params):
            for p in params:
                if state[p].get("momentum_buffer") is None:
                    state[p]["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
