"""Every place chatterbox_nb reaches into chatterbox-tts's own objects, in one room.

Upstream is pinned (chatterbox-tts 0.1.7); its internals are not an API. `hooks.Seam` is
the one way to patch and restore (per call, or counted for a module global); `points`
names each patch point a say goes through, `logs` the upstream log lines a say drops or
replaces. tests/test_seams.py checks the pinned version still has the shape each seam
relies on, and tests/test_architecture.py that nothing outside this room patches upstream.
No patch here outlives the say that needs it.
"""
