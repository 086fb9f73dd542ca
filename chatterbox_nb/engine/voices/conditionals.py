"""Conditionals of reference voices: computed once per (audio content, model), kept in
memory and on disk, and blended when a voice has several files.

Computing them (`prepare_conditionals`: voice encoder, S3 tokenizer, CAM++ and a mel
of the reference) costs a second or more; loading them back costs milliseconds.

Key: the sha256 of the file's bytes, the model and its weights fingerprint, the
chatterbox-tts version and `RECIPE`. Exaggeration is deliberately not in the key: the
only thing it changes is `T3Cond.emotion_adv`, a scalar that upstream's `generate`
rebuilds from its own argument on every call, so one cached entry serves them all.

Files: `voices/conds/<model>-<key>/<sha256>.safetensors` (no pickle, a digest of the
tensors in the metadata), written to a unique temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._state import STATE
from ...errors import AudioFileError
from . import audio
from ..store import diskcache, fsutil
from ..store.layout import CacheLayout

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

# Bump when the way conditionals are computed or stored changes: old entries are then ignored.
RECIPE = 1
MEMORY_ENTRIES = 64
ABOUT = "about.json"


@dataclasses.dataclass(frozen=True)
class VoiceFile:
    path: Path
    sha256: str
    weight: float = 1.0


def conds_root(root: Path) -> Path:
    return CacheLayout(root).conds


def conds_dir(root: Path, loaded: LoadedModel) -> Path:
    versions = diskcache.versions()
    key = f"{loaded.name}|{loaded.source.fingerprint}|{RECIPE}|{versions['chatterbox_tts']}"
    return CacheLayout(root).conds_folder(loaded.name, hashlib.sha256(key.encode()).hexdigest()[:16])


def cached_models(root: Path) -> dict[Path, str]:
    """Each conditionals folder and a label for its model ("english, dummy weights")."""
    labels = {}
    parent = conds_root(root)
    for folder in sorted(parent.iterdir()) if parent.is_dir() else []:
        if folder.is_dir() and not folder.name.startswith("."):
            with contextlib.suppress(OSError, ValueError):
                about = json.loads((folder / ABOUT).read_text("utf-8"))
                labels[folder] = f"{about['model']} ({about['weights']})"
    return labels


def conditionals(loaded: LoadedModel, files: list[VoiceFile], root: Path) -> tuple[Any, str, list[audio.Reference]]:
    """The voice's conditionals on the model's device; where they came from ("memory",
    "disk-cache" or "computed"); the references decoded to compute them (for the registry).

    The caller holds the model: computing runs the model's encoders."""
    folder = conds_dir(root, loaded)
    parts, sources, computed = [], [], []
    for vf in files:
        conds, source, ref = _file_conds(loaded, vf, folder)
        parts.append((conds, vf.weight))
        sources.append(source)
        if ref is not None:
            computed.append(ref)
    conds = parts[0][0] if len(parts) == 1 else blend(parts, loaded.tts.t3.hp.speech_cond_prompt_len)
    source = "computed" if "computed" in sources else "disk-cache" if "disk-cache" in sources else "memory"
    return _on_device(conds, loaded.tts.device), source, computed


def _file_conds(loaded: LoadedModel, vf: VoiceFile, folder: Path) -> tuple[Any, str, audio.Reference | None]:
    key = (folder.name, vf.sha256)
    with STATE.lock:
        conds = STATE.voice_conds.get(key)
        if conds is not None:
            STATE.voice_conds.move_to_end(key)
            return conds, "memory", None
    path = folder / f"{vf.sha256}.safetensors"
    if path.is_symlink():
        warnings.warn(f"{path} is a symbolic link (never followed); computing the conditionals again.",
                      diskcache.CacheWarning, stacklevel=2)
    elif path.is_file():
        try:
            conds = diskcache.load_conds(loaded.spec, path)
            _remember(key, conds)
            return conds, "disk-cache", None
        except Exception as exc:  # noqa: BLE001 - any damage means "recompute"
            warnings.warn(
                f"The cached conditionals {path} are damaged ({exc}); computing them again.",
                diskcache.CacheWarning,
                stacklevel=2,
            )
    # If the file changed since it was hashed, the entry is keyed by what was read now.
    return _compute(loaded, audio.read(vf.path), folder)


def _compute(loaded: LoadedModel, ref: audio.Reference, folder: Path) -> tuple[Any, str, audio.Reference]:
    from ..generation.synth import compute_conditionals

    shortest = loaded.spec.min_reference_s
    if shortest and ref.duration_s <= shortest:
        raise AudioFileError(
            f"{ref.path} is {ref.duration_s:.1f} s long; the {loaded.name} model needs a reference longer than "
            f"{shortest:g} s."
        )
    with tempfile.TemporaryDirectory(prefix="chatterbox-voice-") as tmp:
        conds = compute_conditionals(loaded.tts, loaded.spec, str(audio.write_wav(ref, Path(tmp))), 0.5)
    conds = _on_device(conds, "cpu")
    _save(conds, folder, ref.sha256, loaded)
    _remember((folder.name, ref.sha256), conds)
    return conds, "computed", ref


