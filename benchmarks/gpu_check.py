"""The GPU paths, checked in one run (< 5 min on a GPU): load from the disk cache onto
the device, say in float32 and bfloat16, eager and with S3Gen compiled, and print load
time, T3 tokens/s, S3Gen time, peak device memory, and whether float32 is bit-identical
to upstream's `from_local` + `generate` on the same device, seed and token cap. In
bfloat16 it also says a 3-sentence paragraph sequentially and overlapped (S3Gen on its
own CUDA stream while T3 samples, engine/generation/overlap.py), and checks that the
overlapped paragraph is the same audio twice (`--paragraph-dtype float32`: in float32).

    python benchmarks/gpu_check.py                       # cuda, full-size dummy
    python benchmarks/gpu_check.py --weights /path/to/ckpt
    python benchmarks/gpu_check.py --device cpu --weights dummy:reduced --max-tokens 4 --no-compile --quick \
        --paragraph-dtype float32

It also runs on the CPU (tests/test_speed.py runs it that way, cheaply: the paragraph in
float32, since a CPU without native bfloat16 emulates it ~5x slower, and the overlap is the
same code in both). Its last line is the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _upstream import from_local

TEXT = "Checking the graphics card path, one sentence at a time."


def _peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return None


def _say(loaded, args) -> tuple:
    from chatterbox_nb.engine.generation import synth

    with loaded.use():
        audio, t = synth.generate(loaded.tts, loaded.spec, TEXT, max_tokens=args.max_tokens, seed=args.seed,
                                  sampling=loaded.spec.defaults(), renderable_only=loaded.is_dummy)
    return audio, t


def _row(label: str, loaded, args, load_s: float) -> tuple[dict, object]:
    if not args.quick:
        _say(loaded, args)  # first call: lazy init, cuDNN autotuning, compiled graphs' first run
    _peak_reset(loaded.device)
    start = time.perf_counter()
    audio, t = _say(loaded, args)
    total = time.perf_counter() - start
    row = {
        "config": label,
        "load_s": round(load_s, 3),
        "t3_tokens_per_s": round(t["speech_tokens"] / t["t3_s"], 2) if t["t3_s"] else None,
        "t3_s": round(t["t3_s"], 3),
        "s3gen_s": round(t["s3gen_s"], 3),
        "total_s": round(total, 3),
        "tokens": t["speech_tokens"],
        "peak_gib": _peak_gib(loaded.device),
    }
    print(json.dumps(row), flush=True)
    return row, audio


PARAGRAPH = ["The first sentence is here.", "A second one follows it.", "And this is the third."]


def _paragraph(loaded, args, overlap: bool) -> tuple[float, list]:
    from chatterbox_nb.engine.generation import speak
    from chatterbox_nb.engine.request import SayOptions

    opts = SayOptions.defaults(loaded.spec, seed=args.seed, max_tokens=args.max_tokens, stream=False)
    made: list = []
    start = time.perf_counter()
    with loaded.use():
        speak.run(loaded, opts, PARAGRAPH, emit=made.append, overlap=overlap)
    return time.perf_counter() - start, made


def _overlap_row(loaded, args) -> dict:
    """The paragraph sequential, overlapped, overlapped, sequential: the best of each side,
    and whether the two overlapped runs gave the same audio (`--quick`: no untimed run
    first, and no second sequential one)."""
    import numpy as np

    if not args.quick:
        _paragraph(loaded, args, True)
    seq, ovl = [], []
    for overlap in (False, True, True) if args.quick else (False, True, True, False):
        took, made = _paragraph(loaded, args, overlap)
        (ovl if overlap else seq).append((took, made))
    same = all(np.array_equal(a.audio, b.audio) for a, b in zip(ovl[0][1], ovl[1][1]))
    seq_s, ovl_s = sorted(t for t, _ in seq)[0], sorted(t for t, _ in ovl)[0]
    row = {"config": f"{loaded.dtype} paragraph overlapped", "sequential_s": round(seq_s, 3),
           "overlapped_s": round(ovl_s, 3), "sequential_over_overlapped": round(seq_s / ovl_s, 3),
           "overlapped_reproducible": bool(same)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="english", choices=("english", "turbo"))
    parser.add_argument("--weights", default="dummy")
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--quick", action="store_true", help="no untimed first call per row (a smoke test)")
    parser.add_argument("--paragraph-dtype", default="bfloat16", choices=("float32", "bfloat16"),
                        help="the dtype the paragraph is said in, sequential and overlapped")
    args = parser.parse_args()
    cache = os.environ.get("CHATTERBOX_NB_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "chatterbox_nb-bench")
    os.environ["CHATTERBOX_NB_CACHE_DIR"] = cache
    print(f"cache dir {cache}, device {args.device}", flush=True)

    import numpy as np
    import torch

    from chatterbox_nb import config
    from chatterbox_nb.engine.generation import compiled, warmup
    from chatterbox_nb.engine.models import loader
    from chatterbox_nb.engine.store import sources
    from chatterbox_nb.engine.models.device import resolve_device
    from chatterbox_nb.engine.specs import SPECS

    device = resolve_device(args.device)
    spec = SPECS[args.model]
    root = config.cache_dir()
    if device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(device)}, capability {torch.cuda.get_device_capability(device)}")
    rows, results = [], {}
    for dtype in ("float32", "bfloat16"):
        first, _ = loader.get_or_load(spec, args.weights, device, dtype, root)  # builds the entry if needed
        loader.drop(first.key)
        start = time.perf_counter()
        loaded, how = loader.get_or_load(spec, args.weights, device, dtype, root)
        load_s = time.perf_counter() - start
        assert how == "disk-cache", how
        row, audio = _row(f"{dtype} eager", loaded, args, load_s)
        rows.append(row)
        results[dtype] = audio
        if dtype == args.paragraph_dtype:
            paragraph = _overlap_row(loaded, args)
        if not args.no_compile and dtype != "float32":
            metrics = warmup.compile_step(loaded, "full", root, lambda *a: None)  # builds or loads the package
            assert compiled.is_installed(loaded.tts), metrics
            row, _ = _row(f"{dtype} compiled", loaded, args, load_s)
            row.update({k: round(v, 1) for k, v in metrics.items() if k in ("compile_s", "compiled_load_s")})
            rows.append(row)
        loader.drop(loaded.key)
    rows.append(paragraph)

    from chatterbox_nb.engine.generation import synth

    source = sources.resolve(spec, args.weights, root)
    upstream = from_local(spec, source.folder, device)
    up_audio, _ = synth.generate(upstream, spec, TEXT, max_tokens=args.max_tokens, seed=args.seed,
                                 sampling=spec.defaults(), renderable_only=source.is_dummy)
    identical = bool(np.array_equal(up_audio, results["float32"]))
    print(f"float32 bit-identical to upstream from_local on {device}: {identical}")
    print(json.dumps({"device": device, "rows": rows, "float32_identical": identical}))
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
