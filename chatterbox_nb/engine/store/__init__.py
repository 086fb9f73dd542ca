"""The on-disk store: the cache dir's layout, weight sources (hub, local, dummy), checkpoint
files and the modules built from them, checksummed entries, voice conditionals files, locks.

It knows files and the modules they make, nothing of generation."""
