"""The result of `say`: audio, the text, the parameters and where the time went."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .display.once import ShownOncePerCell
from .errors import AudioReleased, InvalidOption
from .subtitles import Chunk, check_format
from .subtitles import subtitles as _subtitles

TIMING_KEYS = (
    "model_source",
    "load_s",
    "wait_s",
    "conditioning_s",
    "voice_source",
    "t3_s",
    "speech_tokens",
    "s3gen_s",
    "watermark_s",
    "total_s",
    "audio_s",
    "rtf",
    "first_audio_s",
    "pieces",
)


class Utterance(ShownOncePerCell):
    """Displays itself as an audio player plus a timing widget (text summary in a terminal)."""

    def __init__(
        self,
        audio: np.ndarray,
        sample_rate: int,
        text: str,
        params: dict[str, Any],
        timings: dict[str, Any],
        *,
        dummy: bool = False,
        autoplay: bool = False,
        chunks: Sequence[tuple[str, int, int]] | None = None,
    ) -> None:
        """`chunks`: each chunk's text and the samples its speech spans in `audio`
        (None: one chunk, the whole text over the whole audio)."""
        self._audio: np.ndarray | None = np.asarray(audio, dtype=np.float32).reshape(-1)
        self._samples = len(self._audio)
        self.sample_rate = int(sample_rate)
        self.text = text
        self.params = dict(params)
        self.timings = dict(timings)
        self.dummy = dummy
        self.autoplay = autoplay
        spans = [(text, 0, self._samples)] if chunks is None else chunks
        #: the sentence timings: each chunk's text, start and end in seconds (exact to the sample)
        self.chunks: list[Chunk] = [Chunk(t, a / self.sample_rate, b / self.sample_rate) for t, a, b in spans]
        self._widget: Any = None
        #: where `save` (or `--out`) last wrote this utterance
        self.saved: Path | None = None

    @property
    def audio(self) -> np.ndarray:
        if self._audio is None:
            saved = f"; it was saved to {self.saved}" if self.saved else ""
            raise AudioReleased(
                f"The audio of {self.text[:40]!r} was released to bound the history (Chatterbox.history_audio_mb"
                f"){saved}; say it again with the same seed to hear it."
            )
        return self._audio

    @property
    def audio_bytes(self) -> int:
        """Bytes of audio this utterance holds (0 once released)."""
        return 0 if self._audio is None else self._audio.nbytes

    def release_audio(self) -> None:
        """Drop the samples and the widgets that show them; text, parameters, timings and
        the saved path stay (the history keeps old utterances this way)."""
        self._audio = None
        if self._widget is not None:
            self._widget.close()
            self._widget = None

    @property
    def duration(self) -> float:
        return self._samples / self.sample_rate

    def wav_bytes(self) -> bytes:
        """16-bit PCM WAV, what browsers play everywhere."""
        pcm = (np.clip(self.audio, -1.0, 1.0) * 32767).astype("<i2")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(pcm.tobytes())
        return buf.getvalue()

    def save(self, path: str | Path, subtitles: str | None = None) -> Path:
        """Write a WAV file (float samples kept as 32-bit float); `subtitles` ("srt" or
        "vtt") also writes the sentence timings beside it (same name, that suffix)."""
        import soundfile as sf

        fmt = check_format(subtitles)  # before anything is written
        path = Path(path).expanduser()
        if fmt is not None and path.suffix.lower() == f".{fmt}":
            raise InvalidOption(f"{path.name} would be both the WAV and the subtitles: name the WAV .wav.")
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), self.audio, self.sample_rate, subtype="FLOAT")
        if fmt is not None:
            path.with_suffix(f".{fmt}").write_text(_subtitles(self.chunks, fmt), encoding="utf-8")
        self.saved = path
        return path

    def summary(self) -> str:
        t = self.timings
        noise = " [noise: dummy weights]" if self.dummy else ""
        if self._audio is None:
            noise += f" [audio released{f', saved to {self.saved}' if self.saved else ''}]"
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        if t.get("stopped"):
            noise += f" [stopped after {t.get('chunks_done')} of {self.params.get('chunks')} chunks]"
        return (
            f"Utterance {text!r}: {self.duration:.2f} s of audio at {self.sample_rate} Hz{noise}; "
            f"total {t.get('total_s', 0):.2f} s (T3 {t.get('t3_s', 0):.2f} s for {t.get('speech_tokens', 0)} tokens, "
            f"S3Gen {t.get('s3gen_s', 0):.2f} s), RTF {t.get('rtf', 0):.2f}, model from {t.get('model_source', '?')}"
        )

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .display.player import utterance_bundle

        if self._audio is None:
            return {"text/plain": repr(self)}
        return utterance_bundle(self)

    def _more_bundles(self) -> list[dict[str, Any]]:
        from .display.player import _in_kernel, saved_bundle

        return [saved_bundle(self)] if _in_kernel() and self._audio is not None else []
