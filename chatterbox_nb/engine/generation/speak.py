"""The one way the engine speaks: a loaded model, a say's options and its conditionals
in; the pieces it makes out, in order, each with its stage timings.

`say` (through `progressive.ChunkRun`), `batch` rows and warm-up all speak through
`pieces`, so seeding, the token cap, the lossy knobs, streaming and what the timings
hold are decided here once. The caller holds the model (`loaded.use`); this takes no lock.

Unstreamed, each chunk of text is one piece. Streamed (`opts.stream`), a chunk comes in
several pieces, made while T3 samples (engine/generation/streaming.py); its last piece also
carries the chunk's audio as kept (`kept`: the pieces joined, watermarked whole).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..request import SayOptions

#: the stage timings each chunk carries (seconds), besides `speech_tokens`
STAGES = ("t3_s", "s3gen_s", "watermark_s")


@dataclass
class Piece:
    """Audio to play, in order. From a `ChunkRun`, a chunk's first piece starts with the
    pause before it (none for the first chunk), so the pieces played back to back are the
    say's audio (before the watermark, when streamed)."""

    index: int  # the chunk of text
    text: str
    audio: np.ndarray
    #: a chunk's last piece: its stage timings; earlier pieces: only their `speech_tokens`
    stages: dict[str, Any]
    part: int = 0
    last: bool = True
    #: on a streamed chunk's last piece: the chunk's whole audio as kept (watermarked)
    kept: np.ndarray | None = None

    @property
    def chunk_audio(self) -> np.ndarray | None:
        """A last piece: what the chunk keeps (None on earlier pieces)."""
        if not self.last:
            return None
        return self.audio if self.kept is None else self.kept


def pieces(
    loaded: Any,
    opts: SayOptions,
    chunks: Sequence[str],
    conds: Any = None,
    *,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[Piece]:
    """Each chunk through upstream's `generate` (see `synth.generate`), in order; before
    each chunk after the first, `stopped()` may end the run. `conds` None: the model's
    built-in voice."""
    for i, text in enumerate(chunks):
        if i and stopped():
            return
        if opts.stream:
            yield from _streamed(loaded, opts, i, text, conds)
        else:
            audio, stages = _generate(loaded, opts, i, text, conds)
            yield Piece(i, text, audio, stages)


def _generate(loaded: Any, opts: SayOptions, i: int, text: str, conds: Any, deliver: Any = None) -> tuple:
    from . import synth

    return synth.generate(
        loaded.tts,
        loaded.spec,
        text,
        conds=conds,
        language=opts.language,
        max_tokens=opts.max_tokens,
        seed=opts.seed_for(i),
        sampling=opts.generate_kwargs,
        renderable_only=loaded.is_dummy,
        cfm_steps=opts.cfm_steps,
        prompt_tokens=opts.prompt_tokens,
        deliver=deliver,
    )


def _streamed(loaded: Any, opts: SayOptions, i: int, text: str, conds: Any) -> Iterator[Piece]:
    """One chunk's pieces as they are made. `generate` runs in a helper thread (with this
    context: the say's stop request and progress hook) that hands each piece over; this
    thread only waits, so the two never compute at once. Closed early, the helper is cut
    at T3's next token and waited for: the model is free when this returns."""
    from .stopping import cuttable, current_cut

    events: queue.Queue = queue.Queue()
    abandoned = threading.Event()
    outer = current_cut()

    def deliver(audio: np.ndarray, tokens: int, last: bool) -> None:
        events.put(("piece", audio, tokens, last))

    def work() -> None:
        try:
            with cuttable(lambda: abandoned.is_set() or (outer is not None and outer())):
                events.put(("done", *_generate(loaded, opts, i, text, conds, deliver)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            events.put(("error", exc))

    helper = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="chatterbox_nb-stream",
                              daemon=True)
    helper.start()
    part, held = 0, None
    try:
        while True:
            event = events.get()
            if event[0] == "error":
                raise event[1]
            if event[0] == "done":
                _, kept, stages = event
                audio, tokens = held if held is not None else (np.zeros(0, np.float32), 0)
                stages["speech_tokens"] = tokens
                yield Piece(i, text, audio, stages, part, True, kept)
                return
            _, audio, tokens, last = event
            if last:  # its timings come when generate returns (after the watermark)
                held = (audio, tokens)
                continue
            yield Piece(i, text, audio, {"speech_tokens": tokens}, part, False)
            part += 1
    finally:
        abandoned.set()
        helper.join()


def stage_totals(made: Iterable[Piece]) -> dict[str, Any]:
    """The stage timings of several pieces, added up (the say's figures)."""
    made = list(made)
    totals: dict[str, Any] = {k: sum(p.stages.get(k, 0.0) for p in made) for k in STAGES}
    totals["speech_tokens"] = sum(int(p.stages.get("speech_tokens", 0)) for p in made)
    return totals
