"""S3Gen's estimator runner (engine/seams/estimator.py): one object in the estimator's
`forward` with a mode, put in place once and undone; and the export's branch-free chunk
mask, seen by the traced forward only, never by the decoder module the says run through.
On upstream's estimator class at a few thousandths of its size (export takes seconds)."""

from __future__ import annotations

import pytest

from chatterbox_nb.engine.generation import compiled
from chatterbox_nb.engine.seams import estimator as seam


@pytest.fixture
def tiny():
    import torch
    from types import SimpleNamespace

    from chatterbox.models.s3gen.decoder import ConditionalDecoder

    torch.manual_seed(0)
    est = ConditionalDecoder(in_channels=320, out_channels=80, causal=True, channels=[32], n_blocks=1,
                             num_mid_blocks=1, num_heads=2, attention_head_dim=16).eval()
    return SimpleNamespace(s3gen=SimpleNamespace(flow=SimpleNamespace(decoder=SimpleNamespace(estimator=est))))


def test_one_runner_with_a_mode_put_in_once_and_undone(tiny):
    import torch

    est = compiled.estimator(tiny)
    inputs = compiled.sample_inputs(tiny, 40)
    with torch.inference_mode():
        upstream = type(est).forward(est, **inputs)
        assert seam.current(est) is None and "forward" not in vars(est)  # asking adds nothing
        run = seam.runner(est)
        assert seam.runner(est) is run and est.forward is run and run.mode == "eager"
        assert torch.equal(est.forward(**inputs), upstream)  # eager: upstream's forward, bit for bit
        run.autocast = torch.bfloat16
        assert run.mode == "autocast"
        cast = est.forward(**inputs)
        assert cast.dtype == torch.float32 and not torch.equal(cast, upstream)
        assert (cast - upstream).abs().max().item() < 0.2  # bfloat16 matmuls, same function
        calls = []
        compiled.install(tiny, lambda *a, **k: calls.append(1) or run.run_eager(*a, **k), {"factor": 2.0})
        assert run.mode == "compiled" and compiled.is_installed(tiny)
        assert torch.equal(est.forward(**inputs), cast) and calls == [1]
        compiled.uninstall(tiny)
        assert run.mode == "autocast" and not compiled.is_installed(tiny)
        copy = compiled.private_copy(tiny)  # an export's copy runs the class's forward, not ours
        assert "forward" not in vars(compiled.estimator(copy))
        seam.remove(est)
        assert "forward" not in vars(est) and torch.equal(est.forward(**inputs), upstream)


def test_a_foreign_forward_is_not_wrapped_over(tiny):
    est = compiled.estimator(tiny)
    est.forward = lambda *a, **k: None
    with pytest.raises(RuntimeError, match="already replaced"):
        seam.runner(est)


def test_the_branch_free_mask_is_the_exported_forward_s_alone(tiny, monkeypatch):
    """While export traces, the decoder module's `add_optional_chunk_mask` stays upstream's
    (a say running beside the export in another thread uses it); only the traced copy of
    the forward calls the branch-free one."""
    from chatterbox.models.s3gen import decoder

    upstream = decoder.add_optional_chunk_mask
    seen = []
    real = seam.branch_free_chunk_mask

    def spy(*args, **kwargs):
        seen.append(decoder.add_optional_chunk_mask is upstream)
        return real(*args, **kwargs)

    monkeypatch.setattr(seam, "branch_free_chunk_mask", spy)
    compiled.export_estimator(compiled.private_copy(tiny))
    assert seen and all(seen)  # the export called it, the module never saw it
    assert decoder.add_optional_chunk_mask is upstream
