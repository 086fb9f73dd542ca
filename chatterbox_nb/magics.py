"""`%chatterbox` and `%%chatterbox`: parsing and dispatch only.

Each subcommand has an argparse parser (shell quoting via `shlex`, never
`line.split`) and a handler that calls the Python API. A user mistake — from
argparse or a `ChatterboxError` of the API — becomes one `UsageError` line, and is
raised before anything changes.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import config, options
from .engine.store.weights import WEIGHTS_USAGE
from .errors import ChatterboxError

HELP = f"""\
%chatterbox SUBCOMMAND [options]     (%chatterbox SUBCOMMAND --help for its options)

  say TEXT [opts]    synthesize TEXT; shows a player and a timing widget; returns an Utterance
  compare TEXT [opts, each with one or more values]
                     say TEXT once per combination of the values, side by side in a grid
                     that fills in the background (--seed 0 1 2 --exaggeration 0.3 0.7);
                     each cell shows the say line that reproduces it; returns a Comparison
  load [opts]        load a model into the kernel-global cache, in the background
                     (--wait blocks; --warmup off|light|full; --reload)
  warmup [--level light|full] [--wait] [--report]
                     (re)run warm-up; --report measures cold vs warm
  unload [-m MODEL | --all]
                     drop models from memory
  status             models in memory, their source, device, dtype, memory and last use;
                     the memory budget (Chatterbox.memory_limit, .idle_unload); settings
  voice add NAME PATH [PATH ...] [--weights W ...]
                     register a reference voice (several files, or a folder, blend)
  voice list | voice remove NAME
                     the voices, their files, models cached for, disk use
  cache info|verify|clear [-m MODEL]
                     the disk cache: entries and sizes / check every checksum / delete
  history            this kernel's utterances: text, model, voice, params, timings;
                     Replay and Save (a WAV) on each row
  ui [say opts]      an interactive panel: text, model/voice/language pickers, sliders,
                     Generate, player, timings (say options preset its widgets)
  batch PATH --out DIR [--engine local|ray] [--workers N] [--address ADDR] [say opts]
                     every line/row of a .txt/.csv/.jsonl file into WAVs plus a manifest;
                     re-running resumes (--seed is the batch seed, --threads per row)
  help               this text

%%chatterbox [say opts]   the cell body is the text. Long text is said sentence by sentence:
                     a progressive player starts on the first while the rest is made;
                     the stop button (or cnb.stop()) ends it after the current sentence
                     and keeps what was made. Each sentence plays in pieces while it is
                     made (--stream; by default where it pays: turbo, any model on a GPU).

