"""What the voice cache buys: a registered voice's conditionals from memory and from
disk vs upstream's `prepare_conditionals` on the same file, full-size English on the CPU.

One fresh process loads the full-size dummy from the disk cache and registers a 10 s
reference. Each way is timed as a `say` pays it (the cached ways include resolving
the name: registry read, file hash check); medians of `--repeat` runs, printed as
ratios measured side by side in one run.

    python benchmarks/bench_voices.py [--repeat 5] [--seconds 10]
"""

from __future__ import annotations

import argparse

from _common import bench_env, run_child

CHILD = r"""
import json, statistics, sys, tempfile, time, uuid
from pathlib import Path
import numpy as np, soundfile as sf
import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb._state import STATE
from chatterbox_nb.engine.store import dummy
from chatterbox_nb.engine.models import loader
from chatterbox_nb.engine.voices import conditionals as engine

repeat, seconds = int(sys.argv[1]), float(sys.argv[2])
cnb.load("english", weights="dummy", device="cpu", warmup="off", wait=True)
(loaded,) = [m for m in loader.loaded_models() if m.name == "english"]
folder = Path(tempfile.mkdtemp())
wav = dummy.synthetic_voice(seconds, 44100, seed=3)
wav[-64:] += np.random.default_rng().uniform(-1e-4, 1e-4, 64).astype(np.float32)  # new bytes each run
path = folder / "reference.wav"
sf.write(path, wav, 44100)
name = f"bench-{uuid.uuid4().hex[:8]}"
cnb.voices.add(name, path)  # computes and caches the conditionals once

def timed(fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

def upstream():
    builtin = loaded.tts.conds
    loaded.tts.prepare_conditionals(str(path))
    loaded.tts.conds = builtin

def cached():
    engine.conditionals(loaded, cnb.voices.resolve(name).files, config.cache_dir())

def from_disk():
    # as in a new kernel: nothing in memory, neither the conditionals nor the audio
    # file's hash (a new kernel reads and hashes the reference file again)
    STATE.voice_conds.clear()
    STATE.file_hashes.clear()
    cached()

result = {"upstream_s": timed(upstream), "memory_s": timed(cached), "disk_s": timed(from_disk)}
cnb.voices.remove(name)
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    env = bench_env()
    r = run_child(CHILD, [str(args.repeat), str(args.seconds)], env, "voice benchmark")
    print(f"upstream prepare_conditionals ({args.seconds:g} s reference): {r['upstream_s'] * 1000:8.1f} ms")
    print(f"cached voice, from memory:                          {r['memory_s'] * 1000:8.2f} ms")
    print(f"cached voice, from disk (a new kernel: file hashed): {r['disk_s'] * 1000:8.2f} ms")
    print(f"\nprepare_conditionals / cached from memory: {r['upstream_s'] / r['memory_s']:.0f}x (target >= 50x)")
    print(f"prepare_conditionals / cached from disk:   {r['upstream_s'] / r['disk_s']:.0f}x (target >= 50x)")


if __name__ == "__main__":
    main()
