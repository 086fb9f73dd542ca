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
control flow, which export refuses): export runs with a branch-free equivalent.

float32 is never compiled: it stays bit-identical to upstream. (On the CPU the
estimator computes in float32 under every dtype, so compiling it changes only the
order of float32 operations.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from ..store import fsutil
from ..store.layout import CacheLayout

#: the lengths (mel frames, prompt included) the package covers; others run eagerly
MIN_FRAMES, MAX_FRAMES = 8, 8192


def wanted(dtype: str) -> bool:
    """float32 is never compiled: it is upstream, bit for bit. The others are."""
    return dtype != "float32"


def package_path(root: Path, model: str, fingerprint: str, device: str, dtype: str, threads: int) -> Path:
    """Where the package for these weights lives. The weights are baked in, hence the
    fingerprint; so is the thread count of the generated CPU kernels."""
    import torch

    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    tag = f"{digest}-{device.replace(':', '_')}-{dtype}-t{threads}"
    return CacheLayout(root).compiled_package(torch.__version__, model, tag)


def estimator(tts: Any) -> Any:
    return tts.s3gen.flow.decoder.estimator


def is_installed(tts: Any) -> bool:
    return getattr(vars(estimator(tts)).get("forward"), "compiled", False)


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


def _branch_free_chunk_mask(xs: Any, masks: Any, use_dynamic_chunk: bool, use_dynamic_left_chunk: bool,
                            decoding_chunk_size: int, static_chunk_size: int, num_decoding_left_chunks: int,
                            enable_full_context: bool = True) -> Any:
    """Upstream's `add_optional_chunk_mask` as the estimator calls it (no chunking): an
    all-masked row becomes all True, without asking `.item()` whether there is one."""
    if use_dynamic_chunk or static_chunk_size > 0:
        raise NotImplementedError("chunked attention masks are not exported")
    return masks | (masks.sum(dim=-1, keepdim=True) == 0)


@contextlib.contextmanager
def _exportable_decoder() -> Iterator[None]:
    from chatterbox.models.s3gen import decoder

    original = decoder.add_optional_chunk_mask
    decoder.add_optional_chunk_mask = _branch_free_chunk_mask
    try:
        yield
    finally:
        decoder.add_optional_chunk_mask = original


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
    return SimpleNamespace(s3gen=SimpleNamespace(flow=SimpleNamespace(decoder=SimpleNamespace(estimator=clone))))


def export_estimator(tts: Any, meanflow: bool = False) -> Any:
    """The estimator's plain forward (not a CPU autocast wrapper) as an ExportedProgram,
    the frame count dynamic, the batch static. Give it a `private_copy`: nothing else
    may use the estimator meanwhile."""
    import torch

    est = estimator(tts)

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.est = est

        def forward(self, *args: Any) -> Any:
            return type(self.est).forward(self.est, *args)

    inputs = sample_inputs(tts, 160, meanflow)
    names = _order(meanflow)
    frames = torch.export.Dim("frames", min=MIN_FRAMES, max=MAX_FRAMES)
    dims = tuple({2: frames} if inputs[n].dim() == 3 else None for n in names)
    with _exportable_decoder(), torch.no_grad():
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
    (another batch, a length out of range, another dtype or device) to the eager forward
    installed before it."""
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
        return forward.eager(x, mask, mu, t, spks, cond, r)  # type: ignore[attr-defined]

    forward.eager = vars(est).get("forward") or type(est).forward.__get__(est)  # type: ignore[attr-defined]
    return forward


def install(tts: Any, compiled: Callable[..., Any]) -> None:
    """The estimator's forward becomes the compiled one (upstream calls `.forward` directly)."""
    est = estimator(tts)
    previous = vars(est).get("forward")

    def forward(*args: Any, **kwargs: Any) -> Any:
        return compiled(*args, **kwargs)

    forward.compiled = True  # type: ignore[attr-defined]
    forward.previous = previous  # type: ignore[attr-defined]
    est.forward = forward


def uninstall(tts: Any) -> None:
    """Back to the forward used before `install` (eager, or CPU autocast)."""
    est = estimator(tts)
    current = vars(est).get("forward")
    if getattr(current, "compiled", False):
        if current.previous is None:
            del est.forward
        else:
            est.forward = current.previous
