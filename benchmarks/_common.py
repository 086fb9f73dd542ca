"""What the benchmarks share: a cache dir, fresh child processes, upstream's worker,
the machine header, medians, and output that can be written as markdown as is."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "benchmarks"
#: the CPU flags that decide which dtype is fast (avx512_bf16/amx: native bfloat16)
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def bench_env() -> dict[str, str]:
    """The environment for child processes: CHATTERBOX_NB_CACHE_DIR, or a temp folder
    that keeps the full-size dummy (3.2 GB) between benchmark runs."""
    cache = os.environ.get("CHATTERBOX_NB_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "chatterbox_nb-bench")
    print(f"cache dir {cache}", flush=True)
    return {**os.environ, "CHATTERBOX_NB_CACHE_DIR": cache}


def use_bench_cache() -> str:
    """This process's cache dir: CHATTERBOX_NB_CACHE_DIR, or the benchmarks' temp folder."""
    cache = os.environ.get("CHATTERBOX_NB_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "chatterbox_nb-bench")
    os.environ["CHATTERBOX_NB_CACHE_DIR"] = cache
    return cache


def run_child(code: str, args: list[str], env: dict[str, str], what: str) -> Any:
    """Run `code` in a fresh Python; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def add_common_args(parser: argparse.ArgumentParser, tokens: int, reps: int = 3, weights: str = "dummy") -> None:
    parser.add_argument("--weights", default=weights, choices=("dummy", "dummy:reduced"),
                        help="dummy: full size (official shapes); dummy:reduced: a quick smoke test")
    parser.add_argument("--tokens", type=int, default=tokens, help="speech-token cap (random weights never stop)")
    parser.add_argument("--reps", type=int, default=reps, help="repetitions, alternated; medians are reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", nargs="?", const="", default=None, metavar="PATH",
                        help="also write the output as markdown (default path: docs/benchmarks/<name>.md)")


# -- the machine ------------------------------------------------------------------------------

def cpu_model_and_flags() -> tuple[str, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return model, [f for f in FLAGS if f in flags]


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_header() -> list[str]:
    """What a figure depends on, printed before it: the CPU and its flags, threads,
    versions, how busy the machine was, and when."""
    import torch

    from importlib.metadata import version

    model, flags = cpu_model_and_flags()
    return [
        f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; host {platform.node()}",
        f"CPU: {model}; {os.cpu_count()} logical CPUs; flags: {' '.join(flags) or 'none of ' + ', '.join(FLAGS)}",
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), chatterbox-tts {version('chatterbox-tts')}, "
        f"Python {platform.python_version()}",
        f"load average (1, 5, 15 min) before: {load_average()}",
    ]


# -- figures ----------------------------------------------------------------------------------

def spread(values: Iterable[float]) -> tuple[float, float, float]:
    """Median, min, max."""
    v = list(values)
    return statistics.median(v), min(v), max(v)


def fmt(values: Iterable[float], unit: str = "", digits: int = 2) -> str:
    """`median [min-max]`."""
    med, lo, hi = spread(values)
    return f"{med:.{digits}f}{unit} [{lo:.{digits}f}-{hi:.{digits}f}]"


def ordered(rep: int, items: list[Any]) -> list[Any]:
    """Alternate the order from one repetition to the next, so neither side always runs
    first (right after the other has warmed the caches, or while the machine is calmer)."""
    return items if rep % 2 == 0 else items[::-1]


class Output:
    """Lines printed as they come and kept, to be written as markdown verbatim."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.extend(line.splitlines() or [""])

    def header(self) -> None:
        self(f"command: {shlex.join(['python', f'benchmarks/{self.name}.py', *sys.argv[1:]])}")
        for line in machine_header():
            self(line)

    def write(self, out: str | None) -> None:
        """The output, as printed, in a markdown file (docs/benchmarks/<name>.md by default);
        the load average after the run is added first."""
        self(f"load average (1, 5, 15 min) after: {load_average()}")
        if out is None:
            return
        path = Path(out) if out else DOCS / f"{self.name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (f"# {self.name}\n\nThe output of one run, as printed (machine and date in its first lines).\n\n"
                "```text\n" + "\n".join(self.lines) + "\n```\n")
        path.write_text(text)
        print(f"written to {path}", flush=True)


# -- upstream in its own process --------------------------------------------------------------

class UpstreamWorker:
    """Upstream's `from_local` + `generate` in a long-lived child process (_upstream_worker.py)."""

    def __init__(self, model: str, folder: Path) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix=f"upstream-{model}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_upstream_worker.py"), model, str(folder)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.info = self._read()
        if self.info.get("our_modules"):
            raise SystemExit(f"upstream's worker imported our say path: {self.info['our_modules']}")

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = Path(self.log.name).read_text()[-3000:]
            raise SystemExit(f"upstream's worker exited ({self.proc.returncode}):\n{tail}")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"upstream's generate failed: {reply['error']} (log: {self.log.name})")
        return reply

    def generate(self, text: str, tokens: int, seed: int) -> dict[str, Any]:
        """Upstream's timed `generate`, with as many torch threads as this process uses now."""
        import torch

        request = {"text": text, "tokens": tokens, "seed": seed, "threads": torch.get_num_threads()}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)

    def __enter__(self) -> "UpstreamWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def checkpoint_folder(model: str, weights: str) -> Path:
    """The checkpoint files both sides load (made first if they are not in the cache)."""
    from chatterbox_nb import config
    from chatterbox_nb.engine.store import sources
    from chatterbox_nb.engine.specs import SPECS

    return sources.resolve(SPECS[model], weights, config.cache_dir()).folder


class T3Counter:
    """Counts the tokens T3 sampled in our say (upstream's worker counts its own the same
    way: the size of what T3's sampler returns). A class-level wrapper: our say shadows the
    method per instance and calls through to this."""

    def __init__(self) -> None:
        from chatterbox.models.t3 import T3

        self.last = 0
        for method in ("inference", "inference_turbo"):
            original = getattr(T3, method)

            def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                result = _original(*args, **kwargs)
                self.last = int(result.numel())
                return result

            setattr(T3, method, wrapper)
