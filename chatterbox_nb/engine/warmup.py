"""Warm-up: pay first-call costs (lazy initialisation, resamplers, allocator) up front.

`light` runs one short generation through every stage; `full` adds three text
lengths and a synthetic reference voice through `prepare_conditionals`. The RNG
state is saved and restored, so warm-up never changes what a seeded `say` returns.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import synth
from .specs import SAMPLE_RATE

_TEXTS = ("Hi.", "Warming up the model now.", "This longer sentence warms up the attention for longer inputs, too.")


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def warm(loaded: Any, level: str, language: str | None = None) -> float:
    """Run warm-up at `level` under the model's lock; returns the seconds it took."""
    if level == "off":
        return 0.0
    spec = loaded.spec
    language = language or ("en" if spec.name == "multilingual" else None)
    start = time.perf_counter()
    with loaded.lock, preserved_rng():
        texts = _TEXTS if level == "full" else _TEXTS[:1]
        conds = _synthetic_conds(loaded) if level == "full" else None
        for text in texts:
            synth.generate(
                loaded.tts,
                spec,
                text,
                conds=conds,
                language=language,
                max_tokens=4,
                seed=0,
                sampling=spec.defaults(),
                renderable_only=loaded.is_dummy,
            )
    return time.perf_counter() - start


def _synthetic_conds(loaded: Any) -> Any:
    import soundfile as sf

    from .dummy import synthetic_voice

    seconds = 6.0 if loaded.spec.name == "turbo" else 2.0  # turbo refuses references under 5 s
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "warmup.wav"
        sf.write(ref, synthetic_voice(seconds, seed=1), SAMPLE_RATE)
        return synth.compute_conditionals(loaded.tts, loaded.spec, str(ref), loaded.spec.defaults()["exaggeration"])
