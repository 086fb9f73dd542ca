"""What a comparison grid costs: a 2x3 `cnb.compare` against the six sequential says it
holds, side by side in one fresh process.

The model is loaded once, before either side (a grid loads it as a say does: through the
caches). Each repetition clears the voices' conditionals held in memory, then runs both
sides in an order that alternates from one repetition to the next: the grid (seed 0 1 2
x voice: a 3 s reference file and the built-in one) and the same six says one after
another. Medians [min-max] of `--reps` runs, the ratio grid / says, where each side's
voices came from (each voice obtained once per side), and whether the two sides made the
same audio (they must: each cell is the say it shows).

    python benchmarks/bench_compare.py [--weights dummy:reduced|dummy] [--tokens 8] [--reps 3] [--out [PATH]]
"""

from __future__ import annotations

import argparse

from _common import Output, add_common_args, bench_env, fmt, run_child

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import numpy as np, soundfile as sf
import chatterbox_nb as cnb
from chatterbox_nb._state import STATE
from chatterbox_nb.engine.store import dummy

weights, tokens, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
common = dict(weights=weights, device="cpu", dtype="float32", max_tokens=tokens)
load_s = time.perf_counter()
cnb.load("english", weights=weights, device="cpu", dtype="float32", warmup="off", wait=True)
load_s = time.perf_counter() - load_s
path = Path(tempfile.mkdtemp()) / "reference.wav"
sf.write(path, dummy.synthetic_voice(3.0, 24000, seed=3), 24000)
TEXT, SEEDS, VOICES = "The quick brown fox jumps.", [0, 1, 2], [str(path), "built-in"]

def grid():
    cmp = cnb.compare(TEXT, seed=SEEDS, voice=VOICES, **common)
    assert [c.state for c in cmp.cells] == ["done"] * 6, [c.state for c in cmp.cells]
    return {(c.values["seed"], c.values["voice"]): c.utterance for c in cmp.cells}

def says():
    return {(s, v): cnb.say(TEXT, seed=s, voice=None if v == "built-in" else v, **common) for s in SEEDS for v in VOICES}

times = {"grid": [], "says": []}
sources = {"grid": [], "says": []}
same = True
for rep in range(reps):
    made = {}
    for side in (["grid", "says"] if rep % 2 == 0 else ["says", "grid"]):
        STATE.voice_conds.clear()  # each side obtains its voices anew (from the disk cache after the first run)
        start = time.perf_counter()
        made[side] = (grid if side == "grid" else says)()
        times[side].append(time.perf_counter() - start)
        sources[side] = sorted(u.timings.get("voice_source", "?") for u in made[side].values())
    same &= all(np.array_equal(made["grid"][k].audio, made["says"][k].audio) for k in made["says"])
print(json.dumps({"times": times, "sources": sources, "same": bool(same), "load_s": load_s}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, tokens=8, reps=3, weights="dummy:reduced")
    args = parser.parse_args()
    out = Output("bench_compare")
    out.header()
    env = bench_env()
    r = run_child(CHILD, [args.weights, str(args.tokens), str(args.reps)], env, "compare benchmark")
    grid, says = r["times"]["grid"], r["times"]["says"]
    out(f"english {args.weights}, float32, {args.tokens} tokens a cell, {args.reps} reps alternated; "
        f"model loaded once before both sides ({r['load_s']:.1f} s)")
    out(f"2x3 compare (seed 0 1 2 x voice file, built-in): {fmt(grid, ' s')}")
    out(f"the six says, one after another:                {fmt(says, ' s')}")
    ratios = sorted(g / s for g, s in zip(grid, says))
    out(f"grid / says, per repetition: median {ratios[len(ratios) // 2]:.3f} [{ratios[0]:.3f}-{ratios[-1]:.3f}]")
    for side in ("grid", "says"):
        counts = {s: r["sources"][side].count(s) for s in sorted(set(r["sources"][side]))}
        out(f"voice sources, {side} (last rep): {counts}")
    out(f"same audio cell for say, bit for bit: {'yes' if r['same'] else 'NO'}")
    out.write(args.out)


if __name__ == "__main__":
    main()
