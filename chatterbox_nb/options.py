"""Checking user options before anything changes: each mistake is one sentence.

Shared by the API and the magic (whose argparse already did the typing), so the
rules live here once. Defaults come from the `Chatterbox` settings. The say options
are listed once, in `SAY_OPTIONS`: the magic's argparse options are generated from
it, and `say_options` turns them into one checked `SayOptions` value.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import inspect
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from . import config
from .engine.device import check_device_name
from .engine.request import ModelChoice, SayOptions
from .errors import InvalidOption, UnknownKeyword

__all__ = [
    "ModelChoice", "SayOptions", "Option", "SAY_OPTIONS", "say_options", "add_arguments", "choose_model",
    "check_keywords", "keywords_checked", "split_several",
]

MAX_TOKENS_LIMIT = 4096  # T3Config.max_speech_tokens: the learned position table ends there


def choose_model(
    model: str | None = None, weights: str | None = None, device: str | None = None, dtype: str | None = None
) -> ModelChoice:
    from .engine.sources import check_weights  # numpy and safetensors: not at %load_ext

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


def check_stream(stream: Any) -> bool | None:
    """`stream`: True, False, or None (where it pays)."""
    if stream is None or isinstance(stream, bool):
        return stream
    raise InvalidOption(f"--stream must be True, False or None (where it pays), not {stream!r}.")


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
    if path.suffix.lower() != ".wav":
        raise InvalidOption(f"--out {out}: the file is written as WAV; give a name ending in .wav, such as "
                            f"{path.with_suffix('.wav').name}.")
    if not path.parent.is_dir():
        raise InvalidOption(f"--out {out}: the folder {path.parent} does not exist.")
    if not _writable(path):
        raise InvalidOption(f"--out {out}: cannot write in {path.parent}; choose a folder you can write.")
    return path


def _writable(path: Path) -> bool:
    """Whether `path` can be written: a probe file made and removed beside it, since
    permission bits lie (root, read-only mounts, /proc)."""
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".chatterbox-probe-"):
            return True
    except OSError:
        return False


# -- the say options, listed once ----------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One say option: its API keyword (`name`), and how the magic spells and explains it."""

    name: str
    flags: tuple[str, ...]
    help: str | None = None
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # a flag without a value (store_true)
    negatable: bool = False  # --NAME / --no-NAME; neither: None (the default)


MODEL_OPTIONS = (
    Option("model", ("-m", "--model"), "which Chatterbox model", choices=config.MODELS),
    Option("device", ("--device",), "auto, cpu, cuda, cuda:N or mps"),
    Option("dtype", ("--dtype",), "auto (bfloat16 where native, else float32), float32 (upstream exactly), bfloat16, "
           "float16, int8 (CPU, lossy)", choices=config.DTYPES),
    Option("weights", ("--weights",), "hub, dummy, dummy:reduced, or a local checkpoint folder"),
)
VOICE_AND_SAMPLING = (
    Option("lang", ("--lang",), "language code for -m multilingual"),
    Option("voice", ("-v", "--voice"), "a registered voice name, or an audio file (or folder) with the reference voice"),
    *(Option(name, (f"--{name.replace('_', '-')}",), type=float, metavar="X") for name in SAMPLING),
    Option("seed", ("--seed",), "make the utterance reproducible", type=int),
    Option("max_tokens", ("--max-tokens",), "cap on generated speech tokens", type=int, metavar="N"),
    Option("cfm_steps", ("--cfm-steps",), "S3Gen flow-matching steps (faster, lossy; default 10, turbo 2)", type=int,
           metavar="N"),
    Option("prompt_tokens", ("--prompt-tokens",),
           "cut S3Gen's reference prompt to N tokens, 25 a second (faster, lossy; default all, up to 250)", type=int,
           metavar="N"),
)
STREAM_OPTION = Option("stream", ("--stream",), "play each sentence in pieces while it is made (default: where it "
                       "pays, in a notebook: turbo, or any model on a GPU; batch rows never stream)", negatable=True)
