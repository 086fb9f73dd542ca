"""The Python API: plain functions, usable without IPython. The magic calls these.

One `say` reads straight down: check every option (nothing changes on a mistake),
split the text into chunks (`text.py`), get the model from the kernel registry (or
load it), generate the chunks in order under the model's lock (`progressive.py`;
upstream's `generate` with stage timings, chunk by chunk), feed the progressive
player as they come when there are several, wrap the audio in an `Utterance`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from . import config, estimate, loading, options, progressive, voices_api
from ._state import STATE
from .engine.specs import SAMPLE_RATE
from .tasks import LoadTask
from .errors import InvalidOption, ModelNotLoaded, Stopped
from .loading import LoadReport
from .text import chunk_text
from .utterance import Utterance

if TYPE_CHECKING:
    from .engine.models.loader import LoadedModel

__all__ = ["load", "say", "stop", "warmup", "unload", "status", "history", "LoadReport", "LoadTask", "Status"]


def _warmup_level(level: str | None) -> str:
    level = (level or config.settings().warmup).strip().lower()
    if level not in config.WARMUP_LEVELS:
        raise InvalidOption(f"Unknown warm-up level {level!r}: use one of {', '.join(config.WARMUP_LEVELS)}.")
    return level


@options.keywords_checked
def load(
    model: str | None = None,
    *,
    weights: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    warmup: str | None = None,
    wait: bool = False,
    reload: bool = False,
) -> LoadTask | LoadReport:
    """Load a model into the kernel-global cache in the background, then warm it up.

    Returns the running `LoadTask` (it renders as a live progress widget), or with
    `wait=True` the `LoadReport` once the model is ready. A model already in memory
    and warm costs a lookup."""
    choice = options.choose_model(model, weights, device, dtype)
    task = loading.start(choice, _warmup_level(warmup), reload=reload)
    return loading.finish(task) if wait else task


@options.keywords_checked
def warmup(
    model: str | None = None,
    *,
    level: str | None = None,
    wait: bool = False,
    report: bool = False,
    weights: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> LoadTask | LoadReport:
    """(Re)run warm-up in the background; `report=True` also measures a warm call,
    so the figures show cold vs warm."""
    choice = options.choose_model(model, weights, device, dtype)
    level = _warmup_level(level)
    if level == "off":
        raise InvalidOption("Warm-up level 'off' does nothing: use light or full.")
    task = loading.start(choice, level, rewarm=True, measure=report)
    return loading.finish(task) if wait else task


@options.takes_say_options()
def say(text: str, **given: Any) -> Utterance:
    """Synthesize `text`; the result renders as a player plus timings in a notebook.

    Long text is spoken sentence by sentence (chunk `i` seeded `seed + i`, all with
    the same voice), joined with short pauses. In a kernel a progressive player shows
    at once and plays each chunk as it is ready; this returns when all are done, or
    after the current chunk when stopped (the stop button, `stop()`).

    `cfm_steps` (S3Gen's flow-matching steps) and `prompt_tokens` (S3Gen's reference
    prompt, cut to that many tokens) trade quality for speed; off by default.

    `stream`: each sentence is rendered and played in pieces while T3 samples it, so
    the first sound comes after its first tokens (engine/generation/streaming.py). None (default):
    where it pays, in a notebook (turbo, or any model on an accelerator); True/False force it.
    The same seed samples the same tokens either way."""
    start = time.perf_counter()
    text = options.check_text(text)
    opts = options.say_options(**given)
    if given.get("weights") is None:  # the model of that name in memory speaks, not the default weights
        opts = dataclasses.replace(opts, choice=loading.in_memory(opts.choice, device=given.get("device") is not None,
                                                                  dtype=given.get("dtype") is not None))
    choice = opts.choice
    _note_ignored(choice.model, given)
    resolved = voices_api.voices.resolve(given.get("voice"))

    chunks = chunk_text(text, opts.language)

    loaded, timings, result, live = _generate_chunks(opts, text, chunks, resolved)
    audio = result.audio
    timings.update(conditioning_s=result.conditioning_s, voice_source=result.voice_source)
    timings.update(dtype=loaded.dtype, weights=choice.weights, **_s3gen_path(loaded))
    if config.settings().compile:
        from .engine.generation.payoff import warmup_hint

        timings["s3gen_hint"] = warmup_hint(loaded, config.cache_dir())
    timings.update(result.stages)
    timings["total_s"] = time.perf_counter() - start
    _finish_timings(timings, len(audio) / SAMPLE_RATE)
    if len(result.pieces) > 1:  # playable once the first piece reached the player
        timings["first_audio_s"] = result.first_piece_at - start
    timings["chunks_done"], timings["stopped"] = result.chunks_done, result.stopped
    timings["pieces"] = len(result.pieces)

    params = {
        "model": choice.model,
        "weights": choice.weights,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "voice": None if resolved is None else resolved.label,
        "lang": opts.language,
        "seed": opts.seed,
        "max_tokens": opts.max_tokens,
        "chunks": len(chunks),
        "stream": timings.pop("streamed"),
        **opts.generate_kwargs,
        **opts.knobs,
    }
    utt = Utterance(audio, SAMPLE_RATE, text, params, timings, dummy=loaded.is_dummy, autoplay=opts.autoplay,
                    chunks=result.spans)
    if live is not None:
        live.finish(timings, result.stopped)
        live.keep(utt)  # its saved copy, for the saved notebook
        utt.mark_shown()  # the live player is this cell's player: no second one for the same audio
    with STATE.lock:
        STATE.history.append(utt)
    if opts.out is not None:
        utt.save(opts.out)
    return utt


def _note_ignored(model: str, given: dict[str, Any]) -> None:
    """One line, once per say, naming the options this model's `generate` ignores (the
    `chatterbox_nb` logger: in a notebook it prints in the cell, as upstream's own lines do)."""
    from .engine.specs import SPECS

    ignored = SPECS[model].ignored(given)
    if ignored:
        names = ", ".join(f"--{name.replace('_', '-')}" for name in ignored)
        logging.getLogger("chatterbox_nb").warning(f"{model} ignores {names} (chatterbox-tts's {model} does not use them).")


