"""Upstream's own `generate`, in a process of its own, answering one JSON request a line.

The benchmarks compare our `say` with what a user of chatterbox-tts gets: its
`from_local` on the same checkpoint files and its `generate`, untouched, in a process
that never imports chatterbox_nb's say path (synth, streaming: those patch upstream
modules). Only the stages are timed and T3's token cap is set, by instance attributes
around `generate`, as upstream hard-codes 1000 tokens.

Upstream is loaded by `_upstream.from_local`, fitted to a reduced dummy's files.

    python _upstream_worker.py MODEL FOLDER   # then {"text": ..., "tokens": N, "seed": S, "threads": T} a line
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

from _upstream import from_local

# The protocol keeps the real stdout; upstream's prints and bars go to stderr.
_PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

_OURS = ("chatterbox_nb.engine.generation.synth", "chatterbox_nb.engine.generation.streaming", "chatterbox_nb.api")


def _send(obj: dict[str, Any]) -> None:
    _PROTO.write(json.dumps(obj) + "\n")


def _timed(obj: Any, method: str, timings: dict, key: str, adjust: Callable | None = None,
           count: str | None = None) -> None:
    original = getattr(obj, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if adjust is not None:
            adjust(kwargs)
        if count == "in":
            timings["s3gen_tokens"] = int(kwargs.get("speech_tokens", args[0] if args else None).numel())
        start = time.perf_counter()
        try:
            result = original(*args, **kwargs)
        finally:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
        if count == "out":
            timings["t3_tokens"] = int(result.numel())
        return result

    setattr(obj, method, wrapper)


def _generate(tts: Any, spec: Any, request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    timings: dict[str, Any] = {"t3_s": 0.0, "s3gen_s": 0.0, "watermark_s": 0.0}
    cap = max(0, int(request["tokens"]) - spec.t3_tokens_before_loop)
    _timed(tts.t3, spec.t3_method, timings, "t3_s", lambda kw: kw.__setitem__(spec.t3_cap_keyword, cap), "out")
    _timed(tts.s3gen, "inference", timings, "s3gen_s", count="in")
    _timed(tts.watermarker, "apply_watermark", timings, "watermark_s")
    if request.get("threads"):
        torch.set_num_threads(int(request["threads"]))  # as many as the say it is compared with
    seed = int(request["seed"])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        start = time.perf_counter()
        wav = tts.generate(request["text"])
        timings["total_s"] = time.perf_counter() - start
    finally:
        for part, method in ((tts.t3, spec.t3_method), (tts.s3gen, "inference"), (tts.watermarker, "apply_watermark")):
            vars(part).pop(method, None)
    timings["audio_s"] = wav.shape[-1] / tts.sr
    timings["threads"] = torch.get_num_threads()
    return timings


def main() -> None:
    model, folder = sys.argv[1], Path(sys.argv[2])
    import torch

    from chatterbox_nb.engine.specs import SPECS

    spec = SPECS[model]
    start = time.perf_counter()
    adjusted: list[str] = []
    tts = from_local(spec, folder, "cpu", adjusted)
    ours = [name for name in _OURS if name in sys.modules]
    _send({"ready": True, "load_s": time.perf_counter() - start, "threads": torch.get_num_threads(),
           "pid": os.getpid(), "our_modules": ours, "adjusted": adjusted})
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        try:
            _send(_generate(tts, spec, request))
        except Exception as exc:  # noqa: BLE001 - reported to the benchmark, which stops
            _send({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
