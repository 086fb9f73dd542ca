"""Whether S3Gen's compiled package pays on this machine, measured once and kept.

The package that compiled.py builds is not faster everywhere: measured on a 2-core
AVX-512 CPU, the float32 export made a say slower than the eager path under bfloat16
autocast it replaced. So a new package is timed against the eager path it would replace
(a few estimator calls at the lengths of a say, alternated), installed only when it is
`PAYS_AT` times faster, and the verdict is kept beside it, keyed as it is (the package's
name with `.json`, written atomically): a fresh kernel neither measures again nor
installs a loser. A loser's package is deleted (it would never run; its verdict stops a
full warm-up from building it again). The verdicts also say which path runs (`describe`)
and, while S3Gen runs eager, what one full warm-up would buy here (`warmup_hint`).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..store import fsutil
from ..store.layout import CacheLayout
from ..seams import estimator as seam
from . import compiled

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

#: a package is installed only when the eager path takes this many times its time: below
#: that, a shared machine's timing noise could install a package no faster than eager, and
#: a package costs its load (about a second) and its memory in every kernel
PAYS_AT = 1.1
#: mel frames per speech token (S3Gen's 25 tokens/s to 50 mel frames/s), and the speech
#: tokens of the says the payoff is measured on: a short sentence and a long one
FRAMES_PER_TOKEN, SAY_TOKENS = 2, (40, 150)


def say_lengths(tts: Any) -> list[int]:
    """The estimator's frame counts in says of this model: its voice's prompt (the
    built-in one, 200 frames without) plus the new frames of `SAY_TOKENS`."""
    conds = getattr(tts, "conds", None)
    prompt = conds.gen["prompt_feat"].shape[1] if conds is not None else 200
    return [min(compiled.MAX_FRAMES, prompt + FRAMES_PER_TOKEN * n) for n in SAY_TOKENS]


def measure(tts: Any, package: Callable[..., Any], meanflow: bool = False, rounds: int = 3,
            timer: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """How many times faster `package` (a loaded one) runs the estimator than the
    runner's eager path, on the lengths of a say: one call each untimed (first-call
    costs), then `rounds` rounds of one call per length and path, the paths alternated
    (which goes first too), so a machine that slows down mid-way slows both; medians of
    the rounds' sums. On CUDA each reading waits for the device (calls only queue work)."""
    import torch

    eager = compiled.runner(tts).run_eager
    lengths = say_lengths(tts)
    inputs = [compiled.sample_inputs(tts, n, meanflow) for n in lengths]
    device = inputs[0]["x"].device

    def read() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return timer()

    spent: dict[str, list[float]] = {"eager": [], "compiled": []}
    with torch.inference_mode():
        eager(**inputs[0])
        package(**inputs[0])
        for i in range(rounds):
            order = [("eager", eager), ("compiled", package)][:: 1 if i % 2 == 0 else -1]
            for name, fn in order:
                start = read()
                for kw in inputs:
                    fn(**kw)
                spent[name].append(read() - start)
    eager_s, compiled_s = (statistics.median(spent[k]) for k in ("eager", "compiled"))
    factor = eager_s / compiled_s if compiled_s > 0 else float("inf")
    return {"factor": round(factor, 3), "pays": factor >= PAYS_AT, "pays_at": PAYS_AT,
            "eager": compiled.runner(tts).mode, "eager_s": eager_s, "compiled_s": compiled_s, "lengths": lengths,
            "rounds": rounds}


def verdict_path(package: Path) -> Path:
    """The verdict's file (the cache layout names it)."""
    return CacheLayout.compiled_verdict(package)


def read_verdict(package: Path) -> dict[str, Any] | None:
    """The verdict recorded beside `package`, None if none (or unreadable: measure again)."""
    try:
        found = json.loads(verdict_path(package).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("factor"), (int, float)) else None


def record_verdict(package: Path, verdict: dict[str, Any]) -> None:
    """Keep `verdict` beside the package (written whole or not at all); a loser's package
    goes: it would never run, and its verdict stops a full warm-up from building it again."""
    path = verdict_path(package)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.lock_for(path):
        fsutil.write_atomic(path, json.dumps({**verdict, "measured_at": time.time()}, indent=1).encode())
    if not verdict["pays"]:
        package.unlink(missing_ok=True)


def describe(tts: Any) -> str:
    """Which S3Gen path runs, and the measured factor where there is one."""
    run = seam.current(compiled.estimator(tts))
    if run is None:
        return "S3Gen eager"
    verdict = run.verdict
    if run.mode == "compiled":
        return f"S3Gen compiled, {verdict['factor']:.1f}x over eager here" if verdict else "S3Gen compiled"
    eager = "S3Gen eager" + (f" ({str(run.autocast).rpartition('.')[2]} autocast)" if run.autocast is not None else "")
    if verdict and not verdict["pays"]:
        return f"{eager}: compiled was {verdict['factor']:.1f}x here"
    return eager


def warmup_hint(loaded: LoadedModel, root: Path) -> str | None:
    """What one full warm-up buys on this machine, said once per loaded model: while S3Gen
    runs eager and a verdict measured here (this model's, else another model's with the
    same device, dtype and threads) says a package pays. None otherwise."""
    import torch

    tts = loaded.tts
    if tts is None or not compiled.wanted(loaded.dtype):
        return None
    run = compiled.runner(tts)
    if run.mode == "compiled" or run.hinted:
        return None
    autocast = run.autocast is not None
    path = compiled.package_path(root, loaded.name, loaded.source.fingerprint, loaded.device, loaded.dtype,
                        torch.get_num_threads(), autocast)
    own = read_verdict(path)
    if own is not None:
        if not own["pays"]:
            return None
        run.hinted = True
        if path.is_file():
            return f"S3Gen runs eager: its compiled package ran {own['factor']:.1f}x faster here; any warm-up loads it"
        return f"one full warm-up (S3Gen's package, built once) made S3Gen {own['factor']:.1f}x faster here"
    tail = compiled.machine_tag(loaded.device, loaded.dtype, torch.get_num_threads(), autocast)
    others = [v for v in (read_verdict(p.with_suffix(".pt2")) for p in path.parent.glob(f"estimator-*{tail}.json"))
              if v is not None and v["pays"]]
    if not others:
        return None
    best = max(others, key=lambda v: v["factor"])
    run.hinted = True
    whose = f" for {best['model']}" if best.get("model") else ""
    return (f"one full warm-up (S3Gen's package, built once, minutes) made S3Gen {best['factor']:.1f}x "
            f"faster{whose} here")
