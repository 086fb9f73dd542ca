"""Long text: time to first audio vs the whole paragraph, full-size English on the CPU.

A fresh process loads the full-size dummy from the disk cache (light warm-up, so
no first-call costs), then says a six-sentence paragraph, seeded and token-capped,
several times. `first_audio_s` is when the first chunk reached the caller (what
the progressive player plays at once); `total_s` is the whole paragraph. Without
chunking, nothing would be playable before `total_s`.

    python benchmarks/bench_longtext.py [--says 2] [--tokens 8]

`--overlap` instead times a 3-sentence paragraph overlapped (CHATTERBOX_NB_OVERLAP=1: the
middle sentence renders on the say's render worker while T3 samples the third, the stages
sharing the threads, engine/generation/overlap.py) against sequential, alternated in one
process, medians of `--reps`, in the dtype `--dtype` picks (auto: bfloat16 where native).

    python benchmarks/bench_longtext.py --overlap [--weights dummy:reduced] [--reps 3] [--tokens 30] [--out [PATH]]

`--group` times the same paragraph with its second and third sentences rendered in one S3Gen
call (CHATTERBOX_NB_GROUP_RENDERS=1, engine/generation/speak.py: S3Gen re-reads the voice's
reference prompt on every call) against sequential, the same way. Both flags time all three
schedules in one run; `--sentences 6` says the six-sentence paragraph instead (a 3-sentence
one overlaps one render with one T3; six sentences, four).

    python benchmarks/bench_longtext.py --group [--overlap] [--sentences 6] [--weights dummy:reduced] [--reps 3]
        [--tokens 30] [--out [PATH]]
"""

from __future__ import annotations

import argparse
import json
import statistics

from _common import Output, bench_env, fmt, run_child

PARAGRAPH = (
    "Dr. Smith went to Washington on Monday. He arrived at 3 p.m. after a long drive. "
    "The weather was cold and grey all day. Everyone at the meeting was already waiting. "
    "They talked for hours about the new bridge. Then they all went home for dinner."
)

CHILD = r"""
import json, sys
import chatterbox_nb as cnb
text, says, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cnb.load("english", weights="dummy", device="cpu", warmup="light", wait=True)
runs = []
for i in range(says):
    u = cnb.say(text, weights="dummy", device="cpu", max_tokens=tokens, seed=i)
    runs.append({k: u.timings[k] for k in ("first_audio_s", "total_s", "chunks_done", "speech_tokens", "audio_s")})
print(json.dumps(runs))
"""

THREE = ("The weather was cold and grey all day. Everyone at the meeting was already waiting. "
         "They talked for hours about the new bridge.")

#: the schedules `--overlap` and `--group` compare, as (overlap, group_renders) settings
SCHEDULES = {"sequential": (False, False), "overlapped": (True, False), "grouped": (False, True)}

VARIANTS_CHILD = r"""
import json, sys
import chatterbox_nb as cnb
from chatterbox_nb import config
text, weights, reps, tokens, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
variants = json.loads(sys.argv[6])  # [[name, overlap, group_renders], ...]
cnb.load("english", weights=weights, device="cpu", dtype=dtype, warmup="light", wait=True)
runs = {name: [] for name, _, _ in variants}
for rep in range(reps + 1):  # the first round untimed
    for name, overlap, group in (variants if rep % 2 == 0 else variants[::-1]):
        config.settings().overlap, config.settings().group_renders = overlap, group
        u = cnb.say(text, weights=weights, device="cpu", dtype=dtype, max_tokens=tokens, seed=rep)
        if rep:
            runs[name].append({k: u.timings[k] for k in ("first_audio_s", "total_s", "chunks_done", "audio_s", "t3_s",
                                                          "s3gen_s")} | {"dtype": u.params["dtype"]})
print(json.dumps(runs))
"""


def compare(args: argparse.Namespace, others: list[str]) -> None:
    """Each of `others` ("overlapped", "grouped") vs sequential on a paragraph of
    `args.sentences` sentences: the whole-paragraph ratio and the first audio's."""
    out = Output("bench_longtext")
    out.header()
    text = THREE if args.sentences == 3 else PARAGRAPH
    variants = [[name, *SCHEDULES[name]] for name in ("sequential", *others)]
    runs = run_child(VARIANTS_CHILD, [text, args.weights, str(args.reps), str(args.tokens), args.dtype,
                                      json.dumps(variants)], bench_env(), f"{' and '.join(others)} run")
    seq = runs["sequential"]
    out(f"\n{args.sentences}-sentence paragraph, english, {args.weights}, {seq[0]['dtype']} (dtype {args.dtype}), "
        f"{args.tokens} tokens per sentence, {args.reps} reps alternated (one untimed round first)")
    for name, rs in runs.items():
        out(f"  {name:11s} whole {fmt((r['total_s'] for r in rs), ' s')}   first audio "
            f"{fmt((r['first_audio_s'] for r in rs), ' s')}   T3 {fmt(r['t3_s'] for r in rs)} s   "
            f"S3Gen {fmt(r['s3gen_s'] for r in rs)} s   chunks {[r['chunks_done'] for r in rs]}")
    for other in others:
        alt = runs[other]
        out(f"  sequential / {other}, whole paragraph, side by side: ".ljust(58) +
            f"{fmt(s['total_s'] / o['total_s'] for s, o in zip(seq, alt))}x  (target >= 1.2x)")
        out(f"  {other} / sequential, first audio: ".ljust(58) +
            f"{fmt(o['first_audio_s'] / s['first_audio_s'] for s, o in zip(seq, alt))}x  (target <= 1.0x)")
    assert all(r["chunks_done"] == args.sentences for rs in runs.values() for r in rs)
    out.write(args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--says", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--overlap", action="store_true", help="overlapped vs sequential")
    parser.add_argument("--group", action="store_true", help="later sentences rendered together vs sequential")
    parser.add_argument("--sentences", type=int, default=3, choices=(3, 6), help="with --overlap or --group")
    parser.add_argument("--weights", default="dummy", choices=("dummy", "dummy:reduced"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", nargs="?", const="", default=None, metavar="PATH",
                        help="with --overlap or --group: also write the output as markdown (docs/benchmarks/bench_longtext.md)")
    args = parser.parse_args()
    if args.overlap or args.group:
        compare(args, [name for name, on in (("overlapped", args.overlap), ("grouped", args.group)) if on])
        return
    env = bench_env()
    runs = run_child(CHILD, [PARAGRAPH, str(args.says), str(args.tokens)], env, "long-text run")
    for r in runs:
        print(f"  {r['chunks_done']} chunks, {r['speech_tokens']} tokens, {r['audio_s']:.2f} s of audio: "
              f"first audio {r['first_audio_s']:.2f} s, whole paragraph {r['total_s']:.2f} s", flush=True)
    first = statistics.median(r["first_audio_s"] for r in runs)
    total = statistics.median(r["total_s"] for r in runs)
    print(f"\nmedians over {len(runs)} says (full-size English, CPU, {args.tokens} tokens per chunk)")
    print(f"  time to first audio {first:.2f} s   whole paragraph {total:.2f} s   "
          f"ratio {first / total:.2f}x (target <= 0.25x)")


if __name__ == "__main__":
    main()
