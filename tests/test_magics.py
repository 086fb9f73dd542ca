"""The magic in an InteractiveShell: parsing, usage errors, config, reload."""

from __future__ import annotations

import pytest

from chatterbox_nb._state import STATE

BAD_LINES = [
    ('say ""', "Nothing to say"),
    ("say", "Nothing to say"),
    ("frobnicate", "Unknown subcommand 'frobnicate'"),
    ('say "hi" --temperature warm', "invalid float value: 'warm'"),
    ('say "hi" --temperature 0', "--temperature must be above 0"),
    ('say "hi" --top-p 1.5', "--top-p must be above 0 and at most 1"),
    ('say "hi" --max-tokens 0', "--max-tokens must be between 1 and 4096"),
    ('say "hi" --seed -3', "--seed must be between 0"),
    ('say "hi" --model klingon', "invalid choice: 'klingon'"),
    ('say "hi" --lang fr', "speaks English only"),
    ('say "hi" -m multilingual --lang xx', "Unknown language 'xx'"),
    ('say "hi" --device tpu', "Unknown device 'tpu'"),
    ('say "hi" --device cuda:99 --weights dummy:reduced', "'cuda:99' is not available"),
    ('say "hi" --dtype float64', "invalid choice: 'float64'"),
    ('say "hi" --weights /no/such/folder', "does not exist"),
    ('say "hi" --weights dummy:huge', "Unknown weights 'dummy:huge'"),
    ('say "hi" --voice /no/such.wav --weights dummy:reduced', "/no/such.wav does not exist"),
    ('say "hi" --voice nobody --weights dummy:reduced', "Unknown voice 'nobody'"),
    ("voice add ok /no/such.wav", "/no/such.wav does not exist"),
    ("voice add 'two words' /no/such.wav", "not usable"),
    ("voice remove nobody", "Unknown voice 'nobody'"),
    ('say "unclosed', "No closing quotation"),
    ("say hi --no-such-option", "unrecognized arguments: --no-such-option"),
    ("load --warmup lukewarm", "invalid choice: 'lukewarm'"),
    ("unload -m english --all", "not both"),
]


def _snapshot():
    return dict(STATE.models), list(STATE.history)


@pytest.mark.parametrize("line, message", BAD_LINES)
def test_usage_error_is_one_line_and_changes_nothing(shell, english_reduced, capsys, line, message):
    before = _snapshot()
    result = shell.run_cell(f"%chatterbox {line}")
    err = capsys.readouterr()
    text = err.out + err.err
    assert result.error_in_exec is not None
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert message in str(result.error_in_exec)
    assert "Traceback" not in text
    assert len(str(result.error_in_exec).splitlines()) == 1
    assert _snapshot() == before


def test_help_lists_subcommands(shell, capsys):
    shell.run_cell("%chatterbox help")
    out = capsys.readouterr().out
    for sub in ("say", "load", "unload", "status", "history", "ui"):
        assert f"  {sub}" in out


def test_subcommand_help_prints_options(shell, capsys):
    result = shell.run_cell("%chatterbox say --help")
    assert result.error_in_exec is None
    assert "--max-tokens" in capsys.readouterr().out


def test_config_sets_defaults(shell):
    from chatterbox_nb import config

    shell.run_cell('%config Chatterbox.warmup = "off"')
    try:
        assert config.settings().warmup == "off"
    finally:
        shell.run_cell('%config Chatterbox.warmup = "light"')
    assert config.settings().warmup == "light"


def test_env_var_sets_cache_dir(cache_dir):
    from chatterbox_nb import config

    assert config.cache_dir() == cache_dir


def test_reload_ext_keeps_models_and_history(shell, english_reduced):
    before = _snapshot()
    shell.run_line_magic("reload_ext", "chatterbox_nb")
    assert _snapshot() == before
    result = shell.run_cell("%chatterbox load --weights dummy:reduced --device cpu --warmup off --wait")
    assert result.result.source == "memory"
    assert result.result.seconds < 1.0


def test_state_survives_module_reload(english_reduced):
    import importlib

    import chatterbox_nb._state as state_module

    models = dict(state_module.STATE.models)
    importlib.reload(state_module)
    assert state_module.STATE.models == models
    assert state_module.STATE is STATE


def test_say_in_shell_renders_and_returns_utterance(shell, english_reduced):
    result = shell.run_cell('u = %chatterbox say "Hello there" --weights dummy:reduced --device cpu --max-tokens 4 --seed 1')
    assert result.error_in_exec is None
    u = shell.user_ns["u"]
    assert u.sample_rate == 24000
    assert u.timings["model_source"] == "memory"
    assert u.text == "Hello there"
    assert u.params["seed"] == 1 and u.params["max_tokens"] == 4
    assert "dummy" in u.summary()
