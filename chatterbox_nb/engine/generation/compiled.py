"""S3Gen's CFM estimator compiled ahead of time (AOTInductor), built once and kept on disk.

The estimator (a U-Net of convolutions and transformer blocks) runs 10 times per
utterance on a batch of two (CFG) over prompt + new mel frames: most of S3Gen's time.
A full warm-up exports it (`torch.export`, one graph for every length) and compiles
that into a package (`.pt2`: a shared library with the weights inside) under
`<cache_dir>/compiled/torch-<version>/`. Any later kernel loads the package in about a
second at any warm-up level, where it measured faster than eager (`payoff.py`): `torch.compile` re-traced the estimator in every process
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

Whether an installed package pays is `payoff.py`'s to measure and keep.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from ..seams import estimator as seam
from ..store import fsutil
from ..store.layout import CacheLayout

#: the lengths (mel frames, prompt included) the package covers; others run eagerly
MIN_FRAMES, MAX_FRAMES = 8, 8192


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
    return CacheLayout(root).compiled_package(torch.__version__, model, digest + machine_tag(device, dtype, threads,
                                                                                            autocast))


def machine_tag(device: str, dtype: str, threads: int, autocast: bool) -> str:
    """The part of a package's key that is this machine's, not the weights'."""
    return f"-{device.replace(':', '_')}-{dtype}-t{threads}" + ("-autocast" if autocast else "")


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
    seam.remove(clone)  # the runner does not copy: the class's forward runs
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
