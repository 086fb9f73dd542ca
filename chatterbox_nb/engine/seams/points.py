"""Each patch point in chatterbox-tts 0.1.7 that a say goes through, by name.

Upstream's `generate` runs unchanged; these are the attributes it calls that we shadow for
one call (timing, the token cap, streaming) or swap in its modules while a say runs (its
progress bars and prints, T3's sampling call). tests/test_seams.py holds a contract test for
each: when an upgrade moves one, that test names it. The S3Gen estimator and decoder-mask
seams live in estimator.py.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

from ..specs import ModelSpec
from .hooks import Seam

__all__ = [
    "FLOW_PRINT", "FLOW_TORCH", "FLOW_TQDM", "HIFIGAN_TORCH", "HIFIGAN_UNIFORM", "NOISE_SEAMS",
    "S3GEN_INFERENCE", "S3GEN_TORCH", "SEAMS", "T3_CONDITIONING", "T3_INFERENCE", "T3_CONV1D",
    "T3_INFERENCE_TURBO", "T3_LINEAR", "T3_TORCH", "T3_TQDM", "WATERMARK", "conditioning_in",
    "quiet_progress", "quiet_render", "t3_sampler", "wide_products_in_float32",
]

_T3 = "chatterbox.models.t3.t3"
_FLOW = "chatterbox.models.s3gen.flow_matching"

T3_INFERENCE = Seam("t3-inference", f"{_T3}.T3", "inference",
                    "time T3 and cap its tokens (english/multilingual `generate` hard-codes max_new_tokens=1000)")
T3_INFERENCE_TURBO = Seam("t3-inference-turbo", f"{_T3}.T3", "inference_turbo",
                          "time turbo's T3 and cap its tokens (max_gen_len)")
T3_CONDITIONING = Seam("t3-conditioning", f"{_T3}.T3", "prepare_conditioning",
                       "cast the T3Cond `generate` rebuilds in float32 to T3's own dtype")
S3GEN_INFERENCE = Seam("s3gen-inference", "chatterbox.models.s3gen.s3gen.S3Token2Wav", "inference",
                       "time S3Gen, count its tokens, set its CFM steps, render too few tokens as silence, stream")
WATERMARK = Seam("watermark", "perth.PerthImplicitWatermarker", "apply_watermark",
                 "time the watermark and skip it on no sound")
T3_TORCH = Seam("t3-torch", _T3, "torch",
                "a streamed say sees each token T3 samples with `torch.multinomial`")
T3_TQDM = Seam("t3-tqdm", _T3, "tqdm",
               "T3's per-token loop `tqdm(range(...))`: no text bar, and where a say is cut or streamed")
FLOW_TQDM = Seam("flow-tqdm", _FLOW, "tqdm", "no text bar per CFM solve (turbo's meanflow)")
FLOW_PRINT = Seam("flow-print", _FLOW, "print", "no 'S3 Token -> Mel Inference...' line per utterance")
# S3Gen's random draws (its CFM's start noise, HiFiGAN's sine/noise source, turbo's meanflow noise)
# call torch's process-wide generator; an overlapped say gives them one of their own (generation/rng.py)
FLOW_TORCH = Seam("flow-torch", _FLOW, "torch", "the CFM's `torch.randn_like` noise draws from S3Gen's own generator")
HIFIGAN_TORCH = Seam("hifigan-torch", "chatterbox.models.s3gen.hifigan", "torch",
                     "HiFiGAN's `torch.randn_like` noise draws from S3Gen's own generator")
S3GEN_TORCH = Seam("s3gen-torch", "chatterbox.models.s3gen.s3gen", "torch",
                   "turbo's meanflow `torch.randn` noise draws from S3Gen's own generator")
# (HiFiGAN's sine phases come from `torch.distributions`' own `torch.rand`, out of the reach of its `torch`)
HIFIGAN_UNIFORM = Seam("hifigan-uniform", "chatterbox.models.s3gen.hifigan", "Uniform",
                       "HiFiGAN's `Uniform(...).sample()` sine phases draw from S3Gen's own generator")
NOISE_SEAMS = (FLOW_TORCH, HIFIGAN_TORCH, S3GEN_TORCH, HIFIGAN_UNIFORM)
T3_LINEAR = Seam("t3-linear", "torch.nn.Linear", "forward",
                 "a bfloat16 T3 on a CPU that emulates bfloat16: its products over many rows (the first pass over "
                 "the voice prompt and the text) in float32, 4x faster there")
T3_CONV1D = Seam("t3-conv1d", "transformers.pytorch_utils.Conv1D", "forward",
                 "a bfloat16 turbo T3 (GPT-2's Conv1D layers) on a CPU that emulates bfloat16: its products over "
                 "many rows in float32, 7x faster there")

SEAMS: dict[str, Seam] = {s.name: s for s in (
    T3_INFERENCE, T3_INFERENCE_TURBO, T3_CONDITIONING, S3GEN_INFERENCE, WATERMARK, T3_TORCH, T3_TQDM, FLOW_TQDM,
    FLOW_PRINT, FLOW_TORCH, HIFIGAN_TORCH, S3GEN_TORCH, HIFIGAN_UNIFORM, T3_LINEAR, T3_CONV1D,
)}


def t3_sampler(spec: ModelSpec) -> Seam:
    """The T3 method `spec`'s `generate` calls to sample speech tokens."""
    return next(s for s in (T3_INFERENCE, T3_INFERENCE_TURBO) if s.attribute == spec.t3_method)


