"""`%chatterbox cache info` as text and as an HTML table, from what the cache scan found."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence


class CacheContents(Protocol):
    """The plain data a report shows (`cache_api.CacheInfo` gathers it from disk)."""

    root: Path | str
    #: disk-cache entries: entry, model, dtype, source, own_bytes, shared_bytes
    entries: Sequence[Mapping[str, Any]]
    #: sizes in bytes, by name
    dummies: Mapping[str, int]
    packages: Mapping[str, int]
    leftovers: Mapping[str, int]
    voice_bytes: int


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def cache_text(info: CacheContents) -> str:
    n = len(info.entries)
    lines = [f"disk cache {info.root}: {n} model entr{'y' if n == 1 else 'ies'}"]
    for e in info.entries:
        lines.append(
            f"  {e['entry']}: {e['model']} {e['dtype']} from {e['source']}, own {gib(e['own_bytes'])}, "
            f"shared with source {gib(e['shared_bytes'])}"
        )
    for name, size in info.dummies.items():
        lines.append(f"  dummy checkpoint {name}: {gib(size)}")
    for name, size in info.packages.items():
        lines.append(f"  compiled package {name}: {gib(size)}")
    for name, size in info.leftovers.items():
        lines.append(f"  unfinished package build {name}: {gib(size)} (cache clear removes it)")
    lines.append(f"  voice conditionals: {_mib(info.voice_bytes)}")
    return "\n".join(lines)


def cache_html(info: CacheContents) -> str:
    """One row an entry, dummy checkpoint, compiled package, leftover build, and the voices."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(x['entry'])}</td><td>{e(x['model'])}</td><td>{e(x['dtype'])}</td><td>{e(x['source'])}</td>"
        f"<td>{gib(x['own_bytes'])}</td><td>{gib(x['shared_bytes'])}</td></tr>"
        for x in info.entries
    )
    others = (
        [(f"dummy/{n}", "dummy checkpoint (a source)", s) for n, s in info.dummies.items()]
        + [(n, "compiled S3Gen estimator", s) for n, s in info.packages.items()]
        + [(n, "unfinished package build (cache clear removes it)", s) for n, s in info.leftovers.items()]
    )
    rows += "".join(f"<tr><td>{e(n)}</td><td colspan=3>{what}</td><td>{gib(s)}</td><td></td></tr>" for n, what, s in others)
    rows += f"<tr><td>voices/conds</td><td colspan=3>voice conditionals</td><td>{_mib(info.voice_bytes)}</td><td></td></tr>"
    return (
        f'<div style="font:12px sans-serif"><b>disk cache</b> <code>{e(str(info.root))}</code>'
        "<table><tr><th>entry</th><th>model</th><th>dtype</th><th>source</th><th>own</th>"
        f"<th>shared with source</th></tr>{rows}</table></div>"
    )
