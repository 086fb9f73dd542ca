"""`cnb.batch`: many utterances into WAV files plus a manifest, resumable, on this
kernel's model (`engine="local"`) or on Ray actors (`engine="ray"`).

Every option is checked before anything runs (a mistake is one `BatchError` or
`InvalidOption` sentence). Then each row is either skipped (complete in the
manifest), recorded as failed at once (no text, bad id or seed, unknown voice), or
synthesized by `run_row` — the same function on both engines, under the same
number of torch threads, so a row's seed gives the same audio wherever it runs (CPU
float reductions, and so the sampled tokens, change with the thread count).
"""

from __future__ import annotations

import dataclasses

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import config, options, voices_api
from ..engine.specs import BUILT_IN_VOICE, SAMPLE_RATE
from ..errors import ChatterboxError, ModelNotLoaded
from .job import BatchJob, run_row
from .rows import BatchError, Manifest, Row, read_rows

__all__ = ["batch", "BatchReport", "BatchError", "BatchJob", "run_row"]

ENGINES = ("local", "ray")


@dataclass
class BatchReport:
    """What a batch did; `failed` holds (id, error) pairs."""

    out_dir: Path
    engine: str
    workers: int
    total: int
    made: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    #: seconds from the start until the engine could make rows (model in memory / actors loaded)
    ready_s: float | None = None
    #: Ray only: how each actor loaded (imports_s, load_s, source, pid)
    actors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def manifest(self) -> Path:
        return self.out_dir / "manifest.jsonl"

    @property
    def rows_per_min(self) -> float:
        """Rows made per minute, start-up included."""
        return 60 * self.made / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def steady_rows_per_min(self) -> float:
        """Rows made per minute once the engine was ready (model loaded, actors up)."""
        busy = self.elapsed_s - (self.ready_s or 0.0)
        return 60 * self.made / busy if busy > 0 else 0.0

    def __repr__(self) -> str:
        failed = "; ".join(f"{i}: {e}" for i, e in self.failed[:3]) + ("; ..." if len(self.failed) > 3 else "")
        return (
            f"batch of {self.total} rows into {self.out_dir}: {self.made} made, {self.skipped} already done, "
            f"{len(self.failed)} failed{f' ({failed})' if failed else ''}; {self.audio_s / 3600:.4f} h of audio in "
            f"{self.elapsed_s:.1f} s ({self.rows_per_min:.1f} rows/min, {self.engine} engine, {self.workers} worker(s)); "
            f"manifest {self.manifest}"
        )


@options.takes_say_options(options.BATCH_OPTIONS)
def batch(
    texts_or_path: Any,
    out_dir: str | Path,
    *,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    threads: int = 1,
    seed: int = 0,
    progress: bool = True,
    **say: Any,
) -> BatchReport:
    """Synthesize every row into `<out_dir>/<id>.wav` and `<out_dir>/manifest.jsonl`.

    Re-running skips the rows already complete. `seed` is the batch seed: a row
    without its own seed gets one derived from it and the row's id. `threads` torch
    threads run each row on either engine (and each Ray actor reserves that many CPUs).
    `stream` is accepted as `say` takes it and checked, but rows never stream: nobody
    plays a row while it is made, and streaming only adds S3Gen calls. The other
    keywords are say's (`options.BATCH_OPTIONS`), shared by every row."""
    start = time.perf_counter()
    engine, workers = _check_engine(engine, workers, address)
    # the say options every row shares, checked as `say` checks them (the voice and seed are per row)
    voice = say.pop("voice", None)
    shared = options.say_options(**say)
    shared = dataclasses.replace(shared, stream=False)
    job = BatchJob(shared, options.check_int("threads", threads, 1, 1024))
    rows = read_rows(texts_or_path, options.BY_NAME["seed"].check(seed))
    out = _out_dir(out_dir)
    report = BatchReport(out, engine, workers, len(rows))
    try:
        with _exclusive(out):
            _run(job, rows, voice, report, address, progress, start)
    finally:
        report.elapsed_s = time.perf_counter() - start
    return report


def _run(job: BatchJob, rows: list[Row], voice: str | None, report: BatchReport, address: str | None, progress: bool,
         start: float) -> None:
    """Skip the complete rows, record the bad ones, make the rest; the caller holds the folder."""
    from ..display.batch_progress import BatchProgress
    from ..engine.store import fsutil

    out = report.out_dir
    fsutil.clean_stale(out, max_age_s=0)  # temporaries of a killed run
    manifest = Manifest(out)
    resolved = _resolve_voices(rows, voice)
    wanted = {row.id: _wanted(row, voice, resolved, job) for row in rows}
    todo = []
    for row in rows:
        if manifest.complete(row, wanted[row.id]):
            report.skipped += 1
            report.audio_s += manifest.entries[row.id].get("audio_s", 0.0)
        else:
            todo.append(row)
    bar = BatchProgress(len(rows), report.skipped, report.audio_s, enabled=progress)
    record = _recorder(out, manifest, wanted, report, bar, report.engine)

    def ready() -> None:
        report.ready_s = time.perf_counter() - start

    try:
        runnable = []
        for row in todo:
            row_voice = resolved.get(row.voice or voice)
            if row.problem or isinstance(row_voice, str):
                record(row, None, {"error": row.problem or f"row {row.index}: {row_voice}"})
            else:
                runnable.append((row, row_voice))
        if runnable and report.engine == "local":
            _run_local(job, runnable, record, ready)
        elif runnable:
            from . import ray as ray_engine

            report.actors = ray_engine.run(job, runnable, record, ready, workers=report.workers, address=address)
    finally:
        manifest.compact([row.id for row in rows])
        bar.close()


