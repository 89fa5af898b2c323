"""A device that is not the CPU, for CI without a GPU: torch's meta device, made as strict as CUDA.

On the meta device every op runs its shape and dtype logic without computing values, so a training
step there meets any tensor that was left on the CPU. Two things keep bare meta from standing in for
CUDA, and ``strict_meta()`` addresses both:

- Meta kernels check devices less strictly than CUDA's: ``mm``, ``mul_`` and ``linalg.solve`` of a meta
  and a CPU tensor pass on meta (``solve`` even returns a CPU tensor), where CUDA refuses them. Under
  ``strict_meta()`` every op whose tensor arguments lie on more than one device is refused, with the
  exceptions CUDA itself makes: a 0-dim CPU tensor is a scalar to any op, copies cross devices
  (``copy_``, ``_to_copy``), and advanced indexing takes CPU index tensors.
- A host read (``.item()``, ``float()``, ``.tolist()``, ``.cpu()``) fails on meta, where on CUDA it copies
  to the host. Under ``strict_meta()`` a host read of a meta tensor returns zeros of its shape and dtype:
  a placeholder, so that the code after the read runs on, but no value it yields means anything, and
  control flow that depends on the value (the matrix exponential's number of squarings) takes the
  branch zero gives. ``.numpy()`` of a meta tensor still fails, as it fails on CUDA.

``foreach_on_meta()`` makes torch's optimizers and gradient clipping take their multi-tensor
(``foreach``) paths on meta, the paths they take on CUDA (on the CPU and on bare meta they run one
tensor at a time).
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

META = torch.device("meta")

aten = torch.ops.aten
# ops CUDA runs with tensors on several devices: copies between devices, and advanced indexing with
# CPU index tensors (the indices are the only arguments allowed elsewhere; checked below)
_COPIES = {aten.copy_.default, aten._to_copy.default, aten.lift_fresh.default, aten._copy_from.default}
_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


class DeviceMismatch(RuntimeError):
    """An op met tensors on two devices (CUDA raises a RuntimeError here too)."""


def _devices(tensors) -> set[torch.device]:
    return {t.device for t in tensors if isinstance(t, torch.Tensor) and not (t.device.type == "cpu" and t.dim() == 0)}


class StrictMeta(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        if func is aten._local_scalar_dense.default and args[0].is_meta:  # .item(), float(), int()
            t = args[0]
            return False if t.dtype == torch.bool else 0 if not t.is_floating_point() and not t.is_complex() else 0.0
        if func is aten._to_copy.default and args[0].is_meta and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]).type == "cpu":  # .cpu(), .to("cpu"), .tolist()
            t = args[0]
            return torch.zeros(t.shape, dtype=kwargs.get("dtype") or t.dtype)
        if func is aten.copy_.default and args[1].is_meta and not args[0].is_meta:  # a host tensor filled
            return args[0].zero_()
        if func not in _COPIES:
            if func in _INDEXING:  # index tensors (args[1]) may stay on the CPU; the rest may not
                checked = [args[0]] + [a for a in flat[1:] if a is not None and not _in(a, args[1])]
            else:
                checked = flat
            devices = _devices(checked)
            if len(devices) > 1:
                raise DeviceMismatch(f"{func}: tensors on {', '.join(sorted(map(str, devices)))} (CUDA refuses "
                                     "this too: one of them was made on the wrong device)")
        return func(*args, **kwargs)


def _in(a, indices) -> bool:
    return isinstance(indices, (list, tuple)) and any(a is i for i in indices)


@contextlib.contextmanager
def strict_meta():
    with StrictMeta():
        yield


@contextlib.contextmanager
def foreach_on_meta():
    import torch.optim.optimizer as optimizer
    import torch.utils._foreach_utils as foreach_utils

    original = foreach_utils._get_foreach_kernels_supported_devices

    def with_meta() -> list[str]:
        return [*original(), "meta"]

    optimizer._get_foreach_kernels_supported_devices = with_meta
    foreach_utils._get_foreach_kernels_supported_devices = with_meta
    try:
        yield
    finally:
        optimizer._get_foreach_kernels_supported_devices = original
        foreach_utils._get_foreach_kernels_supported_devices = original


def tensors_of(module: torch.nn.Module, optimizers=()) -> dict[str, torch.Tensor]:
    """Every parameter, gradient, buffer and optimizer-state tensor, by name."""
    out = {}
    for name, p in module.named_parameters():
        out[name] = p
        if p.grad is not None:
            out[f"{name}.grad"] = p.grad
    for name, b in module.named_buffers():
        out[name] = b
    for i, opt in enumerate(optimizers):
        for j, state in enumerate(opt.state.values()):
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    out[f"optimizer{i}.state{j}.{key}"] = value
    return out