OUTPUT_OPTIONS = (
    Option("out", ("-o", "--out"), "also write a WAV file", metavar="PATH"),
    Option("autoplay", ("--autoplay",), "start playing at once", switch=True),
    STREAM_OPTION,
)
#: every keyword of `say` but the text, in the order `%chatterbox say --help` lists them
SAY_OPTIONS = MODEL_OPTIONS + VOICE_AND_SAMPLING + OUTPUT_OPTIONS
SAY_NAMES = tuple(o.name for o in SAY_OPTIONS)


def add_arguments(parser: argparse.ArgumentParser, options: tuple[Option, ...], *, several: bool = False) -> None:
    """The magic's argparse options, generated from the list above; `several`: each option
    that takes a value takes one or more (`%chatterbox compare --seed 0 1 2`)."""
    for o in options:
        if o.switch:
            parser.add_argument(*o.flags, action="store_true", help=o.help)
            continue
        if o.negatable:
            parser.add_argument(*o.flags, action=argparse.BooleanOptionalAction, default=None, help=o.help)
            continue
        extra = {k: v for k, v in (("type", o.type), ("metavar", o.metavar), ("choices", o.choices)) if v is not None}
        if several:
            extra["nargs"] = "+"
        parser.add_argument(*o.flags, help=o.help, **extra)


def split_several(given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """Say options where any value may be a list: (the options held equal, the ones varied
    with their values in order). A list of one value is held equal; an empty list is refused."""
    fixed: dict[str, Any] = {}
    varied: dict[str, tuple[Any, ...]] = {}
    for name, value in given.items():
        if not isinstance(value, (list, tuple)):
            fixed[name] = value
        elif not value:
            raise InvalidOption(f"--{name.replace('_', '-')} was given no values; give one or more.")
        elif len(value) == 1:
            fixed[name] = value[0]
        else:
            varied[name] = tuple(value)
    return fixed, varied


def check_keywords(where: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Refuse a keyword `where` does not take, naming the closest one it does: a typo
    such as `temprature=0.5` must not be accepted and ignored (nor cost a generation)."""
    valid = list(valid)
    for name in given:
        if name in valid:
            continue
        close = difflib.get_close_matches(name, valid, n=1)
        elsewhere = difflib.get_close_matches(name, SAY_NAMES, n=1)
        if close:
            hint = f"did you mean {close[0]}?"
        elif elsewhere:
            hint = f"{elsewhere[0]} is a say option that {where}() does not take."
        else:
            hint = f"it takes {', '.join(valid)}."
        raise UnknownKeyword(f"{where}() has no option {name!r}: {hint}")


F = TypeVar("F", bound=Callable[..., Any])


def keywords_checked(fn: F) -> F:
    """`check_keywords` on every call of `fn`, against its own signature (Python's
    TypeError for an unknown keyword suggests nothing)."""
    params = inspect.signature(fn).parameters.values()
    valid = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_keywords(fn.__name__, kwargs, valid)
        return fn(*args, **kwargs)

    return checked  # type: ignore[return-value]


def say_options(**given: Any) -> SayOptions:
    """Every say option checked, in one place; `given` takes the names in `SAY_OPTIONS`
    (None or absent: the default). The voice stays a name: `voices_api` resolves it."""
    unknown = set(given) - set(SAY_NAMES)
    if unknown:
        raise TypeError(f"say_options() got unexpected keyword(s): {', '.join(sorted(unknown))}")
    g = {name: given.get(name) for name in SAY_NAMES}
    choice = choose_model(g["model"], g["weights"], g["device"], g["dtype"])
    from .engine.specs import SPECS

    language = check_language(choice.model, g["lang"])
    drawn = sampling(SPECS[choice.model].defaults(), **{name: g[name] for name in SAMPLING})
    cap = check_max_tokens(g["max_tokens"])
    seed = None if g["seed"] is None else check_int("seed", g["seed"], 0, 2**63 - 1)
    out = check_out(g["out"])
    knobs = check_knobs(g["cfm_steps"], g["prompt_tokens"])
    stream = check_stream(g["stream"])
    return SayOptions(choice, language, g["voice"], tuple(drawn.items()), seed, cap, out=out,
                      autoplay=bool(g["autoplay"]), stream=stream, **knobs)
