"""Efficient ensembles on the estimators' side: ``n_members`` and ``ensemble_sharing``.

:class:`Ensembles` is a mixin of ``BaseDeepMLP`` (kept apart from the fit's
plumbing): the checks of the two parameters against the others, the
training loss of an ensemble (each member on its own loss, averaged over the
members: :class:`~._engine.ensemble.MemberLoss`), and the members' own
predictions behind ``return_std``. The network side is
:mod:`._engine.ensemble`.
"""

from __future__ import annotations

from ._engine.ensemble import member_loss
from ._engine.inference import predict_raw
from ._engine.losses import PerSampleLoss
from ._reuse import source_estimator
from ._validation import invalid_combination

__all__ = ["Ensembles"]


class Ensembles:
    """The estimator's side of ``n_members`` (mixed into ``BaseDeepMLP``)."""

    def _check_ensemble_params(self):
        """Refuse what an ensemble of ``n_members > 1`` cannot do (with the reason)."""
        source = source_estimator(self.init_from)
        source_members = (getattr(source, "_fitted_architecture", {}).get("n_members", 1)
                          if source is not None else 1)
        if source_members > 1:
            raise invalid_combination(
                self, "init_from", self.init_from,
                f"init_from is an ensemble of {source_members} members; copying its layers "
                "(shared and per-member ones) into another network is not supported.")
        if self.n_members == 1:
            return
        for name, off, why in (
                ("init_from", None, "its layers would have to be copied into the members' "
                                    "shared and per-member layers"),
                ("pretrain", None, "the autoencoder has no per-member layers"),
        ):
            if getattr(self, name) is not off:
                raise invalid_combination(
                    self, name, getattr(self, name),
                    f"n_members={self.n_members} (an ensemble) does not support {name}: "
                    f"{why}. Set {name}={off!r} or n_members=1.")
        if isinstance(self.kernel_initializer, str) and self.kernel_initializer == "sklearn":
            raise invalid_combination(
                self, "kernel_initializer", self.kernel_initializer,
                f"n_members={self.n_members} (an ensemble): the 'sklearn' initializer draws "
                "scikit-learn's MLP layers number for number and has no rule for the "
                "members' own layers; choose another initializer or n_members=1.")

    def _training_loss(self, module):
        """The trainer's criterion for ``module``: the per-sample loss, averaged over
        an ensemble's members (each on its own outputs) while training."""
        loss = self._per_sample_loss()
        plan = getattr(module, "plan", None)
        if plan is None or plan.n_members == 1:
            return loss
        return PerSampleLoss(member_loss(loss.fn, plan.n_members, plan.n_outputs),
                             class_indices=loss.class_indices)

    def _fitted_members(self):
        """How many members the fitted network has."""
        return self._fitted_architecture.get("n_members", 1)

    def _member_raw(self, X):
        """Each member's raw outputs for ``X``, shape ``(n_members, n, n_outputs)``."""
        X = self._validated_X(X)
        raw = predict_raw(self._served_module(), X, self.net_.device, members=True)
        k = self._fitted_members()
        return raw.reshape(len(raw), k, -1).transpose(1, 0, 2)

    def _spread_from_members(self, return_std):
        """Whether ``return_std`` comes from the members (an ensemble without MC dropout)."""
        return bool(return_std) and not self.mc_dropout and self._fitted_members() > 1
