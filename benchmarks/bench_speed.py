"""How much faster a default `say` is than upstream's `generate`, and what each knob adds.

Upstream is chatterbox-tts itself: `from_local` on the same checkpoint files and its own
`generate` (float32, its defaults), in a process of its own (_upstream_worker.py) that
never imports our say path. Ours is `cnb.say` (dtype `--dtype`, default `auto`) in this
process. Both load, then get the same warm-up (`--warmup-calls` untimed calls with the
same text, cap and seed); then each repetition runs upstream and each of our rows, in
an order that reverses from one repetition to the next. Every row prints the median
and [min-max] over `--reps`; each ratio is taken within a repetition (side by side) and
its median printed. T3's sampled token count must be equal on both sides (the cap:
random weights never sample the stop token); the tokens S3Gen renders are printed too
(random weights also sample ids S3Gen drops, and bfloat16 samples other ids than float32).

Rows: our default say; `--cfm-steps`, `--prompt-tokens` (opt-in, lossy); S3Gen compiled
against eager, only when its package is installed (from the cache, or built with
`--compile`: minutes, ~7 GB of compiler memory), else the reason it is absent; `--dtype
int8`. Each group of rows is timed against upstream again, in the same alternation.

    python benchmarks/bench_speed.py [--weights dummy|dummy:reduced] [--tokens 40] [--reps 3] [--out [PATH]]
    python benchmarks/bench_speed.py --weights dummy:reduced --tokens 6 --reps 1 --no-int8   # smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any, Callable

from _common import (Output, T3Counter, UpstreamWorker, add_common_args, checkpoint_folder, fmt, ordered,
                     use_bench_cache)

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away."
TARGETS = {"english": 2.0, "turbo": 1.6}
CFM_STEPS = {"english": 5, "turbo": 1}
UPSTREAM = "upstream generate (float32)"


class Bench:
    def __init__(self, model: str, args: argparse.Namespace, out: Output, counter: T3Counter) -> None:
        self.model, self.args, self.out, self.counter = model, args, out, counter

    def ours(self, **kw: Any) -> Callable[[], dict]:
        import chatterbox_nb as cnb

        a = self.args

        def run() -> dict:
            import torch

            u = cnb.say(TEXT, model=self.model, weights=a.weights, device="cpu", max_tokens=a.tokens, seed=a.seed,
                        **{"dtype": a.dtype, **kw})
            return {"t3_s": u.timings["t3_s"], "s3gen_s": u.timings["s3gen_s"], "total_s": u.timings["total_s"],
                    "t3_tokens": self.counter.last, "s3gen_tokens": u.timings["speech_tokens"],
                    "dtype": u.params["dtype"], "stream": u.params.get("stream"),
                    "compiled": u.timings.get("s3gen_compiled"), "threads": torch.get_num_threads()}

        return run

    def phase(self, rows: list[tuple[str, Callable[[], dict]]], worker: UpstreamWorker) -> dict[str, list[dict]]:
        """Upstream and `rows`, alternated over the repetitions; every run's token counts checked."""
        a = self.args
        runs: list[tuple[str, Callable[[], dict]]] = [
            (UPSTREAM, lambda: worker.generate(TEXT, a.tokens, a.seed)), *rows]
        results: dict[str, list[dict]] = {label: [] for label, _ in runs}
        for rep in range(a.reps):
            for label, run in ordered(rep, runs):
                results[label].append(run())
        threads = {r["threads"] for got in results.values() for r in got}
        if len(threads) != 1:
            raise SystemExit(f"{self.model}: the two sides ran with different torch thread counts: {threads}")
        for label, got in results.items():
            for r in got:
                if r["t3_tokens"] != a.tokens:
                    raise SystemExit(f"{self.model}: {label} sampled {r['t3_tokens']} tokens, not the cap of "
                                     f"{a.tokens}: the two sides did unequal work (did T3 stop early?)")
        return results

    def table(self, results: dict[str, list[dict]]) -> None:
        ups = results[UPSTREAM]
        for label, got in results.items():
            tokens = sorted({r["s3gen_tokens"] for r in got})
            cells = "  ".join(fmt(r[k] for r in got) for k in ("t3_s", "s3gen_s", "total_s"))
            ratio = "" if label == UPSTREAM else \
                f"  {fmt((u['total_s'] / r['total_s'] for u, r in zip(ups, got)), 'x')}"
            self.out(f"  {label:<30} {cells}  {'/'.join(map(str, tokens)):>7}{ratio}")

    def heading(self, what: str) -> None:
        self.out(f"  {what}")
        self.out(f"  {'':<30} {'T3 s':<16}  {'S3Gen s':<16}  {'total s':<16}  {'S3Gen':>7}  vs upstream, side by side")
        self.out(f"  {'':<30} {'median [min-max]':<16}  {'':<16}  {'':<16}  {'tokens':>7}  median [min-max]")

    def run(self) -> float:
        import chatterbox_nb as cnb

        a, model, out = self.args, self.model, self.out
        folder = checkpoint_folder(model, a.weights)
        with UpstreamWorker(model, folder) as worker:
            report = cnb.load(model, weights=a.weights, device="cpu", dtype=a.dtype, warmup="off", wait=True)
            out(f"\n{model}: {a.weights}, cap {a.tokens} tokens, seed {a.seed}, {a.reps} reps; upstream loaded in its "
                f"own process in {worker.info['load_s']:.1f} s ({worker.info['threads']} threads), ours "
                f"({report.dtype}, dtype {a.dtype}) in {report.seconds:.1f} s; warm-up on each side: "
                f"{a.warmup_calls} untimed call(s) of the timed say")
            out(f"  upstream's from_local, adjusted for these files: {'; '.join(worker.info['adjusted']) or 'nothing'}")
            default = self.ours()
            for _ in range(a.warmup_calls):
                worker.generate(TEXT, a.tokens, a.seed)
                default()
            rows = [("our default say", default)]
            if a.knobs:
                rows += [(f"+ --cfm-steps {CFM_STEPS[model]}", self.ours(cfm_steps=CFM_STEPS[model])),
                         (f"+ --prompt-tokens {a.prompt_tokens}", self.ours(prompt_tokens=a.prompt_tokens))]
            results = self.phase(rows, worker)
            first = results["our default say"][0]
            self.heading(f"ours: {first['dtype']}, streamed {first['stream']}, S3Gen compiled {first['compiled']}; "
                         f"{first['threads']} torch threads on each side")
            self.table(results)
            ups, ours = results[UPSTREAM], results["our default say"]
            t3 = statistics.median(u["t3_s"] / r["t3_s"] for u, r in zip(ups, ours))
            s3 = statistics.median(u["s3gen_s"] / r["s3gen_s"] for u, r in zip(ups, ours))
            out(f"    our default vs upstream, medians of side-by-side ratios: T3 {t3:.2f}x, S3Gen {s3:.2f}x")
            ratio = statistics.median(u["total_s"] / r["total_s"] for u, r in zip(ups, ours))
            self.compiled_rows(worker)
            if a.int8:
                cnb.unload(model)
                cnb.load(model, weights=a.weights, device="cpu", dtype="int8", warmup="off", wait=True)
                int8 = self.ours(dtype="int8")
                for _ in range(a.warmup_calls):
                    int8()
                got = self.phase([("--dtype int8 (T3 quantized)", int8)], worker)
                self.heading("--dtype int8, against upstream again")
                self.table(got)
        cnb.unload(all=True)
        return ratio

    def compiled_rows(self, worker: UpstreamWorker) -> None:
        """S3Gen's compiled estimator, only where its package is really installed."""
        import torch

        from chatterbox_nb import config
        from chatterbox_nb.engine.generation import compiled, payoff, warmup
        from chatterbox_nb.engine.models import loader

        (loaded,) = [m for m in loader.loaded_models() if m.name == self.model]
        root = config.cache_dir()
        path = compiled.package_path(root, loaded.name, loaded.source.fingerprint, loaded.device, loaded.dtype,
                                     torch.get_num_threads(), autocast=compiled.runner(loaded.tts).autocast is not None)
        why, verdict = None, payoff.read_verdict(path)
        if not compiled.wanted(loaded.dtype):
            why = f"ours runs {loaded.dtype}, which is never compiled"
        elif verdict is not None and not verdict["pays"]:  # measured once here, never installed
            why = f"compiled was {verdict['factor']:.2f}x eager here ({payoff.verdict_path(path).name})"
        elif not path.is_file() and not self.args.compile:
            why = f"no package in the cache ({path.name}); --compile builds one (minutes, ~7 GB of compiler memory)"
        else:
            metrics = warmup.compile_step(loaded, "full", root, lambda *a, **k: None)
            if not compiled.is_installed(loaded.tts):
                why = f"the package did not install: {metrics.get('compile_error', payoff.describe(loaded.tts))}"
        if why:
            self.out(f"  (no compiled row: {why})")
            return
        built = f"built in {metrics['compile_s']:.0f} s, " if "compile_s" in metrics else ""
        self.out(f"  S3Gen compiled ({built}package loaded in {metrics.get('compiled_load_s', 0):.1f} s); "
                 "against upstream and eager again, side by side:")
        run = compiled.runner(loaded.tts)
        packaged, compiled_say = run.compiled, self.ours()

        def eager_say() -> dict:  # the package swapped out for one say (between says nothing runs)
            compiled.uninstall(loaded.tts)
            try:
                return compiled_say()
            finally:
                run.compiled = packaged

        rows = [("our default, eager", eager_say), ("our default, S3Gen compiled", compiled_say)]
        for _ in range(self.args.warmup_calls):
            for _, run in rows:
                run()
        got = self.phase(rows, worker)
        ran = [r["compiled"] for label, _ in rows for r in got[label]]
        if ran != [False] * self.args.reps + [True] * self.args.reps:
            raise SystemExit("the eager and compiled rows did not run as labelled")
        self.heading("S3Gen compiled")
        self.table(got)
        ratio = statistics.median(e["s3gen_s"] / c["s3gen_s"]
                                  for e, c in zip(got["our default, eager"], got["our default, S3Gen compiled"]))
        self.out(f"    S3Gen compiled vs eager, median of side-by-side ratios: {ratio:.2f}x")
        compiled.uninstall(loaded.tts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["english", "turbo"], choices=("english", "turbo"))
    add_common_args(parser, tokens=40)
    parser.add_argument("--dtype", default="auto", help="our side's dtype (upstream is float32)")
    parser.add_argument("--warmup-calls", type=int, default=1, help="untimed calls on each side before timing")
    parser.add_argument("--prompt-tokens", type=int, default=75)
    parser.add_argument("--no-knobs", dest="knobs", action="store_false",
                        help="skip the --cfm-steps/--prompt-tokens rows")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 rows")
    parser.add_argument("--compile", action="store_true", help="build S3Gen's package if none is in the cache")
    args = parser.parse_args()
    cache = use_bench_cache()
    os.environ["CHATTERBOX_NB_COMPILE"] = "0"  # compiled rows only where this script installs the package
    out = Output("bench_speed")
    out.header()
    out(f"cache dir {cache}")
    counter = T3Counter()
    ratios = {model: Bench(model, args, out, counter).run() for model in args.models}
    out()
    for model, ratio in ratios.items():
        verdict = "met" if ratio >= TARGETS[model] else "NOT met"
        out(f"{model}: default say {ratio:.2f}x faster than upstream generate, median of {args.reps} side-by-side "
            f"ratios (target >= {TARGETS[model]}x: {verdict})")
    out.write(args.out)


if __name__ == "__main__":
    main()
