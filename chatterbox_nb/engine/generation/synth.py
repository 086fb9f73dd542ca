"""One utterance through upstream's own `generate`, timed stage by stage.

We do not fork `generate`. For the length of one call, the stages it calls (T3's
sampler, S3Gen, the watermarker) are shadowed through their seams (engine/seams/points.py)
by wrappers that time them; the T3 wrapper also applies the token cap that upstream
hard-codes to 1000. The caller holds the model's lock, so no other thread sees the wrappers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from ..models import precision
from . import segmenter, stopping, streaming
from ..seams import logs as upstream_logs
from ..seams import points
from ..store.build import quiet_upstream_warnings
from ..specs import SAMPLE_RATE, SAMPLES_PER_TOKEN, SPEECH_VOCAB_SIZE, ModelSpec

if TYPE_CHECKING:
    from .overlap import RenderWorker


def _timing(timings: dict, key: str, adjust: Callable | None = None, post: Callable | None = None) -> Callable:
    """A seam's `make`: the method, timed into `timings[key]`; `adjust` may change its
    arguments first, `post` its result."""

    def make(original: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if adjust is not None:
                adjust(args, kwargs)
            start = time.perf_counter()
            try:
                result = original(*args, **kwargs)
                return result if post is None else post(result)
            finally:
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - start

        return wrapper

    return make


def _count_tokens(timings: dict, key: str) -> Callable:
    def adjust(args: tuple, kwargs: dict) -> None:
        tokens = kwargs.get("speech_tokens", args[0] if args else None)
        timings[key] = int(tokens.numel())

    return adjust


def _renderable(tokens: Any) -> Any:
    """Random weights sample from T3's whole 8194-token head, including start/stop and
    ids no trained checkpoint emits. English and turbo drop ids >= 6561 themselves;
    multilingual's `generate` does not and S3Gen then fails, so dummy models keep
    only the ids S3Gen can render."""
    return tokens[:, (tokens[0] < SPEECH_VOCAB_SIZE)]


# S3Gen's convolutions fail on fewer tokens than this ("Kernel size can't be greater
# than actual input size"); a model that stops that early has said nothing anyway.
MIN_RENDERABLE_TOKENS = 2


def _silence_when_too_short(original: Callable) -> Callable:
    """S3Gen renders fewer than MIN_RENDERABLE_TOKENS tokens as that much silence, not a crash."""

    def inference(*args: Any, **kwargs: Any) -> Any:
        tokens = kwargs.get("speech_tokens", args[0] if args else None)
        if tokens is not None and tokens.numel() < MIN_RENDERABLE_TOKENS:
            import torch

            return torch.zeros(1, tokens.numel() * SAMPLES_PER_TOKEN), None
        return original(*args, **kwargs)

    return inference


def _skip_empty(original: Callable) -> Callable:
    """The watermarker's STFT fails on no samples, and on silence (what too few tokens
    render as) it would add an audible mark to nothing: neither has speech to mark."""

    def apply_watermark(signal: Any, *args: Any, **kwargs: Any) -> Any:
        return signal if len(signal) == 0 or not np.any(signal) else original(signal, *args, **kwargs)

    return apply_watermark


def _with_cfm_steps(steps: int | None, count: Callable) -> Callable:
    """Count the tokens S3Gen renders; with `steps`, also override the number of CFM
    (flow-matching) steps (upstream: 10 for english/multilingual, 2 for turbo)."""

    def adjust(args: tuple, kwargs: dict) -> None:
        count(args, kwargs)
        if steps is not None:
            kwargs["n_cfm_timesteps"] = steps

    return adjust


@contextlib.contextmanager
def instrument(
    tts: Any,
    spec: ModelSpec,
    timings: dict,
    max_tokens: int,
    renderable_only: bool = False,
    cfm_steps: int | None = None,
) -> Iterator[None]:
    def cap(args: tuple, kwargs: dict) -> None:
        # inference_turbo samples one token before its loop of max_gen_len more.
        kwargs[spec.t3_cap_keyword] = max(0, max_tokens - spec.t3_tokens_before_loop)

    with contextlib.ExitStack() as stack:
        post = _renderable if renderable_only and spec.keeps_unrenderable_tokens else None
        stack.enter_context(points.t3_sampler(spec).shadowed(tts.t3, _timing(timings, "t3_s", cap, post)))
        stack.enter_context(points.S3GEN_INFERENCE.shadowed(tts.s3gen, _silence_when_too_short))
        stack.enter_context(points.WATERMARK.shadowed(tts.watermarker, _skip_empty))
        count = _with_cfm_steps(cfm_steps, _count_tokens(timings, "speech_tokens"))
        stack.enter_context(points.S3GEN_INFERENCE.shadowed(tts.s3gen, _timing(timings, "s3gen_s", count)))
        stack.enter_context(points.WATERMARK.shadowed(tts.watermarker, _timing(timings, "watermark_s")))
        stack.enter_context(points.conditioning_in(tts.t3, precision.t3_dtype(tts)))
        if precision.emulates_bf16(tts):
            stack.enter_context(points.wide_products_in_float32(tts.t3))
        yield


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def private_copy(conds: Any, t3_dtype: Any = None, prompt_tokens: int | None = None) -> Any:
    """A copy `generate` may mutate freely.

    Upstream replaces `conds.t3` when exaggeration differs and caches prompt
    embeddings inside the T3Cond; neither may reach a cached voice.
    """
    t3 = dataclasses.replace(conds.t3)
    if t3_dtype is not None:
        t3 = t3.to(dtype=t3_dtype)
    gen = dict(conds.gen)
    if prompt_tokens is not None:
        gen = shorter_prompt(gen, prompt_tokens)
    return type(conds)(t3, gen)


def shorter_prompt(gen: dict, tokens: int) -> dict:
    """S3Gen's reference prompt cut to its first `tokens` speech tokens (2 mel frames
    each). S3Gen's flow runs over prompt + new tokens, so a short prompt makes every
    chunk cheaper; less of the reference voice reaches the vocoder (lossy, opt-in)."""
    import torch

    have = int(gen["prompt_token"].shape[1])
    if tokens >= have:
        return gen
    gen = dict(gen)
    gen["prompt_token"] = gen["prompt_token"][:, :tokens]
    gen["prompt_token_len"] = torch.full_like(gen["prompt_token_len"], tokens)
    gen["prompt_feat"] = gen["prompt_feat"][:, : 2 * tokens]
    return gen


def compute_conditionals(tts: Any, spec: ModelSpec, audio_path: str, exaggeration: float) -> Any:
    """Run upstream's `prepare_conditionals` without leaving its result on the model
    (and without autograd: upstream runs CAM++ with grad on, so each cached voice
    would otherwise keep its whole graph alive)."""
    import torch

    builtin = tts.conds
    try:
        with torch.no_grad(), quiet_upstream_warnings():
            tts.prepare_conditionals(audio_path, exaggeration=exaggeration)
        return tts.conds
    finally:
        tts.conds = builtin


def generate(
    tts: Any,
    spec: ModelSpec,
    text: str,
    *,
    conds: Any = None,
    language: str | None = None,
    max_tokens: int,
    seed: int | None = None,
    sampling: dict[str, float],
    renderable_only: bool = False,
    cfm_steps: int | None = None,
    prompt_tokens: int | None = None,
    deliver: streaming.Deliver | None = None,
    deferred: bool = False,
    worker: RenderWorker | None = None,
    held: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Audio (1-D float32) and measured stage timings for one utterance.

    `cfm_steps` and `prompt_tokens` are the opt-in lossy S3Gen knobs (None: upstream's).
    With `deliver`, the audio is streamed to it in pieces while T3 samples (see
    streaming.py); what is returned is then those pieces joined, watermarked whole. With
    a `worker` too (an overlapped streamed say), the pieces between the first and the last
    render there while T3 samples on.

    `deferred` (an overlapped say, speak.py): only T3 runs here, from its own generator
    when seeded (rng.py); what is returned instead of the audio is a `Render`, which runs
    S3Gen and the watermark, on whichever thread calls it, and fills in their timings.

    `held` (a paragraph rendered in groups, speak.py): a `Render` too, but T3 samples as a
    sequential say does, from upstream's generator seeded here, so its tokens are the same;
    the render then draws from that generator as it stands when it runs."""
    import torch

    from . import rng

    calls: dict[str, tuple] = {}
    staged = deferred and not held  # each stage its own generator
    deferred = deferred or held
    t3_rng, s3gen_rng = rng.stage_seeds(seed) if staged and seed is not None else (None, None)

    timings: dict[str, Any] = {"t3_s": 0.0, "s3gen_s": 0.0, "watermark_s": 0.0, "speech_tokens": 0}
    kwargs = dict(sampling)
    if spec.takes_language:
        kwargs["language_id"] = language
        segmenter.prepare(tts, language)
    builtin = tts.conds
    t3_dtype = precision.t3_dtype(tts)
    tts.conds = private_copy(
        conds if conds is not None else builtin, None if t3_dtype == torch.float32 else t3_dtype, prompt_tokens
    )
    try:
        if seed is not None and not staged:
            seed_everything(seed)
        # Upstream's watermarker leaks autograd memory per call without a no-grad guard,
        # and turbo's generate has none of its own.
        with points.quiet_progress(stopping.token_loop), \
                instrument(tts, spec, timings, max_tokens, renderable_only, cfm_steps), torch.inference_mode(), \
                quiet_upstream_warnings(), upstream_logs.translated(), contextlib.ExitStack() as stack:
            if deliver is not None:
                stack.enter_context(streaming.streamed(tts, spec, timings, deliver, worker))
            if deferred:
                stack.enter_context(_holding(tts, calls))
            if staged:
                stack.enter_context(streaming.sampling())
                stack.enter_context(rng.drawing(t3_rng))
            wav = tts.generate(text, **kwargs)
    finally:
        tts.conds = builtin
    if deferred:
        if set(calls) != {"s3gen", "watermark"}:
            raise RuntimeError(f"upstream's generate no longer calls S3Gen then the watermark (saw {sorted(calls)})")
        return Render(calls["s3gen"], calls["watermark"], s3gen_rng), timings
    audio = wav.reshape(-1).float().cpu().numpy().astype(np.float32, copy=False)
    return audio, timings