def _check_engine(engine: Any, workers: Any, address: Any) -> tuple[str, int]:
    engine = str(engine or "local").strip().lower()
    if engine not in ENGINES:
        raise BatchError(f"Unknown batch engine {engine!r}: use local (this kernel's model) or ray (Ray actors).")
    if engine == "local":
        if address:
            raise BatchError("--address goes with --engine ray; the local engine uses this kernel's model.")
        if workers not in (None, 1):
            raise BatchError("The local engine runs one model in this kernel: use --engine ray for --workers above 1.")
        return engine, 1
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise BatchError("--engine ray needs Ray: pip install 'chatterbox_nb[ray]' (or pip install ray).")
    return engine, options.check_int("workers", 2 if workers is None else workers, 1, 4096)


def _out_dir(out_dir: Any) -> Path:
    if out_dir is None or not str(out_dir).strip():
        raise BatchError("batch needs an output folder: --out DIR.")
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise BatchError(f"--out {out_dir} is a file; give a folder for the WAVs and the manifest.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"Cannot create the output folder {path} ({exc.strerror or exc}).") from None
    return path


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One batch per output folder at a time (the OS drops the lock of a killed run); the
    lock file lives in the cache dir, keyed by the folder, not beside the user's WAVs."""
    from filelock import FileLock, Timeout

    from ..engine.store.layout import CacheLayout

    path = CacheLayout(config.cache_dir()).batch_lock(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"Cannot create {path.parent} for the batch's lock ({exc.strerror or exc}).") from None
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BatchError(f"Another batch is writing into {out}; wait for it, or use another --out folder.") from None
    try:
        yield
    finally:
        lock.release()


def _resolve_voices(rows: list[Row], default: str | None) -> dict[str | None, Any]:
    """Each distinct voice once: a `Resolved` (or None: built-in), or the sentence saying
    why it cannot be used (the rows with it fail, the others go on)."""
    resolved: dict[str | None, Any] = {}
    for name in {row.voice or default for row in rows if row.problem is None}:
        try:
            resolved[name] = voices_api.voices.resolve(name)
        except ChatterboxError as exc:
            resolved[name] = str(exc)
    return resolved


def _wanted(row: Row, default: str | None, resolved: dict[str | None, Any], job: BatchJob) -> dict[str, Any]:
    """What a complete manifest entry for this row must say."""
    voice = resolved.get(row.voice or default)
    if not isinstance(voice, voices_api.Resolved):
        return {"text": row.text, "voice": row.voice or default or BUILT_IN_VOICE, "seed": row.seed, "params": job.params()}
    # the audio's digests too: a voice registered again with other files makes its rows again
    return {"text": row.text, "voice": voice.label, "voice_sha256": [f.sha256 for f in voice.files], "seed": row.seed,
            "params": job.params()}


def _wav_bytes(audio: Any) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")  # as Utterance.save: samples kept exactly
    return buffer.getvalue()


Record = Callable[..., None]


def _recorder(out: Path, manifest: Manifest, wanted: dict, report: BatchReport, bar: Any, engine: str) -> Record:
    """The one place a row's outcome lands: WAV (atomic), then its manifest line, counters, bar."""
    from ..engine.store.fsutil import write_atomic

    def record(row: Row, audio: Any, info: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"id": row.id, "row": row.index, **wanted[row.id], "engine": engine,
                                 "worker": info.get("worker"), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if audio is None:
            entry.update(status="failed", error=info["error"])
            report.failed.append((row.id, info["error"]))
        else:
            data = _wav_bytes(audio)
            write_atomic(out / f"{row.id}.wav", data)
            entry.update(status="ok", error=None, wav=f"{row.id}.wav", wav_bytes=len(data),
                         audio_s=len(audio) / SAMPLE_RATE, timings=info.get("timings", {}))
            report.made += 1
            report.audio_s += entry["audio_s"]
        manifest.append(entry)
        bar.row_done(entry.get("audio_s", 0.0), failed=audio is None)

    return record


def _run_local(job: BatchJob, rows: list[tuple[Row, Any]], record: Record, ready: Callable[[], None]) -> None:
    """This kernel's model, loaded (or waited for) as `say` does."""
    from .. import loading

    loaded = loading.obtain(job.choice)[0]
    ready()
    worker = f"local:{os.getpid()}"
    for row, voice in rows:
        try:
            audio, timings = run_row(loaded, job, row.text, row.seed, voice)
        except ModelNotLoaded:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad row is recorded; the batch goes on
            record(row, None, {"error": f"row {row.index}: {type(exc).__name__}: {exc}", "worker": worker})
        else:
            record(row, audio, {"timings": timings, "worker": worker})
