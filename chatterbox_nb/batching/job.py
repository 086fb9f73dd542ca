"""What every row of a batch shares (`BatchJob`) and the one function that makes a row
(`run_row`), on this kernel's model or in a Ray actor: the same code under the same
number of torch threads, so a row's seed gives the same audio wherever it runs."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from .. import options, voices_api
from ..engine.specs import SPECS
from ..errors import ModelNotLoaded

__all__ = ["BatchJob", "run_row", "torch_threads"]


@dataclass(frozen=True)
class BatchJob:
    """What every row of a batch shares; small and picklable, so Ray actors get it too."""

    choice: options.ModelChoice
    language: str | None
    cap: int
    sampling: dict[str, float]
    threads: int
    #: the opt-in lossy S3Gen knobs given (cfm_steps, prompt_tokens); none by default
    knobs: dict[str, int] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        c = self.choice
        return {"model": c.model, "weights": c.weights, "device": c.device, "dtype": c.dtype, "lang": self.language,
                "max_tokens": self.cap, "threads": self.threads, **self.sampling, **self.knobs}


def run_row(loaded: Any, job: BatchJob, text: str, seed: int, voice: voices_api.Resolved | None) -> tuple[Any, dict]:
    """One row on a loaded model, under `job.threads` torch threads: the voice's cached
    conditionals and upstream's `generate` through `synth.generate`, as a one-sentence
    `say` with this seed makes it (the engine calls, not `api`'s private helpers, so a
    row does not change when say's text handling does)."""
    from ..engine import synth

    start = time.perf_counter()
    with loaded.use(user=True), torch_threads(job.threads):
        if loaded.tts is None:
            raise ModelNotLoaded(f"The {loaded.name} model was unloaded during the batch; run it again to resume.")
        conds, source = voices_api.voices.conditionals(loaded, voice)
        conditioning_s = time.perf_counter() - start
        audio, stages = synth.generate(loaded.tts, SPECS[job.choice.model], text, conds=conds, language=job.language,
                                       max_tokens=job.cap, seed=seed, sampling=job.sampling, renderable_only=loaded.is_dummy,
                                       **job.knobs)
    return audio, {"conditioning_s": conditioning_s, "voice_source": source, **stages, "row_s": time.perf_counter() - start}


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
