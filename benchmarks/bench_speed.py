"""How much faster a default `say` is than upstream's `generate`, and what each knob adds.

One process, full-size dummy weights, CPU, models warm, side by side: upstream
(`from_local`, float32, its `generate` with its defaults, tokens capped) against our
default `say` (dtype `auto`) with the same text, seed and token cap, T3 and S3Gen
split out; then each opt-in knob on our default (`--cfm-steps`, `--prompt-tokens`,
`--dtype int8`) and, with `--compile`, S3Gen compiled (a full warm-up's compile step). Each figure
is the median of `--reps` runs, upstream and ours alternating.

    python benchmarks/bench_speed.py [--models english turbo] [--tokens 40] [--reps 1] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away."
TARGETS = {"english": 2.0, "turbo": 1.6}


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in ("t3_s", "s3gen_s", "total_s")}


def _upstream(tts, spec, args) -> dict:
    from chatterbox_nb.engine import synth

    start = time.perf_counter()
    _, t = synth.generate(tts, spec, TEXT, max_tokens=args.tokens, seed=args.seed, sampling=spec.defaults(),
                          renderable_only=True)
    return {**t, "total_s": time.perf_counter() - start}


def _upstream_model(spec, folder: Path):
    """Upstream's `from_local`. Turbo's refuses the dummy's s3gen file (it holds no copy of
    the S3 tokenizer's mel filters, which upstream's english loader allows for and turbo's
    strict load does not), so turbo's upstream is upstream's classes and `generate` with
    the same float32 weights assembled by our loader (for english that is bit-identical
    to `from_local`: tests/test_fullsize.py)."""
    if spec.name != "turbo":
        return spec.tts_cls().from_local(folder, "cpu")
    from chatterbox_nb.engine import build

    return build.assemble_from_folder(spec, folder, "cpu", "float32")


def _ours(model: str, args, **kw) -> dict:
    import chatterbox_nb as cnb

    u = cnb.say(TEXT, model=model, weights="dummy", device="cpu", max_tokens=args.tokens, seed=args.seed, **kw)
    return {**u.timings, "dtype": u.params["dtype"]}


def _print(label: str, m: dict, base: float | None) -> None:
    ratio = "" if base is None else f"{base / m['total_s']:6.2f}x"
    print(f"  {label:<34} {m['t3_s']:7.2f} {m['s3gen_s']:8.2f} {m['total_s']:8.2f}  {ratio}", flush=True)


def bench(model: str, args) -> float:
    import chatterbox_nb as cnb
    import torch

    from chatterbox_nb.engine import sources
    from chatterbox_nb.engine.specs import SPECS
    from chatterbox_nb import config

    spec = SPECS[model]
    folder = sources.resolve(spec, "dummy", config.cache_dir()).folder
    upstream = _upstream_model(spec, folder)
    report = cnb.load(model, weights="dummy", device="cpu", warmup="light", wait=True)
    warm_args = argparse.Namespace(**{**vars(args), "tokens": 4})
    _upstream(upstream, spec, warm_args)
    ups, ours = [], []
    for _ in range(args.reps):
        ups.append(_upstream(upstream, spec, args))
        ours.append(_ours(model, args))
    up, default = _median(ups), _median(ours)
    print(f"\n{model}: {args.tokens} tokens, seed {args.seed}, {torch.get_num_threads()} torch threads; "
          f"ours = {report.dtype} (dtype auto)")
    print(f"  {'':<34} {'T3 s':>7} {'S3Gen s':>8} {'total s':>8}  vs upstream")
    _print("upstream generate (float32)", up, None)
    _print(f"our default say ({ours[0]['dtype']})", default, up["total_s"])
    print(f"    T3 {up['t3_s'] / default['t3_s']:.2f}x, S3Gen {up['s3gen_s'] / default['s3gen_s']:.2f}x")
    del upstream
    knobs = [(f"+ --cfm-steps {args.cfm_steps[model]}", {"cfm_steps": args.cfm_steps[model]}),
             (f"+ --prompt-tokens {args.prompt_tokens}", {"prompt_tokens": args.prompt_tokens})]
    for label, kw in knobs:
        m = _median([_ours(model, args, **kw) for _ in range(args.reps)])
        _print(label, m, up["total_s"])
    if args.compile:  # the compile step of a full warm-up, run here directly (and timed)
        from chatterbox_nb.engine import loader, warmup

        (loaded,) = [m for m in loader.loaded_models() if m.name == model]
        metrics = warmup.compile_step(loaded, "full", config.cache_dir(), lambda *a: None)
        print(f"  (S3Gen compile step: {metrics})", flush=True)
        m = _median([_ours(model, args) for _ in range(args.reps)])
        _print("default + S3Gen compiled", m, up["total_s"])
        print(f"    S3Gen {up['s3gen_s'] / m['s3gen_s']:.2f}x vs upstream, {default['s3gen_s'] / m['s3gen_s']:.2f}x vs eager")
    cnb.unload(model)
    _ours(model, warm_args, dtype="int8")  # loads the int8 model and warms it
    m = _median([_ours(model, args, dtype="int8") for _ in range(args.reps)])
    _print("--dtype int8 (T3 quantized)", m, up["total_s"])
    print(f"    T3 {default['t3_s'] / m['t3_s']:.2f}x vs our default's T3", flush=True)
    cnb.unload(all=True)
    return up["total_s"] / default["total_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["english", "turbo"], choices=("english", "turbo"))
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--prompt-tokens", type=int, default=75)
    parser.add_argument("--compile", action="store_true", help="also time S3Gen compiled by a full warm-up")
    args = parser.parse_args()
    args.cfm_steps = {"english": 5, "turbo": 1}
    cache = os.environ.get("CHATTERBOX_NB_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "chatterbox_nb-bench")
    os.environ["CHATTERBOX_NB_CACHE_DIR"] = cache
    os.environ.setdefault("CHATTERBOX_NB_COMPILE", "0")
    print(f"cache dir {cache}; CPU bf16 native: ", end="")
    from chatterbox_nb.engine.precision import cpu_has_native_bf16

    print(cpu_has_native_bf16(), flush=True)
    ratios = {model: bench(model, args) for model in args.models}
    print()
    for model, ratio in ratios.items():
        verdict = "met" if ratio >= TARGETS[model] else "NOT met"
        print(f"{model}: default say {ratio:.2f}x faster than upstream generate (target >= {TARGETS[model]}x: {verdict})")


if __name__ == "__main__":
    main()
