"""`%chatterbox status` as an HTML table."""

from __future__ import annotations

import html
from typing import Any


def status_html(status: Any) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("model", "source", "device", "dtype", "memory", "load", "warm-up", "last use"))
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(m['model'])}{' <i>(dummy)</i>' if m['dummy'] else ''}</td>"
        f"<td>{html.escape(m['source'])}</td><td>{html.escape(m['device'])}</td><td>{m['dtype']}</td>"
        f"<td>{m['memory_gib']:.2f} GiB</td><td>{m['load_s']:.2f} s</td><td>{m['warmed']}</td>"
        f"<td>{html.escape(m['last_used'])}{' (in use)' if m['in_use'] else ''}</td></tr>"
        for m in status.models
    ) or '<tr><td colspan="8"><i>no model in memory</i></td></tr>'
    defaults = ", ".join(f"{k}=<code>{html.escape(str(v))}</code>" for k, v in sorted(status.settings.items()))
    return (
        '<div style="font:12px sans-serif"><b>chatterbox_nb</b>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f"<div>cache dir <code>{html.escape(status.cache_dir)}</code> · "
        f"utterances this kernel: {html.escape(str(status.history))}</div>"
        f"<div>voices: {html.escape(', '.join(status.voices)) or '<i>none yet</i>'}</div>"
        + "".join(f"<div>{html.escape(m['model'])} ({html.escape(m['device'])}, {m['dtype']}): "
                  f"{html.escape(m['s3gen'])}</div>" for m in status.models if m.get("s3gen"))
        + "".join(f"<div>background: {html.escape(t)}</div>" for t in status.tasks)
        + f"<div>memory: {html.escape(status.budget_line())}</div>"
        + (f"<div>unloaded: {html.escape(', '.join(f'{k} ({v})' for k, v in sorted(status.unloaded.items())))}</div>"
           if status.unloaded else "")
        + f"<div>defaults: {defaults}</div></div>"
    )
