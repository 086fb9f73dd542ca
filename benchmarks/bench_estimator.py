"""What casting S3Gen's estimator weights once saves, against autocast casting them per call.

On a CPU with native bfloat16 the estimator (94 % of S3Gen) runs under bfloat16 autocast
with float32 weights. Autocast casts every linear and convolution weight on every call;
the estimator's runner (engine/seams/estimator.py) casts them once and keeps the copies.
This loads english (`--weights`, bfloat16, CPU) in this process, captures the inputs of
one real estimator call during a short say, then times `--calls` estimator calls per side
and repetition, alternating "cast per call" (upstream's forward under autocast, the path
as it was) and "cast once" (the runner), and prints the medians, the median of the
side-by-side ratios, whether the outputs are bit-identical, and what the copies hold.
`--profile` also prints `aten::copy_`'s share of the CPU time of 3 calls on each side.
The figures are noisy on a shared machine: read the ratio with its spread.

    python benchmarks/bench_estimator.py [--weights dummy|dummy:reduced] [--calls 10] [--reps 3] [--out [PATH]]
    python benchmarks/bench_estimator.py --weights dummy:reduced --reps 3 --profile   # quick
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

from _common import Output, add_common_args, fmt, ordered, use_bench_cache

TEXT = "The quick brown fox jumps over the lazy dog."


def load(weights: str) -> Any:
    """english in bfloat16 on CPU: its estimator's runner in autocast mode."""
    import chatterbox_nb as cnb
    from chatterbox_nb.engine.models import loader

    cnb.load("english", weights=weights, device="cpu", dtype="bfloat16", warmup="off", wait=True)
    (loaded,) = [m for m in loader.loaded_models()
                 if m.name == "english" and m.weights == weights and m.device == "cpu" and m.dtype == "bfloat16"]
    return loaded


def capture_inputs(run: Any, weights: str, tokens: int, seed: int) -> dict[str, Any]:
    """The keyword arguments of the first estimator call of a short say."""
    import chatterbox_nb as cnb

    captured: list[dict[str, Any]] = []
    real = run.run_eager
    run.run_eager = lambda *a, **k: captured.append(k) or real(*a, **k)
    try:
        cnb.say(TEXT, model="english", weights=weights, device="cpu", dtype="bfloat16", max_tokens=tokens, seed=seed)
    finally:
        del run.run_eager
    return captured[0]


def timed(call: Callable[[], Any], n: int) -> tuple[float, float]:
    """Wall and CPU (this process, all threads) seconds per call, over n calls: CPU time is
    the steadier figure on a machine others use (it does not count waiting for a core)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def copy_share(call: Callable[[], Any], calls: int = 3) -> tuple[float, float, int]:
    """Over `calls` calls profiled: `aten::copy_`'s share of the self CPU time, its
    milliseconds per call, and the `aten::_to_copy` calls per call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            call()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    copy = sum(e.self_cpu_time_total for e in events if e.key == "aten::copy_")
    to_copy = sum(e.count for e in events if e.key == "aten::_to_copy")
    return (copy / total if total else 0.0), copy / 1e3 / calls, to_copy // calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, tokens=6)
    parser.add_argument("--calls", type=int, default=10, help="estimator calls per side and repetition (a say: 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also profile one call per side (torch.profiler)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Output("bench_estimator")
    out.header()
    out(f"cache dir {use_bench_cache()}")
    loaded = load(args.weights)
    from chatterbox_nb.engine.seams.estimator import runner

    est = loaded.tts.s3gen.flow.decoder.estimator
    run = runner(est)
    if run.mode != "autocast":
        raise SystemExit(f"the estimator runs in {run.mode} mode here, not autocast: nothing to compare")
    inputs = capture_inputs(run, args.weights, args.tokens, args.seed)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in inputs.items() if hasattr(v, "shape"))
    params = sum(p.numel() for p in est.parameters())
    out(f"\nenglish {args.weights}, bfloat16 autocast on CPU; estimator {params / 1e6:.1f} M parameters; "
        f"one real call's inputs: {shapes}")

    def per_call() -> Any:  # the path as it was: autocast casts every weight on this call
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            return type(est).forward(est, **inputs).float()

    def once() -> Any:
        return est.forward(**inputs)

    sides = {"cast per call": per_call, "cast once": once}
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in sides}
    ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
    with torch.inference_mode():
        identical = torch.equal(per_call(), once())  # also the untimed first call of each side
        for rep in range(args.reps):
            for name in ordered(rep, list(sides)):
                wall, cpu = timed(sides[name], args.calls)
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
            for clock in ratios:
                ratios[clock].append(times["cast per call"][clock][-1] / times["cast once"][clock][-1])
        out(f"{args.calls} calls per side and repetition, {args.reps} reps alternated, {torch.get_num_threads()} "
            f"threads; seconds per call, median [min-max]:")
        out(f"  {'':<14} {'wall':<24} {'CPU (all threads)':<24}")
        for name, clocks in times.items():
            out(f"  {name:<14} {fmt(clocks['wall'], ' s', 4):<24} {fmt(clocks['cpu'], ' s', 4):<24}")
        for clock, values in ratios.items():
            out(f"  cast once vs cast per call, {clock}: {statistics.median(values):.3f}x faster (median of "
                f"side-by-side ratios; {', '.join(f'{r:.3f}' for r in values)})")
        out(f"  outputs bit-identical: {'yes' if identical else 'NO'}")
        out(f"  the bfloat16 copies hold {run.cast_bytes / 2**20:.1f} MiB "
            f"({len(run._cast)} linear and convolution weights and biases)")
        if args.profile:
            for name, call in sides.items():
                share, ms, count = copy_share(call)
                out(f"  profile (3 calls), {name}: aten::copy_ {share:.1%} of self CPU time, {ms:.1f} ms a call; "
                    f"{count} aten::_to_copy calls a call")
    out.write(args.out)


if __name__ == "__main__":
    main()
