"""S3Gen's CFM estimator compiled ahead of time (AOTInductor), built once and kept on disk.

The estimator (a U-Net of convolutions and transformer blocks) runs 10 times per
utterance on a batch of two (CFG) over prompt + new mel frames: most of S3Gen's time.
A full warm-up exports it (`torch.export`, one graph for every length) and compiles
that into a package (`.pt2`: a shared library with the weights inside) under
`<cache_dir>/compiled/torch-<version>/`. Any later kernel loads the package in about a
second at any warm-up level: `torch.compile` re-traced the estimator in every process
(~47 s of CPU), a package is code ready to run.

The package bakes in the weights and the number of CPU threads its kernels use, so it
is keyed by model, weights fingerprint, device, dtype and threads. The export traces a
private copy of the estimator (the model is held only to copy it, under a second), and
compiling and loading hold nothing, so says go on eagerly meanwhile; the packaged
forward is swapped in between two says. Inputs it
was not built for (another batch size, a length out of range) run eagerly.

Upstream's chunk mask asks `.item()` whether a row is all masked (data-dependent
control flow, which export refuses): export traces a copy of the forward that sees a
branch-free equivalent (engine/seams/estimator.py), nothing process-wide.

The package compiles the path that runs: where the eager estimator runs under CPU
bfloat16 autocast, the export runs under the same autocast (the matmuls in bfloat16 in
the graph), and its key says so. float32 is never compiled: it stays bit-identical to
upstream.

A package is installed only where it pays: once built, it is timed against the eager
path it would replace on this machine, and the verdict is kept beside it (`Verdict`), so
a fresh kernel neither measures again nor installs a loser. A loser's package is
deleted (it would never run; its verdict stops a full warm-up from building it again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ..seams import estimator as seam
from ..store import fsutil
from ..store.layout import CacheLayout

#: the lengths (mel frames, prompt included) the package covers; others run eagerly
MIN_FRAMES, MAX_FRAMES = 8, 8192
#: a package is installed only when the eager path takes this many times its time: below
#: that, a shared machine's timing noise could install a package no faster than eager, and
#: a package costs its load (about a second) and its memory in every kernel
PAYS_AT = 1.1
#: mel frames per speech token (S3Gen's 25 tokens/s to 50 mel frames/s), and the speech
#: tokens of the says the payoff is measured on: a short sentence and a long one
FRAMES_PER_TOKEN, SAY_TOKENS = 2, (40, 150)


def wanted(dtype: str) -> bool:
    """float32 is never compiled: it is upstream, bit for bit. The others are."""
    return dtype != "float32"


def package_path(root: Path, model: str, fingerprint: str, device: str, dtype: str, threads: int,
                 autocast: bool = False) -> Path:
    """Where the package for these weights lives. The weights are baked in, hence the
    fingerprint; so is the thread count of the generated CPU kernels, and whether the
    export ran under autocast."""
    import torch

    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    tag = f"{digest}-{device.replace(':', '_')}-{dtype}-t{threads}" + ("-autocast" if autocast else "")
    return CacheLayout(root).compiled_package(torch.__version__, model, tag)


def estimator(tts: Any) -> Any:
    return tts.s3gen.flow.decoder.estimator


def runner(tts: Any) -> seam.EstimatorRunner:
    return seam.runner(estimator(tts))


def is_installed(tts: Any) -> bool:
    run = seam.current(estimator(tts))
    return run is not None and run.mode == "compiled"


def sample_inputs(tts: Any, frames: int = 200, meanflow: bool = False) -> dict[str, Any]:
    """Inputs shaped as upstream calls the estimator, in its dtype: a CFG batch of two
    (`solve_euler`), or for meanflow (turbo, no CFG) a batch of one with `r`."""
    import torch

    est = estimator(tts)
    kw = {"device": est.final_proj.weight.device, "dtype": est.dtype}
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> Any:
        return torch.randn(*shape, generator=g).to(**kw)

    b = 1 if meanflow else 2
    return {
        "x": rand(b, 80, frames),
        "mask": torch.ones(b, 1, frames, **kw),
        "mu": rand(b, 80, frames),
        "t": torch.full((b,), 0.3, **kw),
        "spks": rand(b, 80),
        "cond": rand(b, 80, frames),
        "r": torch.full((b,), 0.5, **kw) if meanflow else None,
    }


def _order(meanflow: bool) -> tuple[str, ...]:
    return ("x", "mask", "mu", "t", "spks", "cond") + (("r",) if meanflow else ())


def private_copy(tts: Any) -> Any:
    """A stand-in for `tts` holding a copy of its estimator with weights of its own, to
    export while says go on with the original (export swaps a module's parameters while
    it traces). Own storage also matters to inductor: ours are views of one mapped file,
    and it serialises a constant's whole storage, so each weight would carry the file."""
    import copy
    import itertools
    from types import SimpleNamespace

    import torch

    est = estimator(tts)
    own = {
        id(t): torch.nn.Parameter(t.detach().clone(), requires_grad=False) if isinstance(t, torch.nn.Parameter)
        else t.clone()
        for t in itertools.chain(est.parameters(), est.buffers())
    }
    clone = copy.deepcopy(est, own)
    vars(clone).pop("forward", None)  # the runner does not copy: the class's forward runs
    return SimpleNamespace(s3gen=SimpleNamespace(flow=SimpleNamespace(decoder=SimpleNamespace(estimator=clone))))


