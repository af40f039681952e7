"""CUDA-graph training step: the whole eager step captured once and replayed.

See :class:`GraphStep`. Kept apart from :mod:`.steps` (the step interface,
the eager and hand-written CPU steps) because it is CUDA-only.
"""

from __future__ import annotations

import logging
from types import MappingProxyType

import torch

from .kernels import optimizer_zero_grad

__all__ = ["GraphStep"]

logger = logging.getLogger("sklearn_deepnet")


def _same(a, b):
    return a is b or (not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor)
                      and a == b)


class GraphStep:
    """CUDA-graph epoch runner around an :class:`EagerStep` (see module docstring).

    The learning rate of every param group becomes a 0-d float32 device
    tensor that the captured optimizer step reads (every graph-safe torch
    optimizer has a tensor-rate kernel without host syncs), so a new rate (a
    float or tensor put into ``group["lr"]`` by a callback or scheduler) is
    copied into it before the next replay without re-capturing. Any other
    optimizer setting (momentum, betas, ...) is a Python float baked into the
    graph: when one changes, the step is captured again before the next
    replay; after ``max_recaptures`` re-captures it trains eagerly for the rest
    of the fit (``fallback_reason`` says so).

    Parameters
    ----------
    step : EagerStep
        Built with a capturable optimizer on a CUDA module.
    data : TensorData
        Training data resident on the same device.
    batch_size : int
        The captured batch size; batches of any other size run eagerly.
    n_warmup : int, default=3
        Eager steps (on a side stream) before capturing, as the CUDA-graph
        recipe requires (lazy initialization, optimizer state).
    max_recaptures : int, default=32
        Re-captures allowed per fit before training continues eagerly.
    """

    epoch_records = MappingProxyType({})  # no extra history entries

    def __init__(self, step, data, batch_size, n_warmup=3, max_recaptures=32):
        self.step = step
        self.data = data
        self.batch_size = batch_size
        self.n_warmup = n_warmup
        self.max_recaptures = max_recaptures
        self.graph = None
        self.n_eager = 0
        self.n_recaptures = 0
        self.fallback_reason = None
        self.idx = None  # static batch indices, typed like the epoch order
        self.total = torch.zeros((), device=data.X.device)
        self.lr_tensors = None  # one per param group, read by the captured step
        self.captured_settings = None

    # ------------------------------------------------------------ settings
    def _settings(self):
        return [{k: v for k, v in g.items() if k not in ("params", "lr", "initial_lr")}
                for g in self.step.optimizer.param_groups]

    def _sync_settings(self):
        """Bring the captured graph up to date with ``param_groups`` (before a replay)."""
        current = self._settings()
        if len(current) != len(self.captured_settings):  # (a callback's add_param_group)
            self._give_up(
                f"the optimizer's parameter groups changed during the fit "
                f"({len(self.captured_settings)} -> {len(current)}); a CUDA graph "
                "updates only the groups it captured"
            )
            return
        self._sync_lr()
        changed = any(
            len(a) != len(b) or any(not _same(a[k], b.get(k)) for k in a)
            for a, b in zip(current, self.captured_settings, strict=True)
        )
        if changed:
            self.n_recaptures += 1
            self.graph = None
            if self.n_recaptures > self.max_recaptures:
                self._give_up(
                    f"optimizer settings changed {self.n_recaptures} times during the fit; "
                    "each change re-captures the CUDA graph"
                )

    def _give_up(self, reason):
        self.fallback_reason = reason
        logger.warning("%s; training continues eagerly.", reason)
        self.graph = None
        self.step.set_to_none = True

    # ------------------------------------------------------------- capture
    def _captured_body(self):
        d = self.data
        loss = self.step.loss(
            d.X.index_select(0, self.idx), d.y.index_select(0, self.idx),
            d.w.index_select(0, self.idx),
        )
        loss.backward()
        self.step.update()
        self.total.add_(loss.detach() * self.batch_size)

    def _install_lr_tensors(self):
        """Make every group's ``lr`` this step's device tensor, holding its current rate."""
        if self.lr_tensors is None or len(self.lr_tensors) != len(
                self.step.optimizer.param_groups):  # (a group added before this capture)
            device = self.data.X.device
            self.lr_tensors = [torch.zeros((), dtype=torch.float32, device=device)
                               for _ in self.step.optimizer.param_groups]
        self._sync_lr()  # copies each group's rate in and installs the tensor

    def _sync_lr(self):
        for group, t in zip(self.step.optimizer.param_groups, self.lr_tensors or (),
                            strict=False):
            lr = group["lr"]
            if lr is not t:  # a callback put a new rate there
                if isinstance(lr, torch.Tensor):
                    t.copy_(lr)
                else:
                    t.fill_(lr)
                group["lr"] = t

    def _capture(self):
        # Before every capture, also a re-capture: a float rate set since the
        # last replay must not be baked into the new graph.
        self._install_lr_tensors()
        optimizer_zero_grad(self.step.optimizer, set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._captured_body()
        self.graph = graph
        self.captured_settings = self._settings()
        # Eager steps after the capture must write into the captured gradients.
        self.step.set_to_none = False

    def run_epoch(self, batches, events=None):
        """Train over the epoch's batches; return the summed ``loss * size`` (0-d tensor)."""
        d = self.data
        order = batches.order(always=True)
        total = torch.zeros((), device=d.X.device)
        self.total.zero_()
        if self.idx is None:
            self.idx = order.new_zeros(self.batch_size)
        self.step.events = events
        try:
            for start, stop in batches.spans():
                idx = order[start:stop]
                if events is not None:
                    xb, yb = d.X[idx], d.y[idx]
                    events.batch_begin(xb, yb)
                if self.graph is not None:
                    self._sync_settings()
                full = stop - start == self.batch_size
                if full and self.graph is None and self.fallback_reason is None \
                        and self.n_eager >= self.n_warmup:
                    torch.cuda.synchronize()
                    try:
                        self._capture()
                    except Exception as exc:  # noqa: BLE001 - any capture failure -> eager
                        self._give_up(f"CUDA graph capture failed: {exc!r}")
                if full and self.graph is not None:
                    self.idx.copy_(idx)
                    if events is not None:
                        before = self.total.clone()
                    self.graph.replay()
                    loss = None if events is None else (self.total - before) / self.batch_size
                elif self.graph is None and self.fallback_reason is None:
                    self.n_eager += 1  # warm-up step on a side stream (CUDA-graph recipe)
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        loss = self.step.train_batch(d.X[idx], d.y[idx], d.w[idx])
                        total += loss * (stop - start)
                    torch.cuda.current_stream().wait_stream(side)
                else:
                    loss = self.step.train_batch(d.X[idx], d.y[idx], d.w[idx])
                    total += loss * (stop - start)
                if events is not None:
                    events.batch_end(xb, yb, loss)
        finally:
            self.step.events = None
        return total + self.total

    def release(self):
        """Free the graph and its gradients; learning rates back to floats."""
        self.graph = None
        optimizer_zero_grad(self.step.optimizer, set_to_none=True)
        for group, t in zip(self.step.optimizer.param_groups, self.lr_tensors or (),
                            strict=False):
            if group["lr"] is t:
                group["lr"] = float(t)
        self.lr_tensors = None
