"""Shared fixtures: one disk cache for the whole session, so each dummy checkpoint is
built once (the kernels and notebooks the tests start inherit it through the env)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

# Before chatterbox_nb reads its settings: tests never touch the user's cache or the hub.
# CHATTERBOX_NB_TEST_CACHE keeps the dummy checkpoints (~13 GB a worker) between runs; without it
# they live in a temporary folder that is deleted when the session ends.
KEEP_CACHE = bool(os.environ.get("CHATTERBOX_NB_TEST_CACHE"))
# Each xdist worker its own: tests damage and clear cache entries on purpose.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_TEMP_PREFIX, _OWNER = "cnb-test-cache-", ".owner-pid"


def _remove_caches_of_killed_runs() -> None:
    """A run that is killed (a CI timeout, ^C twice) cannot delete its temporary cache, GBs of
    dummy checkpoints a worker: the next run does, once the process that made it is gone."""
    for folder in Path(tempfile.gettempdir()).glob(_TEMP_PREFIX + "*"):
        try:
            os.kill(int((folder / _OWNER).read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):  # no owner written yet (being made now), or not ours to judge
            continue


if KEEP_CACHE:
    CACHE_DIR = Path(os.environ["CHATTERBOX_NB_TEST_CACHE"]) / _WORKER
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
else:
    _remove_caches_of_killed_runs()
    CACHE_DIR = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{_WORKER}"))
    (CACHE_DIR / _OWNER).write_text(str(os.getpid()))
os.environ["CHATTERBOX_NB_CACHE_DIR"] = str(CACHE_DIR)
if _WORKER:  # two workers on two cores: one torch thread each (the kernels they start inherit it);
    # two threads each made the suite only 5 % faster than one worker, the cores oversubscribed
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"
# Compiling S3Gen takes minutes of CPU; only tests/test_speed.py turns it on (stubbed, or on a tiny estimator).
os.environ["CHATTERBOX_NB_COMPILE"] = "0"


# What a whole run writes at its peak: four dummy checkpoints (one full size), their bfloat16
# cache entries, and copies made by the cache tests, in each xdist worker's own cache (two
# workers, see pyproject.toml; under CHATTERBOX_NB_TEST_CACHE, a folder each).
DISK_NEEDED_GB = 30


def pytest_report_header(config):
    free = shutil.disk_usage(CACHE_DIR).free / 1e9
    line = f"chatterbox_nb test cache: {CACHE_DIR} ({free:.0f} GB free)"
    if free < DISK_NEEDED_GB:
        line += (f"\nWARNING: the whole suite writes up to ~{DISK_NEEDED_GB} GB of dummy checkpoints (two workers); "
                 "with less free, loads fail with 'No space left on device'.")
    return line


# The browser tests drive Debian's chromium (Playwright's own download needs the network);
# without it they skip, and the summary says how many and how to run them.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_SKIP = f"browser test: needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=CHROMIUM_SKIP)


#: The modules that take minutes, longest first (CI's --durations): xdist hands them out first
#: (pyproject: --no-loadscope-reorder), so the last minutes are short modules on both workers
#: instead of one worker compiling a package while the other waits. The rest keep their order.
LONGEST_FIRST = ["test_speed", "test_compiled", "test_kernel", "test_fullsize", "test_batch",
                 "test_browser_transcript", "test_browser_compare", "test_browser_ui", "test_browser",
                 "test_streaming"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: a module's own order kept


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if CHROMIUM_SKIP in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep("=", f"{len(skipped)} browser tests skipped", yellow=True)
        terminalreporter.write_line(f"They need Debian's chromium at {CHROMIUM}: `apt-get install chromium`, "
                                    "then run them again (pytest tests/test_browser.py tests/test_browser_ui.py tests/test_saved.py).")


def pytest_sessionfinish(session, exitstatus):
    if not KEEP_CACHE:
        shutil.rmtree(CACHE_DIR, ignore_errors=True)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REDUCED = "dummy:reduced"


@contextlib.contextmanager
def fresh_loads_of(like: Any) -> Iterator[None]:
    """A load in the block finds no copy of `like` in memory: every loaded model with its name
    and weights, whatever its dtype or device (other modules of this worker may have left one),
    is set aside, and what the block loads is dropped after. Without it a test that expects a
    fresh load passed or failed by the order xdist ran the modules in."""
    from chatterbox_nb._state import STATE
    from chatterbox_nb.engine.models import loader

    with STATE.lock:
        aside = {k: m for k, m in STATE.models.items()
                 if (k.model, k.fingerprint) == (like.key.model, like.key.fingerprint)}
        for key in aside:
            del STATE.models[key]
        before = set(map(id, STATE.models.values()))
    try:
        yield
    finally:
        for m in loader.loaded_models():
            if id(m) not in before:
                loader.drop(m.key)
        with STATE.lock:
            STATE.models.update(aside)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return CACHE_DIR


@pytest.fixture(scope="session")
def english_reduced():
    """The reduced-size English dummy, loaded once into this process's registry."""
    import chatterbox_nb as cnb
    from chatterbox_nb.engine.models import loader

    from chatterbox_nb import config
    from chatterbox_nb.engine.models.precision import resolve_dtype

    cnb.load("english", weights=REDUCED, device="cpu", warmup="off", wait=True)
    dtype = resolve_dtype(config.settings().dtype, "cpu")  # other tests of this worker may hold other dtypes
    (loaded,) = [m for m in loader.loaded_models()
                 if m.name == "english" and m.weights == REDUCED and m.device == "cpu" and m.dtype == dtype]
    return loaded


@pytest.fixture(scope="module")
def english_reduced_float32():
    """The reduced-size English dummy in float32 on the CPU, whatever this machine's `auto`
    (loaded again for a module if one before it dropped it)."""
    import chatterbox_nb as cnb
    from chatterbox_nb.engine.models import loader

    cnb.load("english", weights=REDUCED, device="cpu", dtype="float32", warmup="off", wait=True)
    (found,) = [m for m in loader.loaded_models()
                if m.name == "english" and m.weights == REDUCED and m.device == "cpu" and m.dtype == "float32"]
    return found


@pytest.fixture(scope="module")
def kernel():
    """A real IPython kernel (jupyter_client) for the tests of one module."""
    from kernel_utils import Kernel

    k = Kernel()
    yield k
    k.shutdown()


@pytest.fixture
def shell():
    """An IPython InteractiveShell with the extension loaded."""
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "chatterbox_nb")
    yield ip
    ip.run_line_magic("unload_ext", "chatterbox_nb")
