"""The disk weight cache: each model in ready-to-run form, checksummed, published atomically.

An entry is a folder `models/<model>-<dtype>-<key>/` holding `ve`, `t3` and `s3gen`
as safetensors (T3 in the target dtype), the built-in voice as `conds.safetensors`
(no pickle), the tokenizer files and a `manifest.json` with the format version, the
chatterbox-tts and torch versions, the source fingerprint and each file's size and
sha256. Loading maps the files (see `build`), so a warm page cache makes it nearly free.

Where the source already is safetensors in the right dtype and immutable (a hub blob
or our own dummy checkpoint), the entry hard-links it instead of storing a second
copy; the source's own checksum is checked when the link is made. A user's local
folder is copied, since it may be edited in place.

Cheap checks (sizes, safetensors headers, manifest keys, versions, the sha256 of small
files) run at every load; the weights are hashed in full once per entry, and again
whenever a file's identity changes (see "full check" below), before a load uses them.
A bad entry gets one `CacheWarning` and is rebuilt from its source. The full check
(sha256 of every file, and the stamp that spares it) is `integrity.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ...errors import CheckpointError, SourceCorrupt
from . import checkpoint, dummy, fsutil
from .condsfile import load_conds, save_conds
from .integrity import MANIFEST, STAMP, check_entry, identity, read_manifest, stamp, trusted, verify
from .layout import CacheLayout
from .sources import Source
from ..specs import ModelSpec

__all__ = ["open_or_build", "entry_dir", "entries", "describe", "clear", "check_entry", "verify", "trusted", "stamp",
           "identity", "read_manifest", "save_conds", "load_conds", "MANIFEST", "STAMP", "CacheWarning"]

FORMAT = 1
WEIGHTS = {"ve": "ve.safetensors", "t3": "t3.safetensors", "s3gen": "s3gen.safetensors"}
CONDS = "conds.safetensors"
_SMALL_FILE = 64 * 2**20
_DTYPE_CODES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
_FLOAT_CODES = {"F64", "F32", "F16", "BF16"}


class CacheWarning(UserWarning):
    """A disk-cache entry was bad and is being rebuilt, or could not be written."""


def models_dir(root: Path) -> Path:
    return CacheLayout(root).models


def entry_dir(root: Path, spec: ModelSpec, source: Source, dtype: str) -> Path:
    """The entry's folder. The key holds the library versions too: two environments
    sharing a cache dir each keep their own entry instead of rebuilding each other's."""
    v = versions()
    key = f"{spec.name}|{source.fingerprint}|{dtype}|{v['chatterbox_tts']}|{v['torch']}"
    return CacheLayout(root).entry(spec.name, dtype, hashlib.sha256(key.encode()).hexdigest()[:16])


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import torch

    return {"chatterbox_tts": version("chatterbox-tts"), "torch": torch.__version__}


# -- cheap checks ----------------------------------------------------------------------


def problem(folder: Path, spec: ModelSpec, source: Source, dtype: str) -> str | None:
    """Why the entry cannot be used, in words, or None when the cheap checks pass.

    Cheap means no read of the large weight files: the manifest, file sizes and
    safetensors headers, and the sha256 of every small file (tokenizer, conditionals,
    voice encoder: milliseconds), whose damage would otherwise fail the load itself."""
    if folder.is_symlink():
        return "is a symbolic link (never followed out of the cache)"
    if not folder.is_dir():
        return "missing"
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        return "has no readable manifest (half-written?)"
    why = _manifest_problem(manifest, spec, source, dtype)
    if why is not None:
        return why
    for name, meta in manifest["files"].items():
        path = folder / name
        if Path(name).name != name or path.is_symlink():
            return f"lists {name!r}, a symbolic link or a path outside the entry (never followed)"
        try:
            size = path.stat().st_size
            if not path.is_file():
                return f"is missing {name}"
            if size != meta["size"]:
                return f"has {name} of {size} bytes, not {meta['size']} (truncated?)"
            if name.endswith(".safetensors"):
                checkpoint.safetensors_header(path)
            if size < _SMALL_FILE and fsutil.sha256_file(path) != meta["sha256"]:
                return f"has a damaged {name} (fails its sha256 check)"
        except FileNotFoundError:
            return f"is missing {name}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"has a damaged {name} ({exc})"
    return None


