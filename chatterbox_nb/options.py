"""Checking user options before anything changes: each mistake is one sentence.

Shared by the API and the magic (whose argparse already did the typing), so the
rules live here once. Defaults come from the `Chatterbox` settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import config
from .engine.device import check_device_name
from .engine.sources import check_weights
from .errors import InvalidOption

MAX_TOKENS_LIMIT = 4096  # T3Config.max_speech_tokens: the learned position table ends there


@dataclass(frozen=True)
class ModelChoice:
    model: str
    weights: str
    device: str
    dtype: str


def choose_model(
    model: str | None = None, weights: str | None = None, device: str | None = None, dtype: str | None = None
) -> ModelChoice:
    s = config.settings()
    model = (model or s.model).strip().lower()
    if model not in config.MODELS:
        raise InvalidOption(f"Unknown model {model!r}: use one of {', '.join(config.MODELS)}.")
    dtype = (dtype or s.dtype).strip().lower()
    if dtype not in config.DTYPES:
        raise InvalidOption(f"Unknown dtype {dtype!r}: use one of {', '.join(config.DTYPES)}.")
    return ModelChoice(model, check_weights(weights or s.weights), check_device_name(device or s.device), dtype)


def _range(test: Callable[[float], bool], rule: str) -> Callable[[str, float], float]:
    def check(name: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidOption(f"--{name.replace('_', '-')} must be a number, not {value!r}.") from None
        if not math.isfinite(number) or not test(number):
            raise InvalidOption(f"--{name.replace('_', '-')} must be {rule}, not {value!r}.")
        return number

    return check


# public option -> (upstream generate keyword, check)
SAMPLING: dict[str, tuple[str, Callable[[str, Any], float]]] = {
    "exaggeration": ("exaggeration", _range(lambda v: 0 <= v <= 10, "between 0 and 10")),
    "cfg": ("cfg_weight", _range(lambda v: 0 <= v <= 10, "between 0 and 10")),
    "temperature": ("temperature", _range(lambda v: 0 < v <= 10, "above 0 and at most 10")),
    "top_p": ("top_p", _range(lambda v: 0 < v <= 1, "above 0 and at most 1")),
    "min_p": ("min_p", _range(lambda v: 0 <= v <= 1, "between 0 and 1")),
    "repetition_penalty": ("repetition_penalty", _range(lambda v: 0 < v <= 10, "above 0 and at most 10")),
}


def sampling(defaults: dict[str, float], **given: Any) -> dict[str, float]:
    """Upstream `generate` keywords: the model's defaults overlaid with checked values."""
    result = dict(defaults)
    for name, value in given.items():
        if value is None:
            continue
        upstream, check = SAMPLING[name]
        result[upstream] = check(name, value)
    return result


def check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        if not (isinstance(value, float) and value.is_integer()):
            raise InvalidOption(f"--{name.replace('_', '-')} must be a whole number, not {value!r}.")
    try:
        number = int(value)
    except ValueError:
        raise InvalidOption(f"--{name.replace('_', '-')} must be a whole number, not {value!r}.") from None
    if not low <= number <= high:
        raise InvalidOption(f"--{name.replace('_', '-')} must be between {low} and {high}, not {number}.")
    return number


def check_max_tokens(max_tokens: Any) -> int:
    """The token cap: upstream's own (1000) unless given."""
    from .engine.specs import DEFAULT_MAX_TOKENS

    return DEFAULT_MAX_TOKENS if max_tokens is None else check_int("max_tokens", max_tokens, 1, MAX_TOKENS_LIMIT)


# The opt-in lossy S3Gen knobs: (low, high) for each
KNOBS = {"cfm_steps": (1, 50), "prompt_tokens": (10, 1000)}


def check_knobs(cfm_steps: Any = None, prompt_tokens: Any = None) -> dict[str, int]:
    """`--cfm-steps` and `--prompt-tokens`, checked; only the ones given (None: upstream's)."""
    given = {"cfm_steps": cfm_steps, "prompt_tokens": prompt_tokens}
    return {name: check_int(name, value, *KNOBS[name]) for name, value in given.items() if value is not None}


def check_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidOption('Nothing to say: give some text, e.g. %chatterbox say "Hello there".')
    return text.strip()


def check_language(model: str, lang: str | None) -> str | None:
    """Multilingual needs a supported code; the English-only models accept only `en`."""
    code = (lang or "en").strip().lower()
    from .engine.specs import SPECS, languages

    if not SPECS[model].takes_language:
        if code != "en":
            raise InvalidOption(f"The {model} model speaks English only; use -m multilingual for --lang {code}.")
        return None
    known = languages()
    if code not in known:
        raise InvalidOption(f"Unknown language {code!r} for {model}: use one of {', '.join(sorted(known))}.")
    return code


def check_out(out: Any) -> Path | None:
    """Where `--out` will write, checked before any generation (a typo must not cost one)."""
    if out is None:
        return None
    path = Path(out).expanduser()
    if path.is_dir():
        raise InvalidOption(f"--out {out} is a folder; give a file name, such as {path / 'speech.wav'}.")
    if not path.parent.is_dir():
        raise InvalidOption(f"--out {out}: the folder {path.parent} does not exist.")
    return path
