"""Warm-up: pay first-call costs (lazy initialisation, resamplers, allocator) up front.

Every level but `off` first runs the watermarker on a short synthetic signal: its first
call costs ~0.6 s (resampler and STFT set-up), and the short generation after it may
make too little sound for the watermark to run at all. `light` then runs one short
generation through every stage (conditioning, T3, S3Gen, watermark, the resamplers);
`full` adds a 2-second synthetic reference voice through `prepare_conditionals` and
three text lengths (on a GPU that also sizes the CUDA memory pools). Each step takes the model only between user calls, so a `say` never
waits for more than the step in progress. The RNG state is saved and restored
around every step, so warm-up never changes what a seeded `say` returns.

T3 rebuilds its HF backend on every call (`self.compiled = False` in upstream's
`inference`); we keep that, since it also resets the multilingual alignment
analyzer's per-utterance state. Warm-up therefore cannot cache that step away —
it pays the first-call costs below it.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import synth
from .payoff import PAYS_AT
from ..request import SayOptions
from .speak import pieces
from ..specs import SAMPLE_RATE

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

_TOKENS = 4


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


def anon_bytes() -> int:
    """Resident memory not backed by files. Mapped weights paged in by the first calls
    are file-backed (shared with the page cache, reclaimable), so they do not count."""
    import psutil

    info = psutil.Process(os.getpid()).memory_info()
    return info.rss - getattr(info, "shared", 0)


def warm(
    loaded: LoadedModel,
    level: str,
    progress: Callable[..., None] | None = None,
    measure: bool = False,
    cache_root: Path | None = None,
) -> dict[str, Any]:
    """Run warm-up at `level`; returns measured figures (seconds, bytes).

    `cold_s` is the first step (the model's first call if nothing ran before);
    with `measure`, the first step is repeated at the end to give `warm_s`. With a
    `cache_root`, `full` (or any level, once a kernel built the package there) ends by
    installing S3Gen's compiled estimator where it measured faster than eager, built in
    the background if need be (`compiled.py`, `payoff.py`; not for float32)."""
    if level == "off":
        return {"level": "off"}
    opts = SayOptions.defaults(loaded.spec, max_tokens=_TOKENS, seed=0)
    texts = loaded.spec.warmup_texts if level == "full" else loaded.spec.warmup_texts[:1]
    steps: list[tuple[str, Any]] = [(t, None) for t in texts[:1]]
    if level == "full":
        steps += [("voice", None)] + [(t, "voice") for t in texts[1:]]
    if measure:
        steps.append((texts[0], None))
    report = progress or (lambda *a, **k: None)
    calls_before = loaded.calls
    anon_before = anon_bytes()
    start = time.perf_counter()
    with loaded.use(user=False), preserved_rng():
        watermarker_s = warm_watermarker(loaded.tts)
    durations, voice = [], None
    for i, (text, conds) in enumerate(steps, 1):
        report(f"warm-up ({level})", i, len(steps))
        step_start = time.perf_counter()
        with loaded.use(user=False), preserved_rng():
            if text == "voice":
                voice = _synthetic_conds(loaded)
            else:
                pieces(loaded, opts, [text], voice if conds else None)  # made and dropped
        durations.append(time.perf_counter() - step_start)
    total = time.perf_counter() - start
    metrics = {
        "level": level,
        "steps": len(steps),
        "warmup_s": total - (durations[-1] if measure else 0.0),
        "cold_s": durations[0],
        "cold_was_first_call": calls_before == 0,
        "watermarker_s": watermarker_s,
        "memory_overhead_bytes": anon_bytes() - anon_before,
    }
    if measure:
        metrics["warm_s"] = durations[-1]
        metrics["cold_over_warm"] = durations[0] / durations[-1]
    if cache_root is not None:
        metrics.update(compile_step(loaded, level, cache_root, report))
    return metrics


def warm_watermarker(tts: Any) -> float:
    """Run the model's watermarker once on a quiet half-second of noise; its seconds."""
    import torch

    signal = (np.random.default_rng(0).standard_normal(SAMPLE_RATE // 2) * 0.05).astype(np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        tts.watermarker.apply_watermark(signal, sample_rate=SAMPLE_RATE)
    return time.perf_counter() - start


def compile_step(loaded: LoadedModel, level: str, root: Path, report: Callable[..., None]) -> dict[str, Any]:
    """Install S3Gen's compiled estimator where it pays: load its package from the cache
    dir, or at `full` build the package first (from a private copy of the estimator,
    holding the model only to copy it: says run eagerly meanwhile). A package without a
    verdict is timed against the eager path it would replace (holding the model, a few
    estimator calls) and installed only if it won; a recorded verdict is read, never
    measured again, and a loser is neither built again nor installed. The forward is
    swapped in between two says. A failure (no C++ compiler, an export error) leaves
    the model eager and is reported in the figures, not raised; a package that fails to
    load is removed."""
    import torch

    from . import compiled, payoff

    tts = loaded.tts
    if tts is None or not compiled.wanted(loaded.dtype) or compiled.is_installed(tts):
        return {}
    meanflow = loaded.spec.meanflow
    autocast = compiled.runner(tts).autocast
    path = compiled.package_path(root, loaded.name, loaded.source.fingerprint, loaded.device, loaded.dtype,
                                 torch.get_num_threads(), autocast=autocast is not None)
    verdict = payoff.read_verdict(path)
    if verdict is not None and not verdict["pays"]:  # measured slower here: stays eager, nothing to build
        compiled.runner(tts).verdict = verdict
        return {"s3gen_factor": verdict["factor"]}
    metrics: dict[str, Any] = {}
    if not path.is_file():
        if level != "full":
            return {}
        report("compiling S3Gen (says run meanwhile)")
        try:
            start = time.perf_counter()
            with loaded.use(user=False):  # only to copy it: the export traces the copy, says go on
                if loaded.tts is not tts:
                    return {}
                private = compiled.private_copy(tts)
            exported = compiled.export_estimator(private, meanflow, autocast)
            del private
            compiled.build_package(exported, path)
            del exported
            metrics["compile_s"] = time.perf_counter() - start
            verdict = None  # a new package: measured below
        except Exception as exc:  # noqa: BLE001 - compilation is an optimisation, never a failure
            return _stays_eager("compiling", exc)
    try:
        start = time.perf_counter()
        fn = compiled.load_package(path, tts, meanflow)
        metrics["compiled_load_s"] = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001
        path.unlink(missing_ok=True)  # the next full warm-up builds it again
        return {**metrics, **_stays_eager("loading its package", exc)}
    with loaded.use(user=False):
        if loaded.tts is not tts:
            return metrics
        if verdict is None:
            report("timing compiled S3Gen against eager")
            with preserved_rng():
                verdict = {**payoff.measure(tts, fn, meanflow), "model": loaded.name}
            payoff.record_verdict(path, verdict)
        metrics["s3gen_factor"] = verdict["factor"]
        if verdict["pays"]:
            compiled.install(tts, fn, verdict)
        else:
            compiled.runner(tts).verdict = verdict
    return metrics


def _stays_eager(what: str, exc: BaseException) -> dict[str, Any]:
    import warnings

    warnings.warn(f"chatterbox_nb: {what} S3Gen failed, it stays eager: {exc}", RuntimeWarning, stacklevel=3)
    return {"compile_error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def _synthetic_conds(loaded: LoadedModel) -> Any:
    import soundfile as sf

    from ..store.dummy import synthetic_voice

    seconds = max(2.0, loaded.spec.min_reference_s + 1.0)  # turbo refuses references under 5 s
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "warmup.wav"
        sf.write(ref, synthetic_voice(seconds, seed=1), SAMPLE_RATE)
        return synth.compute_conditionals(loaded.tts, loaded.spec, str(ref), loaded.spec.defaults()["exaggeration"])


def describe(metrics: dict[str, Any]) -> str:
    if metrics.get("level", "off") == "off":
        return "warm-up off"
    text = f"warm-up {metrics['level']}: {metrics['steps']} steps in {metrics['warmup_s']:.2f} s"
    cold = "cold first call" if metrics["cold_was_first_call"] else "first warm-up call"
    text += f"; {cold} {metrics['cold_s']:.2f} s"
    if "watermarker_s" in metrics:
        text += f" (watermarker warmed first, {metrics['watermarker_s']:.2f} s)"
    if "warm_s" in metrics:
        text += f", warm call {metrics['warm_s']:.2f} s ({metrics['cold_over_warm']:.2f}x)"
    text += f"; anonymous memory {metrics['memory_overhead_bytes'] / 2**20:+.0f} MiB"
    if "compile_s" in metrics:
        text += f"; S3Gen compiled in {metrics['compile_s']:.1f} s"
    if "compiled_load_s" in metrics:
        text += f"; compiled S3Gen loaded in {metrics['compiled_load_s']:.1f} s"
    if "s3gen_factor" in metrics:
        factor = metrics["s3gen_factor"]
        text += (f"; S3Gen compiled, {factor:.1f}x over eager here" if factor >= PAYS_AT
                 else f"; S3Gen stays eager: compiled was {factor:.1f}x here")
    elif "compile_error" in metrics:
        text += f"; S3Gen stays eager ({metrics['compile_error']})"
    return text
