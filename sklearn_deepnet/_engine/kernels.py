"""The ONLY modules that call private PyTorch functions, each with a public fallback.

This module and its parts ``kernels_*.py`` are the only ones in the package
that touch private torch names; the rest of the package imports what they
offer from here. The training steps use a few private torch entry points
because they are faster on small networks (multi-tensor ``_foreach_*``
kernels, the fused Adam kernel without ``Optimizer.step``'s Python
overhead, the ATen backward kernels autograd itself calls). Private names
and signatures can change between torch releases, so each one is looked up
once, and the kernels the steps' results depend on (activation and
batch-norm backward, the direct fused Adam call, the fused optimizers) are
*checked, not trusted*: on first use in a process each is compared with its
public formula on a small input, and one that is missing, raises (a changed
signature) or differs is replaced by the public code for the rest of the
process (``kernel_fallbacks`` says which and why; the hand-written step then
gives way to autograd, and an optimizer whose fused kernel failed is built
with ``foreach``).

The parts, by responsibility:

- :mod:`.kernels_checked`: the lookup of private entry points and the check
  (``_Checked``, :func:`kernel_fallbacks`);
- :mod:`.kernels_foreach`: multi-tensor operations (``foreach_*``);
- :mod:`.kernels_backward`: ATen's activation and batch-norm kernels;
- :mod:`.kernels_optim`: the fused optimizer kernels and the undecorated
  ``Optimizer`` methods that keep ``torch._dynamo`` unloaded;
- :mod:`.kernels_hooks`: the hook registries of modules and tensors.

This module re-exports their functions and holds the switches
``tests/test_torch_compat.py`` uses (every private entry point off; every
check run again). That test checks every fast function against its
fallback, so a torch upgrade that changes one of them fails there first.
"""

from __future__ import annotations

from . import kernels_backward, kernels_foreach, kernels_optim
from .kernels_backward import (
    ACTIVATION_KERNELS,
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_functions,
    batch_norm_kernels_usable,
    checked_backward,
)
from .kernels_checked import _FALLBACKS, _GENERATION, _REGISTRY, kernel_fallbacks
from .kernels_foreach import (
    foreach_add_,
    foreach_clamp_,
    foreach_copy_,
    foreach_mul_,
    foreach_norm,
)
from .kernels_hooks import (
    global_forward_hooks,
    global_module_hooks,
    has_hooks,
    module_hooks,
    tensor_hooks,
)
from .kernels_optim import (
    _FUSED_OPTIMIZERS,
    fused_adam_kernel,
    fused_optimizer_usable,
    make_optimizer,
    optimizer_load_state_dict,
    optimizer_state_dict,
    optimizer_step,
    optimizer_zero_grad,
)

__all__ = [
    "ACTIVATION_KERNELS",
    "batch_norm_backward",
    "batch_norm_forward",
    "batch_norm_functions",
    "batch_norm_kernels_usable",
    "checked_backward",
    "foreach_add_",
    "foreach_clamp_",
    "foreach_copy_",
    "foreach_mul_",
    "foreach_norm",
    "fused_adam_kernel",
    "fused_optimizer_usable",
    "global_forward_hooks",
    "global_module_hooks",
    "has_hooks",
    "kernel_fallbacks",
    "module_hooks",
    "tensor_hooks",
    "make_optimizer",
    "optimizer_load_state_dict",
    "optimizer_state_dict",
    "optimizer_step",
    "optimizer_zero_grad",
]

#: every private entry point, by the part holding it as a module global
#: (``None`` there when this torch lacks it)
_PRIVATE = {
    kernels_foreach: ("_foreach_norm", "_foreach_clamp_min_", "_foreach_clamp_max_",
                      "_foreach_add_", "_foreach_mul_", "_foreach_copy_"),
    kernels_backward: ("_threshold_backward", "_leaky_relu_kernel", "_elu_kernel",
                       "_tanh_kernel", "_sigmoid_kernel", "_gelu_kernel", "_silu_kernel",
                       "_mish_kernel", "_native_batch_norm", "_native_batch_norm_backward"),
    kernels_optim: ("_fused_adam_", "_fused_adamw_", "_raw_add_param_group",
                    "_raw_state_dict", "_raw_load_state_dict", "_raw_zero_grad",
                    "_use_grad_code"),
}


def _use_fallbacks_for_tests():
    """Switch every private entry point off (``tests/test_torch_compat.py`` only).

    Returns a function that switches them back on.
    """
    saved = {part: {name: vars(part)[name] for name in names}
             for part, names in _PRIVATE.items()}
    for part, names in _PRIVATE.items():
        vars(part).update(dict.fromkeys(names))
    _GENERATION[0] += 1

    def restore():
        for part, values in saved.items():
            vars(part).update(values)
        _GENERATION[0] += 1
        for name in [k for k, why in _FALLBACKS.items() if why.startswith("not in this")]:
            del _FALLBACKS[name]

    return restore


def _recheck_for_tests():
    """Forget every check's verdict, so the next use checks again (tests only)."""
    for checked in _REGISTRY:
        checked.ok = None
    _FUSED_OPTIMIZERS.clear()  # (built anew, for the class as it is now)
    _FALLBACKS.clear()
    _GENERATION[0] += 1