Common options: -m/--model {"|".join(config.MODELS)}, --device auto|cpu|cuda[:N]|mps,
--dtype auto|float32|bfloat16|float16|int8, --weights {WEIGHTS_USAGE}.
Speed (lossy, off by default): --cfm-steps N, --prompt-tokens N, --dtype int8.
Settings: %config Chatterbox (model, device, dtype, threads, weights, warmup, autoload, cache_dir).
"""


class _HelpShown(Exception):
    """argparse printed --help; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}{self._closest(message)} (see {self.prog} --help)")

    def _closest(self, message: str) -> str:
        """For a misspelt option, the closest one this subcommand takes (as `options.check_keywords` does)."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        flags = [f for a in self._actions for f in a.option_strings if f.startswith("--")]
        for word in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(word.split("=")[0], flags, n=1) if word.startswith("--") else []
            if close:
                return f"; did you mean {close[0]}?"
        return ""

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message)
        raise _HelpShown


def _parser(name: str, description: str) -> _Parser:
    return _Parser(prog=f"%chatterbox {name}", description=description, add_help=True, allow_abbrev=False)


def _model_options(p: argparse.ArgumentParser) -> None:
    options.add_arguments(p, options.MODEL_OPTIONS)


def _say_options(p: argparse.ArgumentParser, text: bool = True) -> None:
    """The say options, generated from `options.SAY_OPTIONS` (what `say` takes)."""
    if text:
        p.add_argument("text", nargs="*", help="what to say (quote it)")
    options.add_arguments(p, options.SAY_OPTIONS)


def _build_parsers() -> dict[str, _Parser]:
    say = _parser("say", "Synthesize speech and show it inline.")
    _say_options(say)
    load = _parser("load", "Load a model into the kernel-global cache.")
    _model_options(load)
    load.add_argument("--warmup", choices=config.WARMUP_LEVELS, help="warm-up level after loading")
    load.add_argument("--wait", action="store_true", help="block until loaded and warm (the stop button stops waiting)")
    load.add_argument("--reload", action="store_true", help="ignore the memory cache")
    cell = _Parser(prog="%%chatterbox", description="The cell body is the text; options as for say.", allow_abbrev=False)
    _say_options(cell, text=False)
    unload = _parser("unload", "Drop models from memory.")
    unload.add_argument("-m", "--model", choices=config.MODELS)
    unload.add_argument("--all", action="store_true")
    warmup = _parser("warmup", "(Re)run warm-up in the background.")
    _model_options(warmup)
    warmup.add_argument("--level", choices=config.WARMUP_LEVELS[1:], default=None)
    warmup.add_argument("--wait", action="store_true", help="block until done")
    warmup.add_argument("--report", action="store_true", help="measure a warm call too: cold vs warm figures")
    voice = _parser("voice", "Reference voices, kept across kernels in the cache dir.")
    actions = voice.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="add|list|remove")
    add = actions.add_parser("add", prog="%chatterbox voice add", help="register a voice", allow_abbrev=False)
    add.add_argument("name", help="letters, digits, '_', '-', '.'")
    add.add_argument("paths", nargs="+", metavar="PATH", help="audio files, or a folder of them; several blend")
    add.add_argument("--weights", nargs="+", type=float, metavar="W", help="one blend weight per file (default equal)")
    actions.add_parser("list", prog="%chatterbox voice list", help="list voices", allow_abbrev=False)
    remove = actions.add_parser("remove", prog="%chatterbox voice remove", help="remove a voice", allow_abbrev=False)
    remove.add_argument("name")
    cache = _parser("cache", "The disk weight cache.")
    cache.add_argument("action", choices=("info", "verify", "clear"))
    cache.add_argument("-m", "--model", choices=config.MODELS, help="with clear: only this model")
    return {
        "say": say,
        "compare": _compare_parser(),
        "batch": _batch_parser(),
        "cache": cache,
        "voice": voice,
        "warmup": warmup,
        "load": load,
        "unload": unload,
        "status": _parser("status", "Models in memory and settings."),
        "help": _parser("help", "Usage."),
        "history": _parser("history", "This kernel's utterances, each with Replay and Save."),
        "ui": _ui_parser(),
        "%%cell": cell,
    }


def _ui_parser() -> _Parser:
    ui = _parser("ui", "An interactive panel; say options preset its widgets.")
    _say_options(ui, text=False)
    return ui


def _compare_parser() -> _Parser:
    from .comparison import NOT_COMPARED

    p = _parser("compare", "Say TEXT once per combination of the option values given (several values per option).")
    p.add_argument("text", nargs="*", help="what to say (quote it)")
    options.add_arguments(p, tuple(o for o in options.SAY_OPTIONS if o.name not in NOT_COMPARED), several=True)
    p.add_argument("--wait", action="store_true", help="block until every cell is made (the stop button stops the grid)")
    p.add_argument("--normalise", action="store_true", help="even out the cells' loudness for listening (WAVs untouched)")
    return p


def _batch_parser() -> _Parser:
    p = _parser("batch", "Synthesize every line (.txt) or row (.csv, .jsonl: text, voice, seed, id) into WAVs plus a manifest.")
    p.add_argument("path", help="a .txt, .csv or .jsonl file")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the WAVs and manifest.jsonl")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="this kernel's model, or Ray actors")
    p.add_argument("--workers", type=int, metavar="N", help="Ray actors, one model each (default 2)")
    p.add_argument("--address", help="an existing Ray cluster (default: start Ray on this machine)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads per row, on every engine (default 1)")
    options.add_arguments(p, options.BATCH_OPTIONS)
    return p


def _say_kwargs(ns: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(ns, k) for k in options.SAY_NAMES}


@magics_class
class ChatterboxMagics(Magics):
    """Thin layer over `chatterbox_nb.api`."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.parsers = _build_parsers()
        self.handlers: dict[str, Callable[[argparse.Namespace], Any]] = {
            "say": self._say,
            "compare": self._compare,
            "batch": self._batch,
            "load": self._load,
            "unload": self._unload,
            "status": self._status,
            "cache": self._cache,
            "voice": self._voice,
            "warmup": self._warmup,
            "help": self._help,
            "history": self._history,
            "ui": self._ui,
        }

    @line_cell_magic
    def chatterbox(self, line: str, cell: str | None = None) -> Any:
        """Chatterbox text-to-speech: `%chatterbox help` lists the subcommands."""
        try:
            if cell is not None:
                ns = self.parsers["%%cell"].parse_args(self._split(line))
                ns.text = [cell]
                return self._call(self._say, ns)
            words = self._split(line)
            if not words:
                return self._help(None)
            name, rest = words[0].lower(), words[1:]
            if name not in self.handlers:
                raise UsageError(f"Unknown subcommand {words[0]!r}: use one of {', '.join(self.handlers)}.")
            return self._call(self.handlers[name], self.parsers[name].parse_args(rest))
        except _HelpShown:
            return None

    # -- parsing -------------------------------------------------------------------------

    @staticmethod
    def _split(line: str) -> list[str]:
        try:
            return shlex.split(line)
        except ValueError as exc:  # "No closing quotation"
            raise UsageError(f"%chatterbox: {exc}; check the quotes in: {line.strip()}") from None

    @staticmethod
    def _call(handler: Callable[[argparse.Namespace], Any], ns: argparse.Namespace) -> Any:
        try:
            return handler(ns)
        except ChatterboxError as exc:
            raise UsageError(str(exc)) from None

    # -- handlers ------------------------------------------------------------------------

    def _say(self, ns: argparse.Namespace) -> Any:
        from . import api

        return api.say(" ".join(ns.text), **_say_kwargs(ns)).show()

    def _compare(self, ns: argparse.Namespace) -> Any:
        from .comparison import NOT_COMPARED, compare

        given = {k: getattr(ns, k) for k in options.SAY_NAMES if k not in NOT_COMPARED and getattr(ns, k) is not None}
        cmp = compare(" ".join(ns.text), wait=ns.wait or None, normalise=ns.normalise, **given)  # None: as the API
        return cmp if ns.wait else cmp.show()  # waiting, it showed its grid first

    def _batch(self, ns: argparse.Namespace) -> Any:
        from .batching.run import batch

        say = {o.name: getattr(ns, o.name) for o in options.BATCH_OPTIONS if o.name != "seed"}
        seed = {} if ns.seed is None else {"seed": ns.seed}  # the batch seed: 0 unless given
        try:
            return batch(ns.path, ns.out, engine=ns.engine, workers=ns.workers, address=ns.address, threads=ns.threads,
                         **say, **seed)
        except KeyboardInterrupt:
            print("Stopped; the rows made are kept in the manifest: run the same command again to resume.")
            return None

    def _load(self, ns: argparse.Namespace) -> Any:
        from . import api

        task = api.load(ns.model, weights=ns.weights, device=ns.device, dtype=ns.dtype, warmup=ns.warmup, reload=ns.reload)
        return self._maybe_wait(task, ns.wait, "loading")

    def _warmup(self, ns: argparse.Namespace) -> Any:
        from . import api

        task = api.warmup(
            ns.model, level=ns.level, report=ns.report, weights=ns.weights, device=ns.device, dtype=ns.dtype
        )
        return self._maybe_wait(task, ns.wait, "warm-up")

    @staticmethod
    def _maybe_wait(task: Any, wait: bool, what: str) -> Any:
        """Return the live task, or wait for its report; the stop button only stops the waiting."""
        from IPython.display import display

        from .loading import finish

        if not wait:
            return task.show()
        live = display(task._repr_mimebundle_(), raw=True, display_id=True)
        try:
            report = finish(task)
        except KeyboardInterrupt:
            print(f"Stopped waiting; the {what} goes on in the background (see %chatterbox status).")
            return None
        # the live line becomes the report (also in the saved notebook); the cell's value does not repeat it
        live.update(report._repr_mimebundle_(), raw=True)
        report.mark_shown()
        return report

    def _unload(self, ns: argparse.Namespace) -> None:
        from . import api

        if ns.all and ns.model:
            raise UsageError("%chatterbox unload: give -m MODEL or --all, not both.")
        dropped = api.unload(ns.model, all=ns.all)
        print("Unloaded " + ", ".join(dropped) if dropped else "No such model in memory.")

    def _status(self, ns: argparse.Namespace) -> Any:
        from . import api

        return api.status()

    def _cache(self, ns: argparse.Namespace) -> Any:
        from .cache_api import cache

        if ns.model and ns.action != "clear":
            raise UsageError("%chatterbox cache: -m goes with clear only.")
        if ns.action == "info":
            return cache.info()
        if ns.action == "verify":
            report = cache.verify()
            bad = {k: v for k, v in report.items() if v}
            print(f"{len(report)} entr{'y' if len(report) == 1 else 'ies'} checked, {len(bad)} bad" + "".join(
                f"\n  {k}: {'; '.join(v)} (removed; rebuilt at next load)" for k, v in bad.items()))
            return None
        removed = cache.clear(ns.model)
        print("Removed " + ", ".join(removed) if removed else "Nothing to remove.")
        return None

    def _voice(self, ns: argparse.Namespace) -> Any:
        from .voices_api import voices

        if ns.action == "add":
            print(voices.add(ns.name, *ns.paths, weights=ns.weights))
            return None
        if ns.action == "remove":
            voices.remove(ns.name)
            print(f"Removed voice {ns.name!r}.")
            return None
        return voices.list()

    def _history(self, ns: argparse.Namespace) -> Any:
        from .controllers.history import history_table

        return history_table()

    def _ui(self, ns: argparse.Namespace) -> Any:
        from .controllers.panel import ui

        return ui(**_say_kwargs(ns))

    def _help(self, ns: argparse.Namespace | None) -> None:
        print(HELP)


def full_help() -> str:
    """The overview, then every subcommand's own `--help`: what `%chatterbox?` shows,
    generated from the parsers the magic runs, so the two cannot drift."""
    parts = [HELP]
    for parser in _build_parsers().values():
        parts.append(parser.format_help())
    return "\n".join(parts)


# `%chatterbox?` (and `help()` on the magic) show the full help, not one line
ChatterboxMagics.chatterbox.__doc__ = full_help()