def _manifest_problem(manifest: Any, spec: ModelSpec, source: Source, dtype: str) -> str | None:
    """A manifest of the wrong shape is a damaged entry, never a crash."""
    try:
        if manifest["format"] != FORMAT:
            return f"has cache format {manifest['format']} (this version writes {FORMAT})"
        if manifest["versions"] != versions():
            return f"was made with {_fmt_versions(manifest['versions'])}, not {_fmt_versions(versions())}"
        if (manifest["model"], manifest["dtype"], manifest["source"]["fingerprint"]) != (
            spec.name,
            dtype,
            source.fingerprint,
        ):
            return "belongs to other weights"
        files = manifest["files"]
        for name in (*WEIGHTS.values(), CONDS):
            if name not in files:
                return f"has no {name} in its manifest"
        for name, meta in files.items():
            if not (isinstance(name, str) and isinstance(meta, dict)):
                return "has a manifest with malformed file records"
            if not (isinstance(meta.get("size"), int) and isinstance(meta.get("sha256"), str)):
                return f"has a manifest without the size and sha256 of {name}"
    except (KeyError, TypeError, AttributeError):
        return "has a manifest with missing keys"
    return None


def _fmt_versions(v: dict[str, str]) -> str:
    return f"chatterbox-tts {v.get('chatterbox_tts')} / torch {v.get('torch')}"


# -- reading ---------------------------------------------------------------------------


def read_entry(spec: ModelSpec, folder: Path) -> checkpoint.Parts:
    """Everything the model needs from the entry, read now: the weights mapped, the
    voice and tokenizer made, so that a `cache clear` right after costs the load nothing."""
    return checkpoint.Parts(
        ve=checkpoint.map_safetensors(folder / WEIGHTS["ve"]),
        t3=checkpoint.map_safetensors(folder / WEIGHTS["t3"]),
        s3gen=checkpoint.map_safetensors(folder / WEIGHTS["s3gen"]),
        conds=load_conds(spec, folder / CONDS),
        tokenizer_folder=folder,
        tokenizer=checkpoint.make_tokenizer(spec, folder),
    )


# -- writing ---------------------------------------------------------------------------


def open_or_build(
    root: Path,
    spec: ModelSpec,
    source: Source,
    dtype: str,
    progress: Any = None,
    remake: Callable[[], Source] | None = None,
) -> tuple[checkpoint.Parts, str, Path | None]:
    """The model's parts, how they were obtained ("disk-cache" or the source kind), and
    the entry folder (None when the cache could not be written).

    Whatever is wrong with the entry, or with a source that `remake` can make again
    (our dummy checkpoints), costs one `CacheWarning` and a rebuild, never a failed load."""
    say = progress or (lambda stage: None)
    folder = entry_dir(root, spec, source, dtype)
    parts, why = _open(spec, folder, source, dtype, say)
    if parts is not None:
        return parts, "disk-cache", folder
    with fsutil.lock_for(folder):
        parts, why = _open(spec, folder, source, dtype, say)  # built, or stamped, while we waited?
        if parts is not None:
            return parts, "disk-cache", folder
        if why != "missing":
            _warn(f"disk-cache entry {folder.name} {why}; rebuilding it from {source.kind}.")
        fsutil.clean_stale(folder.parent, own=folder.name)
        say("writing the disk-cache entry (once)")
        try:
            try:
                _build(spec, source, dtype, folder)
            except SourceCorrupt as exc:
                if remake is None:
                    raise
                if why == "missing":  # else this load has warned already
                    _warn(f"{exc} Making it again.")
                say("making the damaged dummy checkpoint again")
                source = remake()
                _build(spec, source, dtype, folder)
        except Exception as exc:
            why = fsutil.no_room(exc)  # out of disk space (or quota, or read-only): it loads from its source
            if why is None:
                raise
            _warn(
                f"cannot write the disk cache in {folder.parent} ({why}); loading straight from "
                f"{source.kind} instead. Free some space or set CHATTERBOX_NB_CACHE_DIR."
            )
            return checkpoint.read_parts(spec, source.folder), source.kind, None
        return read_entry(spec, folder), source.kind, folder  # mapped under the lock: `clear` waits for it


