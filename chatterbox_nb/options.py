"""Checking user options before anything changes: each mistake is one sentence.

Shared by the API and the magic (whose argparse already did the typing), so the
rules live here once. Defaults come from the `Chatterbox` settings. Each say option
is declared once, in `SAY_OPTIONS` (type, range, step, default, help, place in the
`ui` panel): the magic's parsers, the keywords of `say` and `batch`, the panel's
widgets and the help are made from it, and `say_options` turns given values into one
checked `SayOptions` value.
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
from .engine.models.device import check_device_name
from .engine.request import ModelChoice, SayOptions
from .engine.specs import DEFAULT_MAX_TOKENS
from .engine.store.weights import WEIGHTS_VALUES
from .errors import InvalidOption, UnknownKeyword

__all__ = [
    "ModelChoice", "SayOptions", "Option", "SAY_OPTIONS", "BATCH_OPTIONS", "say_options", "add_arguments",
    "choose_model", "check_keywords", "keywords_checked", "takes_say_options", "split_several",
]



def choose_model(
    model: str | None = None, weights: str | None = None, device: str | None = None, dtype: str | None = None
) -> ModelChoice:
    from .engine.store.sources import check_weights  # numpy and safetensors: not at %load_ext

    s = config.settings()
    model = (model or s.model).strip().lower()
    if model not in config.MODELS:
        raise InvalidOption(f"Unknown model {model!r}: use one of {', '.join(config.MODELS)}.")
    dtype = (dtype or s.dtype).strip().lower()
    if dtype not in config.DTYPES:
        raise InvalidOption(f"Unknown dtype {dtype!r}: use one of {', '.join(config.DTYPES)}.")
    return ModelChoice(model, check_weights(weights or s.weights), check_device_name(device or s.device), dtype)


def _field(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        if not (isinstance(value, float) and value.is_integer()):
            raise InvalidOption(f"{_field(name)} must be a whole number, not {value!r}.")
    try:
        number = int(value)
    except ValueError:
        raise InvalidOption(f"{_field(name)} must be a whole number, not {value!r}.") from None
    if not low <= number <= high:
        raise InvalidOption(f"{_field(name)} must be between {low} and {high}, not {number}.")
    return number


def check_float(name: str, value: Any, low: float, high: float, above: bool = False) -> float:
    """A finite number in [low, high] (in (low, high] when `above`)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidOption(f"{_field(name)} must be a number, not {value!r}.") from None
    if not math.isfinite(number) or not (low < number if above else low <= number) or number > high:
        raise InvalidOption(f"{_field(name)} must be {_rule(low, high, above)}, not {value!r}.")
    return number


def _rule(low: float, high: float, above: bool) -> str:
    return f"above {low:g} and at most {high:g}" if above else f"between {low:g} and {high:g}"


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


