"""Token-level streaming: S3Gen renders the speech tokens in pieces while T3 still samples.

Upstream's `generate` still runs unchanged (synth.py); three hooks make it stream:

- While a streamed say runs (`sampling`), T3's module sees `SamplingTorch` as its
  `torch`: the same module in every attribute, but `multinomial` also hands each
  sampled token to the running `Streamer`; afterwards T3 has its own `torch` back. The call
  and its random numbers are upstream's own, so a seeded say samples the same tokens
  streamed or not.
- `stopping.token_loop` calls `Streamer.tick` once per sampled token. When enough new
  tokens have come, S3Gen renders them there and then, in the same thread (T3 waits;
  on 2 cores a parallel thread only steals its time), under `torch.random.fork_rng`
  so T3's random stream does not see S3Gen's noise; or, overlapped, on the say's render
  worker (below). The new audio goes to the caller (the player) at once.
- Upstream's final `s3gen.inference` (all the tokens, after T3 stops: the stop token,
  the cap or the stop button) renders only what is left and returns every piece
  joined, which upstream then watermarks as a whole: the kept audio is upstream's
  watermark over the pieces joined. The pieces played live carry none.

Seams. Each later render starts `context` tokens before the last cut, so S3Gen sees
the earlier speech, and the audio before the cut is thrown away. A render that is not
the last holds its last `HOLD` tokens back (S3Gen's flow looks 3 tokens ahead; without
them their sound is provisional) and its last `FADE` samples before the cut: the next
piece starts with those, cross-faded (raised cosine, weights summing to one) into
its own render. So the pieces played back to back are exactly the audio kept (before
the watermark): nothing doubled or dropped, and as long as upstream's.

Piece sizes are planned from tokens, never from the clock, so a seeded streamed say
cuts its pieces at the same tokens run after run: the first is
`ModelSpec.stream_first_tokens`, each later one big enough that what a render costs
beyond its new tokens (S3Gen re-reads the reference prompt, the context and the
held-back tokens each time) stays under `ModelSpec.stream_overhead` of the time those
tokens take, with T3's and S3Gen's costs per token in the ratio measured on a CPU
(`ModelSpec.stream_t3_per_s3gen_token`). Expensive renders (english) get few, large
pieces; cheap ones (turbo) more.

Overlapped (`%config Chatterbox.overlap = True`), the pieces between the first and the
last render on the say's render worker (overlap.py) while T3 samples on, and every render
draws S3Gen's noise from a generator of its own seeded from the chunk's seed (rng.py),
so the audio is the same run after run however the threads interleave. The first
piece still renders in T3's thread, T3 waiting, so that it is heard as early as without
the overlap; the last after T3 is done.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
import time
import types
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import stopping
from ..seams import points
from ..specs import SAMPLES_PER_TOKEN, SPEECH_VOCAB_SIZE, ModelSpec

if TYPE_CHECKING:
    from .overlap import RenderWorker

log = logging.getLogger(__name__)

#: tokens at the end of a non-final render whose sound waits for the next one (S3Gen's lookahead)
HOLD = 3
#: the cross-fade at each seam: 20 ms
FADE = 480

#: `deliver(audio, tokens, last)`: one more piece of the utterance, in order
Deliver = Callable[[np.ndarray, int, bool], None]

_RECORD: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar(
    "chatterbox_nb_record", default=None
)


class SamplingTorch(types.ModuleType):
    """`torch`, as T3's module sees it: every attribute is torch's own, and `multinomial`
    (how T3 samples each speech token) also reports its result to the streamer running
    in this thread, if any."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        import torch

        return getattr(torch, name)

    @staticmethod
    def multinomial(*args: Any, **kwargs: Any) -> Any:
        import torch

        from .rng import generator_for

        probs = args[0] if args else kwargs["input"]
        generator = generator_for(probs.device)  # an overlapped say's T3 generator (rng.py), if any
        if generator is not None:
            kwargs.setdefault("generator", generator)
        sampled = torch.multinomial(*args, **kwargs)
        record = _RECORD.get()
        if record is not None:
            record(sampled)
        return sampled


