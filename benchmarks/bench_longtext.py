"""Long text: time to first audio vs the whole paragraph, full-size English on the CPU.

A fresh process loads the full-size dummy from the disk cache (light warm-up, so
no first-call costs), then says a six-sentence paragraph, seeded and token-capped,
several times. `first_audio_s` is when the first chunk reached the caller (what
the progressive player plays at once); `total_s` is the whole paragraph. Without
chunking, nothing would be playable before `total_s`.

    python benchmarks/bench_longtext.py [--says 2] [--tokens 8]
"""

from __future__ import annotations

import argparse
import statistics

from _common import bench_env, run_child

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--says", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()
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