def _generate_chunks(
    opts: options.SayOptions, text: str, chunks: list[str], voice: voices_api.Resolved | None
) -> tuple[Any, dict[str, Any], progressive.RunResult, Any]:
    """Get the model and run the chunks on it, feeding the live player (several
    chunks, in a kernel); a second time only if the model was evicted while we queued."""
    live = None
    choice = opts.choice
    for _attempt in range(2):
        loaded, source, load_s, wait_s = loading.obtain(choice)
        timings: dict[str, Any] = {"model_source": source, "load_s": load_s}
        if opts.stream is None:
            opts = dataclasses.replace(opts, stream=_stream_pays(loaded))
        if live is None and (len(chunks) > 1 or opts.stream):
            live = _show_live_player(text, chunks, loaded.is_dummy, estimate.for_say(loaded, chunks, opts))
        run = progressive.ChunkRun(loaded, chunks, opts, voice, sample_rate=SAMPLE_RATE)
        try:
            result = run.start().wait(
                None if live is None else lambda p: live.add(p.audio, p.stages["speech_tokens"], p.last)
            )
            if not result.chunks_done:
                raise Stopped("Stopped before the first sentence was ready; nothing was made.")
        except progressive.Evicted:
            if loaded.unloaded:  # the user unloaded it: only the user loads it again
                break
            continue  # evicted by the cache (a damaged entry): load it again
        except BaseException as exc:
            if live is not None:
                live.fail(exc)
            raise
        timings["wait_s"] = wait_s + result.lock_wait_s
        timings["streamed"] = bool(opts.stream)
        return loaded, timings, result, live
    error = ModelNotLoaded(f"The {choice.model} model was unloaded while this say waited; run it again.")
    if live is not None:
        live.fail(error)
    raise error


def _s3gen_path(loaded: LoadedModel) -> dict[str, Any]:
    """Which S3Gen path runs (`s3gen_compiled`), in words with its measured factor (`s3gen_path`)."""
    from .engine.generation import compiled, payoff

    tts = loaded.tts
    if tts is None:
        return {"s3gen_compiled": False, "s3gen_path": ""}
    return {"s3gen_compiled": compiled.is_installed(tts), "s3gen_path": payoff.describe(tts)}


def _stream_pays(loaded: LoadedModel) -> bool:
    """Streaming by default: where a player takes the pieces as they come (in a kernel),
    on an accelerator, or on a CPU for the models whose S3Gen calls are cheap (turbo)."""
    from .display.player import _in_kernel

    return _in_kernel() and (loaded.device != "cpu" or loaded.spec.stream_pays_on_cpu)


def _show_live_player(text: str, chunks: list[str], dummy: bool, guess: Any = None) -> Any:
    """The progressive player, shown now, in a kernel with a front end; None elsewhere."""
    from .display.player import _in_kernel

    if not _in_kernel():
        return None
    from IPython.display import display

    from .display.live import SHOW, LivePlayer

    live = LivePlayer(text, len(chunks), SAMPLE_RATE, dummy=dummy, estimate=guess, chunks=chunks)
    live.standalone = SHOW.get() is None
    (SHOW.get() or display)(live)
    return live


def stop() -> int:
    """Stop every long say after the chunk it is generating; each returns what it made.
    Returns how many were running."""
    return progressive.stop_all()


