"""What warm-up buys: the first `say` after warm-up vs steady state, and a cold first
`say` vs steady state, full-size English on the CPU.

Two fresh processes, each loading from the disk cache: one without warm-up, one with
`light` warm-up. Each then says the same seeded, token-capped sentence several times;
"steady" is the median of the calls after the first. Printed as ratios, measured side
by side in one run.

    python benchmarks/bench_warmup.py [--says 4] [--tokens 8]
"""

from __future__ import annotations

import argparse
import statistics

from _common import bench_env, run_child

CHILD = r"""
import json, sys
import chatterbox_nb as cnb
level, says, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
report = cnb.load("english", weights="dummy", device="cpu", warmup=level, wait=True)
times = []
for _ in range(says):
    u = cnb.say("The quick brown fox jumps over the lazy dog.", weights="dummy", device="cpu",
                max_tokens=tokens, seed=7)
    times.append(u.timings["total_s"])
print(json.dumps({"source": report.source, "warmup": report.warmup, "says": times}))
"""


def run(level: str, says: int, tokens: int, env: dict[str, str]) -> dict:
    return run_child(CHILD, [level, str(says), str(tokens)], env, f"run with warm-up {level}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--says", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()
    env = bench_env()
    run("off", 1, 1, env)  # builds the dummy and its disk-cache entry if needed

    cold = run("off", args.says, args.tokens, env)
    warm = run("light", args.says, args.tokens, env)
    steady_cold = statistics.median(cold["says"][1:])
    steady_warm = statistics.median(warm["says"][1:])
    print(f"no warm-up:    say times {[round(t, 2) for t in cold['says']]} s")
    print(f"light warm-up: say times {[round(t, 2) for t in warm['says']]} s "
          f"(warm-up took {warm['warmup']['warmup_s']:.2f} s)")
    print(f"\nfirst say after warm-up / steady state: {warm['says'][0] / steady_warm:.2f}x (target <= 1.1x)")
    print(f"cold first say / steady state:          {cold['says'][0] / steady_cold:.2f}x")


if __name__ == "__main__":
    main()
