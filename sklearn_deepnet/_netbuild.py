"""Building the trainer of a fit: a new network, or the fitted one with this call's settings.

:class:`BuildsNetwork` is a mixin of ``BaseDeepMLP`` (kept apart so that
``_fitting.py`` holds the fit's plumbing, and this module what a call's trainer
is made of: the solver's settings, the stopping rule, the schedule, the
freezer, diagnostics, the progress bar and the user's callbacks).
"""

from __future__ import annotations

import numpy as np
import torch

from ._callbacks import ConvergenceMonitor, LayerFreezer, ProgressBar, wants_progress_bar
from ._diagnostics import Diagnostics
from ._engine.activations import ACTIVATIONS
from ._engine.kernels import optimizer_state_dict
from ._engine.optim import SOLVERS, build_optimizer
from ._engine.steps import Regularization
from ._persist import load_optimizer_state
from ._reuse import start_network_
from ._schedules import SCHEDULES
from ._trainer import TrainingNet

__all__ = ["SOLVER_PARAMS", "BuildsNetwork"]

# The estimator parameters every optimizer row reads from (see _engine/optim.py).
SOLVER_PARAMS = ("learning_rate_init", "momentum", "nesterovs_momentum", "beta_1", "beta_2",
                 "epsilon", "rho")


class BuildsNetwork:
    """The trainer of each call (mixed into ``BaseDeepMLP``)."""

    def _prepare_net(self, n_features, n_outputs, device, batch_size, decay, validation,
                     incremental, continuing, *, pretraining=None, seed=0, carry=None):
        """The trainer for this call: a new one for a fresh fit, else the fitted one
        with this call's settings (and, unless ``partial_fit`` continues with the
        same solver settings, a fresh optimizer, as in scikit-learn)."""
        settings = self._call_settings(device, batch_size, decay, validation, incremental,
                                       carry)
        if not continuing:
            return self._new_net(settings, n_features, n_outputs, device, pretraining, seed)
        return self._continued_net(settings, device, incremental)

    def _call_settings(self, device, batch_size, decay, validation, incremental, carry):
        """The trainer's settings for this call: solver, penalties, batches, callbacks."""
        solver_params = {name: getattr(self, name) for name in SOLVER_PARAMS}
        solver_params["weight_decay"] = decay
        stochastic = SOLVERS[self.solver].stochastic
        if not stochastic:  # its limits are the optimizer's settings
            solver_params.update(max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol)
        uses_bn = self.batch_norm is not None or self.batch_norm_input
        return dict(
            solver=self.solver, solver_params=solver_params,
            regularization=Regularization(
                alpha=self.alpha, l1_ratio=self.l1_ratio, clip_norm=self.clip_norm,
                clip_value=self.clip_value, max_norm=self.max_norm,
            ),
            shuffle=self.shuffle, min_batch=2 if uses_bn else 1, batch_size=batch_size,
            max_epochs=1 if incremental or not stochastic else self.max_iter,
            callbacks=self._call_callbacks(validation, incremental, carry),
            device=device, fast=self._fast_engine, verbose=int(self.verbose),
        )

    def _call_callbacks(self, validation, incremental, carry):
        """The stopping rule, schedule, freezer, diagnostics, progress bar, then the user's."""
        verbose = int(self.verbose)
        bar = ProgressBar(type(self).__name__) if verbose and wants_progress_bar(
            incremental) else None
        monitor = ConvergenceMonitor(
            tol=self.tol, n_iter_no_change=self.n_iter_no_change, validation=validation,
            scorer=self._score_raw, validation_loss=self._validation_loss,
            verbose=verbose >= 1 and bar is None, adaptive=self.learning_rate == "adaptive",
            carry=carry,
        )
        factory = SCHEDULES[self.learning_rate].factory
        own = [] if factory is None else [("schedule", factory(self))]
        if self.freeze_layers:
            own.append(("freeze", LayerFreezer(self.freeze_layers, self.unfreeze_after)))
        if self.diagnostics:
            own.append(("diagnostics", Diagnostics(
                self._activation_kinds(), summary=verbose >= 2,
                write=print if bar is None else bar.write)))
        if bar is not None:
            own.append(("progress", bar))
        return [("convergence", monitor), *own, *(self.callbacks or [])]

    def _new_net(self, settings, n_features, n_outputs, device, pretraining, seed):
        """A fresh network (initialized, reused layers copied, pretrained) and its trainer."""
        module = self._build_module(n_features, n_outputs).to(device)

        def trainer(autoencoder, criterion, n_rows):  # the same solver and penalties
            return TrainingNet(autoencoder, criterion, **{
                **settings, "callbacks": [],
                "batch_size": self._effective_batch_size(n_rows)}).initialize()

        pretrain_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
        self.reused_layers_, self.pretrain_loss_curve_ = start_network_(
            self, module, n_features=n_features, pretraining=pretraining,
            trainer=trainer, seed=pretrain_seed,
        )
        net = TrainingNet(module, self._training_loss(module), **settings).initialize()
        net.schedule = self.learning_rate
        return net

    def _continued_net(self, settings, device, incremental):
        """The fitted trainer with this call's settings; a fresh optimizer unless
        ``partial_fit`` continues with the same solver settings."""
        net = self.net_
        solver_params = settings["solver_params"]
        same_solver = (self.solver, solver_params) == (net.solver, net.solver_params)
        keep_optimizer = incremental and same_solver
        moved = torch.device(net.device) != torch.device(device)
        old_state = optimizer_state_dict(net.optimizer_) if keep_optimizer and moved else None
        for name, value in settings.items():
            setattr(net, name, value)
        net.criterion = self._training_loss(net.module_)
        net.initialize_callbacks()
        net.initialize_criterion()
        if moved:
            net.module_.to(device)
        if not keep_optimizer or moved:
            net.initialize_optimizer()
        if old_state is not None:  # the module moved: its optimizer state must follow
            load_optimizer_state(net.optimizer_, old_state)
        if keep_optimizer and getattr(net, "schedule", "constant") != self.learning_rate:
            # Another schedule from here on: the rate, momentum and betas the last
            # one left in the optimizer go back to the solver's settings.
            fresh = build_optimizer(self.solver, net.module_.named_parameters(),
                                    solver_params).param_groups
            for group, new in zip(net.optimizer_.param_groups, fresh, strict=True):
                for key in ("lr", "momentum", "betas"):
                    if key in group:
                        group[key] = new[key]
        net.schedule = self.learning_rate
        return net

    def _activation_kinds(self):
        """Per hidden layer: whether its units can die and its saturation bounds."""
        entry = ACTIVATIONS.get(self.activation) if isinstance(self.activation, str) else None
        kind = (False, None) if entry is None else (entry.dies, entry.bounds)
        return [kind] * len(self._architecture()["hidden_layer_sizes"])

