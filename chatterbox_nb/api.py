"""The Python API: plain functions, usable without IPython. The magic calls these.

One `say` reads straight down: check every option (nothing changes on a mistake),
get the model from the kernel registry (or load it), take the model's lock, run
upstream's `generate` with stage timings, wrap the audio in an `Utterance`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from . import config, options
from ._state import STATE
from .engine.specs import DEFAULT_MAX_TOKENS, SAMPLE_RATE, SPECS
from .errors import AudioFileError, InvalidOption
from .utterance import Utterance

__all__ = ["load", "say", "unload", "status", "history", "LoadReport", "Status"]


class LoadReport:
    """What `load` did: which model, from where, how long, how much memory."""

    def __init__(self, loaded: Any, source: str, seconds: float, warmup_s: float = 0.0) -> None:
        self.model = loaded.name
        self.warmed = loaded.warmed
        self.warmup_s = warmup_s
        self.source = source
        self.seconds = seconds
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.nbytes = loaded.nbytes
        self.dummy = loaded.is_dummy

    def __repr__(self) -> str:
        noise = " (dummy weights: output is noise)" if self.dummy else ""
        return (
            f"{self.model} ready on {self.device} ({self.dtype}, {self.nbytes / 2**30:.2f} GiB), "
            f"from {self.source} in {self.seconds:.2f} s; warm-up {self.warmed}"
            f"{f' ({self.warmup_s:.2f} s)' if self.warmup_s else ''}{noise}"
        )


def _load(choice: options.ModelChoice, reload: bool = False) -> tuple[Any, str, float]:
    from .engine import loader
    from .engine.device import resolve_device

    device = resolve_device(choice.device)
    start = time.perf_counter()
    loaded, source = loader.get_or_load(
        SPECS[choice.model], choice.weights, device, choice.dtype, config.cache_dir(), reload=reload
    )
    return loaded, source, time.perf_counter() - start


def load(
    model: str | None = None,
    *,
    weights: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    warmup: str | None = None,
    reload: bool = False,
) -> LoadReport:
    """Load a model into the kernel-global cache (a no-op when it is already there),
    then warm it up unless it already is."""
    choice = options.choose_model(model, weights, device, dtype)
    level = (warmup or config.settings().warmup).strip().lower()
    if level not in config.WARMUP_LEVELS:
        raise InvalidOption(f"Unknown warm-up level {level!r}: use one of {', '.join(config.WARMUP_LEVELS)}.")
    loaded, source, seconds = _load(choice, reload=reload)
    warmup_s = 0.0
    if config.WARMUP_LEVELS.index(level) > config.WARMUP_LEVELS.index(loaded.warmed):
        from .engine.warmup import warm

        warmup_s = warm(loaded, level)
        loaded.warmed, loaded.warmup_s = level, warmup_s
    return LoadReport(loaded, source, seconds, warmup_s)


def say(
    text: str,
    *,
    model: str | None = None,
    voice: str | None = None,
    lang: str | None = None,
    exaggeration: float | None = None,
    cfg: float | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
    max_tokens: int | None = None,
    out: str | Path | None = None,
    autoplay: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    weights: str | None = None,
) -> Utterance:
    """Synthesize `text`; the result renders as a player plus timings in a notebook."""
    start = time.perf_counter()
    text = options.check_text(text)
    choice = options.choose_model(model, weights, device, dtype)
    spec = SPECS[choice.model]
    language = options.check_language(choice.model, lang)
    sampling = options.sampling(
        spec.defaults(),
        exaggeration=exaggeration,
        cfg=cfg,
        temperature=temperature,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
    )
    cap = DEFAULT_MAX_TOKENS if max_tokens is None else options.check_int("max_tokens", max_tokens, 1, options.MAX_TOKENS_LIMIT)
    seed = None if seed is None else options.check_int("seed", seed, 0, 2**63 - 1)
    voice_path = _voice_file(voice)

    from .engine import synth

    loaded, source, load_s = _load(choice)
    timings: dict[str, Any] = {"model_source": source, "load_s": 0.0 if source == "memory" else load_s}
    lock_start, reload_s = time.perf_counter(), 0.0
    loaded.lock.acquire()
    if loaded.tts is None:  # evicted while we waited (unload, or a failed cache check): load again
        loaded.lock.release()
        loaded, source, reload_s = _load(choice)
        timings.update(model_source=source, load_s=timings["load_s"] + reload_s)
        loaded.lock.acquire()
    with _held(loaded.lock):
        timings["wait_s"] = time.perf_counter() - lock_start - reload_s
        conds = None
        cond_start = time.perf_counter()
        if voice_path is not None:
            conds = synth.compute_conditionals(loaded.tts, spec, str(voice_path), sampling["exaggeration"])
        timings["conditioning_s"] = time.perf_counter() - cond_start
        audio, stages = synth.generate(
            loaded.tts,
            spec,
            text,
            conds=conds,
            language=language,
            max_tokens=cap,
            seed=seed,
            sampling=sampling,
            renderable_only=loaded.is_dummy,
        )
    timings.update(stages)
    timings["total_s"] = time.perf_counter() - start
    _finish_timings(timings, len(audio) / SAMPLE_RATE)

    params = {
        "model": choice.model,
        "weights": choice.weights,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "voice": voice,
        "lang": language,
        "seed": seed,
        "max_tokens": cap,
        **sampling,
    }
    utt = Utterance(audio, SAMPLE_RATE, text, params, timings, dummy=loaded.is_dummy, autoplay=autoplay)
    with STATE.lock:
        STATE.history.append(utt)
    if out is not None:
        utt.save(out)
    return utt


@contextlib.contextmanager
def _held(lock: Any) -> Iterator[None]:
    try:
        yield
    finally:
        lock.release()


def _finish_timings(timings: dict[str, Any], audio_s: float) -> None:
    """`other_s` is what no stage claims (text normalisation, tokenising, copies),
    so the stages add up to `total_s` exactly."""
    staged = sum(timings.get(k, 0.0) for k in ("load_s", "wait_s", "conditioning_s", "t3_s", "s3gen_s", "watermark_s"))
    timings["other_s"] = max(0.0, timings["total_s"] - staged)
    timings["audio_s"] = audio_s
    timings["rtf"] = timings["total_s"] / audio_s if audio_s > 0 else float("inf")
    timings["first_audio_s"] = timings["total_s"]  # one piece: playable when all is done


def _voice_file(voice: str | None) -> Path | None:
    if voice is None:
        return None
    path = Path(voice).expanduser()
    if not path.is_file():
        raise AudioFileError(f"Voice {voice!r} is not an audio file that exists; give the path of a WAV/FLAC/MP3 file.")
    return path


def unload(model: str | None = None, *, all: bool = False) -> list[str]:  # noqa: A002 - mirrors --all
    """Drop models from memory (and give GPU memory back); returns what was dropped."""
    from .engine import loader

    if not all:
        model = options.choose_model(model).model
    dropped = []
    for loaded in loader.loaded_models():
        if all or loaded.name == model:
            loader.drop(loaded.key)
            dropped.append(f"{loaded.name} ({loaded.device}, {loaded.dtype})")
    return dropped


class Status:
    """Models in memory, settings and the cache dir; renders as a table."""

    def __init__(self) -> None:
        from .engine import loader

        s = config.settings()
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
            }
            for m in loader.loaded_models()
        ]
        self.history = len(STATE.history)

    def __repr__(self) -> str:
        lines = [f"chatterbox_nb: {len(self.models)} model(s) in memory, cache dir {self.cache_dir}"]
        for m in self.models:
            lines.append(
                f"  {m['model']}: {m['source']}, {m['device']}, {m['dtype']}, {m['memory_gib']} GiB, "
                f"loaded in {m['load_s']} s{' (dummy weights)' if m['dummy'] else ''}"
            )
        lines.append(f"  utterances this kernel: {self.history}")
        lines.append("  defaults: " + ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items())))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .display.status import status_html

        return status_html(self)


def status() -> Status:
    return Status()


def history() -> list[Utterance]:
    """This kernel's utterances, oldest first."""
    with STATE.lock:
        return list(STATE.history)

