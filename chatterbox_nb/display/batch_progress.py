"""The batch's live bar: rows done / total, audio hours made, rows per minute, ETA.

`tqdm.auto` draws a widget in a notebook and a text bar in a terminal; its ETA
counts only the rows made in this run (a resumed batch starts at the rows already
done). Nothing here touches torch.
"""

from __future__ import annotations

import time
from typing import Any


class BatchProgress:
    def __init__(self, total: int, done: int, audio_s: float, *, enabled: bool = True) -> None:
        self.start = time.perf_counter()
        self.finished = 0
        self.failed = 0
        self.audio_s = audio_s
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, unit="row", desc="chatterbox batch", dynamic_ncols=True)
            self._postfix()

    def row_done(self, audio_s: float, *, failed: bool = False) -> None:
        self.finished += 1
        self.failed += failed
        self.audio_s += audio_s
        if self.bar is not None:
            self._postfix(refresh=False)
            self.bar.update(1)

    def _postfix(self, refresh: bool = True) -> None:
        elapsed = time.perf_counter() - self.start
        rate = 60 * self.finished / elapsed if self.finished and elapsed > 0 else 0.0
        note = f", {self.failed} failed" if self.failed else ""
        self.bar.set_postfix_str(f"{self.audio_s / 3600:.4f} h audio, {rate:.1f} rows/min{note}", refresh=refresh)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
