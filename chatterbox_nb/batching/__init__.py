"""Batching: many utterances into WAV files plus a manifest (`cnb.batch`).

`run` checks the options and drives a batch, `rows` reads its input and keeps the
manifest, `job` makes one row (the same on both engines), `ray` runs rows on Ray actors.
The public function is `chatterbox_nb.batch` (from `run`); no submodule here is named
like a lazily exported name of the package, so none can shadow it.
"""