def _remember(key: tuple[str, str], conds: Any) -> None:
    with STATE.lock:
        STATE.voice_conds[key] = conds
        STATE.voice_conds.move_to_end(key)
        while len(STATE.voice_conds) > MEMORY_ENTRIES:
            STATE.voice_conds.popitem(last=False)


def _save(conds: Any, folder: Path, sha256: str, loaded: LoadedModel) -> None:
    """Atomic (a unique temporary name, fsync, rename), under the folder's file lock so
    that the temporary files of writers that died can be swept. A full disk costs the
    disk copy only (one warning); the conditionals are still used from memory."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with fsutil.lock_for(folder):
            fsutil.clean_stale(folder, max_age_s=0)
            about = folder / ABOUT
            if not about.exists():
                weights = "dummy weights" if loaded.is_dummy else f"{loaded.source.kind} weights"
                fsutil.write_atomic(about, json.dumps({"model": loaded.name, "weights": weights, "recipe": RECIPE}).encode())
            tmp = folder / f".{sha256}.{uuid.uuid4().hex[:12]}{fsutil.INCOMPLETE}"
            try:
                diskcache.save_conds(conds, tmp)
                fsutil.fsync_file(tmp)
                os.replace(tmp, folder / f"{sha256}.safetensors")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    except OSError as exc:
        warnings.warn(
            f"Could not write voice conditionals to {folder} ({exc.strerror or exc}); they are kept in memory only.",
            diskcache.CacheWarning,
            stacklevel=3,
        )


def forget(sha256s: set[str], root: Path) -> int:
    """Drop the conditionals of these files from memory and disk; returns bytes freed."""
    freed = 0
    with STATE.lock:
        for key in [k for k in STATE.voice_conds if k[1] in sha256s]:
            del STATE.voice_conds[key]
    for folder in cached_models(root):
        for sha in sha256s:
            path = folder / f"{sha}.safetensors"
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                freed += size
    return freed


# -- blending ---------------------------------------------------------------------------


def blend(parts: list[tuple[Any, float]], prompt_len: int) -> Any:
    """One voice from several references.

    Who speaks is a weighted mean: of the voice-encoder embeddings for T3 (renormalised
    to unit length, as the encoder's own utterance embeddings are) and of the CAM++
    x-vectors for S3Gen (S3Gen normalises those itself). How they speak — the prompts,
    which both models continue — cannot be averaged: tokens are symbols. Each file gives
    a slice proportional to its weight, in the order given, and the slices are joined
    within the budget of a single reference (T3: `prompt_len` tokens; S3Gen: the longest
    part's prompt, with 2 mel frames per token).
    """
    import torch

    weights = torch.tensor([w for _, w in parts], dtype=torch.float32)
    weights = weights / weights.sum()
    first = parts[0][0]

    def mean(get: Any) -> Any:
        stacked = torch.stack([get(c).float() for c, _ in parts])
        return (weights.view(-1, *[1] * (stacked.dim() - 1)) * stacked).sum(0).to(get(first).dtype)

    speaker = mean(lambda c: c.t3.speaker_emb)
    speaker = speaker / speaker.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    t3 = type(first.t3)(
        speaker_emb=speaker,
        clap_emb=first.t3.clap_emb,
        cond_prompt_speech_tokens=_join_slices([c.t3.cond_prompt_speech_tokens for c, _ in parts], weights, prompt_len),
        cond_prompt_speech_emb=None,
        emotion_adv=first.t3.emotion_adv,
    )
    tokens = [c.gen["prompt_token"] for c, _ in parts]
    budget = max(t.shape[1] for t in tokens)
    shares = _shares([t.shape[1] for t in tokens], weights, budget)
    gen = dict(first.gen)
    gen["prompt_token"] = torch.cat([t[:, :n] for t, n in zip(tokens, shares)], dim=1)
    gen["prompt_token_len"] = torch.tensor([sum(shares)], dtype=first.gen["prompt_token_len"].dtype)
    gen["prompt_feat"] = torch.cat([c.gen["prompt_feat"][:, : 2 * n] for (c, _), n in zip(parts, shares)], dim=1)
    gen["prompt_feat_len"] = None
    gen["embedding"] = mean(lambda c: c.gen["embedding"])
    return type(first)(t3, gen)


def _shares(lengths: list[int], weights: Any, budget: int) -> list[int]:
    """Slice lengths: proportional to the weights, at least one each, within each part."""
    return [max(1, min(n, round(float(w) * budget))) for n, w in zip(lengths, weights)]


def _join_slices(prompts: list[Any], weights: Any, prompt_len: int) -> Any:
    import torch

    if any(p is None for p in prompts):
        return None
    budget = min(prompt_len, max(p.shape[1] for p in prompts))
    joined = torch.cat([p[:, :n] for p, n in zip(prompts, _shares([p.shape[1] for p in prompts], weights, budget))], 1)
    return joined[:, :prompt_len]


def _on_device(conds: Any, device: Any) -> Any:
    """A new Conditionals on `device` (upstream's `.to` moves the object in place,
    which would move a cached entry under another user's feet)."""
    t3 = dataclasses.replace(conds.t3).to(device=device)
    gen = {k: v.to(device) if hasattr(v, "to") else v for k, v in conds.gen.items()}
    return type(conds)(t3, gen)