_SAMPLING_TORCH = SamplingTorch()


def sampling() -> contextlib.AbstractContextManager[None]:
    """Within this block, T3's module samples through `SamplingTorch`; after the last such
    block in the process ends, it has its own `torch` back (engine/seams/points.T3_TORCH).

    A module global is process-wide, so two models streaming in two threads share the
    patch (the seam counts its users). Meanwhile an unstreamed `generate` in another
    thread goes through it too, which changes nothing for it: no streamer is recorded in
    that thread's context, so `multinomial` is torch's own call with the same random numbers."""
    return points.T3_TORCH.swapped(_SAMPLING_TORCH)


def _crossfade(tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    ramp = np.sin(0.5 * np.pi * (np.arange(len(tail)) + 0.5) / len(tail)) ** 2
    return (tail * (1.0 - ramp) + head * ramp).astype(np.float32)


class Streamer:
    """One utterance's pieces: records T3's tokens, renders and delivers them."""

    def __init__(self, tts: Any, spec: ModelSpec, deliver: Deliver, render: Callable[..., Any],
                 worker: RenderWorker | None = None) -> None:
        self.tts = tts
        self.spec = spec
        self.deliver = deliver
        self.render_call = render  # s3gen.inference as upstream's generate sees it (timed, counted)
        self.worker = worker  # overlapped: the pieces between the first and the last render there
        self.context = max(spec.stream_context_tokens, 3)  # at least S3Gen's 40 ms trim fade plus a seam
        self.want = spec.stream_first_tokens
        self.ids: list[int] = []  # the renderable tokens sampled so far
        self.planned = 0  # tokens whose sound a render handed over (or made) will deliver
        self.cut = 0  # tokens whose sound was delivered (up to the held-back fade)
        self.sent = 0  # samples delivered
        self.tail: np.ndarray | None = None  # the last render's samples after `sent`, to cross-fade
        self.parts: list[np.ndarray] = []
        self.loop_render_s = 0.0  # S3Gen time spent inside T3's loop

    # -- T3's side ---------------------------------------------------------------------------

    def record(self, sampled: Any) -> None:
        token = int(sampled.reshape(-1)[0])
        if token < SPEECH_VOCAB_SIZE:
            self.ids.append(token)

    def tick(self) -> None:
        """Between two tokens: render the new ones when there are enough (T3 waits), or
        hand them to the render worker (T3 samples on)."""
        if self.worker is not None and self.worker.share is not None:
            self.worker.share.t3_tick()
        if len(self.ids) - self.planned < self.want + HOLD:
            return
        tokens = list(self.ids)
        first = self.planned == 0
        self.planned = len(tokens) - HOLD
        self.want = piece_tokens(self.spec, int(self.tts.conds.gen["prompt_token"].shape[1]), self.context)
        if self.worker is not None and not first:
            self.worker.hand_over(functools.partial(self._piece, tokens, False))
            return
        import torch

        begin = time.perf_counter()
        if self.worker is not None and self.worker.share is not None:
            self.worker.share.alone()
        device = torch.device(self.tts.device)
        accelerator = [] if device.type == "cpu" else [device.index or 0]  # the CPU generator is always kept
        with torch.random.fork_rng(devices=accelerator, device_type="cuda" if device.type == "cpu" else device.type), \
                self._noise():
            self._piece(tokens, last=False)
        self.loop_render_s += time.perf_counter() - begin

    def _noise(self) -> contextlib.AbstractContextManager[None]:
        """Overlapped, S3Gen's noise comes from the worker's render context, here too."""
        return self.worker.render_context() if self.worker is not None else contextlib.nullcontext()

    # -- S3Gen's side ------------------------------------------------------------------------

    def _render(self, tokens: list[int], **kwargs: Any) -> np.ndarray:
        import torch

        t = torch.tensor(tokens, dtype=torch.long, device=self.tts.device)
        wav, _ = self.render_call(speech_tokens=t, ref_dict=self.tts.conds.gen, **kwargs)
        return wav.reshape(-1).float().cpu().numpy()

    def _piece(self, tokens: list[int], last: bool, **kwargs: Any) -> None:
        """Render from `context` tokens before the cut to the end of `tokens`; deliver the
        new sound (all of it if `last`, else up to the held-back tokens and fade)."""
        start_token = max(0, self.cut - self.context) if self.parts else 0
        wav = self._render(tokens[start_token:], **kwargs)
        origin = start_token * SAMPLES_PER_TOKEN  # the absolute sample of wav[0]
        cut = len(tokens) if last else len(tokens) - HOLD
        end = origin + len(wav) if last else cut * SAMPLES_PER_TOKEN - FADE
        audio = wav[max(0, self.sent - origin): max(0, end - origin)].astype(np.float32)
        if self.tail is not None:
            n = min(len(self.tail), len(audio))
            audio[:n] = _crossfade(self.tail[:n], audio[:n])
        self.tail = None if last else wav[end - origin: end - origin + FADE].copy()
        new_tokens = cut - self.cut
        self.cut, self.sent = cut, self.sent + len(audio)
        self.parts.append(audio)
        self.deliver(audio, new_tokens, last)

    def finish(self, speech_tokens: Any, **kwargs: Any) -> tuple[Any, None]:
        """Upstream's own S3Gen call, with every token: the rest rendered, the whole returned."""
        import torch

        final = [int(t) for t in speech_tokens.reshape(-1)]
        if final[: len(self.ids)] != self.ids[: len(final)]:
            # (multilingual drops what precedes a start-of-speech token; trained models never sample one)
            log.warning("The final speech tokens differ from those streamed; the seam may click.")
        kwargs.pop("ref_dict", None)
        if self.worker is not None:
            self.worker.drain()  # the pieces before the last are delivered first
            if self.worker.share is not None:
                self.worker.share.alone()
        if final and len(final) < self.cut:
            final = final + self.ids[len(final): self.cut]
        with self._noise():
            self._piece(final, last=True, **kwargs)
        joined = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        return torch.from_numpy(joined).unsqueeze(0), None


def piece_tokens(spec: ModelSpec, prompt: int, context: int) -> int:
    """The new tokens of a piece after the first: enough that a render's cost beyond them
    (the prompt, the context and the held-back tokens, re-read) stays under
    `spec.stream_overhead` of what T3 and S3Gen spend on them. From tokens only, so a
    seeded say cuts at the same places run after run."""
    per_token = 1.0 + spec.stream_t3_per_s3gen_token  # T3's and S3Gen's cost of one token, in S3Gen tokens
    return max(spec.stream_first_tokens, math.ceil((prompt + context + HOLD) / (spec.stream_overhead * per_token)))


@contextlib.contextmanager
def streamed(tts: Any, spec: ModelSpec, timings: dict, deliver: Deliver,
             worker: RenderWorker | None = None) -> Iterator[Streamer]:
    """Within this block (in this thread), upstream's `generate` on `tts` streams its pieces
    to `deliver`. Enter it after `synth.instrument`, so the final S3Gen call it catches is
    the timed one; T3's time then excludes the renders made inside its loop (in it, not
    those on the `worker`, which T3 does not wait for)."""
    streamer = Streamer(tts, spec, deliver, tts.s3gen.inference, worker)

    def finish(render: Callable) -> Callable:
        def inference(*args: Any, **kwargs: Any) -> Any:
            tokens = kwargs.pop("speech_tokens", args[0] if args else None)
            return streamer.finish(tokens, **kwargs)

        return inference

    record = _RECORD.set(streamer.record)
    try:
        with points.S3GEN_INFERENCE.shadowed(tts.s3gen, finish), sampling(), stopping.each_token(streamer.tick), \
                worker.share.sampling() if worker is not None and worker.share is not None else contextlib.nullcontext():
            yield streamer
    finally:
        _RECORD.reset(record)
        timings["t3_s"] = max(0.0, timings.get("t3_s", 0.0) - streamer.loop_render_s)
        timings["speech_tokens"] = streamer.cut
        timings["pieces"] = len(streamer.parts)
