"""Token streaming: time to the first piece vs the whole sentence, and what streaming costs.

For each model a fresh process loads the full-size dummy from the disk cache (light
warm-up), then says one sentence (no chunk boundary), seeded and capped at 90 tokens,
once with `--no-stream` and once streamed, side by side (same seed: same tokens).
`first_audio_s` is when the first piece reached the caller (what the player plays at
once); unstreamed it is the whole say. The overhead is the streamed say's `total_s`
over the unstreamed one's.

Targets (issue #16): english first audio <= 0.45 x total and overhead <= 25 %;
turbo first audio <= 0.3 x total.

    python benchmarks/bench_streaming.py [--models english turbo] [--tokens 90] [--says 1] [--dtype auto]
"""

from __future__ import annotations

import argparse

from _common import bench_env, run_child

SENTENCE = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch"

CHILD = r"""
import json, sys
import chatterbox_nb as cnb
model, text, tokens, says, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
kw = dict(model=model, weights="dummy", device="cpu", dtype=dtype)
cnb.load(warmup="light", wait=True, **kw)
runs = []
keys = ("first_audio_s", "total_s", "pieces", "speech_tokens", "audio_s", "t3_s", "s3gen_s", "watermark_s")
for i in range(says):
    pair = {}
    for stream in (False, True):
        u = cnb.say(text, max_tokens=tokens, seed=i, stream=stream, **kw)
        pair["stream" if stream else "plain"] = {k: u.timings[k] for k in keys} | {"dtype": u.params["dtype"]}
    runs.append(pair)
print(json.dumps(runs))
"""

TARGETS = {"english": (0.45, 0.25), "turbo": (0.3, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["english", "turbo"])
    parser.add_argument("--tokens", type=int, default=90)
    parser.add_argument("--says", type=int, default=1)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    env = bench_env()
    for model in args.models:
        runs = run_child(CHILD, [model, SENTENCE, str(args.tokens), str(args.says), args.dtype], env, f"{model} run")
        first_target, overhead_target = TARGETS.get(model, (None, None))
        for r in runs:
            plain, stream = r["plain"], r["stream"]
            ratio = stream["first_audio_s"] / stream["total_s"]
            overhead = stream["total_s"] / plain["total_s"] - 1
            print(f"{model} ({plain['dtype']}, full-size dummy, CPU): {plain['speech_tokens']} tokens, "
                  f"{plain['audio_s']:.2f} s of audio", flush=True)
            for name, t in (("--no-stream", plain), ("streamed", stream)):
                print(f"  {name:11} total {t['total_s']:6.2f} s  first audio {t['first_audio_s']:6.2f} s  "
                      f"pieces {t['pieces']}  T3 {t['t3_s']:.2f} s  S3Gen {t['s3gen_s']:.2f} s  "
                      f"watermark {t['watermark_s']:.2f} s")
            goal = f" (target <= {first_target})" if first_target else ""
            print(f"  first_audio_s / total_s  {ratio:.2f}{goal}")
            goal = f" (target <= {overhead_target:.0%})" if overhead_target is not None else ""
            print(f"  streaming overhead       {overhead:+.1%}{goal}", flush=True)


if __name__ == "__main__":
    main()
