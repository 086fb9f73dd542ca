"""notebooks/quickstart.ipynb runs top to bottom on dummy weights (nbclient)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import soundfile as sf
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_runs_on_dummy_weights(tmp_path, monkeypatch):
    # the reduced dummy: the notebook's every step runs as on full size (whose files
    # tests/test_fullsize.py loads), in a third of the time
    monkeypatch.setenv("CHATTERBOX_NB_WEIGHTS", "dummy:reduced")
    monkeypatch.setenv("CHATTERBOX_NB_DEVICE", "cpu")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    wav = tmp_path / "quickstart_output" / "hello.wav"
    audio, sr = sf.read(wav)
    assert sr == 24000 and 0 < len(audio) <= 20 * 960
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    players = [o for o in outputs if "<audio" in o.get("data", {}).get("text/html", "")]
    assert len(players) == 2  # the saved copies of the magic's utterance and the API's
    assert all("dummy weights" in o["data"]["text/html"] for o in players)
    # `load --wait`: its live progress line, turned into the report in place: one output, not two
    (load_cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%chatterbox load")]
    (shown,) = [o for o in load_cell.outputs if o.output_type in ("display_data", "execute_result")]
    assert shown["data"]["text/plain"].startswith("english")
    assert widgets, "no widget at all: the players and progress lines did not render"
    texts = "".join(o.get("text", "") for o in outputs)
    assert f"Wrote {wav}" in texts
