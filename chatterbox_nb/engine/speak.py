"""The one way the engine speaks: a loaded model, a say's options and its conditionals
in; the pieces it makes, one a chunk of text, out, each with its stage timings.

`say` (through `progressive.ChunkRun`), `batch` rows and warm-up all speak through
`pieces`, so seeding, the token cap, the lossy knobs and what the timings hold are
decided here once. The caller holds the model (`loaded.use`); this takes no lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .request import SayOptions

#: the stage timings each piece carries (seconds), besides `speech_tokens`
STAGES = ("t3_s", "s3gen_s", "watermark_s")


@dataclass
class Piece:
    """One chunk's audio. From a `ChunkRun`, the audio starts with the pause before it
    (none for the first), so the pieces played back to back are exactly the final audio."""

    index: int
    text: str
    audio: np.ndarray
    stages: dict[str, Any]


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
    from . import synth

    for i, text in enumerate(chunks):
        if i and stopped():
            return
        audio, stages = synth.generate(
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
        )
        yield Piece(i, text, audio, stages)


def stage_totals(made: Iterable[Piece]) -> dict[str, Any]:
    """The stage timings of several pieces, added up (the say's figures)."""
    made = list(made)
    totals: dict[str, Any] = {k: sum(p.stages.get(k, 0.0) for p in made) for k in STAGES}
    totals["speech_tokens"] = sum(int(p.stages.get("speech_tokens", 0)) for p in made)
    return totals
