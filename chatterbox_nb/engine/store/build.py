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
import gc
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

from ...errors import CheckpointError
from . import checkpoint
from .checkpoint import OFFICIAL_FRONT_BLOCKS, S3GenShape
from ..specs import ModelSpec, t3_config

log = logging.getLogger(__name__)

# s3gen.safetensors holds no copy of the S3 tokenizer's mel filters and window;
# upstream loads it with strict=False for that reason (S3Token2Wav.ignore_state_dict_missing).
_S3GEN_OPTIONAL = ("tokenizer._mel_filters", "tokenizer.window")


def _construct(spec: ModelSpec, n_layers: int | None, shape: S3GenShape) -> tuple[Any, Any, Any]:
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.voice_encoder import VoiceEncoder

    with quiet_upstream_warnings():
        ve, t3, s3gen = VoiceEncoder(), T3(t3_config(spec, n_layers)), S3Gen(meanflow=True) if spec.meanflow else S3Gen()
    return ve, t3, trim_s3gen(s3gen, shape)


def trim_s3gen(s3gen: Any, shape: S3GenShape) -> Any:
    """A reduced dummy's S3Gen: the same modules with fewer blocks in the lists `shape` names."""
    estimator = s3gen.flow.decoder.estimator
    if shape.mid_blocks is not None:
        del estimator.mid_blocks[shape.mid_blocks:]
    if shape.transformer_blocks is not None:
        for block in (*estimator.down_blocks, *estimator.mid_blocks, *estimator.up_blocks):
            del block[1][shape.transformer_blocks:]  # (resnet, transformer blocks[, down/upsample])
    if shape.front_blocks is not None:
        for name in OFFICIAL_FRONT_BLOCKS:
            del s3gen.get_submodule(name)[shape.front_blocks:]
    return s3gen


def build_empty(spec: ModelSpec, n_layers: int | None = None,
                shape: S3GenShape = S3GenShape()) -> tuple[Any, Any, Any]:
    """VoiceEncoder, T3 and S3Gen with parameters on `meta` and real buffers
    (`n_layers` T3 blocks and S3Gen in `shape` where a checkpoint has fewer)."""
    from accelerate import init_empty_weights
    from transformers.initialization import no_init_weights

    # no_init_weights skips the random init that meta parameters would only simulate
    # (0.6 s of Python overhead for S3Gen alone). It swaps torch.nn.init functions
    # process-wide for the build's duration, as transformers does in from_pretrained.
    with init_empty_weights(include_buffers=False), no_init_weights(), _meta_safe_time_mixer():
        return _construct(spec, n_layers, shape)


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


def build_random(
    spec: ModelSpec, n_layers: int | None = None, seed: int = 0, shape: S3GenShape = S3GenShape()
) -> tuple[Any, Any, Any]:
    """The same modules with their constructors' own random init, seeded (dummy weights)."""
    import torch

    torch.manual_seed(seed)
    return _construct(spec, n_layers, shape)


@contextlib.contextmanager
def quiet_upstream_warnings() -> Iterator[None]:
    """Deprecation notices from inside chatterbox-tts (a diffusers layer at every build,
    torch's `sdp_kernel` at every generation): a notebook user can do nothing about them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LoRACompatibleLinear", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*sdp_kernel", category=FutureWarning)
        yield


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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing headers and building ~3,500 modules allocate enough objects to set off
    full garbage collections over torch's large heap: 40 % of a load. Nothing made
    while loading is garbage, so collection waits until the model is assembled."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def assemble(spec: ModelSpec, parts: checkpoint.Parts, device: str, dtype: str = "float32") -> Any:
    """A ready upstream TTS object (ChatterboxTTS & co) from mapped state dicts."""
    import torch

    n_layers = checkpoint.count_t3_layers(spec, list(parts.t3))
    ve, t3, s3gen = build_empty(spec, n_layers, checkpoint.s3gen_shape(list(parts.s3gen)))
    assign(ve, parts.ve, spec.ve_file)
    assign(t3, parts.t3, spec.t3_file)
    assign(s3gen, parts.s3gen, spec.s3gen_file, optional=_S3GEN_OPTIONAL)
    if spec.drops_backbone_embedding:
        del t3.tfmr.wte  # as upstream: turbo feeds its own speech embeddings to GPT-2

    t3_dtype = getattr(torch, dtype)
    ve = finish(ve, spec.ve_file, device)
    t3 = finish(t3, spec.t3_file, device, None if t3_dtype == torch.float32 else t3_dtype)
    s3gen = finish(s3gen, spec.s3gen_file, device)

    tokenizer = parts.tokenizer
    if tokenizer is None:
        tokenizer = checkpoint.make_tokenizer(spec, parts.tokenizer_folder)
    conds = parts.conds.to(device)
    with contextlib.redirect_stdout(io.StringIO()):  # perth prints "loaded PerthNet ..." on every load
        return spec.tts_cls()(t3, s3gen, ve, tokenizer, device, conds=conds)


def assemble_from_folder(spec: ModelSpec, folder: Path, device: str, dtype: str = "float32") -> Any:
    return assemble(spec, checkpoint.read_parts(spec, folder), device, dtype)


def module_bytes(tts: Any) -> int:
    """Bytes of parameters and buffers of a loaded TTS object."""
    total = 0
    for part in (tts.t3, tts.s3gen, tts.ve):
        for tensor in (*part.parameters(), *part.buffers()):
            total += tensor.numel() * tensor.element_size()
    return total
