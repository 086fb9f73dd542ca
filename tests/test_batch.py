"""`cnb.batch` and `%chatterbox batch` on the reduced dummy.

One input of 7 rows (one with no text, one with an unknown voice) is made three
ways: by the local engine in a child process that is SIGKILLed midway, by the local
engine again in this process (which must make only the missing rows), and by two
Ray actors. Every row's samples must be bit-identical across the three. A 1.2 s
reference voice keeps each row near 3 s on a 2-core CPU (S3Gen's cost follows the
reference's length).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from IPython.core.error import UsageError

import chatterbox_nb as cnb
from chatterbox_nb.batching.rows import BatchError, read_rows, row_seed
from chatterbox_nb.engine.store import dummy

from conftest import REDUCED

KW = {"weights": REDUCED, "device": "cpu", "max_tokens": 3}
ROWS = 7
CUSTOM = 5  # the row with its own id and seed
NO_TEXT, NO_VOICE = 3, 6
BAD = {f"{NO_TEXT:05d}", f"{NO_VOICE:05d}"}


@pytest.fixture(scope="module")
def voice(tmp_path_factory, english_reduced):
    """A short registered voice; a random tail makes its bytes (so its cache key) new each run."""
    path = tmp_path_factory.mktemp("voice") / "short.wav"
    wav = dummy.synthetic_voice(1.2, 24000, seed=5)
    wav[-64:] += np.random.default_rng().uniform(-1e-4, 1e-4, 64).astype(np.float32)
    sf.write(path, wav, 24000)
    name = f"batch{uuid.uuid4().hex[:8]}"
    cnb.voices.add(name, path)
    yield name
    cnb.voices.remove(name)


def _input(path: Path) -> Path:
    lines = []
    for i in range(1, ROWS + 1):
        row = {"text": f"Row number {i}."}
        if i == NO_TEXT:
            row["text"] = "  "
        if i == NO_VOICE:
            row["voice"] = "nobody-registered"
        if i == CUSTOM:
            row.update(id="custom-id", seed=42)
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def _entries(out: Path) -> dict[str, dict]:
    entries = {}
    for line in (out / "manifest.jsonl").read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        entries[entry["id"]] = entry
    return entries


def _samples(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0]


CHILD = """
import sys, chatterbox_nb as cnb
cnb.batch(sys.argv[1], sys.argv[2], voice=sys.argv[3], progress=False, weights="dummy:reduced", device="cpu", max_tokens=3)
"""


def _killed_midway(src: Path, out: Path, voice: str, after_rows: int = 2) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(src), str(out), voice], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if (out / "manifest.jsonl").exists():
                if sum(e["status"] == "ok" for e in _entries(out).values()) >= after_rows:
                    break
            time.sleep(0.2)
        assert child.poll() is None, "the child batch ended before it could be killed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def test_inputs_and_seeds(tmp_path):
    (tmp_path / "a.txt").write_text("Hello.\n\n  \nSecond line.\n")
    rows = read_rows(tmp_path / "a.txt", 7)
    assert [(r.id, r.text) for r in rows] == [("00001", "Hello."), ("00004", "Second line.")]
    assert rows[0].seed == row_seed(7, "00001") != row_seed(8, "00001")
    (tmp_path / "b.csv").write_text('Text,voice,seed,id\n"Hi, there",v1,5,first\n,,,\nOK,,x,\n')
    a, b, c = read_rows(tmp_path / "b.csv", 0)
    assert (a.id, a.text, a.voice, a.seed, a.problem) == ("first", "Hi, there", "v1", 5, None)
    assert b.problem == "row 2: no text." and "seed 'x'" in c.problem
    (tmp_path / "c.jsonl").write_text('{"text": "a", "id": "../x"}\nnot json\n{"text": "b"}\n')
    bad_id, torn, ok = read_rows(tmp_path / "c.jsonl", 0)
    assert "cannot name a file" in bad_id.problem and "not a JSON object" in torn.problem and ok.problem is None
    for source, words in [
        (tmp_path / "missing.txt", "does not exist"),
        (tmp_path / "a.wav", "reads .txt, .csv, .jsonl"),
        ([{"text": "x", "id": "d"}, {"text": "y", "id": "d"}], "appears on rows 1 and 2"),
        ([], "no rows"),
        (42, "list of texts"),
    ]:
        if isinstance(source, Path) and source.suffix == ".wav":
            source.write_bytes(b"RIFF")
        with pytest.raises(BatchError, match=words):
            read_rows(source, 0)
    with pytest.raises(BatchError, match="--engine ray for --workers"):
        cnb.batch(["x"], tmp_path / "o", workers=2)
    with pytest.raises(BatchError, match="Unknown batch engine"):
        cnb.batch(["x"], tmp_path / "o", engine="spark")
    with pytest.raises(BatchError, match="is a file"):
        cnb.batch(["x"], tmp_path / "a.txt")


def test_killed_batch_resumes_and_ray_makes_the_same_audio(tmp_path, english_reduced, voice, monkeypatch):
    src = _input(tmp_path / "rows.jsonl")
    local, ray_out = tmp_path / "local", tmp_path / "ray"

    _killed_midway(src, local, voice)
    before = {i: e for i, e in _entries(local).items() if e["status"] == "ok"}
    assert 0 < len(before) < ROWS - len(BAD)
    mtimes = {i: (local / e["wav"]).stat().st_mtime_ns for i, e in before.items()}

    report = cnb.batch(src, local, voice=voice, progress=False, **KW)
    assert report.skipped == len(before), report
    assert report.made == ROWS - len(BAD) - len(before), report  # only the missing rows were made
    assert {i for i, _ in report.failed} == BAD
    entries = _entries(local)
    assert list(entries) == [f"{i:05d}" if i != CUSTOM else "custom-id" for i in range(1, ROWS + 1)]  # compacted, input order
    for i, e in before.items():
        assert entries[i] == e and (local / e["wav"]).stat().st_mtime_ns == mtimes[i], f"row {i} was made again"
    no_text, no_voice = sorted(BAD)
    assert entries[no_text]["error"] == f"row {NO_TEXT}: no text."
    assert "Unknown voice 'nobody-registered'" in entries[no_voice]["error"] and f"{no_voice}.wav" not in os.listdir(local)
    assert entries["custom-id"]["seed"] == 42 and entries["00001"]["seed"] == row_seed(0, "00001")
    first = entries["00001"]
    assert first["voice"] == voice and len(first["voice_sha256"]) == 1
    assert first["params"]["threads"] == 1 and first["params"]["max_tokens"] == 3
    assert first["audio_s"] > 0 and {"t3_s", "s3gen_s", "row_s"} <= set(first["timings"])

    report = cnb.batch(src, ray_out, voice=voice, engine="ray", workers=2, progress=False, **KW)
    assert (report.made, len(report.failed)) == (ROWS - len(BAD), len(BAD)), report
    assert [a["source"] for a in report.actors] == ["disk-cache", "disk-cache"]
    ray_entries = _entries(ray_out)
    assert len({e["worker"] for e in ray_entries.values() if e["status"] == "ok"}) == 2
    for i, e in entries.items():
        if e["status"] == "ok":
            assert np.array_equal(_samples(local / e["wav"]), _samples(ray_out / ray_entries[i]["wav"])), f"row {i} differs"

    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("a batch with nothing to make started Ray"))
    again = cnb.batch(src, ray_out, voice=voice, engine="ray", workers=2, progress=False, **KW)
    assert (again.made, again.skipped) == (0, ROWS - len(BAD))  # Ray not even started


def test_magic(shell, tmp_path, english_reduced, voice, capsys):
    src = tmp_path / "lines.txt"
    src.write_text("First line.\nSecond line.\n")
    out = tmp_path / "out"
    report = shell.run_line_magic(
        "chatterbox", f"batch {src} --out {out} -v {voice} --weights dummy:reduced --device cpu --max-tokens 3 --seed 9"
    )
    assert (report.made, report.skipped, report.failed) == (2, 0, [])
    assert sorted(os.listdir(out)) == ["00001.wav", "00002.wav", "manifest.jsonl"]  # no lock file (#24.5)
    assert _entries(out)["00002"]["seed"] == row_seed(9, "00002")
    for line, words in [
        (f"batch {tmp_path / 'nope.csv'} --out {out}", "does not exist"),
        (f"batch {src}", "--out"),
        (f"batch {src} --out {out} --engine spark", "invalid choice"),
        (f"batch {src} --out {out} --workers 3", "--engine ray"),
        (f"batch {src} --out {out} --max-tokens 0", "--max-tokens must be between"),
    ]:
        with pytest.raises(UsageError, match=words):
            shell.run_line_magic("chatterbox", line)
    capsys.readouterr()
    shell.run_line_magic("chatterbox", "help")
    assert "batch PATH --out DIR [--engine local|ray]" in capsys.readouterr().out
