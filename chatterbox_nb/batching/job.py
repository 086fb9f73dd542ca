"""What every row of a batch shares (`BatchJob`) and the one function that makes a row
(`run_row`), on this kernel's model or in a Ray actor: the same code under the same
number of torch threads, so a row's seed gives the same audio wherever it runs."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from .. import voices_api
from ..engine.request import ModelChoice, SayOptions
from ..errors import ModelNotLoaded

if TYPE_CHECKING:
    from ..engine.models.loader import LoadedModel

__all__ = ["BatchJob", "run_row", "torch_threads"]


@dataclass(frozen=True)
class BatchJob:
    """What every row of a batch shares: the say options (every row has its own seed)
    and the torch threads; small and picklable, so Ray actors get it too."""

    options: SayOptions
    threads: int

    @property
    def choice(self) -> ModelChoice:
        return self.options.choice

    def params(self) -> dict[str, Any]:
        """What each manifest entry records (a row is made again when they change)."""
        o, c = self.options, self.options.choice
        return {"model": c.model, "weights": c.weights, "device": c.device, "dtype": c.dtype, "lang": o.language,
                "max_tokens": o.max_tokens, "threads": self.threads, **o.generate_kwargs, **o.knobs}


def run_row(loaded: LoadedModel, job: BatchJob, text: str, seed: int, voice: voices_api.Resolved | None) -> tuple[Any, dict]:
    """One row on a loaded model, under `job.threads` torch threads: the voice's cached
    conditionals and the engine's `speak.pieces`, as a one-sentence `say` with this seed
    makes it (the engine calls, not `api`'s private helpers, so a row does not change
    when say's text handling does)."""
    from ..engine.generation.speak import pieces

    start = time.perf_counter()
    with loaded.use(user=True), torch_threads(job.threads):
        if loaded.tts is None:
            raise ModelNotLoaded(f"The {loaded.name} model was unloaded during the batch; run it again to resume.")
        conds, source = voices_api.voices.conditionals(loaded, voice)
        conditioning_s = time.perf_counter() - start
        (piece,) = pieces(loaded, dataclasses.replace(job.options, seed=seed), [text], conds)
    timings = {"conditioning_s": conditioning_s, "voice_source": source, **piece.stages, "row_s": time.perf_counter() - start}
    return piece.audio, timings


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op torch threads, then put the kernel's setting back."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
