"""Long text, chunk by chunk, in one background thread: the caller gets each piece of
audio as soon as it is made, so a player can start on the first sentence.

Why a thread: the caller (the notebook's main thread) stays free to pass pieces to
the player and to take the stop button (KeyboardInterrupt), while generation goes
on. A say is that one worker and one queue: the worker holds the model and the engine
pushes each piece onto the queue as it is made (`speak.run`'s emit); the caller waits
on the queue. The run holds the model's lock for all its chunks (`use(user=True)`):
two says never interleave on one model, the voice's conditionals are computed once,
and warm-up, which takes the model only between users' runs, goes on afterwards.

Stopping (`stop()`, `cnb.stop()`, or the stop button while the caller waits) goes
through the say's one `Stop` (engine/generation/stopping.py) and is cooperative: the
chunk being generated is finished and kept, the rest is skipped. When that chunk is
the last one (a short say), finishing it would stop nothing, so it is cut instead: T3
ends at its next token and S3Gen renders what was sampled. A second press cuts any
chunk that way; a third stops waiting.
"""

from __future__ import annotations

import contextvars
import dataclasses
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import estimate
from ._state import STATE
from .engine.request import SayOptions
from .engine.specs import BUILT_IN_VOICE
from .engine.generation import speak
from .engine.generation.speak import Piece, stage_totals
from .engine.generation.stopping import Stop
from .errors import ChatterboxError

if TYPE_CHECKING:
    from .engine.models.loader import LoadedModel

__all__ = ["PAUSE_S", "Piece", "RunResult", "ChunkRun", "Evicted", "running", "stop_all"]

#: silence between chunks: a sentence break, and what the player and the final audio share
PAUSE_S = 0.12


class Evicted(ChatterboxError):
    """The model was unloaded while the run queued for it."""


@dataclass
class RunResult:
    pieces: list[Piece]
    total: int
    stopped: bool
    conditioning_s: float
    lock_wait_s: float
    first_piece_at: float | None = None  # perf_counter when the caller had the first piece
    stages: dict[str, Any] = field(default_factory=dict)
    #: where the voice's conditionals came from ("built-in", "memory", "disk-cache", "computed")
    voice_source: str = BUILT_IN_VOICE
    pause: int = 0  # samples of silence before each chunk after the first

    @property
    def spans(self) -> list[tuple[str, int, int]]:
        """Each kept chunk's text and where its speech lies in `audio` (samples, its pause left out)."""
        out, at = [], 0
        for p in self.pieces:
            if p.last:
                n = len(p.chunk_audio)
                out.append((p.text, at + (min(self.pause, n) if p.index else 0), at + n))
                at += n
        return out

    @property
    def chunks_done(self) -> int:
        return sum(p.last for p in self.pieces)

    @property
    def audio(self) -> np.ndarray:
        """The chunks made, as kept (a streamed chunk: its pieces joined, watermarked whole;
        a chunk whose pieces stopped coming when the caller stopped waiting is left out)."""
        kept = [p.chunk_audio for p in self.pieces if p.last]
        return np.concatenate(kept) if kept else np.zeros(0, np.float32)


