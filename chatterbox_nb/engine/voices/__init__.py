"""Reference voices: reading and checking audio, and the conditionals computed from it,
cached in memory and on disk by the audio's content."""
