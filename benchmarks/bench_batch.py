"""Batch throughput: the local engine against 1 and 2 local Ray actors, side by side.

Each configuration is a fresh Python process that runs `cnb.batch` over the same
rows into a folder of its own (the local engine first loads the model, as a kernel
would have). Rows per minute are counted once the engine is ready (model in memory,
actors loaded) and also with start-up; every row runs under one torch thread, so
all engines make the same audio. A short synthetic reference voice keeps rows quick
(S3Gen's cost follows the reference's length). Also printed: how each Ray actor
loaded (imports, then the model from the disk cache), and the load average, since
2 actors can only scale when 2 cores are free. Ratios are what count here.

    python benchmarks/bench_batch.py [--rows 12] [--weights dummy:reduced|dummy] [--max-tokens 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _common import bench_env, run_child

CHILD = r"""
import json, sys, time
cfg = json.loads(sys.argv[1])
import chatterbox_nb as cnb
common = dict(voice=cfg["voice"], weights=cfg["weights"], device="cpu", max_tokens=cfg["max_tokens"], progress=False)
load_s = None
if cfg["engine"] == "local":
    load_s = cnb.load("english", weights=cfg["weights"], device="cpu", warmup="off", wait=True).seconds
r = cnb.batch(cfg["texts"], cfg["out"], engine=cfg["engine"], workers=cfg["workers"], threads=cfg["threads"], **common)
assert r.made == len(cfg["texts"]) and not r.failed, r
print(json.dumps({"elapsed_s": r.elapsed_s, "ready_s": r.ready_s, "steady": r.steady_rows_per_min,
                  "overall": r.rows_per_min, "actors": r.actors, "load_s": load_s}))
"""

CONFIGS = [  # label, engine, workers, threads
    ("local, 1 thread", "local", None, 1),
    ("ray, 1 actor", "ray", 1, 1),
    ("ray, 2 actors", "ray", 2, 1),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--weights", default="dummy:reduced")
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--voice-seconds", type=float, default=1.2)
    args = parser.parse_args()

    import soundfile as sf

    from chatterbox_nb.engine import dummy

    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench_batch-"))
    voice = work / "voice.wav"
    sf.write(voice, dummy.synthetic_voice(args.voice_seconds, 24000, seed=3), 24000)
    base = {"voice": str(voice), "weights": args.weights, "max_tokens": args.max_tokens}
    texts = [f"Benchmark sentence number {i}." for i in range(args.rows)]

    print("preparing the model's disk-cache entry and the voice's conditionals (once)...", flush=True)
    run_child(CHILD, [json.dumps({**base, "texts": texts[:1], "out": str(work / "prep"), "engine": "local",
                                  "workers": None, "threads": 1})], env, "preparing")
    results = {}
    for label, engine, workers, threads in CONFIGS:
        cfg = {**base, "texts": texts, "out": str(work / label.replace(", ", "-").replace(" ", "_")),
               "engine": engine, "workers": workers, "threads": threads}
        load_before = os.getloadavg()[0]
        r = results[label] = run_child(CHILD, [json.dumps(cfg)], env, label)
        print(f"  {label:32s} {r['steady']:6.1f} rows/min once ready ({r['overall']:5.1f} with start-up; "
              f"ready after {r['ready_s']:.1f} s, {r['elapsed_s']:.1f} s in all; load average "
              f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs)", flush=True)
        for i, a in enumerate(r["actors"]):
            print(f"      actor {i}: imports {a['imports_s']:.1f} s, model from {a['source']} in {a['load_s']:.2f} s")
        if r["load_s"] is not None:
            print(f"      kernel model load {r['load_s']:.2f} s (before the batch)")

    ref = results[CONFIGS[0][0]]
    print(f"\n{args.rows} rows, {args.weights}, {args.max_tokens} tokens, {args.voice_seconds:g} s voice; "
          f"ratios against '{CONFIGS[0][0]}' (rows/min once ready; with start-up in brackets)")
    for label, *_ in CONFIGS[1:]:
        r = results[label]
        print(f"  {label:32s} {r['steady'] / ref['steady']:.2f}x  ({r['overall'] / ref['overall']:.2f}x)")
    actors = [a for label, *_ in CONFIGS for a in results[label]["actors"]]
    if actors:
        loads = sorted(a["load_s"] for a in actors)
        print(f"  actor model loads from the disk cache: median {loads[len(loads) // 2]:.2f} s "
              f"(imports median {sorted(a['imports_s'] for a in actors)[len(actors) // 2]:.1f} s), {len(actors)} actors")


if __name__ == "__main__":
    main()