# -- the say options, declared once ------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One say option, declared once: its API keyword (`name`), how the magic spells it,
    its type, range, step and default, and where the `ui` panel shows it. The magic's
    parsers, the checks of `say` and `batch`, the panel's widgets and the help are all
    made from these, so a new option needs no other edit to reach them."""

    name: str
    flags: tuple[str, ...]
    help: str | None = None
    type: Callable[[str], Any] | None = None  # float or int: a number checked against low..high
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # a flag without a value (store_true)
    negatable: bool = False  # --NAME / --no-NAME; neither: None (the default)
    low: float = 0
    high: float = 0
    above: bool = False  # `low` itself is refused (a temperature of 0)
    step: float | None = None  # the panel's slider step (a float option)
    #: the value when none is given; for an `upstream` option it is the model's (`default_for`)
    default: Any = None
    #: the upstream `generate` keyword the value goes to (sampling), if any
    upstream: str | None = None
    #: what no value means, where there is no default number (help text, empty panel box)
    unset: str = "none"
    panel: str | None = None  # "main", "advanced", or None: passed through as given, no widget
    label: str | None = None  # the panel's label (default: the name, spaced)
    batch: bool = True  # `batch` takes it too (not --out and --autoplay: a batch writes a folder)

    def check(self, value: Any) -> Any:
        """The value checked against the declared type and range (None stays None)."""
        if value is None:
            return None
        if self.type is float:
            return check_float(self.name, value, self.low, self.high, self.above)
        if self.type is int:
            return check_int(self.name, value, int(self.low), int(self.high))
        return value

    def default_for(self, model: str) -> Any:
        """The default a say uses: the model's upstream default for a sampling option."""
        if self.upstream is None:
            return self.default
        from .engine.specs import SPECS

        return SPECS[model].defaults()[self.upstream]

    @property
    def caption(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def help_text(self) -> str | None:
        """The help with the declared range and default appended."""
        if self.type not in (float, int) or self.high <= self.low:
            return self.help
        if self.upstream is not None:
            default = "the model's"
        else:
            default = self.unset if self.default is None else f"{self.default:g}"
        low, high = f"{self.low:g}", f"{self.high:g}" if self.high < 1e6 else "2**63-1"
        rule = f"above {low}, at most {high}" if self.above else f"{low} to {high}"
        return f"{self.help + ' ' if self.help else ''}({rule}; default: {default})"


def _sampling(name: str, help: str, low: float, high: float, step: float, panel: str, upstream: str | None = None,
              above: bool = False, label: str | None = None) -> Option:
    return Option(name, (_field(name),), help, type=float, metavar="X", low=low, high=high, above=above, step=step,
                  upstream=upstream or name, panel=panel, label=label)


MODEL_OPTIONS = (
    Option("model", ("-m", "--model"), "which Chatterbox model", choices=config.MODELS, panel="main"),
    Option("device", ("--device",), "auto, cpu, cuda, cuda:N or mps"),
    Option("dtype", ("--dtype",), "auto (bfloat16 where native, else float32), float32 (upstream exactly), bfloat16, "
           "float16, int8 (CPU, lossy)", choices=config.DTYPES),
    Option("weights", ("--weights",), WEIGHTS_VALUES),
)
# Ranges: upstream's own Gradio demo sliders where they are (exaggeration 0.25-2, cfg 0-1,
# temperature 0.05-5, min_p 0-1, top_p 0-1, repetition penalty 1-2), widened to what is
# still meaningful (exaggeration from 0; repetition penalty to 3: multilingual's default is 2).
SAMPLING_OPTIONS = (
    _sampling("exaggeration", "emotion intensity", 0, 2, 0.05, "main"),
    _sampling("cfg", "classifier-free guidance weight", 0, 1, 0.05, "main", upstream="cfg_weight"),
    _sampling("temperature", "sampling temperature", 0, 5, 0.05, "main", above=True),
    _sampling("top_p", "nucleus sampling: keep the likeliest tokens up to this mass", 0, 1, 0.01, "advanced",
              above=True, label="top-p"),
    _sampling("min_p", "drop tokens below this fraction of the likeliest", 0, 1, 0.01, "advanced", label="min-p"),
    _sampling("repetition_penalty", "penalty on tokens already sampled, 1 for none", 1, 3, 0.05, "advanced"),
)
VOICE_AND_SAMPLING = (
    Option("lang", ("--lang",), "language code for -m multilingual", panel="main", label="language"),
    Option("voice", ("-v", "--voice"), "a registered voice name, or an audio file (or folder) with the reference voice",
           panel="main"),
    *SAMPLING_OPTIONS,
    Option("seed", ("--seed",), "make the utterance reproducible", type=int, low=0, high=2**63 - 1, panel="main"),
    # T3Config.max_speech_tokens: the learned position table ends at 4096
    Option("max_tokens", ("--max-tokens",), "cap on generated speech tokens", type=int, metavar="N", low=1,
           high=4096, default=DEFAULT_MAX_TOKENS, panel="advanced"),
    Option("cfm_steps", ("--cfm-steps",), "S3Gen flow-matching steps (faster, lossy)", type=int, metavar="N", low=1,
           high=50, unset="upstream's, 10 (turbo 2)", panel="advanced", label="CFM steps"),
    Option("prompt_tokens", ("--prompt-tokens",),
           "cut S3Gen's reference prompt to N tokens, 25 a second (faster, lossy)", type=int, metavar="N", low=10,
           high=1000, unset="all", panel="advanced"),
)
STREAM_OPTION = Option("stream", ("--stream",), "play each sentence in pieces while it is made (default: where it "
                       "pays, in a notebook: turbo, or any model on a GPU; batch rows never stream)", negatable=True,
                       panel="advanced")
OUTPUT_OPTIONS = (
    Option("out", ("-o", "--out"), "also write a WAV file", metavar="PATH", batch=False),
    Option("autoplay", ("--autoplay",), "start playing at once", switch=True, batch=False),
    STREAM_OPTION,
)
#: every keyword of `say` but the text, in the order `%chatterbox say --help` lists them
SAY_OPTIONS = MODEL_OPTIONS + VOICE_AND_SAMPLING + OUTPUT_OPTIONS
SAY_NAMES = tuple(o.name for o in SAY_OPTIONS)
#: the say options `batch` takes as well (its own --out is the output folder)
BATCH_OPTIONS = tuple(o for o in SAY_OPTIONS if o.batch)
BY_NAME = {o.name: o for o in SAY_OPTIONS}


def add_arguments(parser: argparse.ArgumentParser, options: tuple[Option, ...], *, several: bool = False) -> None:
    """The magic's argparse options, generated from the declarations above; `several`: each
    option that takes a value takes one or more (`%chatterbox compare --seed 0 1 2`)."""
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
        parser.add_argument(*o.flags, help=o.help_text, **extra)


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
    return takes_say_options(())(fn)


def takes_say_options(declared: tuple[Option, ...] = SAY_OPTIONS) -> Callable[[F], F]:
    """`fn(..., **say)` takes every declared option as a keyword (its signature, and so
    `help()`, lists them; `say` gets only those given) and refuses any other keyword with
    `check_keywords`'s sentence: `say` and `batch` take a new option with no edit of theirs."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in own}
        added = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation=_annotation(o))
                 for o in declared if o.name not in taken]
        valid = [p.name for p in own if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)] + [p.name for p in added]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            check_keywords(fn.__name__, kwargs, valid)
            return fn(*args, **kwargs)

        if added:
            call.__signature__ = sig.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
            call.__doc__ = (fn.__doc__ or "") + "\n\nOptions (None: the default):\n" + "\n".join(
                f"    {o.name}: {o.help_text or ''}" for o in declared if o.name not in taken)
        return call  # type: ignore[return-value]

    return decorate


def _annotation(o: Option) -> str:
    kind = o.type.__name__ if o.type in (float, int) else "bool" if o.switch or o.negatable else "str"
    return f"{kind} | None"


def sampling(model: str, given: dict[str, Any]) -> dict[str, float]:
    """Upstream `generate` keywords: the model's defaults overlaid with checked values."""
    from .engine.specs import SPECS

    result = dict(SPECS[model].defaults())
    for o in SAY_OPTIONS:
        if o.upstream is not None and given.get(o.name) is not None:
            result[o.upstream] = o.check(given[o.name])
    return result


def say_options(**given: Any) -> SayOptions:
    """Every say option checked, in one place; `given` takes the names in `SAY_OPTIONS`
    (None or absent: the default). The voice stays a name: `voices_api` resolves it."""
    unknown = set(given) - set(SAY_NAMES)
    if unknown:
        raise TypeError(f"say_options() got unexpected keyword(s): {', '.join(sorted(unknown))}")
    g = {o.name: o.check(given.get(o.name)) for o in SAY_OPTIONS}
    choice = choose_model(g["model"], g["weights"], g["device"], g["dtype"])
    language = check_language(choice.model, g["lang"])
    drawn = sampling(choice.model, g)
    cap = BY_NAME["max_tokens"].default if g["max_tokens"] is None else g["max_tokens"]
    out = check_out(g["out"])
    stream = check_stream(g["stream"])
    return SayOptions(choice, language, g["voice"], tuple(drawn.items()), g["seed"], cap, out=out,
                      autoplay=bool(g["autoplay"]), stream=stream, cfm_steps=g["cfm_steps"],
                      prompt_tokens=g["prompt_tokens"])