def export_estimator(tts: Any, meanflow: bool = False, autocast: Any = None) -> Any:
    """The estimator's forward as an ExportedProgram, the frame count dynamic, the batch
    static; under CPU autocast in `autocast` (a torch dtype) when the eager path runs so,
    the result in float32 as there. Give it a `private_copy`: nothing else may use the
    estimator meanwhile."""
    import torch

    est = estimator(tts)
    plain = seam.exportable_forward(est)

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.est = est

        def forward(self, *args: Any) -> Any:
            if autocast is None:
                return plain(self.est, *args)
            with torch.autocast(device_type="cpu", dtype=autocast):
                return plain(self.est, *args).float()

    inputs = sample_inputs(tts, 160, meanflow)
    names = _order(meanflow)
    frames = torch.export.Dim("frames", min=MIN_FRAMES, max=MAX_FRAMES)
    dims = tuple({2: frames} if inputs[n].dim() == 3 else None for n in names)
    with torch.no_grad():
        exported = torch.export.export(Plain().eval(), tuple(inputs[n] for n in names),
                                       dynamic_shapes=(dims,), strict=False)
    return exported


def build_package(exported: Any, path: Path) -> None:
    """Compile `exported` into the package at `path` (written whole or not at all).

    Under the package's lock: a second kernel building the same package (minutes, some
    GB of compiler memory) waits, then finds it built and compiles nothing. Inductor's
    intermediate files go to a scratch folder beside it, named after the package, so
    a build that was killed is found (`store.packages.leftovers`) and swept by the next one."""
    import torch
    from torch._inductor.utils import fresh_inductor_cache

    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.room_for(path.parent, "the compiled S3Gen package"), fsutil.lock_for(path):
        if path.is_file():  # another kernel built it while we waited
            return
        fsutil.clean_stale(path.parent, own=path.name)
        scratch = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{fsutil.INCOMPLETE}"
        scratch.mkdir()
        try:
            with fresh_inductor_cache(dir=str(scratch), delete=False):
                tmp = scratch / path.name
                torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp))
            os.replace(tmp, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def load_package(path: Path, tts: Any, meanflow: bool = False) -> Callable[..., Any]:
    """The packaged estimator as a forward: inputs it covers go to the package, others
    (another batch, a length out of range, another dtype or device) to the runner's
    eager path."""
    import torch

    package = torch._inductor.aoti_load_package(str(path))
    est = estimator(tts)
    expected = {n: v.shape for n, v in sample_inputs(tts, MIN_FRAMES, meanflow).items() if v is not None}
    names = _order(meanflow)

    def covered(args: dict[str, Any]) -> bool:
        if any(args.get(n) is None for n in names) or (not meanflow and args.get("r") is not None):
            return False
        for n in names:
            v, shape = args[n], expected[n]
            if v.dtype != est.dtype or v.device != est.final_proj.weight.device or v.dim() != len(shape):
                return False
            if v.dim() == 3:
                if v.shape[:2] != shape[:2] or not MIN_FRAMES <= v.shape[2] <= MAX_FRAMES:
                    return False
            elif v.shape != shape:
                return False
        return len({args[n].shape[2] for n in names if args[n].dim() == 3}) == 1

    def forward(x: Any, mask: Any, mu: Any, t: Any, spks: Any = None, cond: Any = None, r: Any = None) -> Any:
        args = {"x": x, "mask": mask, "mu": mu, "t": t, "spks": spks, "cond": cond, "r": r}
        if covered(args):
            return package(*(args[n].contiguous() for n in names))
        return eager(x, mask, mu, t, spks, cond, r)

    eager = seam.runner(est).run_eager
    return forward


def install(tts: Any, compiled: Callable[..., Any], verdict: dict[str, Any] | None = None) -> None:
    """The estimator runs the compiled forward (call it between two says)."""
    run = runner(tts)
    run.compiled, run.verdict = compiled, verdict


def uninstall(tts: Any) -> None:
    """Back to the eager path (plain, or CPU autocast)."""
    run = seam.current(estimator(tts))
    if run is not None:
        run.compiled = None


def say_lengths(tts: Any) -> list[int]:
    """The estimator's frame counts in says of this model: its voice's prompt (the
    built-in one, 200 frames without) plus the new frames of `SAY_TOKENS`."""
    conds = getattr(tts, "conds", None)
    prompt = conds.gen["prompt_feat"].shape[1] if conds is not None else 200
    return [min(MAX_FRAMES, prompt + FRAMES_PER_TOKEN * n) for n in SAY_TOKENS]


def measure(tts: Any, compiled: Callable[..., Any], meanflow: bool = False, rounds: int = 3,
            timer: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """How many times faster `compiled` runs the estimator than the runner's eager path,
    on the lengths of a say: one call each untimed (first-call costs), then `rounds`
    rounds of one call per length and path, the paths alternated (which goes first too),
    so a machine that slows down mid-way slows both; medians of the rounds' sums."""
    import torch

    eager = runner(tts).run_eager
    lengths = say_lengths(tts)
    inputs = [sample_inputs(tts, n, meanflow) for n in lengths]
    spent: dict[str, list[float]] = {"eager": [], "compiled": []}
    with torch.inference_mode():
        eager(**inputs[0])
        compiled(**inputs[0])
        for i in range(rounds):
            order = [("eager", eager), ("compiled", compiled)][:: 1 if i % 2 == 0 else -1]
            for name, fn in order:
                start = timer()
                for kw in inputs:
                    fn(**kw)
                spent[name].append(timer() - start)
    eager_s, compiled_s = (statistics.median(spent[k]) for k in ("eager", "compiled"))
    factor = eager_s / compiled_s if compiled_s > 0 else float("inf")
    return {"factor": round(factor, 3), "pays": factor >= PAYS_AT, "pays_at": PAYS_AT,
            "eager": runner(tts).mode, "eager_s": eager_s, "compiled_s": compiled_s, "lengths": lengths,
            "rounds": rounds}


def verdict_path(package: Path) -> Path:
    """The verdict's file: the package's name, keyed as it is, with `.json`."""
    return package.with_suffix(".json")


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
    run = seam.current(estimator(tts))
    if run is None:
        return "S3Gen eager"
    verdict = run.verdict
    if run.mode == "compiled":
        return f"S3Gen compiled, {verdict['factor']:.1f}x over eager here" if verdict else "S3Gen compiled"
    eager = "S3Gen eager" + (f" ({str(run.autocast).rpartition('.')[2]} autocast)" if run.autocast is not None else "")
    if verdict and not verdict["pays"]:
        return f"{eager}: compiled was {verdict['factor']:.1f}x here"
    return eager
