"""A say in float32 against the same say in bfloat16 (english, or `--model turbo`), in one fresh process.

Both models are loaded first (from the disk cache); then the two say the same sentence with
the same seed and token cap, alternated, one untimed round first. Reported: each side's T3
(and within it its first pass over the voice prompt and the text, and its decoding steps),
S3Gen and the whole say, medians of `--reps`, and the float32/bfloat16 ratios side by side.
Where the CPU has no native bfloat16 this is what `--dtype bfloat16` buys over `auto`
(float32 there): T3 in bfloat16 with its wide products in float32, S3Gen in float32
(engine/models/precision.py); turbo's GPT-2 weights laid out column by column there.

    python benchmarks/bench_dtype.py [--model turbo] [--weights dummy] [--tokens 30] [--reps 3] [--out [PATH]]
"""

from __future__ import annotations

import argparse

from _common import Output, add_common_args, bench_env, fmt, run_child

TEXT = "The weather was cold and grey all day."

CHILD = r"""
import json, sys, time
import chatterbox_nb as cnb
from chatterbox_nb.engine.models import loader
text, weights, reps, tokens, seed, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
calls = []  # each call of T3's transformer (Llama, GPT-2 for turbo): the first pass, then one a decoding step
def timed(forward):
    def call(*a, **k):
        start = time.perf_counter()
        try:
            return forward(*a, **k)
        finally:
            calls.append(time.perf_counter() - start)
    return call
sides = ["float32", "bfloat16"]
for dtype in sides:
    cnb.load(model, weights=weights, device="cpu", dtype=dtype, warmup="off", wait=True)
for m in loader.loaded_models():
    m.tts.t3.tfmr.forward = timed(m.tts.t3.tfmr.forward)
runs = {dtype: [] for dtype in sides}
for rep in range(reps + 1):  # the first round untimed
    for dtype in (sides if rep % 2 == 0 else sides[::-1]):
        calls.clear()
        u = cnb.say(text, model=model, weights=weights, device="cpu", dtype=dtype, max_tokens=tokens,
                    seed=seed + rep)
        if rep:
            runs[dtype].append({"t3_s": u.timings["t3_s"], "first_pass_s": calls[0], "steps_s": sum(calls[1:]),
                                "s3gen_s": u.timings["s3gen_s"], "total_s": u.timings["total_s"],
                                "tokens": u.timings["speech_tokens"]})
print(json.dumps(runs))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, tokens=30)
    parser.add_argument("--model", choices=["english", "turbo"], default="english")
    args = parser.parse_args()
    out = Output("bench_dtype")
    out.header()
    runs = run_child(CHILD, [TEXT, args.weights, str(args.reps), str(args.tokens), str(args.seed), args.model],
                     bench_env(),
                     "dtype run")
    out(f"\n{args.model}, {args.weights}, one sentence capped at {args.tokens} tokens, {args.reps} reps alternated "
        "(one untimed round first)")
    for dtype, rs in runs.items():
        out(f"  {dtype:8s} T3 {fmt(r['t3_s'] for r in rs)} s (first pass {fmt(r['first_pass_s'] for r in rs)} s, "
            f"decoding {fmt(r['steps_s'] for r in rs)} s)   S3Gen {fmt(r['s3gen_s'] for r in rs)} s   "
            f"say {fmt(r['total_s'] for r in rs)} s")
    f32, b16 = runs["float32"], runs["bfloat16"]
    out(f"  float32 / bfloat16, side by side: T3 {fmt(a['t3_s'] / b['t3_s'] for a, b in zip(f32, b16))}x   "
        f"first pass {fmt(a['first_pass_s'] / b['first_pass_s'] for a, b in zip(f32, b16))}x   "
        f"say {fmt(a['total_s'] / b['total_s'] for a, b in zip(f32, b16))}x")
    out.write(args.out)


if __name__ == "__main__":
    main()
