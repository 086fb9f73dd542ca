"""How long a say will take: chunks, expected audio and time, from the start, refined
as its chunks finish.

Audio is guessed from the text (characters a second of speech, per language; each
chunk at most its token cap, 25 tokens a second); time from the seconds of work a
second of audio took this model on this machine in this kernel's earlier says (a
running mean, kept in `_state` so that `%reload_ext` keeps it), or a conservative
default before any. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ._state import STATE
from .engine.specs import SAMPLE_RATE, SAMPLES_PER_TOKEN
from .text import joiner

if TYPE_CHECKING:
    from .engine.models.loader import LoadedModel, ModelKey

__all__ = ["TOKENS_PER_S", "Estimate", "audio_seconds", "expected_tokens", "for_say", "record", "span"]

TOKENS_PER_S = SAMPLE_RATE // SAMPLES_PER_TOKEN  # 25: S3 speech tokens a second of audio
#: characters a second of speech: ~150 words a minute; languages without spaces pack more in one
CHARS_PER_S = 14.0
CHARS_PER_S_UNSPACED = 5.0
#: seconds of work a second of audio takes before this kernel measured the model (on the
#: safe side: full-size english in float32 on a 2-core CPU takes ~8)
DEFAULT_RATE = {"cpu": 10.0}
DEFAULT_RATE_ELSEWHERE = 1.0



def _speech_s(text: str, language: str | None) -> float:
    return len(text) / (CHARS_PER_S if joiner(language) else CHARS_PER_S_UNSPACED)


def audio_seconds(chunk: str, language: str | None, max_tokens: int) -> float:
    """The audio one chunk is expected to make."""
    return min(_speech_s(chunk, language), max_tokens / TOKENS_PER_S)


def expected_tokens(text: str, language: str | None) -> int:
    """Speech tokens `text` is expected to take, all chunks together (what a token count
    is measured against: the cap is only a ceiling, the stop token usually ends sooner)."""
    return max(1, round(_speech_s(text, language) * TOKENS_PER_S))


def record(key: ModelKey, work_s: float, audio_s: float) -> None:
    """Add one say's figures to the model's rate (what later estimates start from)."""
    if audio_s <= 0 or work_s <= 0:
        return
    with STATE.lock:
        work, audio = STATE.say_rates.get(key, (0.0, 0.0))
        STATE.say_rates[key] = (work + work_s, audio + audio_s)


def rate(key: ModelKey, device: str) -> tuple[float, bool]:
    """Seconds of work per second of audio for this model, and whether it was measured."""
    with STATE.lock:
        measured = STATE.say_rates.get(key)
    if measured:
        return measured[0] / measured[1], True
    return DEFAULT_RATE.get(device.split(":")[0], DEFAULT_RATE_ELSEWHERE), False


def span(seconds: float) -> str:
    """A duration as a person says it: 40 s, 12 min, 1 h 50 min."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@dataclass
class Estimate:
    """A say's chunks with their expected audio, and the rate its time is guessed from."""

    chunk_audio_s: list[float]
    rate: float
    measured: bool
    done: list[tuple[float, float]] = field(default_factory=list)  # (audio, work) of finished chunks

    @property
    def audio_s(self) -> float:
        return sum(self.chunk_audio_s)

    def finished(self, audio_s: float, work_s: float) -> None:
        """One more chunk made: `audio_s` of audio after `work_s` seconds of work since the start."""
        self.done.append((audio_s, work_s))

    def left_s(self) -> float:
        """Time still to go: the rest of the expected audio at this say's own rate so far."""
        if not self.done:
            return self.rate * self.audio_s
        made = sum(a for a, _w in self.done)
        spent = self.done[-1][1]
        own = spent / made if made > 0 else self.rate
        return own * sum(self.chunk_audio_s[len(self.done):])

    def line(self) -> str:
        """The progress line's estimate: before any chunk, and refined after each."""
        if not self.done:
            basis = "this model's rate here" if self.measured else "a cautious guess until a say is measured"
            return (f"{len(self.chunk_audio_s)} chunks \u00b7 about {span(self.audio_s)} of audio \u00b7 "
                    f"about {span(self.left_s())} to make ({basis})")
        return f"about {span(self.left_s())} left"


def for_say(loaded: LoadedModel, chunks: Sequence[str], opts: Any) -> Estimate:
    """The estimate of a say of `chunks` with `opts` on `loaded`."""
    per_s, measured = rate(loaded.key, loaded.device)
    return Estimate([audio_seconds(c, opts.language, opts.max_tokens) for c in chunks], per_s, measured)
