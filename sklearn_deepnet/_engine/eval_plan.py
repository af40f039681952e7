"""The evaluation plan: a network as plain operations, batch-invariant on CPU.

:func:`prepare` turns an :class:`~.module.MLP` into a list of plain
operations walking its layer plan (padded ``addmm``, BatchNorm with running
statistics, the activation table's evaluation functions, an ensemble's member
ops; dropout is the identity), with padded copies of its weights that
:mod:`.plan_cache` refreshes from the live tensors at every call (weights
change in ways torch does not count, e.g. fused optimizer kernels or edits
through ``.data``). :mod:`.inference` runs it. It gives two properties the
module's own ``forward`` does not:

- **Batch invariance.** A row's outputs do not depend on the rows it is
  predicted with (subsets, order, chunk sizes, thread counts). BLAS switches
  to differently-rounding kernels for few rows or one output column, so every
  matrix product gets a row count that rounds like a large product (4, 8, 12
  or at least 16 here, else at least 16 or 64: :mod:`.row_probe`) and
  ``_MIN_COLS`` columns, and hidden widths are padded to a multiple of 16
  (see ``_WIDTH_MULTIPLE``).
  Element-wise activations (ELU, SELU, GELU, Swish, Mish, sigmoid, tanh, ...)
  round differently in ATen's vectorized loop and in its scalar tail, and a
  multi-threaded loop is cut into pieces at places that move with the batch;
  so the rows are padded until every such loop is cut only at multiples of
  64 elements (:mod:`.elementwise`: no tail anywhere, on any number of
  threads; probed once per process, one thread where the probe fails).
  Padded units are exactly zero and have zero outgoing weights.
- **Low latency.** No train/eval mode switching.

A network containing a layer type not known here (a user-supplied activation
module) is run through its modules in evaluation mode with the matrix
products padded (:func:`run_padded_modules`); batch invariance then depends
on those modules.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation_row
from .data import torch_threads
from .elementwise import aligned_rows, parallel, splits_aligned
from .ensemble import COMBINE_RULES, MemberLinear
from .kernels import foreach_copy_, has_hooks
from .module import MLP, plan_blocker, submodule
from .row_probe import ROW_CANDIDATES, min_rows

__all__ = ["padded_rows", "prepare", "run_padded_modules", "run_plan"]

# Matrix products in predictions are padded to at least this many rows and
# columns (see the module docstring). Rows: MKL (torch's CPU BLAS) rounds a
# product of few rows differently from a larger one (measured on this
# project's AVX-512 machines: 1 to 3 rows on any thread count, and 5 to 7 and
# 9 to 11 on 2 threads; 4, 8, 12 and every count from 12 gave the bits of a
# 1,000-row product). Which counts are safe is a property of the BLAS build,
# the CPU, the shape and the thread count, so a plan takes the row rule with the
# fewest rows that :mod:`.row_probe` found batch-invariant for its own product
# shapes on this machine at the call's thread count, else 64 rows; modules run
# outside a plan (layers not known to it) keep 64. (An ensemble's hidden
# products have k times the request's rows: every multiple of 4, 8 or 12 is a
# count the rules allow.)
_MIN_ROWS, _MIN_COLS = ROW_CANDIDATES[-1].floor, 16
# Hidden widths are padded to a multiple of this, so that the matrix products'
# shapes keep BLAS on kernels whose rounding does not depend on the number of
# rows for any thread count (measured: widths like 37 or 100 broke that at 3
# threads, multiples of 16 did not).
_WIDTH_MULTIPLE = 16


def _pad_to(n, multiple):
    return -(-n // multiple) * multiple


def _pad(t, size, value=0.0, refresh=None):
    """``t`` (1-D) padded with ``value`` to length ``size``.

    A padded copy's ``(copy's view, source)`` pair is appended to ``refresh``
    (when given): the plan cache re-copies it at every call.
    """
    if len(t) == size:
        return t
    padded = torch.cat([t, t.new_full((size - len(t),), value)])
    if refresh is not None:
        refresh.append((padded[: len(t)], t))
    return padded


class _Linear:
    """``x @ W.T + b`` with ``W`` padded to ``n_in`` inputs and ``n_out_padded`` outputs.

    The padded copy keeps ``W``'s row-major layout (refreshed by contiguous
    row copies, a third of a transposed copy's time) and is read transposed,
    as an unpadded ``W`` is. Products get at least ``min_rows`` rows.
    """

    def __init__(self, linear, n_in, n_out_padded, refresh=None, min_rows=_MIN_ROWS):
        w = linear.weight.detach()
        b = linear.bias.detach() if linear.bias is not None else w.new_zeros(len(w))
        if w.shape != (n_out_padded, n_in):
            padded = w.new_zeros(n_out_padded, n_in)
            padded[: w.shape[0], : w.shape[1]] = w
            if refresh is not None:
                refresh.append((padded[: w.shape[0], : w.shape[1]], w))
            w = padded
        # (a missing bias is a constant zero: nothing to refresh)
        self.wt = w.t()
        self.b = _pad(b, n_out_padded, refresh=refresh if linear.bias is not None else None)
        self.n_out, self.min_rows = n_out_padded, min_rows

    def __call__(self, x):
        n = x.shape[0]
        if n >= self.min_rows:  # (a plan's walk pads its input once: always here)
            return torch.addmm(self.b, x, self.wt)
        return torch.addmm(self.b, _pad_rows(x, self.min_rows), self.wt)[:n]


def _pad_rows(x, rows):
    """``x`` with zero rows appended up to ``rows`` rows."""
    return torch.constant_pad_nd(x, (0, 0, 0, rows - x.shape[0]))  # (F.pad, less Python)


def _one_chunk(fn):
    """Apply the element-wise ``fn`` on one thread: one loop, split nowhere (kernels
    may split loops below ATen's grain size)."""

    def apply(x):
        if torch.get_num_threads() == 1:
            return fn(x)
        with torch_threads(1):
            return fn(x)

    return apply


class _Elementwise:
    """An activation that is not exact (see :mod:`.elementwise`): on the call's
    threads where its loop is large enough to run on all of them and was probed
    to give one thread's bits there (rows padded by :func:`.elementwise.aligned_rows`);
    else as :func:`_one_chunk`, smaller loops included (a kernel may split loops
    below ATen's grain size: upstream's GELU kernel has, from 16,384 elements)."""

    def __init__(self, fn, key, width, per_row):
        self.fn, self.key, self.width, self.per_row = fn, key, width, per_row
        self.one_chunk = _one_chunk(fn)

    def __call__(self, x):
        threads = torch.get_num_threads()
        if parallel(x.numel(), threads) and splits_aligned(
                self.fn, self.key, self.width, self.per_row, threads):
            return self.fn(x)
        return self.one_chunk(x)


def _batch_norm(bn, width, refresh=None):
    """Eval-mode BatchNorm on ``width`` columns (padded columns stay 0)."""
    mean = _pad(bn.running_mean.detach(), width, 0.0, refresh)
    var = _pad(bn.running_var.detach(), width, 1.0, refresh)
    weight = None if bn.weight is None else _pad(bn.weight.detach(), width, 1.0, refresh)
    bias = None if bn.bias is None else _pad(bn.bias.detach(), width, 0.0, refresh)
    return partial(F.batch_norm, running_mean=mean, running_var=var, weight=weight, bias=bias,
                   training=False, momentum=0.0, eps=bn.eps)


def _pad_columns(t, size, refresh=None):
    """``t`` (2-D) padded with zero columns to ``size`` columns (see :func:`_pad`)."""
    if t.shape[1] == size:
        return t
    padded = t.new_zeros(t.shape[0], size)
    padded[:, : t.shape[1]] = t
    if refresh is not None:
        refresh.append((padded[:, : t.shape[1]], t))
    return padded


# --- an ensemble's ops (see .ensemble): rows i*k .. i*k+k-1 are row i's members


class _MemberSplit:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x.unsqueeze(1).expand(-1, self.k, -1).reshape(-1, x.shape[1])


class _MemberScale:
    """``x_m * w[m] (+ b[m])`` on ``width`` columns (padded columns stay 0)."""

    def __init__(self, scale, width, refresh=None):
        self.k, self.width = scale.n_members, width
        self.w = _pad_columns(scale.weight.detach(), width, refresh)
        self.b = None if scale.bias is None else _pad_columns(scale.bias.detach(), width,
                                                              refresh)

    def __call__(self, x):  # (a product, then a sum: exactly rounded whatever the loop)
        out = x.view(-1, self.k, self.width) * self.w
        if self.b is not None:
            out = out + self.b
        return out.view(-1, self.width)


class _MemberLinear:
    """Each member's output layer as its own padded ``addmm`` (:class:`_Linear`):
    batch-invariant like the single network's output layer."""

    def __init__(self, linear, n_in, refresh=None):
        self.k, self.n_in, self.n_out = linear.n_members, n_in, linear.out_features
        width = max(self.n_out, _MIN_COLS)
        self.members = [_Linear(_Weights(w, b), n_in, width, refresh)
                        for w, b in zip(linear.weight, linear.bias, strict=True)]

    def __call__(self, x):
        xv = x.view(-1, self.k, self.n_in)
        return torch.cat([lin(xv[:, m].contiguous())[:, : self.n_out]
                          for m, lin in enumerate(self.members)], dim=1)


class _Weights:
    """One member's ``weight`` and ``bias`` as :class:`_Linear` reads a layer's."""

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias


def _plan(module, refresh=None):
    """The network as a list of plain operations, walking its layer plan.

    Only for a module that is exactly what its plan built
    (:func:`~.module.plan_blocker`), with no ``forward`` set on an instance.
    Each padded copy of a tensor is recorded in ``refresh`` (see :func:`_pad`).
    """
    plan = module.plan
    ops, n_in, width, exact = [], plan.n_features, plan.n_features, True
    linears, batched = [], []  # (the products whose rows the row probe decides)
    per_row, k = [], 1  # (elements per request row of each element-wise loop)
    for parts, op in plan.located:
        layer = submodule(module, parts)
        if op.kind == "linear":
            if parts[0] == "hidden":  # a hidden layer: padded; is its activation exact?
                block = module.hidden[int(parts[1])]
                exact = activation_row(block._modules["activation"]).exact
                width = _pad_to(op.n_out, _WIDTH_MULTIPLE)
            else:
                width = max(op.n_out, _MIN_COLS)
            linears.append(_Linear(layer, n_in, width, refresh))
            ops.append(linears[-1])
            n_in = width
        elif op.kind == "batch_norm":
            ops.append(_batch_norm(layer, width, refresh))
        elif op.kind == "activation":
            fn = activation_row(layer).evaluation(layer, width, refresh)
            if not exact:
                fn = _Elementwise(fn, _kernel_key(layer), width, width * k)
                per_row.append(width * k)
            ops.append(fn)
        elif op.kind.endswith("_embedding"):  # row-wise, unpadded: read in place
            ops.append(layer.forward)
            batched.append(tuple(layer.weight.shape))
            n_in = width = op.n_out
        elif op.kind == "member_split":  # (settings read from the modules, as above)
            ops.append(_MemberSplit(layer.n_members))
            k = layer.n_members
        elif op.kind == "member_scale":
            ops.append(_MemberScale(layer, width, refresh))
        elif op.kind == "member_linear":
            ops.append(_MemberLinear(layer, n_in, refresh))
            linears += ops[-1].members
        elif op.kind == "member_mean":  # (transcendental: on one thread)
            ops.append(_one_chunk(partial(_combine, k=layer.n_members,
                                          rule=COMBINE_RULES[layer.combine])))
        # dropout and alpha dropout: the identity in evaluation mode
    for lin in linears:  # (a plan's walk pads its input once, to a count a rule allows)
        lin.min_rows = ROW_CANDIDATES[0].least
    shapes = tuple(sorted({*(tuple(lin.wt.shape) for lin in linears), *batched}))
    # (an embedding's forward reads the module's parameters, which require grad)
    return _Plan(ops, plan.n_outputs, shapes, {}, tuple(sorted(set(per_row))), not batched)


class _Plan(NamedTuple):
    """The network as plain operations (see :func:`_plan`)."""

    ops: list
    n_outputs: int
    shapes: tuple  # the shapes of its matrix products (.row_probe)
    rules: dict  # thread count -> the row counts its products may have (probed once)
    per_row: tuple  # elements per request row of each element-wise loop (.elementwise)
    grad_free: bool  # no tensor the walk reads requires grad


def _kernel_key(layer):
    """What decides an activation module's kernels: its type and scalar settings
    (GELU's ``approximate``, ELU's ``alpha``, ...)."""
    return (type(layer), tuple(sorted(
        (k, v) for k, v in vars(layer).items()
        if k[0] != "_" and k != "training" and type(v) in (bool, int, float, str))))


def _combine(x, k, rule):
    return rule(x.view(x.shape[0], k, -1))


def padded_rows(plan, n):
    """The rows a request of ``n`` rows is padded to (once, before the walk): a
    count every matrix product may have on this call's threads (``plan.rules``,
    probed the first time) at which every
    element-wise loop is cut at block boundaries only (:mod:`.elementwise`)."""
    threads = torch.get_num_threads()
    rule = plan.rules.get(threads)
    if rule is None:  # (BLAS splits a product's rows between threads: per thread count)
        rule = plan.rules.setdefault(threads, min_rows(plan.shapes, threads))
    rows = rule.rows(n)
    if plan.per_row:
        while (aligned := aligned_rows(rows, plan.per_row, threads)) != rows:
            rows = rule.rows(aligned)
    return rows


def run_plan(plan, x, members=False):
    """The plan's operations on the float32 tensor ``x``, its rows padded once
    (:func:`padded_rows`) and cut back; with ``members`` (the ensemble's size),
    each member's outputs side by side instead of their combination."""
    ops, n_out = plan.ops, plan.n_outputs
    if members:  # each member's outputs: the plan without its last op, the combination
        ops, n_out = ops[:-1], n_out * members
    n = x.shape[0]
    padded = padded_rows(plan, n)
    if n < padded:
        x = _pad_rows(x, padded)
    for op in ops:
        x = op(x)
    return x[:n, :n_out]


def _macs(linear, k):
    """Multiply-adds per request row of one linear layer of a network of ``k`` members
    (a total over the members for a member layer); from its sizes when its
    ``weight`` is not a tensor (a user's layer, a quantized one)."""
    w = getattr(linear, "weight", None)
    if isinstance(w, torch.Tensor):
        return w.numel() * (k if w.dim() == 2 else 1)
    return getattr(linear, "in_features", 0) * getattr(linear, "out_features", 0) * k


def prepare(module):
    """``((padded, plan, largest), refresh)`` for a module on CPU (see :mod:`.plan_cache`).

    ``padded``: whether the module may run with padded matrix products;
    ``plan``: its operations, when it is exactly what its plan built.
    """
    modules = list(module.modules())
    padded = (type(module) is MLP and "forward" not in vars(module)
              and not any(has_hooks(m) for m in modules))
    plan, pairs = None, []
    if padded and plan_blocker(module) is None and not any("forward" in vars(m)
                                                           for m in modules):
        with torch.inference_mode(False), torch.no_grad():
            plan = _plan(module, pairs)
    # (what choose_num_threads reads of the network, kept: the multiply-adds per
    # request row of its largest product, from its weights, so an embedding's
    # output width counts; an ensemble's members split the rows before the first
    # linear, so a shared (2-d) weight runs on k rows, a member linear's
    # (k, out, in) weight holds all k)
    k = module.plan.n_members
    largest = max((_macs(lin, k) for lin in module.linears()), default=0)

    copies = [copy for copy, _ in pairs]
    sources = [source.detach() for _, source in pairs]  # (the same memory, never grad)

    def refresh():  # (no autograd mode to switch: nothing here requires grad)
        if copies:
            foreach_copy_(copies, sources)

    return (padded, plan, largest), refresh


def run_padded_modules(module, x, members=False):
    """Unknown layers: the module's own layers in eval mode, matrix products padded
    (with ``members``, without the members' combination)."""
    first = [module.embedding] if module.plan.embedding is not None else []
    ensemble = [*module.members] if module.plan.members else []
    output = [module.output.linear] if members else [*module.output]
    for layer in [*first, module.input_norm, *ensemble, *(c for b in module.hidden for c in b),
                  *output]:
        if isinstance(layer, nn.Linear):
            x = _Linear(layer, x.shape[1], max(layer.out_features, _MIN_COLS))(x)
            x = x[:, : layer.out_features]  # (an ensemble's n * n_members rows)
        elif isinstance(layer, MemberLinear):
            x = _MemberLinear(layer, x.shape[1])(x)
        else:
            x = layer(x)
    return x