class Render:
    """The S3Gen and watermark calls that upstream's `generate` made for one chunk, held
    back: calling it runs them (with the wrappers `instrument` put around them: timing,
    token count, CFM steps, silence for too few tokens) and returns the chunk's audio.
    Upstream's own glue between the two calls (tts.py: squeeze, to numpy) is repeated here."""

    def __init__(self, s3gen: tuple, watermark: tuple, rng: Any) -> None:
        self._s3gen, self._watermark, self._rng = s3gen, watermark, rng

    def __call__(self) -> np.ndarray:
        inference, args, kwargs = self._s3gen
        apply_watermark, wargs, wkwargs = self._watermark
        with rendering(self._rng):
            wav, _ = inference(*args, **kwargs)
            wav = wav.squeeze(0).detach().cpu().numpy()
            marked = apply_watermark(wav, *wargs[1:], **wkwargs)  # its recorded signal was the empty one
        return np.asarray(marked, dtype=np.float32).reshape(-1)

    @property
    def tokens(self) -> Any:
        """The speech tokens S3Gen is to render (1-D)."""
        _, args, kwargs = self._s3gen
        return (kwargs["speech_tokens"] if "speech_tokens" in kwargs else args[0]).reshape(-1)

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the voice's reference prompt, which S3Gen re-reads on every call."""
        _, args, kwargs = self._s3gen
        ref = kwargs["ref_dict"] if "ref_dict" in kwargs else args[1]
        return int(ref["prompt_token"].shape[1])


