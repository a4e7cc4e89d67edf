"""Where the policy runs and in what precision: one home for the `device` and `dtype` settings.

Acting, scoring, reflection, evaluation, adapter merging and training all use the device and dtype the
policy was loaded with (`Policy.load`), so a GPU machine does all of them on the GPU.

- `device`: `auto` (the first CUDA device if there is one, else the CPU), `cpu`, `cuda` or `cuda:N`.
- `dtype`: `auto` (bfloat16 on a CUDA device that supports it, float16 on one that does not, float32 on the
  CPU, where half precision is slower and less exact), or `float32`, `bfloat16`, `float16`.
"""

from __future__ import annotations

import re

from oel.errors import OELError

# torch is imported inside the functions that need it: the config checks its settings without loading torch.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DTYPES = ("float32", "bfloat16", "float16")


def check_device_setting(device: str) -> None:
    """The setting's form only; whether the device exists is checked when the model is loaded."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise OELError(f"config: device must be auto, cpu, cuda or cuda:N, got {device!r}")


def check_dtype_setting(dtype: str) -> None:
    if dtype != "auto" and dtype not in DTYPES:
        raise OELError(f"config: dtype must be auto, {', '.join(DTYPES)}, got {dtype!r}")


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
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # of the current device


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")
