"""Reference audio: whatever soundfile (or torchaudio) reads, as mono float32, with one
sentence that says why a file cannot be a voice.

The bytes are read once: their sha256 is the file's identity in the voice caches and
the same bytes are decoded, so a file that changes between hashing and decoding can
never pair one content's hash with another's conditionals.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._state import STATE
from ...errors import AudioFileError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aif", ".aiff", ".aifc", ".wv")
# Below a second the voice encoder and S3Gen have too little speech to go on.
MIN_SECONDS = 1.0
# Peak amplitude under which a file is taken for silence (-60 dBFS).
SILENCE_PEAK = 1e-3


@dataclass(frozen=True)
class Reference:
    path: Path
    sha256: str
    samples: np.ndarray  # mono float32
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes, remembered per (path, size, mtime) so a voice used
    in every cell is not re-read every time."""
    path = existing_file(path)
    key = _stat_key(path)
    with STATE.lock:
        known = STATE.file_hashes.get(key)
    if known is None:
        known = hashlib.sha256(path.read_bytes()).hexdigest()
        with STATE.lock:
            STATE.file_hashes[key] = known
    return known


def existing_file(path: Path | str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise AudioFileError(f"{path} does not exist; give the path of a WAV, FLAC or MP3 file.")
    if not path.is_file():
        raise AudioFileError(f"{path} is not a file; give the path of a WAV, FLAC or MP3 file (or a folder of them to voice add).")
    return path


def audio_files_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AudioFileError(f"{folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    return files


def _decode(data: bytes, path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the sample rate; soundfile first, torchaudio for
    the formats only it knows."""
    import soundfile as sf

    try:
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return frames, int(rate)
    except Exception as sf_error:  # noqa: BLE001 - any decoder failure means "try the next one"
        reason = getattr(sf_error, "error_string", None) or str(sf_error).strip() or type(sf_error).__name__
    try:
        import torchaudio

        wav, rate = torchaudio.load(io.BytesIO(data), format=path.suffix.lstrip(".").lower() or None)
        return wav.T.numpy().astype(np.float32), int(rate)
    except Exception:  # noqa: BLE001
        pass
    raise AudioFileError(f"{path} is not audio that soundfile or torchaudio can read ({reason}); convert it to WAV or FLAC.")


def read(path: Path | str, *, min_seconds: float = MIN_SECONDS) -> Reference:
    """The file as a mono reference voice, or an `AudioFileError` saying what is wrong."""
    path = existing_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AudioFileError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    frames, rate = _decode(data, path)
    if frames.size == 0 or rate <= 0:
        raise AudioFileError(f"{path} holds no audio samples; record at least {min_seconds:g} s of speech.")
    mono = frames.mean(axis=1).astype(np.float32)
    if not np.isfinite(mono).all():
        raise AudioFileError(f"{path} contains NaN or infinite samples; re-export it as ordinary PCM audio.")
    ref = Reference(path, hashlib.sha256(data).hexdigest(), mono, rate, frames.shape[1])
    if ref.duration_s < min_seconds:
        raise AudioFileError(
            f"{path} is {ref.duration_s:.2f} s long; a reference voice needs at least {min_seconds:g} s of speech."
        )
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        raise AudioFileError(f"{path} is silent (peak below -60 dBFS); give a recording of someone speaking.")
    with STATE.lock:
        STATE.file_hashes[_stat_key(path)] = ref.sha256
    return ref


def write_wav(ref: Reference, folder: Path) -> Path:
    """The decoded mono audio as a float WAV at its own rate: upstream's loader reads
    it exactly as we decoded it (and resamples it itself)."""
    import soundfile as sf

    out = Path(folder) / f"{ref.sha256[:16]}.wav"
    sf.write(out, ref.samples, ref.sample_rate, subtype="FLOAT")
    return out
