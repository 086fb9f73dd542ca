"""The engine: everything that touches torch and chatterbox-tts, below the API.

Rooms, lowest first; a room imports only the rooms below it (tests/test_architecture.py):
`specs` and `request` (what a model is, what a say asks), `seams` (the patches of
chatterbox-tts's objects), `store` (files on disk and the modules built from them),
`models` (models held in memory), `generation` (a say's pieces), `voices` (reference audio
and its conditionals).
"""
