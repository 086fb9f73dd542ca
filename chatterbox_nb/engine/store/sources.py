"""Where weights come from: a table from `--weights` to a resolver (after vLLM's load formats).

Every resolver returns a folder in the official layout plus a fingerprint that
changes whenever the weights do (hub commit, local file identities, dummy seed);
the caches key on it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...errors import CacheError, CheckpointError, HubUnavailable, InvalidOption, SourceCorrupt
from . import checkpoint, dummy, fsutil
from .weights import WEIGHTS_VALUES, weights_kind
from ..specs import ModelSpec

_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Source:
    kind: str  # "hub", "local" or "dummy"
    folder: Path
    fingerprint: str
    #: our own dummy checkpoint, which can be made again bit for bit when it is damaged
    rebuildable: bool = False

    @property
    def is_dummy(self) -> bool:
        return self.kind == "dummy"

    def vouched_sha256(self, path: Path) -> str | None:
        """The checksum this source vouches for, or None (then the cache keeps its own
        copy rather than a hard link). Hub LFS blobs are named by their sha256; dummy
        checkpoints record theirs."""
        if self.kind == "hub":
            name = Path(os.path.realpath(path)).name
            return name if _is_hex(name, 64) else None
        if self.kind == "dummy":
            return dummy.recorded_sha256(self.folder, path.name)
        return None

    def file_problem(self, path: Path) -> str | None:
        """Why `path` does not match the checksum this source records for it, or None
        (a match, or no record: a user's own folder). Hub blobs are named by their etag:
        the sha256 of an LFS file, the git blob sha1 of a small one; a dummy checkpoint
        records the sha256 of each file it wrote."""
        expected = self.vouched_sha256(path)
        if expected is not None:
            actual = fsutil.sha256_file(path)
        elif self.kind == "hub" and _is_hex(expected := Path(os.path.realpath(path)).name, 40):
            actual = _git_blob_sha1(path)
        else:
            return None
        return None if actual == expected else f"its checksum does not match the one the {self.kind} source records"

    def damaged(self, spec: ModelSpec, path: Path, why: str) -> SourceCorrupt:
        """The one sentence for a damaged source file: what to delete or replace."""
        if self.kind == "hub":
            return SourceCorrupt(
                f"{path.name} of {spec.repo_id} in the Hugging Face cache is damaged ({why}): delete "
                f"{os.path.realpath(path)} and download it again (`hf download {spec.repo_id}`)."
            )
        if self.rebuildable:
            return SourceCorrupt(f"The dummy checkpoint file {path} is damaged ({why}).")
        return SourceCorrupt(f"The checkpoint file {path} is damaged ({why}): replace it with a good copy.")


def _is_hex(name: str, length: int) -> bool:
    return len(name) == length and all(c in "0123456789abcdef" for c in name)


def _git_blob_sha1(path: Path) -> str:
    """The id git (and so the hub's etag) gives a small file: sha1 of "blob <size>\\0" + bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's id, not security
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights(weights: str) -> str:
    """Syntax check that needs no torch: hub, dummy, dummy:full, dummy:reduced (either with
    `-stopping`: a T3 that ends its utterances), or a folder."""
    weights = weights.strip()
    if weights.startswith("dummy"):
        size = weights.partition(":")[2] or "full"
        if weights not in ("dummy", f"dummy:{size}") or size not in dummy.SIZES:
            raise InvalidOption(f"Unknown weights {weights!r}: use {WEIGHTS_VALUES}.")
    elif weights != "hub" and not Path(weights).expanduser().is_dir():
        raise InvalidOption(
            f"Weights folder {weights!r} does not exist: give {WEIGHTS_VALUES}."
        )
    return weights


def resolve(spec: ModelSpec, weights: str, cache_root: Path) -> Source:
    kind = weights_kind(weights)
    return _RESOLVERS[kind](spec, weights, cache_root)


def _resolve_dummy(spec: ModelSpec, weights: str, cache_root: Path) -> Source:
    size = weights.partition(":")[2] or "full"
    try:
        folder = dummy.ensure_dummy(cache_root, spec.name, size)
    except OSError as exc:
        raise CacheError(
            f"Cannot write the dummy weights under {cache_root} ({exc.strerror or exc}): free some space, or set "
            "%config Chatterbox.cache_dir to a folder you can write."
        ) from None
    return Source("dummy", folder, f"dummy:{spec.name}:{size}:seed0:v{dummy.FORMAT}", rebuildable=True)


def rebuild(spec: ModelSpec, source: Source, cache_root: Path) -> Source:
    """Make a damaged dummy checkpoint again (the caller checked `source.rebuildable`)."""
    with fsutil.lock_for(source.folder):
        fsutil.retire(source.folder)
    return resolve(spec, f"dummy:{source.fingerprint.split(':')[2]}", cache_root)


def _resolve_local(spec: ModelSpec, weights: str, cache_root: Path) -> Source:
    folder = Path(weights).expanduser().resolve()
    checkpoint.check_files(spec, folder)
    kind = "dummy" if dummy.is_dummy(folder) else "local"
    return Source(kind, folder, "local:" + file_identity(folder, spec.files))


def file_identity(folder: Path, names: tuple[str, ...]) -> str:
    """Cheap identity of a set of files: name, size and mtime of each."""
    digest = hashlib.sha256()
    for name in names:
        st = (folder / name).stat()
        digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def _resolve_hub(spec: ModelSpec, weights: str, cache_root: Path) -> Source:
    """Files already in the Hugging Face cache are used offline; otherwise download.

    Upstream's `from_pretrained` retries for ~20 s offline even when every file is
    cached. We look in the cache first, then probe the hub once with a short
    timeout, so an offline machine gets its answer in well under a second.
    """
    from huggingface_hub import constants, snapshot_download

    try:
        folder = Path(snapshot_download(spec.repo_id, allow_patterns=list(spec.hub_patterns), local_files_only=True))
        checkpoint.check_files(spec, folder)
        return Source("hub", folder, f"hub:{spec.repo_id}@{folder.name}")
    except (CheckpointError, OSError, ValueError, LookupError):
        pass  # not (completely) cached: go online
    except Exception as exc:  # huggingface_hub's LocalEntryNotFoundError and kin
        if "LocalEntryNotFound" not in type(exc).__name__:
            raise
    if constants.HF_HUB_OFFLINE:
        raise HubUnavailable(_offline_message(spec, "HF_HUB_OFFLINE is set"))
    _probe_hub(spec)
    folder = Path(snapshot_download(spec.repo_id, allow_patterns=list(spec.hub_patterns)))
    checkpoint.check_files(spec, folder)
    return Source("hub", folder, f"hub:{spec.repo_id}@{folder.name}")


def _probe_hub(spec: ModelSpec) -> None:
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(spec.repo_id, timeout=_PROBE_TIMEOUT_S)
    except Exception as exc:
        if type(exc).__name__ in ("RepositoryNotFoundError", "GatedRepoError", "HfHubHTTPError"):
            raise HubUnavailable(f"The hub refused {spec.repo_id}: {exc}. Log in with `hf auth login`.") from exc
        raise HubUnavailable(_offline_message(spec, f"{type(exc).__name__}: {exc}")) from exc


def _offline_message(spec: ModelSpec, why: str) -> str:
    return (
        f"Cannot reach the Hugging Face hub for {spec.repo_id} ({why}) and its files are not in the "
        f"Hugging Face cache: download them where you have network (`hf download {spec.repo_id}`) and "
        f"copy the HF cache here, or pass --weights /path/to/checkpoint-folder, or --weights dummy to try "
        f"the pipeline with random weights."
    )


_RESOLVERS: dict[str, Callable[[ModelSpec, str, Path], Source]] = {
    "hub": _resolve_hub,
    "local": _resolve_local,
    "dummy": _resolve_dummy,
}
