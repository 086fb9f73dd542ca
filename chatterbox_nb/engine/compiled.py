"""`torch.compile` of S3Gen's CFM estimator, done in the background, kept on disk.

The estimator (a U-Net of convolutions and transformer blocks) runs 10 times per
utterance on a batch of two (CFG) over prompt + new mel frames: most of S3Gen's time.
It is compiled with `dynamic=True` (one graph for every length). Compiling happens
in a warm-up step *without* holding the model: the first call of the compiled
function (which is what compiles) runs on sample inputs of its own while says go on
eagerly; the compiled forward is installed between two says.

Inductor's caches (FX graph cache, generated C++/Triton kernels) live under
`<cache_dir>/compiled/torch-<version>/`, so a fresh kernel finds the compiled code
instead of generating it again; only dynamo's tracing runs again. A marker file per
(model, device, dtype) records that compilation succeeded there, so later kernels
compile at any warm-up level, cheaply, from the cache.

float32 is never compiled: it stays bit-identical to upstream. (On the CPU the
estimator computes in float32 under every dtype, so compiling it changes only the
order of float32 operations.)
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: dynamo recompiles a function per distinct `self`; the estimator's transformer
#: blocks are 56 distinct objects sharing code, which overflowed the default 8.
_CACHE_SIZE_LIMIT = 256


def cache_root(root: Path) -> Path:
    import torch

    return root / "compiled" / f"torch-{torch.__version__}"


def use_disk_cache(root: Path) -> Path:
    """Point inductor at the cache dir (before the first compilation of the process;
    a TORCHINDUCTOR_CACHE_DIR the user set wins)."""
    import torch._dynamo
    import torch._functorch.config
    import torch._inductor.config as inductor_config

    path = cache_root(root)
    path.mkdir(parents=True, exist_ok=True)
    # upstream's chunk mask calls .item(): dynamo warns of the graph break at every compile
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(path / "inductor"))
    inductor_config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True  # AOT autograd's result too (off by default in 2.6)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, _CACHE_SIZE_LIMIT)
    torch._dynamo.config.accumulated_cache_size_limit = max(
        torch._dynamo.config.accumulated_cache_size_limit, _CACHE_SIZE_LIMIT
    )
    return path


def wanted(dtype: str) -> bool:
    """float32 is never compiled: it is upstream, bit for bit. The others are."""
    return dtype != "float32"


def _marker(root: Path, model: str, device: str, dtype: str) -> Path:
    return cache_root(root) / f"estimator-{model}-{device.replace(':', '_')}-{dtype}.json"


def compiled_before(root: Path, model: str, device: str, dtype: str) -> bool:
    """Whether an earlier kernel compiled this estimator into the cache dir."""
    return _marker(root, model, device, dtype).is_file()


def estimator(tts: Any) -> Any:
    return tts.s3gen.flow.decoder.estimator


def is_installed(tts: Any) -> bool:
    return getattr(vars(estimator(tts)).get("forward"), "compiled", False)


def sample_inputs(tts: Any, frames: int = 200, meanflow: bool = False) -> dict[str, Any]:
    """Inputs shaped as upstream calls the estimator, in its dtype: a CFG batch of two
    (`solve_euler`), or for meanflow (turbo, no CFG) a batch of one with `r`. A batch
    size dynamo has not seen would mean a recompile at a say."""
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


def compile_estimator(tts: Any, meanflow: bool = False, mode: str | None = None) -> tuple[Any, float]:
    """The compiled estimator forward, compiled now (two lengths, so the dynamic graph
    is the one later says hit), and the seconds it took. Does not install it."""
    import torch

    est = estimator(tts)
    eager = type(est).forward.__get__(est)  # the plain forward, not a CPU autocast wrapper (slower compiled)
    compiled = torch.compile(eager, dynamic=True, mode=mode)
    start = time.perf_counter()
    with torch.inference_mode():
        for frames in (160, 240):
            compiled(**sample_inputs(tts, frames, meanflow))
    return compiled, time.perf_counter() - start


def install(tts: Any, compiled: Any) -> None:
    """The estimator's forward becomes the compiled one (upstream calls `.forward` directly).
    Inputs the compiled code does not cover run eagerly: a say never waits for a
    recompilation (torch.compiler stance `eager_on_recompile`)."""
    import torch

    est = estimator(tts)
    previous = vars(est).get("forward")

    def forward(*args: Any, **kwargs: Any) -> Any:
        with torch.compiler.set_stance("eager_on_recompile"):
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


def record(root: Path, model: str, device: str, dtype: str, seconds: float) -> None:
    marker = _marker(root, model, device, dtype)
    tmp = marker.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"compile_s": seconds, "at": time.time()}))
    os.replace(tmp, marker)
