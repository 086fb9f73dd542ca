"""S3Gen on a thread of its own while T3 samples: the say's render worker, and how the two
stages share the CPU's threads (or, on a GPU, run on two CUDA streams).

An overlapped say (speak.py: the chunks of a long say; streaming.py: the pieces of a
streamed one) renders its first and last parts in the say's own thread, with every
thread (the first so that its audio comes no later than in a sequential say; the last
because T3 is done by then), and hands the parts between them to one `RenderWorker`,
which renders them in order while T3 goes on sampling.

Threads. torch's intra-op thread count is per thread (an OpenMP setting; torch also keeps
the last one set as the count of threads started later), so each stage sets its own:
while a render runs beside T3, T3 takes `t3_threads_beside(total)` of the say's threads and
the render the rest; alone, a stage takes them all. T3 checks at every token, a render at
every estimator call (ten a render): when T3 is done and waits for the worker, the render
takes T3's core at its next call, so neither stage ends on its share while the other's
core is idle. T3's decoding is a few small matrix products per token and stops gaining
from threads early, S3Gen's estimator keeps gaining (measured in
benchmarks/bench_threads.py): so T3 gets a quarter, at least one. On 2 cores that is one
each, and there a paragraph's overlap did not pay on the AVX-512 machine (both stages gain
1.5-1.75x from the second core) and paid less than grouped renders on the AVX2 one (see
docs/long-text.md), which is why "auto" leaves it off.

GPU. The worker renders on a CUDA stream of its own (`side_stream`), which first waits
for what T3's stream had queued when the part was handed over: the kernels of the two
stages can then interleave on the device. Written, not run: no GPU was at hand.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import math
import threading
from typing import Any, Callable, Iterator

__all__ = ["RenderWorker", "ThreadShare", "side_stream", "t3_threads_beside"]


def t3_threads_beside(total: int) -> int:
    """T3's threads while a render runs beside it: a quarter of the say's, at least one."""
    return max(1, min(total - 1, math.ceil(total / 4))) if total > 1 else 1


class ThreadShare:
    """The say's CPU threads, shared by its two stages while they overlap."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.t3_beside = t3_threads_beside(self.total)
        self.render_beside = max(1, self.total - self.t3_beside)
        self._lock = threading.Lock()
        self._renders = 0  # renders handed over and not yet finished
        self._sampling = False  # T3 samples now: set at its every token, cleared while it waits

    @classmethod
    def of_this_thread(cls) -> "ThreadShare":
        import torch

        return cls(torch.get_num_threads())

    @property
    def rendering(self) -> bool:
        return self._renders > 0

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """T3 runs in this thread within this block; it gets every thread back after. So do
        threads started later: torch also keeps the last count set, in any thread, for them."""
        self._sampling = True
        try:
            yield
        finally:
            self._sampling = False
            import torch

            torch.set_num_threads(self.total)

    def alone(self) -> None:
        """In the say's thread, before a render of its own: every thread."""
        self._sampling = False
        _set_threads(self.total)

    def waiting(self) -> None:
        """In the say's thread, T3 done for now (it waits for the worker): the render that
        runs takes every thread at its next estimator call."""
        self._sampling = False

    def t3_tick(self) -> None:
        """In T3's thread, at each token: its share while a render runs, else every thread."""
        self._sampling = True
        _set_threads(self.t3_beside if self.rendering else self.total)

    def render_tick(self) -> None:
        """In the worker, at each estimator call: its share while T3 samples, else every thread."""
        _set_threads(self.render_beside if self._sampling else self.total)

    def handed_over(self) -> None:
        with self._lock:
            self._renders += 1

    @contextlib.contextmanager
    def render(self) -> Iterator[None]:
        """In the worker, around one render: the render's share while T3 samples."""
        from ..seams.estimator import each_call

        self.render_tick()
        try:
            with each_call(self.render_tick):
                yield
        finally:
            with self._lock:
                self._renders -= 1


def _set_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


_SIDE_STREAMS: dict[str, Any] = {}
_SIDE_LOCK = threading.Lock()


def side_stream(device: Any) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """Called where a part is handed over (T3's thread): a context for the worker that
    renders on a CUDA stream of its own after what T3's stream queued so far. Elsewhere,
    no stream: a no-op."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return contextlib.nullcontext
    handed = torch.cuda.Event()
    handed.record(torch.cuda.current_stream(device))
    with _SIDE_LOCK:  # one per device, kept: the caching allocator keeps its blocks per stream
        if str(device) not in _SIDE_STREAMS:
            _SIDE_STREAMS[str(device)] = torch.cuda.Stream(device)
        stream = _SIDE_STREAMS[str(device)]

    @contextlib.contextmanager
    def on_side_stream() -> Iterator[None]:
        stream.wait_event(handed)
        with torch.cuda.stream(stream):
            yield
        stream.synchronize()  # what the render made is read on other streams (and on the host)

    return on_side_stream


class RenderWorker:
    """One say's render thread: parts run in the order handed over, each in the say's
    context (its progress hook, its stop) under `render_context`. A failure ends the
    worker's work: later parts are skipped and `drain` raises the first error in the say's
    thread. Use it as a context manager, so the thread is joined whatever happens."""

    def __init__(self, device: Any, share: ThreadShare | None,
                 render_context: Callable[[], contextlib.AbstractContextManager[None]], estimator: Any = None) -> None:
        self.device = device
        self.share = share
        self.render_context = render_context
        #: S3Gen's estimator: the render's share follows its every call, through its runner
        self.estimator = estimator
        self._placed_runner = False
        self.failed: list[BaseException] = []
        self._pending: list[concurrent.futures.Future] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatterbox_nb-render")

    def hand_over(self, part: Callable[[], None]) -> None:
        """Render `part` on the worker, after the parts handed over before it."""
        stream = side_stream(self.device)
        if self.share is not None:
            self.share.handed_over()
        share = self.share

        def run() -> None:
            with share.render() if share is not None else contextlib.nullcontext():
                if self.failed:
                    return
                try:
                    with stream(), self.render_context():
                        part()
                except BaseException as exc:  # noqa: BLE001 - raised in the say's thread by drain()
                    self.failed.append(exc)

        self._pending.append(self._pool.submit(contextvars.copy_context().run, run))

    def drain(self) -> None:
        """Wait for every part handed over; raise the first failure here."""
        pending, self._pending = self._pending, []
        if self.share is not None:
            self.share.waiting()
        concurrent.futures.wait(pending)
        if self.failed:
            raise self.failed[0]

    def __enter__(self) -> "RenderWorker":
        """With a thread share, the estimator gets a runner for the say if it has none (float32:
        its eager mode is upstream's forward as it is), removed when the say ends."""
        from ..seams import estimator as seam

        if self.share is not None and self.estimator is not None and seam.current(self.estimator) is None:
            seam.runner(self.estimator)
            self._placed_runner = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        if self._placed_runner:
            from ..seams import estimator as seam

            placed = seam.current(self.estimator)
            if placed is not None and placed.mode == "eager":  # not if a precision or a package took it on since
                seam.remove(self.estimator)
            self._placed_runner = False