class ChunkRun:
    """Generate `chunks` in order on `loaded` with `opts` and `voice` (a `voices_api.Resolved`,
    or None: the built-in voice), in a daemon thread, through the engine's `speak.run`."""

    def __init__(
        self,
        loaded: LoadedModel,
        chunks: list[str],
        opts: SayOptions,
        voice: Any = None,
        *,
        sample_rate: int,
        pause_s: float = PAUSE_S,
    ) -> None:
        self.loaded = loaded
        self.chunks = list(chunks)
        self.opts = opts
        self.voice = voice
        self.voice_source = BUILT_IN_VOICE
        self.sample_rate = sample_rate
        self._pause = np.zeros(int(round(pause_s * sample_rate)), np.float32)
        #: the say's one stop request: the stop button, `cnb.stop()` and `unload` ask it
        self.stop_request = Stop()
        #: the pieces as they are made, then the run's error if any, then None
        self._events: queue.Queue = queue.Queue()
        self._made = 0  # samples of the chunks kept
        self.conditioning_s = 0.0
        self.lock_wait_s = 0.0
        self.done = 0
        # the caller's context (a display's progress hook, engine/generation/stopping.py) goes along
        ctx = contextvars.copy_context()
        self.thread = threading.Thread(target=ctx.run, args=(self._run,), name="chatterbox_nb-say", daemon=True)

    # -- the worker side -------------------------------------------------------------------

    def start(self) -> "ChunkRun":
        # listed and started under one lock: `running()` never hands out a run whose thread
        # has not started (joining it would raise), and the run's own removal comes after
        with STATE.lock:
            STATE.says.append(self)
            self.thread.start()
        return self

    def _run(self) -> None:
        from .engine.seams.logs import translated

        try:
            begin = time.perf_counter()
            # upstream's lines are translated once per say, not once per chunk
            with self.loaded.use(user=True), translated():
                self.lock_wait_s = time.perf_counter() - begin
                if self.loaded.tts is None or self.loaded.unloaded:
                    raise Evicted("The model was unloaded while this say waited; run it again.")
                begin = time.perf_counter()
                # the voice, obtained once per say by the run that holds the model (a cached voice
                # costs a lookup): every chunk speaks with it
                from .voices_api import voices

                conds, self.voice_source = voices.conditionals(self.loaded, self.voice)
                self.conditioning_s = time.perf_counter() - begin
                begin = time.perf_counter()
                speak.run(self.loaded, self.opts, self.chunks, conds, emit=self._emit, stop=self.stop_request)
                # this model's seconds of work per second of audio, for the next say's estimate
                estimate.record(self.loaded.key, time.perf_counter() - begin, self._made / self.sample_rate)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost in the thread
            self._events.put(exc)
        finally:
            with STATE.lock:
                if self in STATE.says:
                    STATE.says.remove(self)
            self._events.put(None)

    def _emit(self, piece: Piece) -> None:
        """A piece, as the engine makes it: a later chunk's first piece starts with the pause."""
        if piece.index and piece.part == 0:
            piece = dataclasses.replace(piece, audio=np.concatenate([self._pause, piece.audio]))
        if piece.index and piece.kept is not None:
            piece = dataclasses.replace(piece, kept=np.concatenate([self._pause, piece.kept]))
        self.done += piece.last
        self._made += len(piece.chunk_audio) if piece.last else 0
        self._events.put(piece)

    # -- the caller side -------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the chunk under way, keep it, skip the rest (the last chunk is cut)."""
        if max(self.done, self.stop_request.chunk) >= len(self.chunks) - 1:
            self.stop_request.at_next_token()
        else:
            self.stop_request.after_chunk()

    def cut(self) -> None:
        """End the chunk under way at T3's next token, keep what it made, skip the rest."""
        self.stop_request.at_next_token()

    @property
    def stopped(self) -> bool:
        return self.stop_request.requested

    def _pieces(self) -> Iterator[Piece]:
        """Pieces as they come; the stop button asks the run to stop after the chunk
        under way, a second press cuts that chunk, a third stops waiting (the chunk
        under way is then dropped)."""
        while True:
            try:
                event = self._events.get(timeout=0.1)  # short waits: KeyboardInterrupt gets in
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                if not self.stopped:
                    self.stop()
                elif not self.stop_request.now:
                    self.cut()
                else:
                    return
                continue
            if event is None:
                self.thread.join()  # it ended: putting None was its last act
                return
            if isinstance(event, BaseException):
                self.thread.join()  # its None follows at once
                raise event
            yield event

    def wait(self, on_piece: Callable[[Piece], None] | None = None) -> RunResult:
        """Block until the run ends (or is stopped); `on_piece` sees each piece first."""
        made: list[Piece] = []
        first_at = None
        try:
            for piece in self._pieces():
                if on_piece is not None:
                    try:
                        on_piece(piece)
                    except KeyboardInterrupt:  # pressed while the player was fed: same as while waiting
                        self.stop()
                if first_at is None:
                    first_at = time.perf_counter()
                made.append(piece)
        except BaseException:
            self.cut()  # nobody takes the pieces any more: free the model at T3's next token
            raise
        return RunResult(
            made,
            total=len(self.chunks),
            stopped=sum(p.last for p in made) < len(self.chunks) or self.stop_request.now,
            conditioning_s=self.conditioning_s,
            lock_wait_s=self.lock_wait_s,
            first_piece_at=first_at,
            stages=stage_totals(p for p in made if p.index in {q.index for q in made if q.last}),  # chunks kept
            voice_source=self.voice_source,
            pause=len(self._pause),
        )


def running() -> list[ChunkRun]:
    with STATE.lock:
        return list(STATE.says)


def stop_all(join_s: float = 0.0) -> int:
    """Ask every running say to stop after its current chunk; how many there were."""
    runs = running()
    for run in runs:
        run.stop()
    deadline = time.monotonic() + join_s
    for run in runs:
        if run.thread.is_alive():
            run.thread.join(max(0.0, deadline - time.monotonic()))
    return len(runs)
