"""Long text: time to first audio vs the whole paragraph, full-size English on the CPU.

A fresh process loads the full-size dummy from the disk cache (light warm-up, so
no first-call costs), then says a six-sentence paragraph, seeded and token-capped,
several times. `first_audio_s` is when the first chunk reached the caller (what
the progressive player plays at once); `total_s` is the whole paragraph. Without
chunking, nothing would be playable before `total_s`.

    python benchmarks/bench_longtext.py [--says 2] [--tokens 8]

`--overlap` instead times a 3-sentence paragraph overlapped (S3Gen of sentence i while T3
samples sentence i+1, CHATTERBOX_NB_OVERLAP=1) against sequential, alternated in one
process, medians of `--reps`: sequential and overlapped, each with torch's threads and with
1 thread (torch.set_num_threads is process-wide: overlapped at 1 thread is two stages on two
1-thread workers), float32 set.

    python benchmarks/bench_longtext.py --overlap [--weights dummy:reduced] [--reps 3] [--tokens 8]
"""

from __future__ import annotations

import argparse
import statistics

from _common import bench_env, machine_header, run_child

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

OVERLAP_CHILD = r"""
import json, os, sys, time
import torch
import chatterbox_nb as cnb
from chatterbox_nb import config
text, weights, reps, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
threads = torch.get_num_threads()
cnb.load("english", weights=weights, device="cpu", dtype="float32", warmup="light", wait=True)
variants = [("sequential", False, threads), ("overlapped", True, threads), ("sequential-1-thread", False, 1),
            ("overlapped-1-thread", True, 1)]
runs = {name: [] for name, _, _ in variants}
for rep in range(reps):
    for name, overlap, n in (variants if rep % 2 == 0 else variants[::-1]):
        config.settings().overlap = overlap
        torch.set_num_threads(n)
        u = cnb.say(text, weights=weights, device="cpu", dtype="float32", max_tokens=tokens, seed=rep)
        runs[name].append({k: u.timings[k] for k in ("first_audio_s", "total_s", "chunks_done", "audio_s", "t3_s", "s3gen_s")})
torch.set_num_threads(threads)
print(json.dumps(runs))
"""


def overlap(args: argparse.Namespace) -> None:
    """Overlapped vs sequential on a 3-sentence paragraph: whole-paragraph ratio and first audio."""
    for line in machine_header():
        print(line)
    runs = run_child(OVERLAP_CHILD, [THREE, args.weights, str(args.reps), str(args.tokens)], bench_env(),
                     "overlap run")
    seq = runs["sequential"]
    med = {name: (statistics.median(r["total_s"] for r in rs), statistics.median(r["first_audio_s"] for r in rs))
           for name, rs in runs.items()}
    print(f"\n3-sentence paragraph, {args.weights}, float32, {args.tokens} tokens per sentence, "
          f"medians of {args.reps} (alternated)")
    for name, rs in runs.items():
        print(f"  {name}: " + "; ".join(f"whole {r['total_s']:.2f} s (T3 {r['t3_s']:.2f}, S3Gen {r['s3gen_s']:.2f}), "
                                        f"{r['audio_s']:.2f} s of audio" for r in rs))
    for name, (total, first) in med.items():
        print(f"  {name:22s} whole {total:6.2f} s   first audio {first:6.2f} s   "
              f"chunks {[r['chunks_done'] for r in runs[name]]}")
    for name, base in (("overlapped", "sequential"), ("overlapped-1-thread", "sequential"),
                       ("overlapped-1-thread", "sequential-1-thread")):
        (total, first), (base_total, base_first) = med[name], med[base]
        print(f"  {name} vs {base}: {base_total / total:.2f}x faster (target >= 1.2x), "
              f"first audio {first / base_first:.2f}x of its (target <= 1.0x)")
    assert all(r["chunks_done"] == 3 for r in seq)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--says", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--overlap", action="store_true", help="overlapped vs sequential, 3 sentences")
    parser.add_argument("--weights", default="dummy", choices=("dummy", "dummy:reduced"))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.overlap:
        overlap(args)
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
