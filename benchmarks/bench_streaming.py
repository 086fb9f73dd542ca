"""Token streaming: what a streamed say costs over `--no-stream`, and how soon its first audio comes.

For each model, this process loads the checkpoint (no warm-up of its own), runs the same
warm-up for both modes (`--warmup-calls` untimed says of each), then `--reps`
repetitions of one sentence (no chunk boundary), seeded and capped at `--tokens`,
streamed and `--no-stream`, in an order that reverses from one repetition to the next
(same seed: same tokens; T3's count must equal the cap in both modes). Printed:
medians [min-max] of each mode's total and of the side-by-side ratios: streamed total
over unstreamed total (what streaming costs), and the streamed say's first audio (when
its first piece reached the caller, what the player plays at once) over its total.
"streamed" runs with `Chatterbox.overlap = False`; a third mode, "overlapped", is the
streamed say with it True (as "auto", the default, does for a streamed say): the pieces
between the first and the last render on the say's render worker while T3 samples on,
the two stages sharing the threads (engine/generation/overlap.py).

Targets (issue #23): english streamed/unstreamed <= 1.15, first audio <= 0.35 of the
total; turbo <= 1.05 and <= 0.2.

    python benchmarks/bench_streaming.py [--models english turbo] [--weights dummy|dummy:reduced] [--tokens 90]
        [--reps 3] [--dtype auto] [--out [PATH]]
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import Output, T3Counter, add_common_args, fmt, ordered, use_bench_cache

SENTENCE = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch"
TARGETS = {"english": (1.15, 0.35), "turbo": (1.05, 0.2)}  # streamed/unstreamed total, first audio/total
KEYS = ("first_audio_s", "total_s", "pieces", "speech_tokens", "audio_s", "t3_s", "s3gen_s", "watermark_s")


def bench(model: str, args: argparse.Namespace, out: Output, counter: T3Counter) -> None:
    import chatterbox_nb as cnb

    kw: dict[str, Any] = dict(model=model, weights=args.weights, device="cpu", dtype=args.dtype)
    report = cnb.load(warmup="off", wait=True, **kw)

    from chatterbox_nb import config

    def say(stream: bool, overlap: bool = False) -> dict[str, Any]:
        config.settings().overlap = overlap
        u = cnb.say(SENTENCE, max_tokens=args.tokens, seed=args.seed, stream=stream, **kw)
        if counter.last != args.tokens:
            raise SystemExit(f"{model}: T3 sampled {counter.last} tokens, not the cap of {args.tokens} "
                             f"({'streamed' if stream else '--no-stream'}): unequal work")
        if bool(u.params["stream"]) != stream:
            raise SystemExit(f"{model}: asked stream={stream}, the say ran stream={u.params['stream']}")
        return {k: u.timings[k] for k in KEYS}

    modes = [("--no-stream", False, False), ("streamed", True, False), ("overlapped", True, True)]
    for _ in range(args.warmup_calls):
        for _, stream, overlap in modes:
            say(stream, overlap)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in modes}
    for rep in range(args.reps):
        for name, stream, overlap in ordered(rep, modes):
            runs[name].append(say(stream, overlap))
    config.settings().overlap = "auto"
    plain, streamed, overlapped = runs["--no-stream"], runs["streamed"], runs["overlapped"]
    out(f"\n{model}: {report.dtype} (dtype {args.dtype}), {args.weights}, CPU; one sentence capped at {args.tokens} "
        f"tokens, seed {args.seed}; {args.reps} reps, order alternated; warm-up: {args.warmup_calls} untimed say(s) "
        f"in each mode; {plain[0]['speech_tokens']} tokens rendered, {plain[0]['audio_s']:.2f} s of audio")
    for name, got in runs.items():
        out(f"  {name:11} total {fmt((t['total_s'] for t in got), ' s')}  first audio "
            f"{fmt((t['first_audio_s'] for t in got), ' s')}  pieces {sorted({t['pieces'] for t in got})}  "
            f"T3 {fmt(t['t3_s'] for t in got)} s  S3Gen {fmt(t['s3gen_s'] for t in got)} s")
    cost_target, first_target = TARGETS.get(model, (None, None))
    goal = f"  (target <= {cost_target})" if cost_target else ""
    out(f"  streamed total / --no-stream total, side by side: "
        f"{fmt(s['total_s'] / p['total_s'] for s, p in zip(streamed, plain))}{goal}")
    goal = f"  (target <= {first_target})" if first_target else ""
    out(f"  streamed first audio / its total:                 "
        f"{fmt(s['first_audio_s'] / s['total_s'] for s in streamed)}{goal}")
    out(f"  overlapped total / --no-stream total:             "
        f"{fmt(s['total_s'] / p['total_s'] for s, p in zip(overlapped, plain))}")
    out(f"  overlapped first audio / its total:               "
        f"{fmt(s['first_audio_s'] / s['total_s'] for s in overlapped)}")
    cnb.unload(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["english", "turbo"], choices=("english", "turbo"))
    add_common_args(parser, tokens=90)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--warmup-calls", type=int, default=1, help="untimed says in each mode before timing")
    args = parser.parse_args()
    cache = use_bench_cache()
    out = Output("bench_streaming")
    out.header()
    out(f"cache dir {cache}")
    counter = T3Counter()
    for model in args.models:
        bench(model, args, out, counter)
    out.write(args.out)


if __name__ == "__main__":
    main()
