"""Fresh-process load: our disk cache vs chatterbox-tts's `from_local`, on the same files.

Each measurement is a new Python process that first imports torch and chatterbox
(timed apart), then loads the full-size English model on the CPU, and reports the
load time and its peak resident memory. The two loaders alternate, after one
unmeasured run of each, so both see the same warm page cache. Ratios are what
count here; absolute seconds depend on the machine.

    python benchmarks/bench_load.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _common import bench_env, run_child

CHILD = r"""
import json, re, sys, time
t0 = time.perf_counter()
import torch, chatterbox.tts, chatterbox_nb.api
imports = time.perf_counter() - t0
t1 = time.perf_counter()
if sys.argv[1] == "ours":
    import chatterbox_nb as cnb
    r = cnb.load("english", weights="dummy", device="cpu", warmup="off", wait=True)
    assert r.source == "disk-cache", r.source
else:
    from chatterbox.tts import ChatterboxTTS
    ChatterboxTTS.from_local(sys.argv[2], "cpu")
load = time.perf_counter() - t1
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec.
hwm_kib = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"imports_s": imports, "load_s": load, "peak_rss_gib": hwm_kib / 2**20}))
"""

PREPARE = """
import json
import chatterbox_nb as cnb
print(json.dumps(cnb.load("english", weights="dummy", device="cpu", warmup="off", wait=True).source))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from chatterbox_nb.engine import dummy

    env = bench_env()
    print("preparing the full-size dummy and its disk-cache entry (once)...", flush=True)
    run_child(PREPARE, [], env, "preparing")
    folder = dummy.dummy_dir(Path(env["CHATTERBOX_NB_CACHE_DIR"]), "english", "full")

    results: dict[str, list[dict[str, float]]] = {"ours": [], "from_local": []}
    for i in range(args.runs + 1):
        for kind in results:
            r = run_child(CHILD, [kind, str(folder)], env, f"{kind} run")
            if i:  # the first round only warms the page cache
                results[kind].append(r)
                print(f"  {kind:10s} load {r['load_s']:6.2f} s  peak RSS {r['peak_rss_gib']:5.2f} GiB  "
                      f"(imports {r['imports_s']:.2f} s)", flush=True)

    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    ours, up = med["ours"], med["from_local"]
    print("\nmedians over", args.runs, "runs each (full-size English, CPU, float32)")
    print(f"  load time       ours {ours['load_s']:.2f} s   from_local {up['load_s']:.2f} s   "
          f"speed-up {up['load_s'] / ours['load_s']:.1f}x (target >= 12x)")
    with_imports = (up["load_s"] + up["imports_s"]) / (ours["load_s"] + ours["imports_s"])
    print(f"  with imports    ours {ours['load_s'] + ours['imports_s']:.2f} s   "
          f"from_local {up['load_s'] + up['imports_s']:.2f} s   speed-up {with_imports:.1f}x")
    print(f"  peak RSS        ours {ours['peak_rss_gib']:.2f} GiB   from_local {up['peak_rss_gib']:.2f} GiB   "
          f"ratio {ours['peak_rss_gib'] / up['peak_rss_gib']:.2f}x (target <= 0.3x)")


if __name__ == "__main__":
    main()
