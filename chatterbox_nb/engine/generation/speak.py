"""The one way the engine speaks: a loaded model, a say's options and its conditionals
in; each piece it makes pushed to the caller's `emit`, in order, with its stage timings.

`say` (through `progressive.ChunkRun`), `batch` rows and warm-up all speak through
`run`, so seeding, the token cap, the lossy knobs, streaming and what the timings
hold are decided here once. The caller holds the model (`loaded.use`) and `emit` is
called in its thread, as each piece is made: a say's emit puts it on the one queue its
caller waits on; batch and warm-up collect them (`pieces`). This takes no lock and
starts no thread outside an overlapped say.

Overlapped (`overlap`: `%config Chatterbox.overlap`, True, False or "auto", the default,
which overlaps only a streamed chunk's pieces), S3Gen and the watermark run on a second
thread, the say's render worker (overlap.py), while this thread runs T3 on: in an
unstreamed say of several chunks, the chunks between the first and the last (chunk i
renders while T3 samples chunk i+1); in a streamed chunk, the pieces between its first
and its last (streaming.py). The first renders here, T3 waiting, so its
audio comes no later than without the overlap; the last after T3 is done, with every
thread. The worker renders in order and emits each piece itself, as soon as it is made;
it is started and joined inside `run`, errors and stops included. The two stages share
the CPU's threads (overlap.ThreadShare) or, on a GPU, run on two CUDA streams. Each stage
then draws from its own generator seeded from the chunk's seed (rng.py), so a seeded
overlapped say is reproducible; the numbers differ from a sequential say's, which keeps
upstream's global generator.

Grouped (`group`: `%config Chatterbox.group_renders`, True, False or "auto", the default,
which groups on a CPU), an unstreamed paragraph's chunks after the first render in groups:
S3Gen re-reads the voice's reference prompt on every call (about 150 tokens for english's
built-in voice, five times a 30-token sentence), so one call for several sentences does
less work than one each. T3 samples each chunk as a sequential say does, and the first
chunk renders alone, so its audio comes no later.

Unstreamed, each chunk of text is one piece. Streamed (`opts.stream`), a chunk comes in
several pieces, made while T3 samples (engine/generation/streaming.py); its last piece also
carries the chunk's audio as kept (`kept`: the pieces joined, watermarked whole).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from ..request import SayOptions
from . import compiled, rng, synth
from .overlap import RenderWorker, ThreadShare
from .stopping import Stop, bound, each_token
from .streaming import Deliver

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

def overlap_default() -> bool | str:
    """`%config Chatterbox.overlap` (env `CHATTERBOX_NB_OVERLAP`): True, False or "auto" (the
    default: a streamed chunk's pieces overlap, a paragraph's chunks do not; on the 2-core
    CPU it was measured on, only the first paid, benchmarks/bench_streaming.py and
    bench_longtext.py --overlap)."""
    from ... import config

    return config.settings().overlap


def group_default() -> bool | str:
    """`%config Chatterbox.group_renders` (env `CHATTERBOX_NB_GROUP_RENDERS`): True, False or
    "auto" (the default: on a CPU, where S3Gen's re-read of the voice prompt is most of a
    sentence's render; a GPU renders faster than T3 samples, and groups would only delay audio)."""
    from ... import config

    return config.settings().group_renders


def groups_renders(loaded: LoadedModel, setting: bool | str | None = None) -> bool:
    """Whether a paragraph's later sentences render in groups on `loaded` (`setting` None: the config)."""
    import torch

    setting = group_default() if setting is None else setting
    return torch.device(loaded.device).type == "cpu" if setting == "auto" else bool(setting)


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


#: `emit(piece)`: one more piece of the say, in order, in the thread that holds the model
Emit = Callable[[Piece], None]


def run(
    loaded: LoadedModel,
    opts: SayOptions,
    chunks: Sequence[str],
    conds: Any = None,
    *,
    emit: Emit,
    stop: Stop | None = None,
    overlap: bool | str | None = None,
    group: bool | str | None = None,
) -> None:
    """Each chunk through upstream's `generate` (see `synth.generate`), in order, each
    piece to `emit` as soon as it is made. `stop` ends the run after a chunk, or the chunk
    under way at T3's next token (stopping.py). `conds` None: the model's built-in voice.
    `overlap` (None: `overlap_default()`): True renders chunk i while T3 samples chunk i+1,
    and a streamed chunk's middle pieces while T3 samples on; "auto" only the pieces.
    `group` (None: `group_default()`): an unstreamed paragraph's later chunks render in
    groups (`_grouped`); the overlap of sentences, where on, comes first."""
    stop = stop if stop is not None else Stop()
    overlap = overlap_default() if overlap is None else overlap
    sentences, pieces = overlap is True, overlap is True or overlap == "auto"
    with bound(stop):
        if sentences and len(chunks) > 1 and not opts.stream:
            _overlapped(loaded, opts, chunks, conds, emit, stop)
            return
        if len(chunks) > 2 and not opts.stream and groups_renders(loaded, group):
            _grouped(loaded, opts, chunks, conds, emit, stop)
            return
        for i, text in enumerate(chunks):
            if i and stop.requested:
                return
            stop.chunk = i
            if opts.stream:
                _streamed(loaded, opts, i, text, conds, emit, pieces)
            else:
                audio, stages = _generate(loaded, opts, i, text, conds)
                emit(Piece(i, text, audio, stages))


def _grouped(loaded: LoadedModel, opts: SayOptions, chunks: Sequence[str], conds: Any, emit: Emit, stop: Stop) -> None:
    """The first chunk as without groups, so its audio comes no later. Each later chunk's T3
    runs here as in a sequential say (the same seed, the same tokens); its render is held
    until the group holds at least as many tokens as the voice's reference prompt, or the
    text or the say ends. Then one S3Gen call renders the group (synth.render_together: the
    prompt re-read once, not once a chunk) and its chunks are emitted in order. A stop or an
    error in T3 still renders and emits what is held."""
    audio, stages = _generate(loaded, opts, 0, chunks[0], conds)
    emit(Piece(0, chunks[0], audio, stages))
    held: list[tuple[int, synth.Render, dict[str, Any]]] = []

    def flush() -> None:
        group, held[:] = list(held), []
        rendered = synth.render_together([r for _, r, _ in group], [st for _, _, st in group])
        for (i, _, stages), audio in zip(group, rendered):
            emit(Piece(i, chunks[i], audio, stages))

    try:
        for i in range(1, len(chunks)):
            if stop.requested:
                break
            stop.chunk = i
            render, stages = _generate(loaded, opts, i, chunks[i], conds, held=True)
            held.append((i, render, stages))
            if sum(int(r.tokens.numel()) for _, r, _ in held) >= render.prompt_tokens:
                flush()
    except BaseException:
        if held:
            with contextlib.suppress(Exception):  # T3's error is the one to report
                flush()
        raise
    if held:
        flush()


def _render_worker(loaded: LoadedModel, stage_rng: Any = None) -> RenderWorker:
    """The say's render worker, with the threads shared on a CPU (a GPU has streams)."""
    import torch

    share = ThreadShare.of_this_thread() if torch.device(loaded.device).type == "cpu" else None
    return RenderWorker(loaded.device, share, lambda: synth.rendering(stage_rng), compiled.estimator(loaded.tts))


def _overlapped(loaded: LoadedModel, opts: SayOptions, chunks: Sequence[str], conds: Any, emit: Emit, stop: Stop) -> None:
    """T3 of every chunk here, and the renders of the first and the last; those between
    on the render worker, in order. The worker is joined before this returns, whatever
    happens; after a failed render nothing more is emitted or sampled, and the first error
    is raised here."""
    with _render_worker(loaded) as worker, _sampling(worker):
        for i, text in enumerate(chunks):
            if i and (stop.requested or worker.failed):
                break
            stop.chunk = i
            render, stages = _generate(loaded, opts, i, text, conds, deferred=True)
            if 0 < i < len(chunks) - 1 and not stop.requested:
                worker.hand_over(functools.partial(_render_and_emit, emit, i, text, render, stages))
                continue
            worker.drain()
            if worker.share is not None:
                worker.share.alone()
            _render_and_emit(emit, i, text, render, stages)
        worker.drain()


def _sampling(worker: RenderWorker) -> contextlib.AbstractContextManager[None]:
    """T3 in this thread: at each token, its share of the threads (every one when no render runs)."""
    if worker.share is None:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(worker.share.sampling())
    stack.enter_context(each_token(worker.share.t3_tick))
    return stack


def _render_and_emit(emit: Emit, i: int, text: str, render: Callable[[], np.ndarray], stages: dict[str, Any]) -> None:
    emit(Piece(i, text, render(), stages))


def pieces(loaded: LoadedModel, opts: SayOptions, chunks: Sequence[str], conds: Any = None) -> list[Piece]:
    """Every piece of `chunks`, collected (batch rows and warm-up: nobody plays them live)."""
    made: list[Piece] = []
    run(loaded, opts, chunks, conds, emit=made.append)
    return made


def _generate(
    loaded: LoadedModel, opts: SayOptions, i: int, text: str, conds: Any, deliver: Deliver | None = None,
    deferred: bool = False, worker: RenderWorker | None = None, held: bool = False,
) -> tuple[Any, dict[str, Any]]:
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
        deferred=deferred,
        worker=worker,
        held=held,
    )


