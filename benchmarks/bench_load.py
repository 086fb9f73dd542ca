"""Fresh-process load: our disk cache vs chatterbox-tts's `from_local`, on the same files.

Each measurement is a new Python process that first imports torch and chatterbox
(timed apart), then loads the full-size English model on the CPU, and reports the
load time and its peak resident memory; then it says one capped sentence, as a user
does next, and reports that wait, the peak after it and the anonymous (unreclaimable)
memory left. The two loaders alternate, after one
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


def status(field):
    return int(re.search(field + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) / 2**20


t1 = time.perf_counter()
if sys.argv[1] == "ours":
    import chatterbox_nb as cnb
    r = cnb.load("english", weights="dummy", device="cpu", dtype="float32", warmup="off", wait=True)
    assert r.source == "disk-cache", r.source
else:
    from chatterbox.tts import ChatterboxTTS
    tts = ChatterboxTTS.from_local(sys.argv[2], "cpu")
load = time.perf_counter() - t1
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec.
# Right after a lazy (mapped) load no weight page has been touched yet: this figure
# flatters the mapping, so the first say's figures are taken too.
peak_after_load = status("VmHWM")
t2 = time.perf_counter()
if sys.argv[1] == "ours":
    cnb.say(TEXT, weights="dummy", device="cpu", dtype="float32", max_tokens=TOKENS, seed=0)
else:
    from chatterbox_nb.engine import specs
    from chatterbox_nb.engine.generation import synth
    spec = specs.SPECS["english"]
    synth.generate(tts, spec, TEXT, max_tokens=TOKENS, seed=0, sampling=spec.defaults())
first_say = time.perf_counter() - t2
print(json.dumps({
    "imports_s": imports, "load_s": load, "first_say_s": first_say,
    "peak_rss_gib": peak_after_load, "peak_rss_after_say_gib": status("VmHWM"),
    # anonymous memory cannot be reclaimed under pressure; mapped weight pages can
    "anon_after_say_gib": status("RssAnon"),
}))
""".replace("TEXT", repr("Loading is only half of the wait.")).replace("TOKENS", "8")

PREPARE = """
import json
import chatterbox_nb as cnb
print(json.dumps(cnb.load("english", weights="dummy", device="cpu", warmup="off", wait=True).source))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from chatterbox_nb.engine.store import dummy

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
          f"ratio {ours['peak_rss_gib'] / up['peak_rss_gib']:.2f}x (target <= 0.3x; after the load, before any "
          "weight page is touched)")
    print("  the honest figures: what the user waits for and what stays resident")
    ours_wait, up_wait = ours["load_s"] + ours["first_say_s"], up["load_s"] + up["first_say_s"]
    print(f"  load + first say (8 tokens)  ours {ours_wait:.2f} s   from_local + generate {up_wait:.2f} s   "
          f"speed-up {up_wait / ours_wait:.2f}x (first say alone: ours {ours['first_say_s']:.2f} s, "
          f"upstream {up['first_say_s']:.2f} s)")
    print(f"  peak RSS after the say       ours {ours['peak_rss_after_say_gib']:.2f} GiB   "
          f"from_local {up['peak_rss_after_say_gib']:.2f} GiB   "
          f"ratio {ours['peak_rss_after_say_gib'] / up['peak_rss_after_say_gib']:.2f}x")
    print(f"  anonymous memory after it    ours {ours['anon_after_say_gib']:.2f} GiB   "
          f"from_local {up['anon_after_say_gib']:.2f} GiB   "
          f"ratio {ours['anon_after_say_gib'] / up['anon_after_say_gib']:.2f}x")


if __name__ == "__main__":
    main()
