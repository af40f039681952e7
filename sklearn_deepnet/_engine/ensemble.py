"""Efficient ensembles trained as one network (TabM, Gorishniy et al. 2024).

``k`` members share most of their weights and run as one network: the members
are folded into the batch dimension. Row ``i`` of a batch of ``n`` becomes
rows ``i*k .. i*k+k-1`` (one per member) after :class:`MemberSplit`; the shared
``Linear``, ``BatchNorm1d``, activation and dropout layers then run unchanged
on ``n*k`` rows, and the per-member layers below read the ``(n, k, d)`` view:

- :class:`MemberScale`: ``x * w_m (+ b_m)``, a per-member multiplicative
  adapter (TabM-mini's input adapter ``r_m``; BatchEnsemble's ``r_m``, ``s_m``
  and ``b_m`` around each shared linear layer);
- :class:`MemberLinear`: each member's own output layer,
  ``(n*k, in) -> (n, k*out)``;
- :class:`MemberMean`: in training the identity (each member's raw outputs,
  trained on its own loss by :class:`MemberLoss`); in evaluation the members'
  combination as *one* raw output of the usual width, in the usual space
  (:func:`combine_members`), so that everything downstream of the raw
  outputs is unchanged.

The layer plan (:mod:`.plan`) holds these as op kinds (``member_split``,
``member_scale``, ``member_linear``, ``member_mean``); every interpreter of the
plan runs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["COMBINE_RULES", "MemberLinear", "MemberLoss", "MemberMean", "MemberScale",
           "MemberSplit", "combine_members", "member_loss", "members_combined"]


def _log_mean_exp(t, dim):
    """``log(mean(exp(t)))`` along ``dim``, stably."""
    return torch.logsumexp(t, dim=dim) - math.log(t.shape[dim])


def _softmax_combine(z):
    # log of the mean probability: a logit vector whose softmax is that mean
    return _log_mean_exp(torch.log_softmax(z, dim=2), 1)


def _sigmoid_combine(z):
    # logit of the mean probability, log p - log(1 - p), from log-sigmoids
    return _log_mean_exp(F.logsigmoid(z), 1) - _log_mean_exp(F.logsigmoid(-z), 1)


def _identity_combine(z):
    return z.mean(dim=1)


def _exp_combine(z):
    # a log link (Poisson): the log of the mean of the members' predictions
    return _log_mean_exp(z, 1)


#: combining rule -> ``fn(z)``, ``z`` the members' raw outputs ``(n, k, out)``,
#: giving one raw output ``(n, out)`` whose output activation is the mean of
#: the members' (softmax, sigmoid, identity, exp) predictions.
COMBINE_RULES = {"softmax": _softmax_combine, "sigmoid": _sigmoid_combine,
                 "identity": _identity_combine, "exp": _exp_combine}


def combine_members(raw, n_members, rule):
    """The members' raw outputs ``(n, k*out)`` combined into ``(n, out)`` (see
    :data:`COMBINE_RULES`)."""
    n = raw.shape[0]
    return COMBINE_RULES[rule](raw.reshape(n, n_members, raw.shape[1] // n_members))


class MemberSplit(nn.Module):
    """Each row repeated once per member: ``(n, d) -> (n*k, d)``, row ``i*k+m``
    for member ``m``.

    Parameters
    ----------
    n_members : int
    """

    def __init__(self, n_members):
        super().__init__()
        self.n_members = n_members

    def forward(self, x):
        """Return ``x`` with each row repeated ``n_members`` times, consecutively."""
        return x.unsqueeze(1).expand(-1, self.n_members, -1).reshape(-1, x.shape[1])

    def extra_repr(self):
        return f"n_members={self.n_members}"


class MemberScale(nn.Module):
    """Per-member element-wise scale (and shift): ``x_m * weight[m] (+ bias[m])``.

    Parameters
    ----------
    n_members : int
    width : int
    bias : bool, default=False

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_members, width)
        Initialized to ones (see ``MLP.initialize_`` for the random signs of
        TabM's adapters).
    bias : torch.nn.Parameter of shape (n_members, width) or None
    """

    def __init__(self, n_members, width, bias=False):
        super().__init__()
        self.n_members, self.width = n_members, width
        self.weight = nn.Parameter(torch.ones(n_members, width))
        self.bias = nn.Parameter(torch.zeros(n_members, width)) if bias else None

    def forward(self, x):
        """Scale the rows of each member, ``x`` of shape ``(n*k, width)``."""
        out = x.view(-1, self.n_members, self.width) * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out.view(-1, self.width)

    def extra_repr(self):
        return f"n_members={self.n_members}, width={self.width}, bias={self.bias is not None}"


class MemberLinear(nn.Module):
    """One linear output layer per member: ``(n*k, in) -> (n, k*out)``.

    Column ``m*out + j`` of the result is output ``j`` of member ``m``.

    Parameters
    ----------
    n_members, in_features, out_features : int
        ``out_features`` is one member's width (the network's output width).

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_members, out_features, in_features)
    bias : torch.nn.Parameter of shape (n_members, out_features)
    """

    def __init__(self, n_members, in_features, out_features):
        super().__init__()
        self.n_members, self.in_features, self.out_features = (
            n_members, in_features, out_features)
        self.weight = nn.Parameter(torch.empty(n_members, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(n_members, out_features))
        for w in self.weight:  # (as nn.Linear: initialized at build, then by initialize_)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))

    def forward(self, x):
        """Return each member's outputs side by side, shape ``(n, k*out)``."""
        k = self.n_members
        xk = x.view(-1, k, self.in_features).transpose(0, 1)  # (k, n, in)
        out = torch.baddbmm(self.bias.unsqueeze(1), xk, self.weight.transpose(1, 2))
        return out.transpose(0, 1).reshape(-1, k * self.out_features)

    def extra_repr(self):
        return (f"n_members={self.n_members}, in_features={self.in_features}, "
                f"out_features={self.out_features}")


