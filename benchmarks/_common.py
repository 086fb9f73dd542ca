"""What both benchmarks need: a cache dir of their own and fresh child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def bench_env() -> dict[str, str]:
    """The environment for child processes: CHATTERBOX_NB_CACHE_DIR, or a temp folder
    that keeps the full-size dummy (3.2 GB) between benchmark runs."""
    cache = os.environ.get("CHATTERBOX_NB_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "chatterbox_nb-bench")
    print(f"cache dir {cache}", flush=True)
    return {**os.environ, "CHATTERBOX_NB_CACHE_DIR": cache}


def run_child(code: str, args: list[str], env: dict[str, str], what: str) -> Any:
    """Run `code` in a fresh Python; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
