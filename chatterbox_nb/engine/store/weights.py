"""The values `--weights` takes, spelled once: the help, the settings, the parser and the
check all read them here (no torch, no numpy: `%load_ext` imports it)."""

from __future__ import annotations

#: dummy checkpoint sizes: `-stopping` ones have a T3 that ends its utterances
DUMMY_SIZES = ("full", "reduced", "full-stopping", "reduced-stopping")

#: what `--weights` takes, in words
WEIGHTS_VALUES = "hub, dummy, dummy:reduced, dummy:reduced-stopping or a checkpoint folder"

#: the same, as a usage line
WEIGHTS_USAGE = "hub|dummy|dummy:reduced[-stopping]|FOLDER"


def weights_kind(weights: str) -> str:
    """`hub`, `dummy` or `local` (a folder)."""
    if weights == "hub" or weights.startswith("dummy"):
        return weights.partition(":")[0]
    return "local"
