"""S3Gen's CFM estimator, run one way: one runner object with a mode.

Upstream's `solve_euler` calls `estimator.forward(...)` itself (not `estimator(...)`), so
what runs is the instance's `forward` attribute. `runner(est)` puts one `EstimatorRunner`
there, once, and keeps the class's forward as `_old_forward`, as accelerate's
`add_hook_to_module` does; `remove(est)` puts the module back as upstream made it. The
runner's mode says which path runs:

- `eager`: upstream's forward as it is (float32: bit-identical to upstream);
- `autocast`: that forward under CPU autocast (matmuls and convolutions in bfloat16, the
  weights and the result in float32);
- `compiled`: a packaged forward (engine/generation/compiled.py) for the inputs it
  covers, the path it replaced (`run_eager`) for the others.

Export needs the decoder's chunk mask without its `.item()` branch: `exportable_forward`
gives a copy of the class's forward that sees a branch-free mask, so nothing process-wide
changes while an export traces in a background thread and says run beside it.
"""

from __future__ import annotations

import types
from typing import Any, Callable

__all__ = ["EstimatorRunner", "branch_free_chunk_mask", "current", "exportable_forward", "remove", "runner"]


class EstimatorRunner:
    """What `estimator.forward` is while chatterbox_nb holds the model."""

    def __init__(self, module: Any) -> None:
        self.module = module
        #: the class's forward, unbound (a bound one would tie copies of the module to this one)
        self._old_forward = type(module).forward
        #: the dtype of the CPU autocast the eager path runs under, None for none
        self.autocast: Any = None
        #: the packaged forward, None while the eager path runs
        self.compiled: Callable[..., Any] | None = None
        #: the package timed against the eager path (what payoff.measure returns), None if not timed
        self.verdict: dict[str, Any] | None = None
        #: whether the timings said once what a full warm-up would buy (compiled.warmup_hint)
        self.hinted = False

    @property
    def mode(self) -> str:
        if self.compiled is not None:
            return "compiled"
        return "autocast" if self.autocast is not None else "eager"

    def run_eager(self, *args: Any, **kwargs: Any) -> Any:
        """The path without the package: upstream's forward, under autocast if set."""
        if self.autocast is None:
            return self._old_forward(self.module, *args, **kwargs)
        import torch

        with torch.autocast(device_type="cpu", dtype=self.autocast):
            return self._old_forward(self.module, *args, **kwargs).float()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        compiled = self.compiled
        if compiled is not None:
            return compiled(*args, **kwargs)
        return self.run_eager(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        """A copy of the module (an export's private copy) runs the class's forward."""
        return None


def current(module: Any) -> EstimatorRunner | None:
    """The module's runner, None while upstream's forward runs untouched (asking adds none)."""
    found = vars(module).get("forward")
    return found if isinstance(found, EstimatorRunner) else None


def runner(module: Any) -> EstimatorRunner:
    """The module's runner, put in place on first use."""
    current = vars(module).get("forward")
    if isinstance(current, EstimatorRunner):
        return current
    if current is not None:
        raise RuntimeError(f"the estimator's forward is already replaced by {current!r}")
    made = EstimatorRunner(module)
    module.forward = made
    return made


def remove(module: Any) -> None:
    """Upstream's forward again (the class's), whatever mode ran; also on a copy made while
    the runner was in place (which holds None there, see `__deepcopy__`)."""
    if "forward" in vars(module) and (vars(module)["forward"] is None or isinstance(vars(module)["forward"], EstimatorRunner)):
        del module.forward


def branch_free_chunk_mask(xs: Any, masks: Any, use_dynamic_chunk: bool, use_dynamic_left_chunk: bool,
                           decoding_chunk_size: int, static_chunk_size: int, num_decoding_left_chunks: int,
                           enable_full_context: bool = True) -> Any:
    """Upstream's `add_optional_chunk_mask` as the estimator calls it (no chunking): an
    all-masked row becomes all True, without asking `.item()` whether there is one."""
    if use_dynamic_chunk or static_chunk_size > 0:
        raise NotImplementedError("chunked attention masks are not exported")
    return masks | (masks.sum(dim=-1, keepdim=True) == 0)


def exportable_forward(module: Any) -> Callable[..., Any]:
    """The class's forward (unbound) as a new function whose module globals see the
    branch-free chunk mask: the swap is this function's alone, not the decoder module's."""
    forward = type(module).forward
    scope = {**forward.__globals__, "add_optional_chunk_mask": branch_free_chunk_mask}
    copy = types.FunctionType(forward.__code__, scope, forward.__name__, forward.__defaults__, forward.__closure__)
    copy.__kwdefaults__ = forward.__kwdefaults__
    return copy
