"""How each stage scales with threads, and what running the two side by side buys.

The split an overlapped say makes (engine/generation/overlap.py: T3 a quarter of the
threads, S3Gen the rest) rests on these figures. In one process, for each model: T3
(one seeded, token-capped sentence) and S3Gen (rendering T3's tokens) each timed alone
with 1 thread and with every thread, then side by side, each stage on its own thread
with its share (`ThreadShare`), as an overlapped say runs them. Repetitions alternate
the order; medians [min-max]. Printed per model: each stage's gain from 1 thread to all
of them, and the work done side by side against the same two stages one after the
other with every thread (> 1: the overlap pays on this machine).

    python benchmarks/bench_threads.py [--models english turbo] [--weights dummy|dummy:reduced] [--tokens 40]
        [--reps 3] [--out [PATH]]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any, Callable

from _common import Output, add_common_args, fmt, ordered, use_bench_cache

SENTENCE = "The weather was cold and grey all day, and everyone was waiting."


def bench(model: str, args: argparse.Namespace, out: Output) -> None:
    import torch

    import chatterbox_nb as cnb
    from chatterbox_nb.engine.generation import speak
    from chatterbox_nb.engine.generation.overlap import ThreadShare
    from chatterbox_nb.engine.models import loader
    from chatterbox_nb.engine.request import SayOptions

    report = cnb.load(model, weights=args.weights, device="cpu", dtype=args.dtype, warmup="light", wait=True)
    (loaded,) = [m for m in loader.loaded_models() if m.name == model and m.weights == args.weights]
    opts = SayOptions.defaults(loaded.spec, max_tokens=args.tokens, seed=args.seed)
    total = torch.get_num_threads()
    share = ThreadShare(total)

    def t3(threads: int) -> tuple[Callable[[], Any], float]:
        torch.set_num_threads(threads)
        begin = time.perf_counter()
        render, _ = speak._generate(loaded, opts, 0, SENTENCE, None, deferred=True)
        return render, time.perf_counter() - begin

    def s3gen(render: Callable[[], Any], threads: int) -> float:
        torch.set_num_threads(threads)
        begin = time.perf_counter()
        render()
        return time.perf_counter() - begin

    def side_by_side() -> dict[str, float]:
        """T3 here with its share, S3Gen (of an earlier sentence) on a thread with the rest."""
        render, _ = t3(total)
        took: dict[str, float] = {}
        other = threading.Thread(target=lambda: took.update(s3gen=s3gen(render, share.render_beside)))
        begin = time.perf_counter()
        other.start()
        _, took["t3"] = t3(share.t3_beside)
        other.join()
        took["wall"] = time.perf_counter() - begin
        return took

    def alone() -> dict[str, float]:
        got: dict[str, float] = {}
        render, got["t3_1"] = t3(1)
        _, got["t3_all"] = t3(total)
        got["s3gen_1"] = s3gen(render, 1)
        got["s3gen_all"] = s3gen(render, total)
        return got

    with loaded.use(user=True):
        s3gen(t3(total)[0], total)  # one untimed round
        runs: dict[str, list[dict[str, float]]] = {"alone": [], "side by side": []}
        for rep in range(args.reps):
            for name, run in ordered(rep, [("alone", alone), ("side by side", side_by_side)]):
                runs[name].append(run())
        torch.set_num_threads(total)
    a, s = runs["alone"], runs["side by side"]
    out(f"\n{model}: {report.dtype} (dtype {args.dtype}), {args.weights}, CPU, {total} threads; one sentence capped "
        f"at {args.tokens} tokens, seed {args.seed}; {args.reps} reps, order alternated")
    out(f"  T3 alone:    1 thread {fmt(r['t3_1'] for r in a)} s   {total} threads {fmt(r['t3_all'] for r in a)} s   "
        f"gain {fmt(r['t3_1'] / r['t3_all'] for r in a)}x")
    out(f"  S3Gen alone: 1 thread {fmt(r['s3gen_1'] for r in a)} s   {total} threads {fmt(r['s3gen_all'] for r in a)} s   "
        f"gain {fmt(r['s3gen_1'] / r['s3gen_all'] for r in a)}x")
    out(f"  side by side (T3 {share.t3_beside} thread(s), S3Gen {share.render_beside}): T3 {fmt(r['t3'] for r in s)} s, "
        f"S3Gen {fmt(r['s3gen'] for r in s)} s, both done after {fmt(r['wall'] for r in s)} s")
    out(f"  one after the other with {total} threads / side by side (> 1: overlapping pays here): "
        f"{fmt((ra['t3_all'] + ra['s3gen_all']) / rs['wall'] for ra, rs in zip(a, s))}x")
    cnb.unload(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["english", "turbo"], choices=("english", "turbo"))
    add_common_args(parser, tokens=40)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    cache = use_bench_cache()
    out = Output("bench_threads")
    out.header()
    out(f"cache dir {cache}")
    for model in args.models:
        bench(model, args, out)
    out.write(args.out)


if __name__ == "__main__":
    main()