def _finish_timings(timings: dict[str, Any], audio_s: float) -> None:
    """`other_s` is what no stage claims (text normalisation, tokenising, copies),
    so the stages add up to `total_s` exactly."""
    staged = sum(timings.get(k, 0.0) for k in ("load_s", "wait_s", "conditioning_s", "t3_s", "s3gen_s", "watermark_s"))
    timings["other_s"] = max(0.0, timings["total_s"] - staged)
    timings["audio_s"] = audio_s
    timings["rtf"] = timings["total_s"] / audio_s if audio_s > 0 else float("inf")
    timings["first_audio_s"] = timings["total_s"]  # one piece: playable when all is done


def unload(model: str | None = None, *, all: bool = False) -> list[str]:  # noqa: A002 - mirrors --all
    """Drop models from memory (and give GPU memory back); returns what was dropped."""
    from .engine.models import loader

    if not all:
        model = options.choose_model(model).model
    loading.cancel_all(join_s=10.0, model=None if all else model)
    for loaded in loader.loaded_models():
        if all or loaded.name == model:
            loaded.unloaded = True  # first: a say queued for it must not start once the running one stops
    progressive.stop_all()  # a long say holds the model until its current chunk ends
    if all:
        from .engine.models.memory import stop_idle_timer

        stop_idle_timer()
    dropped = []
    for loaded in loader.loaded_models():
        if all or loaded.name == model:
            loader.drop(loaded.key)
            dropped.append(f"{loaded.name} ({loaded.device}, {loaded.dtype})")
    return dropped


class Status:
    """Models in memory, settings and the cache dir; renders as a table."""

    def __init__(self) -> None:
        from .engine.models import loader, memory

        s = config.settings()
        now = time.time()
        self.settings = {name: getattr(s, name) for name in s.trait_names(config=True)}
        self.cache_dir = str(config.cache_dir())
        self.models = [
            {
                "model": m.name,
                "source": m.source.kind,
                "device": m.device,
                "dtype": m.dtype,
                "memory_gib": round(m.nbytes / 2**30, 3),
                "load_s": round(m.load_s, 2),
                "dummy": m.is_dummy,
                "warmed": m.warmed,
                "last_used": memory.ago(now - m.last_used),
                "in_use": m.busy,
                "s3gen": _s3gen_path(m)["s3gen_path"],
            }
            for m in loader.loaded_models()
        ]
        #: per kind of memory with models on it (or the host's): what they hold and may hold
        pools = {memory.pool(m["device"]): m["device"] for m in self.models} or {"host": "cpu"}
        self.budget = [
            {
                "memory": name,
                "held_gib": round(sum(m["memory_gib"] for m in self.models if memory.pool(m["device"]) == name), 2),
                "budget_gib": round(memory.budget_bytes(device) / 2**30, 2),
            }
            for name, device in sorted(pools.items())
        ]
        self.budget_from = memory.budget_source()
        self.idle_unload = s.idle_unload
        with STATE.lock:
            self.unloaded = {k: f"{why}, {memory.ago(now - when)}" for k, (why, when) in STATE.unloaded.items()}
        with STATE.lock:
            self.history = STATE.history.describe()  # how many, and how much audio they hold
        self.voices = voices_api.voices.names()
        with STATE.lock:
            self.tasks = [t.summary() for t in STATE.tasks.values() if not t.done or t.failed]

    def __repr__(self) -> str:
        lines = [f"chatterbox_nb: {len(self.models)} model(s) in memory, cache dir {self.cache_dir}"]
        for m in self.models:
            lines.append(
                f"  {m['model']}: {m['source']}, {m['device']}, {m['dtype']}, {m['memory_gib']} GiB, "
                f"loaded in {m['load_s']} s, warm-up {m['warmed']}, last used {m['last_used']}"
                f"{' (in use)' if m['in_use'] else ''}{' (dummy weights)' if m['dummy'] else ''}"
                f"{'; ' + m['s3gen'] if m['s3gen'] else ''}"
            )
        lines.append(f"  memory: {self.budget_line()}")
        if self.unloaded:
            lines.append("  unloaded: " + ", ".join(f"{k} ({v})" for k, v in sorted(self.unloaded.items())))
        for task in self.tasks:
            lines.append(f"  background: {task}")
        lines.append(f"  voices: {', '.join(self.voices) or 'none yet (%chatterbox voice add NAME FILE)'}")
        lines.append(f"  utterances this kernel: {self.history}")
        lines.append("  defaults: " + ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items())))
        return "\n".join(lines)

    def budget_line(self) -> str:
        """What the models hold and what the budget allows, per kind of memory; idle unload."""
        held = "; ".join(f"{b['memory']} {b['held_gib']:.2f} of {b['budget_gib']:.2f} GiB" for b in self.budget)
        idle = f"after {self.idle_unload:g} min idle" if self.idle_unload else "off"
        return f"{held} ({self.budget_from}); idle unload {idle}"

    def _repr_html_(self) -> str:
        from .display.status import status_html

        return status_html(self)


def status() -> Status:
    return Status()


def history() -> list[Utterance]:
    """This kernel's utterances, oldest first."""
    with STATE.lock:
        return list(STATE.history)

