"""Hook registries: whether anything is attached that a hand-written pass would skip.

Part of :mod:`.kernels` (see there). The fast paths (the hand-written CPU
step, the CUDA-graph step, the plan walk of predictions, the ONNX export)
do not run ``torch.nn`` hooks, so they ask here first; the registries are
private attributes of modules and tensors. A registry that cannot be read
counts as holding a hook: the caller then takes the autograd path, which
runs every hook.
"""

from __future__ import annotations

import sys

__all__ = ["global_forward_hooks", "global_module_hooks", "has_hooks", "module_hooks",
           "tensor_hooks"]


def has_hooks(module):
    """Whether ``module`` has forward hooks (a hand-written step would skip them).

    Answers ``True`` when the hook registries cannot be inspected, so the
    caller takes the autograd path, which runs hooks.
    """
    try:
        return bool(module._forward_hooks or module._forward_pre_hooks)
    except AttributeError:
        return True


_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                 "_backward_pre_hooks")
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                 "_global_backward_hooks", "_global_backward_pre_hooks")


def module_hooks(module):
    """Names of the hook kinds registered on ``module`` itself (forward, backward).

    A registry that cannot be read counts as holding a hook: the caller then
    takes the autograd path, which runs every hook.
    """
    return [name.strip("_") for name in _MODULE_HOOKS if getattr(module, name, True)]


def global_module_hooks():
    """Names of the global module hook kinds in use (``register_module_forward_hook`` ...)."""
    registry = sys.modules.get("torch.nn.modules.module")
    return [name.strip("_") for name in _GLOBAL_HOOKS if getattr(registry, name, True)]


def global_forward_hooks():
    """Names of the global forward hook kinds in use (``register_module_forward_hook``,
    ``..._pre_hook``): what calling a module in evaluation runs and a plan walk does not."""
    return [kind for kind in global_module_hooks() if kind.startswith("global_forward")]


def tensor_hooks(tensor):
    """Whether hooks are registered on ``tensor`` (``register_hook``,
    ``register_post_accumulate_grad_hook``); ``True`` when that cannot be read."""
    try:
        return bool(tensor._backward_hooks or tensor._post_accumulate_grad_hooks)
    except AttributeError:
        return True
