"""Per-stage random generators, so an overlapped say stays reproducible.

Upstream draws T3's tokens (`torch.multinomial`) and S3Gen's noise (`torch.randn_like`,
`torch.randn`) from torch's one process-wide generator. When S3Gen renders chunk i on
its own thread while T3 samples chunk i+1, the two would take turns on that generator in
whatever order the scheduler picks, and a seed would reproduce nothing. So each stage of
an overlapped chunk draws from its own `torch.Generator`, seeded from the chunk's seed
and bound to the thread running that stage (a context variable): T3's through the
t3-torch seam (streaming.SamplingTorch), S3Gen's through the noise seams
(seams/points.NOISE_SEAMS: `NoiseTorch` for its modules' `torch`, `StageUniform` for
HiFiGAN's `Uniform`, whose sine phases `torch.distributions` draws on its own). A thread
with no generator bound draws from torch's own, as upstream does (a sequential say keeps
upstream's numbers).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import types
from typing import Any, Iterator

from ..seams import points

__all__ = ["StageRng", "NoiseTorch", "drawing", "generator_for", "s3gen_noise", "stage_seeds", "stage_uniform"]

#: added to a chunk's seed for S3Gen's generator, so the two stages never share a stream
S3GEN_OFFSET = 0x5EED_5EED


class StageRng:
    """One stage's generator, made on first use on the device of the first draw (a CUDA
    draw needs a CUDA generator), each seeded with `seed`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._by_device: dict[str, Any] = {}

    def on(self, device: Any) -> Any:
        import torch

        key = str(torch.device(device))
        if key not in self._by_device:
            self._by_device[key] = torch.Generator(device=key).manual_seed(self.seed)
        return self._by_device[key]


def stage_seeds(seed: int) -> tuple[StageRng, StageRng]:
    """T3's and S3Gen's generators for a chunk seeded `seed`."""
    return StageRng(seed), StageRng((seed + S3GEN_OFFSET) % 2**63)


_RNG: contextvars.ContextVar[StageRng | None] = contextvars.ContextVar("chatterbox_nb_stage_rng", default=None)


@contextlib.contextmanager
def drawing(rng: StageRng | None) -> Iterator[None]:
    """Within this block (in this thread), the seamed random calls draw from `rng`."""
    token = _RNG.set(rng)
    try:
        yield
    finally:
        _RNG.reset(token)


def generator_for(device: Any) -> Any:
    """The generator bound to this thread for a draw on `device`; None: torch's own."""
    rng = _RNG.get()
    return None if rng is None else rng.on(device)


def _device(kwargs: dict, default: Any = "cpu") -> Any:
    return kwargs.get("device") if kwargs.get("device") is not None else default


class NoiseTorch(types.ModuleType):
    """`torch`, as S3Gen's modules see it while an overlapped say runs: every attribute is
    torch's own; its random draws take the generator bound to this thread, if any."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        import torch

        return getattr(torch, name)

    @staticmethod
    def randn_like(like: Any, **kwargs: Any) -> Any:
        import torch

        generator = generator_for(_device(kwargs, like.device))
        if generator is None:
            return torch.randn_like(like, **kwargs)
        dtype = kwargs.get("dtype") or like.dtype
        return torch.randn(like.shape, generator=generator, dtype=dtype, device=_device(kwargs, like.device))

    @staticmethod
    def randn(*size: Any, **kwargs: Any) -> Any:
        import torch

        generator = generator_for(_device(kwargs))
        if generator is not None:
            kwargs.setdefault("generator", generator)
        return torch.randn(*size, **kwargs)


_NOISE_TORCH = NoiseTorch()


@functools.cache
def stage_uniform() -> type:
    """`Uniform`, as HiFiGAN sees it while an overlapped say runs (one class, made once:
    torch is imported late). Without it the worker's sine phases came from torch's own
    generator while T3 sampled from it in the other thread: the tokens changed with the timing."""
    import torch

    class StageUniform(torch.distributions.Uniform):
        def rsample(self, sample_shape: Any = torch.Size()) -> Any:
            generator = generator_for(self.low.device)
            if generator is None:
                return super().rsample(sample_shape)
            shape = self._extended_shape(sample_shape)
            rand = torch.rand(shape, generator=generator, dtype=self.low.dtype, device=self.low.device)
            return self.low + rand * (self.high - self.low)

    return StageUniform


@contextlib.contextmanager
def s3gen_noise() -> Iterator[None]:
    """Within this block (and while any other thread is in one), S3Gen's random draws go
    through `NoiseTorch` and `StageUniform`; afterwards its modules have their own back."""
    with contextlib.ExitStack() as stack:
        for seam in points.NOISE_SEAMS:
            stack.enter_context(seam.swapped(stage_uniform() if seam is points.HIFIGAN_UNIFORM else _NOISE_TORCH))
        yield
