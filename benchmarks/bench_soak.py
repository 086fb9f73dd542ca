"""Soak: many consecutive says in one real kernel on the full-size model; resident
memory after the first 20 must stay flat (upstream users report leaks of hundreds of
MB over a few generations).

The CI soak (tests/test_soak.py) is short and uses the reduced model; this is the long
one: full-size English, at least 20 tokens a say, a registered voice.

    python benchmarks/bench_soak.py [--says 200] [--tokens 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import bench_env  # noqa: E402

SETTLE = 20
BOUND_MIB = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--says", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(bench_env())  # the kernel inherits the cache dir

    import soundfile as sf
    from kernel_utils import Kernel
    from test_soak import LOOP

    from chatterbox_nb.engine.store import dummy

    voice = Path(tempfile.mkdtemp()) / "soak.wav"
    sf.write(voice, dummy.synthetic_voice(3.0, 24000, seed=401), 24000)
    kernel = Kernel()
    try:
        for code in (
            "%load_ext chatterbox_nb",
            "%chatterbox load --weights dummy --device cpu --warmup off --wait",
            f"%chatterbox voice add soak '{voice}'",
        ):
            Kernel.ok(kernel.execute(code, timeout=1200))
        loop = LOOP.format(says=args.says, settle=SETTLE, weights="dummy", tokens=args.tokens)
        Kernel.ok(kernel.execute(loop, timeout=24 * 3600))
        rss = kernel.value("_rss")
    finally:
        kernel.shutdown()
    growth = (rss[args.says] - rss[SETTLE]) / 2**20
    print(f"full-size english, {args.says} says of {args.tokens} tokens: RSS {rss[SETTLE] / 2**20:.0f} MiB after "
          f"{SETTLE}, {rss[args.says] / 2**20:.0f} MiB after {args.says}: {growth:+.1f} MiB "
          f"({growth * 1024 / (args.says - SETTLE):.0f} KiB a say; bound {BOUND_MIB} MiB)")


if __name__ == "__main__":
    main()