def _silent_print(*args: Any, **kwargs: Any) -> None:
    pass


@functools.cache
def _no_bar() -> Callable[..., Any]:
    from tqdm.auto import tqdm

    return functools.partial(tqdm, disable=True)


@contextlib.contextmanager
def quiet_progress(token_loop: Callable[..., Any]) -> Iterator[None]:
    """While a say runs: T3's tqdm is `token_loop` (our progress, the stop button, streaming),
    S3Gen's flow draws no bar and prints nothing. Our own displays report progress."""
    with T3_TQDM.swapped(token_loop), FLOW_TQDM.swapped(_no_bar()), FLOW_PRINT.swapped(_silent_print):
        yield


@contextlib.contextmanager
def quiet_render() -> Iterator[None]:
    """S3Gen's part of `quiet_progress`, for a render on its own thread (an overlapped say)."""
    with FLOW_TQDM.swapped(_no_bar()), FLOW_PRINT.swapped(_silent_print):
        yield


def conditioning_in(t3: Any, dtype: Any) -> contextlib.AbstractContextManager[None]:
    """T3's conditioning in T3's own dtype. Upstream's `generate` rebuilds the T3Cond in
    float32 when the exaggeration differs from the voice's, which a bfloat16 T3 cannot
    multiply; the T3Cond it passes is already a private copy, so it is cast in place."""

    def make(original: Callable) -> Callable:
        def prepare_conditioning(t3c: Any, *args: Any, **kwargs: Any) -> Any:
            for name, value in vars(t3c).items():
                if getattr(value, "is_floating_point", lambda: False)() and value.dtype != dtype:
                    setattr(t3c, name, value.to(dtype))
            return original(t3c, *args, **kwargs)

        return prepare_conditioning

    return T3_CONDITIONING.shadowed(t3, make)


#: rows from which a bfloat16 product runs in float32 (`wide_products_in_float32`): T3's first
#: pass has two (CFG) times the prompt and text, 150 and more; a decoding step has two
WIDE_ROWS = 16


def wide_products_in_float32(t3: Any, rows: int = WIDE_ROWS) -> contextlib.AbstractContextManager[None]:
    """Within this block, each linear layer of a bfloat16 `t3` computes an input of `rows`
    rows or more in float32 (inputs, weights and bias upcast, the result rounded back to
    bfloat16, as a native kernel accumulates in float32 and rounds once), and fewer rows as
    it was. On a CPU that emulates bfloat16, a wide product is compute-bound and the
    emulated kernel 4x slower than float32's, while a decoding step's two rows are bound by
    reading the weights, which bfloat16 halves. The float32 copy of a weight lives for one call.

    GPT-2's `Conv1D` layers (turbo's T3) multiply by a weight of shape (in, out): their wide
    products go float32 too, and their narrow ones run as they were, fast once the weights
    are laid out column by column (`precision.lay_out_conv1d_weights`, done at the load).
    """
    import torch
    import torch.nn.functional as F
    from transformers.pytorch_utils import Conv1D

    def linear_in_float32(module: Any, x: Any) -> Any:
        bias = None if module.bias is None else module.bias.float()
        return F.linear(x.float(), module.weight.float(), bias)

    def conv1d_in_float32(module: Any, x: Any) -> Any:
        out = torch.addmm(module.bias.float(), x.reshape(-1, x.shape[-1]).float(), module.weight.float())
        return out.view(*x.shape[:-1], module.nf)

    def widened(module: Any, in_float32: Callable[[Any, Any], Any]) -> Callable[[Callable], Callable]:
        def make(original: Callable) -> Callable:
            def forward(x: Any) -> Any:
                if x.dtype != torch.bfloat16 or x.numel() < rows * x.shape[-1]:
                    return original(x)
                return in_float32(module, x).to(x.dtype)

            return forward

        return make

    stack = contextlib.ExitStack()
    for module in t3.modules():
        if type(module) is torch.nn.Linear:
            stack.enter_context(T3_LINEAR.shadowed(module, widened(module, linear_in_float32)))
        elif type(module) is Conv1D:
            stack.enter_context(T3_CONV1D.shadowed(module, widened(module, conv1d_in_float32)))
    return stack
