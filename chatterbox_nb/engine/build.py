"""One load sequence for every weight source (after vLLM's model loaders).

1. Build the real chatterbox modules with parameters on the `meta` device
   (`accelerate.init_empty_weights(include_buffers=False)`): no memory, no random
   init. Buffers and plain tensor attributes — rotary `inv_freq`, S3Gen's
   `trim_fade`, the tokenizer's `freqs_cis`, positional tables `pe` — are still
   computed by their constructors on the CPU, exactly as upstream computes them.
2. Assign the memory-mapped tensors (`load_state_dict(assign=True)`): no copy.
3. Cast T3 to the target dtype, move to the device, `eval()`.
4. Refuse to hand out a model with any tensor left on `meta`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Iterator

from ..errors import CheckpointError
from . import checkpoint
from .specs import ModelSpec, t3_config

log = logging.getLogger(__name__)

# s3gen.safetensors holds no copy of the S3 tokenizer's mel filters and window;
# upstream loads it with strict=False for that reason (S3Token2Wav.ignore_state_dict_missing).
_S3GEN_OPTIONAL = ("tokenizer._mel_filters", "tokenizer.window")


def build_empty(spec: ModelSpec, n_layers: int | None = None) -> tuple[Any, Any, Any]:
    """VoiceEncoder, T3 and S3Gen with parameters on `meta` and real buffers."""
    from accelerate import init_empty_weights
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.voice_encoder import VoiceEncoder

    with init_empty_weights(include_buffers=False), _meta_safe_time_mixer():
        ve = VoiceEncoder()
        t3 = T3(t3_config(spec, n_layers))
        s3gen = S3Gen(meanflow=True) if spec.meanflow else S3Gen()
    return ve, t3, s3gen


@contextlib.contextmanager
def _meta_safe_time_mixer() -> Iterator[None]:
    """Turbo's decoder builds its time mixer by assigning a CPU tensor to `weight.data`,
    which a meta parameter refuses. The checkpoint overwrites that value anyway, so
    while building on meta the mixer is a plain Linear of the same shape."""
    from unittest import mock

    import torch
    from chatterbox.models.s3gen import decoder

    def time_mixer(dims: int) -> torch.nn.Linear:
        return torch.nn.Linear(dims * 2, dims, bias=False)

    with mock.patch.object(decoder, "get_intmeanflow_time_mixer", time_mixer):
        yield


def build_random(spec: ModelSpec, n_layers: int | None = None, seed: int = 0) -> tuple[Any, Any, Any]:
    """The same modules with their constructors' own random init, seeded (dummy weights)."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.voice_encoder import VoiceEncoder

    torch.manual_seed(seed)
    ve = VoiceEncoder()
    t3 = T3(t3_config(spec, n_layers))
    s3gen = S3Gen(meanflow=True) if spec.meanflow else S3Gen()
    return ve, t3, s3gen


def assign(module: Any, state: dict[str, Any], name: str, optional: tuple[str, ...] = ()) -> None:
    result = module.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in result.missing_keys if k not in optional]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"The {name} weights do not fit chatterbox-tts's {type(module).__name__}: "
            f"missing {missing[:3]}, unexpected {result.unexpected_keys[:3]} "
            f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected)."
        )


def iter_meta_tensors(module: Any) -> Iterator[str]:
    """Names of tensors still on `meta`, including plain attributes that
    `named_buffers()` does not see (s3tokenizer's `freqs_cis`, the `pe` tables)."""
    import torch

    for mod_name, mod in module.named_modules():
        for attr, value in vars(mod).items():
            tensors: list[tuple[str, Any]] = []
            if isinstance(value, torch.Tensor):
                tensors.append((attr, value))
            elif isinstance(value, dict) and attr in ("_parameters", "_buffers"):
                tensors.extend((k, v) for k, v in value.items() if v is not None)
            for key, tensor in tensors:
                if tensor.is_meta:
                    yield f"{mod_name}.{key}" if mod_name else key


def finish(module: Any, name: str, device: str, dtype: Any = None) -> Any:
    leftover = list(iter_meta_tensors(module))
    if leftover:
        raise CheckpointError(f"The {name} model has tensors that were never loaded: {', '.join(leftover[:5])}.")
    if dtype is not None:
        module.to(dtype=dtype)
    return module.to(device).eval()


def assemble(
    spec: ModelSpec,
    folder: Path,
    device: str,
    dtype: str = "float32",
    weights: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """A ready upstream TTS object (ChatterboxTTS & co) from a folder in the official layout.

    `weights` maps file names to already-read state dicts (the disk cache passes its
    own mapped files); files not given are read from `folder`.
    """
    import torch

    weights = dict(weights or {})
    for fname in spec.weight_files:
        if fname not in weights:
            weights[fname] = checkpoint.read_weights(folder / fname)
    t3_state = weights[spec.t3_file]
    n_layers = checkpoint.count_t3_layers(spec, list(t3_state))

    ve, t3, s3gen = build_empty(spec, n_layers)
    assign(ve, weights[spec.ve_file], spec.ve_file)
    assign(t3, t3_state, spec.t3_file)
    assign(s3gen, weights[spec.s3gen_file], spec.s3gen_file, optional=_S3GEN_OPTIONAL)
    if spec.name == "turbo":
        del t3.tfmr.wte  # as upstream: turbo feeds its own speech embeddings to GPT-2

    t3_dtype = getattr(torch, dtype)
    ve = finish(ve, spec.ve_file, device)
    t3 = finish(t3, spec.t3_file, device, None if t3_dtype == torch.float32 else t3_dtype)
    s3gen = finish(s3gen, spec.s3gen_file, device)

    tokenizer = checkpoint.make_tokenizer(spec, folder)
    conds = checkpoint.read_conditionals(spec, folder, device)
    with contextlib.redirect_stdout(io.StringIO()):  # perth prints "loaded PerthNet ..." on every load
        return spec.tts_cls()(t3, s3gen, ve, tokenizer, device, conds=conds)


def module_bytes(tts: Any) -> int:
    """Bytes of parameters and buffers of a loaded TTS object."""
    total = 0
    for part in (tts.t3, tts.s3gen, tts.ve):
        for tensor in (*part.parameters(), *part.buffers()):
            total += tensor.numel() * tensor.element_size()
    return total