class MemberMean(nn.Module):
    """The members' combination: the identity in training, one raw output in evaluation.

    Parameters
    ----------
    n_members : int
    combine : {"softmax", "sigmoid", "identity", "exp"}
        The output activation whose predictions are averaged (see
        :data:`COMBINE_RULES`).
    """

    def __init__(self, n_members, combine):
        super().__init__()
        self.n_members, self.combine = n_members, combine

    def forward(self, x):
        """``x`` (each member's raw outputs, ``(n, k*out)``) in training mode; in
        evaluation mode their combination, ``(n, out)``."""
        if self.training:
            return x
        return combine_members(x, self.n_members, self.combine)

    def extra_repr(self):
        return f"n_members={self.n_members}, combine={self.combine!r}"


@dataclass(frozen=True)
class MemberLoss:
    """The mean over members of each member's own per-sample loss.

    Called with each member's raw outputs ``(n, k*n_outputs)`` (training):
    the base loss of every member against the same targets, averaged over
    the members, shape ``(n,)``. Called with ``n_outputs`` columns (the
    combined output of a network in evaluation mode: validation loss, score),
    the base loss of that output.

    Parameters
    ----------
    base : callable
        Per-sample loss ``base(outputs, y)`` of one network.
    n_members, n_outputs : int
    """

    base: object
    n_members: int
    n_outputs: int

    def __call__(self, out, y):
        if out.shape[1] == self.n_outputs:
            return self.base(out, y)
        n, k = out.shape[0], self.n_members
        losses = self.base(out.reshape(n * k, self.n_outputs), y.repeat_interleave(k, dim=0))
        return losses.view(n, k).mean(dim=1)


def member_loss(fn, n_members, n_outputs):
    """``fn`` for a network of ``n_members`` members (itself for one)."""
    return fn if n_members == 1 else MemberLoss(fn, n_members, n_outputs)


def members_combined(module, outputs):
    """``outputs`` of ``module`` in training mode as evaluation would give them: an
    ensemble's members combined (:func:`combine_members`), anything else as is."""
    plan = getattr(module, "plan", None)
    combine = getattr(plan, "combine", None)
    if combine is None or outputs.shape[1] == plan.n_outputs:
        return outputs
    return combine_members(outputs, plan.n_members, combine.option("combine"))
