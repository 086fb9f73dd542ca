"""What `--dtype` means on this machine, and applying it to a freshly built model.

`auto` is bfloat16 where the hardware computes it natively (CPUs with AVX512-BF16 or
AMX, CUDA devices of compute capability 8.0 and above) and float32 elsewhere (MPS
included). The resolved name is what keys the model registry and the disk cache, and
what `status`, the timings and `Utterance.params` show.

- `float32`: upstream exactly (bit-identical to `from_local`).
- `bfloat16` / `float16`: T3's weights in that dtype (stored so in the disk cache). On
  CUDA, S3Gen's CFM estimator computes in it too (its weights cast in memory; upstream's
  `solve_euler` casts its inputs to the estimator's dtype and the result back). On the
  CPU with native bfloat16 the estimator keeps float32 weights and runs under bfloat16
  autocast (1.37x there; with its weights in bfloat16 it measured 2.2x *slower*). A full
  warm-up compiles that same path (exported under the same autocast) and installs it only
  where it measured faster here (`compiled.py`). On a CPU without it, only T3 is bfloat16:
  T3 decodes one token at a time, bound by reading its weights, so half the bytes sample
  a token 2.4x faster even where bfloat16 is emulated, while the estimator's convolutions
  and matmuls under emulated autocast rendered 7x *slower* (a full-size english say on a
  2-core AVX2 CPU, 2026-12-03: 5.8 s against 14.1 s for 30 tokens of T3, 107 s against 16 s
  of S3Gen), so there it stays float32. T3's first pass over the prompt and the text is a
  product over many rows, compute-bound, 4x slower emulated (9.6 s against 2.3 s): it runs
  in float32 there (`emulates_bf16`). Turbo's T3 is GPT-2, whose layers multiply by an
  (in, out) weight: stored row by row, the emulated kernel ran a decoding step's product
  45x slower than with the same weight laid out column by column, which is how a bfloat16
  turbo T3 holds them there (`lay_out_conv1d_weights`).
- `int8` (CPU, opt-in, lossy): T3 in float32 with its transformer's linear layers
  dynamically quantized (`torch.ao.quantization.quantize_dynamic`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ...errors import InvalidOption

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX in /proc/cpuinfo, else oneDNN's own check (other OSes)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
        return any(flag in flags for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - no oneDNN: no native bf16
        return False


def native_bf16(device: str) -> bool:
    """Whether `device` (already resolved: cpu, cuda[:N], mps) computes bfloat16 natively."""
    if device == "cpu":
        return cpu_has_native_bf16()
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_capability(torch.device(device)) >= (8, 0)
    return False  # MPS: float32


def resolve_dtype(name: str, device: str) -> str:
    """`auto` made concrete for `device`; an explicit dtype must run there."""
    if name == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    if name == "int8" and device != "cpu":
        raise InvalidOption(f"--dtype int8 runs on the CPU only, not on {device}; use bfloat16 there.")
    return name


def storage_dtype(dtype: str) -> str:
    """The dtype T3's weights are stored in (in the disk cache) for a resolved dtype."""
    return "float32" if dtype == "int8" else dtype


def apply(tts: Any, dtype: str, device: str) -> None:
    """Bring a model assembled in `storage_dtype(dtype)` to `dtype`: quantize T3 for
    int8; on CUDA, run the CFM estimator in half precision for bfloat16/float16; on a CPU
    with native bfloat16, under bfloat16 autocast; on one without, turbo's T3 weights laid
    out for the emulated kernel."""
    import torch

    estimator = tts.s3gen.flow.decoder.estimator
    if dtype == "int8":
        quantize_t3(tts.t3)
    elif dtype in ("bfloat16", "float16") and device.startswith("cuda"):
        estimator.to(getattr(torch, dtype))
    elif dtype == "bfloat16" and device == "cpu" and cpu_has_native_bf16():
        autocast_estimator(estimator, torch.bfloat16)
    elif dtype == "bfloat16" and device == "cpu":
        lay_out_conv1d_weights(tts.t3)


def lay_out_conv1d_weights(t3: Any) -> None:
    """GPT-2's `Conv1D` weights (turbo's T3), shape (in, out), stored column by column: the same
    values, which an emulated bfloat16 product reads as fast as an `nn.Linear`'s (2 rows by
    1024 by 4096 on a 2-core AVX2 CPU: 0.96 ms, against 44 ms row by row and 1.9 ms in float32).
    The copy replaces the weight one layer at a time."""
    from transformers.pytorch_utils import Conv1D

    for module in t3.modules():
        if type(module) is Conv1D:
            module.weight.data = module.weight.data.t().contiguous().t()


def autocast_estimator(estimator: Any, dtype: Any) -> None:
    """The estimator's matmuls and convolutions in `dtype` (CPU autocast), its weights
    and its result in float32: the estimator's runner (engine/seams/estimator.py) in
    autocast mode."""
    from ..seams.estimator import runner

    runner(estimator).autocast = dtype


def held_beside_weights(tts: Any) -> int:
    """Bytes the model holds beyond its modules' own: the estimator's weight copies in its
    autocast dtype (made on the first say, seams/estimator.py), 0 outside autocast."""
    from ..seams import estimator as seam

    estimator = tts.s3gen.flow.decoder.estimator
    run = seam.current(estimator)
    return 0 if run is None or run.autocast is None else seam.cast_copies_bytes(estimator, run.autocast)


def quantize_t3(t3: Any) -> None:
    """Dynamic int8 quantization of the transformer's linear layers (weights int8,
    activations quantized per call). The heads and embeddings stay float32."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    t3.tfmr = quantize_dynamic(t3.tfmr, {torch.nn.Linear}, dtype=torch.qint8)


def t3_dtype(tts: Any) -> Any:
    """The dtype T3 computes in (its embeddings' dtype; int8 T3 computes in float32)."""
    return tts.t3.speech_emb.weight.dtype


def emulates_bf16(tts: Any) -> bool:
    """A bfloat16 T3 on a CPU without native bfloat16: its wide products go float32 for the
    length of a say (seams/points.wide_products_in_float32)."""
    import torch

    return t3_dtype(tts) == torch.bfloat16 and torch.device(tts.device).type == "cpu" and not cpu_has_native_bf16()


def cpu_threads(setting: int = 0) -> int:
    """Torch threads for generation: the setting, or every core this process may use
    (a container's CPU affinity, not the host's count, which would oversubscribe)."""
    if setting > 0:
        return setting
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def apply_threads(setting: int = 0) -> int:
    """Torch's intra-op threads for generation; returns the number in force.

    A setting > 0 is applied as given. With 0, torch's own choice stands (its physical
    cores, or `torch.set_num_threads` / OMP_NUM_THREADS as the user set them) unless it
    exceeds the cores this process may run on, as in a CPU-limited container."""
    import torch

    current = torch.get_num_threads()
    n = setting if setting > 0 else min(current, cpu_threads())
    if n != current:
        torch.set_num_threads(n)
    return n
