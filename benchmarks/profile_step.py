"""Where the time of one training step goes: a per-operation profile at settings a-e.

For each setting of ``bench_fit.py`` (a: 5 x 100 ReLU, batch 32; b: 3 x 256 ReLU,
batch 128; c: 20 x 100 ELU + BatchNorm, batch 32; d: 3 x 256 ReLU, batch 1024;
e: 5 x 100 ReLU + dropout 0.2, batch 32), 64 input features, 10 classes, Adam,
this trains ``--steps`` steps with torch's profiler on, once with the
hand-written CPU step (``ManualStep``) and once with the autograd step
(``EagerStep``), after ``--warmup`` untimed steps. It prints, per step:
the wall time, the time inside ATen operators (their self CPU time: the
arithmetic and its dispatch), the rest (Python, autograd's graph, the
optimizer's bookkeeping), and the operators that take the most time, grouped
(matrix products, BatchNorm, activations and their gradients, dropout, the
optimizer, everything else).

Run::

    python benchmarks/profile_step.py                  # settings a-e, CPU
    python benchmarks/profile_step.py --settings c --steps 400

CPU only (no GPU here); the numbers depend on the machine, the ratios less.
"""

import argparse
import copy
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import SETTINGS  # noqa: E402

from sklearn_deepnet._engine.fast_step import ManualStep  # noqa: E402
from sklearn_deepnet._engine.losses import multiclass_log_loss  # noqa: E402
from sklearn_deepnet._engine.module import MLP  # noqa: E402
from sklearn_deepnet._engine.optim import build_optimizer  # noqa: E402
from sklearn_deepnet._engine.steps import EagerStep, Regularization  # noqa: E402

HP = dict(learning_rate_init=1e-3, momentum=0.9, nesterovs_momentum=True, beta_1=0.9,
          beta_2=0.999, epsilon=1e-8, rho=0.9, weight_decay=0.0)
GROUPS = (  # first match wins
    ("matrix products", ("mm", "addmm", "matmul", "linear")),
    ("BatchNorm", ("batch_norm",)),
    ("dropout", ("bernoulli", "dropout")),
    ("activation + gradient", ("relu", "elu", "threshold", "gelu", "silu", "mish")),
    ("optimizer", ("adam", "foreach", "fused")),
    ("loss", ("softmax", "nll", "cross_entropy", "gather", "scatter")),
)


def _group(name):
    name = name.lower()
    for group, keys in GROUPS:
        if any(k in name for k in keys):
            return group
    return "other"


def profile_step(step_cls, setting, steps, warmup):
    hidden, activation, batch_norm, batch_size, dropout = setting
    torch.manual_seed(0)
    module = MLP(64, list(hidden), 10, activation=activation, batch_norm=batch_norm,
                 dropout=dropout).initialize_()
    module = copy.deepcopy(module).train()
    opt = build_optimizer("adam", module.named_parameters(), HP)
    step = step_cls(module, multiclass_log_loss, opt, Regularization())
    X = torch.randn(batch_size, 64)
    y = torch.randint(0, 10, (batch_size,))
    w = torch.ones(batch_size)
    for _ in range(warmup):
        step.train_batch(X, y, w)
    start = time.perf_counter()
    for _ in range(steps):
        step.train_batch(X, y, w)
    wall = (time.perf_counter() - start) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step.train_batch(X, y, w)
    groups = defaultdict(float)
    for evt in prof.key_averages():
        if evt.key.startswith("aten::") or evt.key.startswith("torch"):
            groups[_group(evt.key)] += evt.self_cpu_time_total
    step.release()
    return wall * 1e6, {k: v / steps for k, v in groups.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--settings", default="a,b,c,d,e")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=50)
    args = p.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.platform()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; device: CPU")
    names = [g for g, _ in GROUPS] + ["other"]
    for name in args.settings.split(","):
        setting = SETTINGS[name]
        hidden, activation, batch_norm, batch_size, dropout = setting
        print(f"\nsetting {name}: {len(hidden)} x {hidden[0]} {activation}, "
              f"BatchNorm {batch_norm}, dropout {dropout}, batch {batch_size}; "
              "microseconds per step")
        print(f"{'step':<8}{'wall':>8}{'in ops':>8}{'rest':>8}  "
              + "  ".join(f"{g:>10.10}" for g in names))
        for label, cls in (("manual", ManualStep), ("eager", EagerStep)):
            wall, groups = profile_step(cls, setting, args.steps, args.warmup)
            in_ops = sum(groups.values())
            print(f"{label:<8}{wall:>8.0f}{in_ops:>8.0f}{max(wall - in_ops, 0):>8.0f}  "
                  + "  ".join(f"{groups.get(g, 0.0):>10.0f}" for g in names))


if __name__ == "__main__":
    main()
