"""What one say asks of the engine, as one frozen, typed value.

`options.say_options` builds and checks a `SayOptions` from what a user typed (the
magic's parser, `say`, `batch`, the `ui` panel); warm-up builds one from the model's
defaults. The engine (`speak.py`) reads nothing else, so a new option is one field
here, one line in `options.SAY_OPTIONS`, and its use in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .specs import DEFAULT_MAX_TOKENS, ModelSpec


@dataclass(frozen=True)
class ModelChoice:
    """Which model, from which weights, on which device, in which dtype (all checked)."""

    model: str
    weights: str
    device: str
    dtype: str


@dataclass(frozen=True)
class SayOptions:
    """Every option of a say, checked. `sampling` holds upstream `generate` keywords
    (the model's defaults overlaid with the given values), as pairs so the value stays
    immutable and picklable (Ray actors get it)."""

    #: None only for the engine's own runs (warm-up), which use a model already loaded
    choice: ModelChoice | None = None
    language: str | None = None
    voice: str | None = None
    sampling: tuple[tuple[str, float], ...] = ()
    seed: int | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    #: the opt-in lossy S3Gen knobs (None: upstream's)
    cfm_steps: int | None = None
    prompt_tokens: int | None = None
    out: Path | None = None
    autoplay: bool = False
    #: render each chunk in pieces while T3 samples (engine/generation/streaming.py); None: where it
    #: pays (the API decides: in a notebook, and see `ModelSpec.stream_pays_on_cpu`)
    stream: bool | None = None

    @classmethod
    def defaults(cls, spec: ModelSpec, **given: Any) -> "SayOptions":
        """The model's own defaults (warm-up's options): nothing to check."""
        given.setdefault("language", spec.default_language)
        return cls(sampling=tuple(spec.defaults().items()), **given)

    @property
    def generate_kwargs(self) -> dict[str, float]:
        return dict(self.sampling)

    @property
    def knobs(self) -> dict[str, int]:
        """The lossy knobs given, by name (what a say's params and a batch's manifest record)."""
        given = {"cfm_steps": self.cfm_steps, "prompt_tokens": self.prompt_tokens}
        return {k: v for k, v in given.items() if v is not None}

    def seed_for(self, i: int) -> int | None:
        """Chunk `i` is seeded `seed + i`: a seeded say is reproducible, and a one-chunk
        say (or a batch row) is seeded exactly as given."""
        return None if self.seed is None else (self.seed + i) % 2**63
