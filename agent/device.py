"""Where the policy runs and in what precision: how the `device` and `dtype` settings resolve (their form is
checked with the rest of the config, in `oel/config.py`).

Acting, scoring, reflection, evaluation, adapter merging and training all use the device and dtype the
policy was loaded with (`Policy.load`), so a GPU machine does all of them on the GPU.

- `device`: `auto` (the first CUDA device if there is one, else the CPU), `cpu`, `cuda` or `cuda:N`.
- `dtype`: `auto` (bfloat16 on a CUDA device that supports it, float16 on one that does not; on the CPU,
  bfloat16 where the CPU multiplies it in hardware (AVX512-BF16 or AMX), else float32, since emulated half
  precision is slower than float32), or `float32`, `bfloat16`, `float16`. On the development CPU (AVX512-BF16)
  bfloat16 made acting 1.8-2.1x and consolidation 1.5x faster than float32, and played the same validation
  games as well (docs/BENCHMARKS.md, "Precision on the CPU").
"""

from __future__ import annotations

from oel.config import check_device_setting, check_dtype_setting
from oel.errors import OELError


def resolve_device(device: str = "auto"):
    """The `torch.device` for a setting; an error when it names a device torch cannot see."""
    import torch

    check_device_setting(device)
    if device == "auto":
        return resolve_device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OELError(f"device {device!r} asked for, but torch sees no CUDA device here; use device = \"auto\" or \"cpu\"")
        index = int(device.partition(":")[2] or torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise OELError(f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return torch.device(device)


def resolve_dtype(dtype: str, device):
    """The `torch.dtype` for a setting on a resolved device (a CUDA one made current: `Policy.load` does)."""
    import torch

    check_dtype_setting(dtype)
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type != "cuda":
        return torch.bfloat16 if native_bf16_cpu() else torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # of the current device


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware, by torch's own CPU-feature probes (False where a torch
    build lacks them)."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")
