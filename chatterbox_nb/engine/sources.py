"""Where weights come from: a table from `--weights` to a resolver (after vLLM's load formats).

Every resolver returns a folder in the official layout plus a fingerprint that
changes whenever the weights do (hub commit, local file identities, dummy seed);
the caches key on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import CacheError, CheckpointError, HubUnavailable, InvalidOption
from . import checkpoint, dummy
from .specs import ModelSpec

_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Source:
    kind: str  # "hub", "local" or "dummy"
    folder: Path
    fingerprint: str

    @property
    def is_dummy(self) -> bool:
        return self.kind == "dummy"


def weights_kind(weights: str) -> str:
    if weights == "hub" or weights.startswith("dummy"):
        return weights.partition(":")[0]
    return "local"


def check_weights(weights: str) -> str:
    """Syntax check that needs no torch: hub, dummy, dummy:full, dummy:reduced, or a folder."""
    weights = weights.strip()
    if weights.startswith("dummy"):
        size = weights.partition(":")[2] or "full"
        if weights not in ("dummy", f"dummy:{size}") or size not in dummy.SIZES:
            raise InvalidOption(f"Unknown weights {weights!r}: use hub, dummy, dummy:reduced or a checkpoint folder.")
    elif weights != "hub" and not Path(weights).expanduser().is_dir():
        raise InvalidOption(
            f"Weights folder {weights!r} does not exist: give hub, dummy or a folder with the checkpoint files."
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
    return Source("dummy", folder, f"dummy:{spec.name}:{size}:seed0:v{dummy.FORMAT}")


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
