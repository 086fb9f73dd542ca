"""The Ray engine of `cnb.batch`: one model per actor, rows spread over the actors.

Each actor process loads the model through chatterbox_nb's own `load` path (the
disk cache: modules on `meta`, weights memory-mapped), so an actor costs its imports
plus well under a second. Actors see the driver's cache dir (`CHATTERBOX_NB_CACHE_DIR`
in their runtime_env) and the same weights, device, dtype and torch thread count.
The voices of the batch are computed once, by the first actor, into the shared voice
conditionals cache; the other actors read them from disk in milliseconds. Actors
return audio, and the driver alone writes WAVs and the manifest.

`ray.init()` starts a local Ray with `workers x threads` CPUs unless Ray already
runs in this process or an `address` names a cluster; on a cluster the cache dir
and the voice files must be on a filesystem every node sees.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from .. import config
from ..errors import ChatterboxError
from .rows import BatchError

#: rows queued per actor, so an actor never waits for the driver between rows
IN_FLIGHT = 2


class BatchActor:
    """A model in a Ray worker process (wrapped with `ray.remote` at run time)."""

    def __init__(self, job: Any) -> None:
        start = time.perf_counter()
        import torch

        from .. import loading
        from ..engine.specs import SPECS

        SPECS[job.choice.model].tts_cls()  # torch, chatterbox: timed apart from the load
        imports_s = time.perf_counter() - start
        torch.set_num_threads(job.threads)
        self.job = job
        self.loaded, source, load_s = loading.load_now(job.choice)
        self.info = {"pid": os.getpid(), "imports_s": imports_s, "load_s": load_s, "source": source,
                     "cache_dir": str(config.cache_dir())}

    def ready(self) -> dict[str, Any]:
        return self.info

    def prepare(self, voices: list[tuple[str, Any]]) -> dict[str, str]:
        """Conditionals of each voice into the disk cache; the problems by voice label."""
        from ..engine.voices import conditionals as voice_engine
        from .job import torch_threads

        problems = {}
        for label, resolved in voices:
            try:
                with self.loaded.use(user=True), torch_threads(self.job.threads):
                    voice_engine.conditionals(self.loaded, resolved.files, config.cache_dir())
            except ChatterboxError as exc:
                problems[label] = str(exc)
        return problems

    def run(self, text: str, seed: int, voice: Any) -> tuple[Any, dict[str, Any]]:
        from .job import run_row

        worker = f"ray:{os.getpid()}"
        try:
            audio, timings = run_row(self.loaded, self.job, text, seed, voice)
        except Exception as exc:  # noqa: BLE001 - recorded as the row's error
            return None, {"error": f"{type(exc).__name__}: {exc}", "worker": worker}
        return audio, {"timings": timings, "worker": worker}


def run(
    job: Any, rows: list[tuple[Any, Any]], record: Callable[..., None], ready: Callable[[], None], *, workers: int,
    address: str | None,
) -> list[dict]:
    """Make `rows` ((Row, Resolved voice or None) pairs) on Ray actors; `record` each outcome;
    `ready()` once the actors are loaded. Returns how each actor loaded."""
    import ray

    started = _init(ray, workers * job.threads, address)
    actor_cls = ray.remote(BatchActor).options(num_cpus=job.threads, runtime_env={"env_vars": _env(job, address)})
    actors = [actor_cls.remote(job) for _ in range(min(workers, len(rows)))]
    try:
        try:
            infos = ray.get([a.ready.remote() for a in actors])
            voices = {v.label: v for _, v in rows if v is not None}
            problems = ray.get(actors[0].prepare.remote(sorted(voices.items())))
        except ray.exceptions.RayError as exc:
            raise BatchError(f"The Ray actors could not load the {job.choice.model} model: {_first_line(exc)}") from None
        ready()
        queue = []
        for row, voice in rows:
            if voice is not None and voice.label in problems:
                record(row, None, {"error": f"row {row.index}: {problems[voice.label]}"})
            else:
                queue.append((row, voice))
        _dispatch(ray, actors, queue, record)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
    return infos


def _dispatch(ray: Any, actors: list[Any], queue: list[tuple[Any, Any]], record: Callable[..., None]) -> None:
    """Keep IN_FLIGHT rows queued on every actor; record results as they come."""
    todo = iter(queue)
    pending: dict[Any, tuple[Any, Any]] = {}

    def submit(actor: Any) -> None:
        item = next(todo, None)
        if item is not None:
            row, voice = item
            pending[actor.run.remote(row.text, row.seed, voice)] = (row, actor)

    for actor in actors:
        for _ in range(IN_FLIGHT):
            submit(actor)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        row, actor = pending.pop(ref)
        try:
            audio, info = ray.get(ref)
        except ray.exceptions.RayError as exc:
            raise BatchError(
                f"A Ray actor failed at row {row.index} ({_first_line(exc)}); the rows made are kept: run the batch again to resume."
            ) from None
        if audio is None:
            info["error"] = f"row {row.index}: {info['error']}"
        record(row, audio, info)
        submit(actor)


def _init(ray: Any, cpus: int, address: str | None) -> bool:
    """Start Ray unless it runs already; True when we started it (and so stop it)."""
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise BatchError(f"Could not start {where}: {_first_line(exc)}") from None
    return True


def _env(job: Any, address: str | None) -> dict[str, str]:
    """What actors must share with the driver: the cache dir, the thread count, and on
    a local Ray this very package (the driver's import path comes first)."""
    env = {config.ENV_CACHE_DIR: str(config.cache_dir()), "OMP_NUM_THREADS": str(job.threads)}
    if not address:
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
