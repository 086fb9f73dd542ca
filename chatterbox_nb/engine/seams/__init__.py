"""Every place chatterbox_nb reaches into chatterbox-tts's own objects, in one room.

Upstream is pinned (chatterbox-tts 0.1.7); its internals are not an API. Each seam here
names the upstream object it touches, and tests/test_seams.py checks the pinned version still
has the shape the seam relies on."""