def _streamed(loaded: LoadedModel, opts: SayOptions, i: int, text: str, conds: Any, emit: Emit,
              overlap: bool = False) -> None:
    """One chunk's pieces, emitted from inside T3's loop as S3Gen renders them. The last
    render is emitted when `generate` returns, with the chunk's timings and its audio as
    kept (watermarked whole, after that render). Overlapped, the pieces between the first
    and the last render on the render worker, S3Gen's noise from its own generator."""
    part, last = 0, (np.zeros(0, np.float32), 0)

    def deliver(audio: np.ndarray, tokens: int, is_last: bool) -> None:
        nonlocal part, last
        if is_last:
            last = (audio, tokens)
            return
        emit(Piece(i, text, audio, {"speech_tokens": tokens}, part, False))
        part += 1

    seed = opts.seed_for(i)
    with _render_worker(loaded, rng.stage_seeds(seed)[1] if seed is not None else None) if overlap \
            else contextlib.nullcontext() as worker:
        kept, stages = _generate(loaded, opts, i, text, conds, deliver, worker=worker)
    audio, stages["speech_tokens"] = last
    emit(Piece(i, text, audio, stages, part, True, kept))


def stage_totals(made: Iterable[Piece]) -> dict[str, Any]:
    """The stage timings of several pieces, added up (the say's figures)."""
    made = list(made)
    totals: dict[str, Any] = {k: sum(p.stages.get(k, 0.0) for p in made) for k in STAGES}
    totals["speech_tokens"] = sum(int(p.stages.get("speech_tokens", 0)) for p in made)
    return totals
