import pytest

from tests.cli.runs import run_cli

COMMANDS = ["train", "translate", "eval", "repl", "summary", "prepare", "bench", "distill"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert f"Example: sandglass {command}" in result.stdout


def test_top_level_help_lists_the_commands_and_version():
    result = run_cli("--help")
    assert result.exit_code == 0 and "Example: sandglass" in result.stdout
    for command in COMMANDS:
        assert command in result.stdout
    assert "--debug" in result.stdout
    assert run_cli().exit_code == 0  # no command: the help
    assert run_cli("--version").stdout.startswith("sandglass ")


def test_truncation_is_documented_where_sentences_are_translated():
    for command in ("translate", "eval", "repl"):
        assert "truncated to the limit" in " ".join(run_cli(command, "--help").stdout.split())


def test_train_help_names_every_user_setting():
    text = run_cli("train", "--help").stdout
    for option in [
        "--preset",
        "--arch",
        "--dataset",
        "--data",
        "--src",
        "--tgt",
        "--task",
        "--vocab-size",
        "--max-tokens",
        "--lr",
        "--warmup",
        "--max-steps",
        "--max-epochs",
        "--max-time",
        "--validate-every",
        "--seed",
        "--device",
        "--run-dir",
        "--resume",
        "--encoding-errors",
        "--config",
    ]:
        assert f" {option} " in text, option