def _warn(message: str) -> None:
    warnings.warn(f"chatterbox_nb: {message}", CacheWarning, stacklevel=4)


def _open(
    spec: ModelSpec, folder: Path, source: Source, dtype: str, say: Callable[[str], None]
) -> tuple[checkpoint.Parts | None, str]:
    """The entry's parts, or None and why it cannot be used. An entry without a valid
    stamp is hashed in full first, so no load ever serves bytes nobody checked."""
    why = problem(folder, spec, source, dtype)
    if why is None and not trusted(folder):
        say("checking the disk-cache entry's checksums (once)")
        problems = verify(folder)
        if problems:
            why = "; ".join(problems)
        else:
            with contextlib.suppress(OSError):  # a read-only cache: checked again next time
                stamp(folder)
    if why is not None:
        return None, why
    try:
        return read_entry(spec, folder), ""
    except Exception as exc:  # noqa: BLE001 - retired under us, or damage the checks cannot see
        return None, f"could not be read ({type(exc).__name__}: {exc})"


def _build(spec: ModelSpec, source: Source, dtype: str, folder: Path) -> None:
    with fsutil.building(folder) as tmp:
        write_entry(spec, source, dtype, tmp)


def write_entry(spec: ModelSpec, source: Source, dtype: str, tmp: Path) -> dict[str, Any]:
    """Write the entry's files into `tmp`, hash each, record them in the manifest and
    stamp them as checked. A source file that cannot be read, or that does not match
    the checksum its source records, raises the source's `SourceCorrupt` before
    anything is parsed from it (a dummy's is then made again, see `open_or_build`)."""
    weights = {part: (src_name, dtype if part == "t3" else "float32")
               for part, src_name in (("ve", spec.ve_file), ("t3", spec.t3_file), ("s3gen", spec.s3gen_file))}
    linked = {src for src, target in weights.values() if _linkable(source, source.folder / src, target)}
    _check_source(spec, source, skip=linked)  # linked files are hashed as the entry's own, below
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(source.folder.iterdir()):
        skip = {*spec.weight_files, "conds.pt", dummy.MARKER}
        if path.is_file() and path.name not in skip and path.stat().st_size < _SMALL_FILE:
            shutil.copyfile(path, tmp / path.name)
            files[path.name] = {"how": "copied", "from": path.name}
    try:
        checkpoint.make_tokenizer(spec, tmp)  # parsed once here, so no load of the entry fails on it
        parts = checkpoint.read_parts(spec, source.folder)
    except CheckpointError as exc:
        if exc.path is None:
            raise
        raise source.damaged(spec, source.folder / Path(str(exc.path)).name, exc.why) from exc
    for part, (src_name, target) in weights.items():
        src, dst = source.folder / src_name, tmp / WEIGHTS[part]
        if src_name in linked:
            how, expected = _link_or_copy(src, dst), source.vouched_sha256(src)
        else:
            _convert(getattr(parts, part), target, dst)
            how, expected = "converted", None
        files[WEIGHTS[part]] = {"how": how, "from": src_name, "expect": expected}
    save_conds(parts.conds, tmp / CONDS)
    files[CONDS] = {"how": "converted", "from": "conds.pt"}
    for name, meta in files.items():
        meta["size"] = (tmp / name).stat().st_size
        meta["sha256"] = fsutil.sha256_file(tmp / name)
        if meta.pop("expect", None) not in (None, meta["sha256"]):
            why = f"its sha256 does not match the checksum the {source.kind} source vouches for"
            raise source.damaged(spec, source.folder / meta["from"], why)
    manifest = {
        "format": FORMAT,
        "model": spec.name,
        "dtype": dtype,
        "versions": versions(),
        "source": {"kind": source.kind, "fingerprint": source.fingerprint, "folder": str(source.folder)},
        "files": files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
    stamp(tmp)  # every file was hashed just now; inodes and mtimes survive the publishing rename
    return manifest


def _check_source(spec: ModelSpec, source: Source, skip: set[str]) -> None:
    """Every source file the entry is made from (but `skip`), against the checksum its
    source records: damage the size checks cannot see (a same-size overwrite of the
    tokenizer, say) is named here, not copied into the entry to fail every later load."""
    for path in sorted(source.folder.iterdir()):
        if path.name in skip or path.name == dummy.MARKER or not path.is_file():
            continue
        if path.name in spec.weight_files or path.name == "conds.pt" or path.stat().st_size < _SMALL_FILE:
            why = source.file_problem(path)
            if why is not None:
                raise source.damaged(spec, path, why)


def _linkable(source: Source, path: Path, dtype: str) -> bool:
    """Immutable, checksummed and already in `dtype`: the entry links it instead of a copy."""
    try:
        return source.vouched_sha256(path) is not None and _already(path, dtype)
    except (OSError, ValueError, KeyError, TypeError):
        return False  # a damaged header: checked (and named) with the other files


def _already(path: Path, dtype: str) -> bool:
    """Safetensors whose floating tensors are all in `dtype`: usable as they are."""
    if path.suffix != ".safetensors":
        return False
    header, _ = checkpoint.safetensors_header(path)
    codes = {t["dtype"] for k, t in header.items() if k != "__metadata__"} & _FLOAT_CODES
    return codes <= {_DTYPE_CODES[dtype]}


def _link_or_copy(src: Path, dst: Path) -> str:
    try:
        os.link(os.path.realpath(src), dst)
        return "linked"
    except OSError:
        shutil.copyfile(src, dst)
        return "copied"


def _convert(state: dict[str, Any], dtype: str, dst: Path) -> None:
    import torch
    from safetensors.torch import save_file

    target = getattr(torch, dtype)
    out = {k: (v.to(target) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(out, dst)


# -- the cache as a whole --------------------------------------------------------------


def entries(root: Path) -> list[Path]:
    parent = models_dir(root)
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) if parent.is_dir() else []


def describe(folder: Path) -> dict[str, Any]:
    """An entry's model, dtype, source and disk use; linked files are shared with their source."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):  # damaged into a list, a number...: still listed, as unknown
        manifest = {}
    source = manifest.get("source")
    own = shared = 0
    for path in folder.iterdir():
        st = path.stat()
        if st.st_nlink > 1:
            shared += st.st_size
        else:
            own += st.st_size
    return {
        "entry": folder.name,
        "model": manifest.get("model", "?"),
        "dtype": manifest.get("dtype", "?"),
        "source": source.get("kind", "?") if isinstance(source, dict) else "?",
        "own_bytes": own,
        "shared_bytes": shared,
        "created": manifest.get("created", "?"),
    }


def clear(root: Path, model: str | None = None) -> list[str]:
    """Delete entries, dummy checkpoints, voice conditionals and compiled packages of
    `model`, or all; returns their names. The voice registry stays: conditionals are
    recomputed on use. A model in memory keeps its mapped files and loaded package."""
    from . import packages

    removed = []
    layout = CacheLayout(root)
    for package in layout.compiled_packages(model):
        package.unlink(missing_ok=True)
        removed.append(str(package.relative_to(root)))
    for verdict in layout.compiled_verdicts(model):  # measured on this machine for these packages
        verdict.unlink(missing_ok=True)
        removed.append(str(verdict.relative_to(root)))
    for scratch in packages.leftovers(root, model):  # killed builds' (a running one keeps its own)
        shutil.rmtree(scratch, ignore_errors=True)
        removed.append(str(scratch.relative_to(root)))
    for parent in layout.per_model():
        if not parent.is_dir():
            continue
        for path in sorted(parent.iterdir()):
            if path.is_dir() and not path.name.startswith(".") and (model is None or path.name.startswith(model + "-")):
                with fsutil.lock_for(path):  # a load building or mapping it finishes first
                    fsutil.retire(path)
                removed.append(f"{parent.relative_to(root)}/{path.name}")
    return removed

