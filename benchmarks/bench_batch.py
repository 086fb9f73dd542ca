"""Batch throughput: the local engine against 1 and 2 local Ray actors, side by side.

Each configuration is a fresh Python process that runs `cnb.batch` over the same
rows into a folder of its own (the local engine first loads the model, as a kernel
would have). Every row runs under one torch thread, so all engines make the same audio.
A short synthetic reference voice keeps rows quick (S3Gen's cost follows the
reference's length). The configurations run `--reps` times, in an order that reverses
from one repetition to the next; medians [min-max] are printed.

The headline is rows per minute *with start-up*: from the call to the last row,
Ray's start (`ray.init`), each actor's imports and model load included, and for the
local engine its model load (done before `cnb.batch`, as in a kernel) added. What it
leaves out, for every engine alike: starting Python and importing chatterbox_nb in the
calling process. Rows per minute *once ready* (the engine loaded, actors up) leave out
all of the start-up; they show what a long batch tends to. Also printed: how each Ray
actor loaded, and the load average, since 2 actors can only scale when 2 cores are free.

    python benchmarks/bench_batch.py [--rows 12] [--weights dummy:reduced|dummy] [--tokens 3] [--reps 3] [--out [PATH]]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from _common import Output, add_common_args, bench_env, fmt, load_average, ordered, run_child

CHILD = r"""
import json, sys, time
cfg = json.loads(sys.argv[1])
import chatterbox_nb as cnb
common = dict(voice=cfg["voice"], weights=cfg["weights"], device="cpu", max_tokens=cfg["max_tokens"], progress=False)
load_s = 0.0
if cfg["engine"] == "local":
    load_s = cnb.load("english", weights=cfg["weights"], device="cpu", warmup="off", wait=True).seconds
r = cnb.batch(cfg["texts"], cfg["out"], engine=cfg["engine"], workers=cfg["workers"], threads=cfg["threads"], **common)
assert r.made == len(cfg["texts"]) and not r.failed, r
print(json.dumps({"elapsed_s": r.elapsed_s, "ready_s": r.ready_s, "made": r.made, "actors": r.actors,
                  "load_s": load_s}))
"""

CONFIGS = [  # label, engine, workers, threads
    ("local, 1 thread", "local", None, 1),
    ("ray, 1 actor", "ray", 1, 1),
    ("ray, 2 actors", "ray", 2, 1),
]


def _rates(r: dict) -> dict:
    """Rows per minute with start-up (the local engine's model load added) and once ready."""
    total = r["elapsed_s"] + r["load_s"]
    ready = (r["ready_s"] or 0.0) + r["load_s"]
    return {**r, "total_s": total, "start_s": ready, "overall": 60 * r["made"] / total,
            "steady": 60 * r["made"] / max(1e-9, total - ready)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12)
    add_common_args(parser, tokens=3, weights="dummy:reduced")
    # --max-tokens: its former name
    parser.add_argument("--max-tokens", dest="tokens", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--voice-seconds", type=float, default=1.2)
    args = parser.parse_args()

    import soundfile as sf

    from chatterbox_nb.engine.store import dummy

    out = Output("bench_batch")
    out.header()
    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench_batch-"))
    voice = work / "voice.wav"
    sf.write(voice, dummy.synthetic_voice(args.voice_seconds, 24000, seed=3), 24000)
    base = {"voice": str(voice), "weights": args.weights, "max_tokens": args.tokens}
    texts = [f"Benchmark sentence number {i}." for i in range(args.rows)]

    print("preparing the model's disk-cache entry and the voice's conditionals (once)...", flush=True)
    run_child(CHILD, [json.dumps({**base, "texts": texts[:1], "out": str(work / "prep"), "engine": "local",
                                  "workers": None, "threads": 1})], env, "preparing")
    out(f"{args.rows} rows, {args.weights}, {args.tokens} tokens, {args.voice_seconds:g} s voice, 1 torch thread "
        f"per row; {args.reps} reps, order alternated; {os.cpu_count()} CPUs")
    results: dict[str, list[dict]] = {label: [] for label, *_ in CONFIGS}
    for rep in range(args.reps):
        for label, engine, workers, threads in ordered(rep, CONFIGS):
            folder = work / f"{rep}-{label.replace(', ', '-').replace(' ', '_')}"
            cfg = {**base, "texts": texts, "out": str(folder), "engine": engine, "workers": workers, "threads": threads}
            before = load_average()
            r = _rates(run_child(CHILD, [json.dumps(cfg)], env, label))
            results[label].append(r)
            out(f"  rep {rep + 1} {label:16s} {r['overall']:6.1f} rows/min with start-up ({r['steady']:6.1f} once "
                f"ready after {r['start_s']:.1f} s; {r['total_s']:.1f} s in all); load average {before} before, "
                f"{load_average()} after")
            for i, a in enumerate(r["actors"]):
                out(f"      actor {i}: imports {a['imports_s']:.1f} s, model from {a['source']} in {a['load_s']:.2f} s")

    ref = results[CONFIGS[0][0]]
    out(f"\nmedians [min-max] over {args.reps} reps; ratios against '{CONFIGS[0][0]}' within each rep")
    out(f"  {'':16s} {'rows/min with start-up':26s} {'ratio':18s} {'rows/min once ready':26s} ratio")
    for label, *_ in CONFIGS:
        got = results[label]
        out(f"  {label:16s} {fmt(r['overall'] for r in got):26s} "
            f"{fmt((r['overall'] / b['overall'] for r, b in zip(got, ref)), 'x'):18s} "
            f"{fmt(r['steady'] for r in got):26s} {fmt((r['steady'] / b['steady'] for r, b in zip(got, ref)), 'x')}")
    out("  with start-up: Ray's start, actors' imports and model loads, and the local engine's model load are "
        "included;\n  once ready leaves all of them out. Neither counts starting Python and importing chatterbox_nb "
        "in the caller.")
    actors = [a for label, *_ in CONFIGS for r in results[label] for a in r["actors"]]
    if actors:
        out(f"  actor model loads from the disk cache: median {statistics.median(a['load_s'] for a in actors):.2f} s "
            f"(imports median {statistics.median(a['imports_s'] for a in actors):.1f} s), {len(actors)} actors")
    out.write(args.out)


if __name__ == "__main__":
    main()