#: upstream's S3Gen starts each render with 20 ms of silence, then fades in over 20 ms
#: (s3gen.py, `trim_fade`); a render cut in parts gives each later part the same start,
#: and each earlier part a fade out over the last 20 ms, where the cut would click
_FADE = SAMPLE_RATE // 50
_FADE_IN = np.concatenate([np.zeros(_FADE), (np.cos(np.linspace(np.pi, 0, _FADE)) + 1) / 2]).astype(np.float32)
_FADE_OUT = ((np.cos(np.linspace(0, np.pi, _FADE)) + 1) / 2).astype(np.float32)


def render_together(renders: Sequence[Render], stages: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """Several held chunks' audio from one S3Gen call over their tokens joined, cut back at
    the chunks' token boundaries (SAMPLES_PER_TOKEN samples a token), each watermarked on its
    own as a separate render is. S3Gen's flow runs over the reference prompt and the new
    tokens together, so one call re-reads the prompt once where separate calls would read it
    once a chunk. The call's time is shared among the chunks by their tokens."""
    if len(renders) == 1:
        return [renders[0]()]
    import torch

    first = renders[0]
    inference, args, kwargs = first._s3gen
    counts = [int(r.tokens.numel()) for r in renders]
    joined = torch.cat([r.tokens.to(first.tokens.device) for r in renders])
    args, kwargs = ((), {**kwargs, "speech_tokens": joined}) if "speech_tokens" in kwargs else ((joined, *args[1:]), kwargs)
    timed = stages[0]["s3gen_s"]
    with rendering(first._rng):
        wav, _ = inference(*args, **kwargs)  # timed and counted into stages[0]
        wav = wav.squeeze(0).detach().cpu().float().numpy().reshape(-1)
    spent, total = stages[0]["s3gen_s"] - timed, sum(counts)
    if len(wav) != total * SAMPLES_PER_TOKEN:
        raise RuntimeError(f"S3Gen rendered {len(wav)} samples for {total} tokens, not {SAMPLES_PER_TOKEN} a token")
    parts, start = [], 0
    for k, (render, count, chunk) in enumerate(zip(renders, counts, stages)):
        audio = wav[start:start + count * SAMPLES_PER_TOKEN].copy()
        start += len(audio)
        if k and len(audio):
            head = min(len(audio), len(_FADE_IN))
            audio[:head] *= _FADE_IN[:head]
        if k < len(renders) - 1 and len(audio):
            tail = min(len(audio), len(_FADE_OUT))
            audio[len(audio) - tail:] *= _FADE_OUT[len(_FADE_OUT) - tail:]
        chunk["s3gen_s"] = (timed if k == 0 else chunk["s3gen_s"]) + spent * count / max(total, 1)
        chunk["speech_tokens"] = count
        apply_watermark, wargs, wkwargs = render._watermark
        with rendering(render._rng):
            marked = apply_watermark(audio, *wargs[1:], **wkwargs)
        parts.append(np.asarray(marked, dtype=np.float32).reshape(-1))
    return parts


@contextlib.contextmanager
def rendering(stage_rng: Any) -> Iterator[None]:
    """What an S3Gen render off upstream's `generate` runs under, in whichever thread runs
    it: no autograd, upstream's progress and warnings quiet, and its noise drawn from
    `stage_rng` (rng.py; None: torch's own generator)."""
    import torch

    from . import rng

    with torch.inference_mode(), points.quiet_render(), quiet_upstream_warnings(), rng.s3gen_noise(), \
            rng.drawing(stage_rng):
        yield


@contextlib.contextmanager
def _holding(tts: Any, calls: dict) -> Iterator[None]:
    """Within this block, `generate`'s S3Gen and watermark calls are recorded in `calls`
    (each with the wrappers under it), not made: S3Gen returns no samples and the watermark
    its input, which upstream's glue passes through to an empty result."""
    import torch

    def record(name: str, empty: Callable[..., Any]) -> Callable:
        def make(original: Callable) -> Callable:
            def held(*args: Any, **kwargs: Any) -> Any:
                calls[name] = (original, args, kwargs)
                return empty(*args)

            return held

        return make

    with points.S3GEN_INFERENCE.shadowed(tts.s3gen, record("s3gen", lambda *a: (torch.zeros(1, 0), None))), \
            points.WATERMARK.shadowed(tts.watermarker, record("watermark", lambda signal, *a: signal)):
        yield
