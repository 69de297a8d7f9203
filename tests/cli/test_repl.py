import pytest

from tests.cli.runs import make_run, run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "run", max_length=8)


def test_beam_command_sentence_and_quit(run_dir):
    result = run_cli("repl", "-c", str(run_dir), input=":beam 2\ns01 s02 s03\n:quit\nnever read\n")
    assert result.exit_code == 0, result.stderr
    assert "beam size 2" in result.stdout
    assert " ms, beam 2" in result.stdout  # the sentence was translated with the new beam size, and timed
    assert result.stdout.count(" ms, beam") == 1  # nothing after :quit was translated
    assert result.stderr == ""


def test_end_of_input_leaves_cleanly(run_dir):
    result = run_cli("repl", "-c", str(run_dir), input="s04\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(" ms, beam 1") == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_help_blank_lines_unknown_commands_and_bad_beams(run_dir):
    lines = [":help", "", "   ", ":frobnicate", ":beam zero", ":beam 0", "s01 s09" + " s05" * 20, ":q"]
    result = run_cli("repl", "-c", str(run_dir), input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    assert ":beam N" in result.stdout and "unknown command :frobnicate" in result.stdout
    assert result.stdout.count("beam size must be a positive integer") == 2
    assert "truncated to 8 tokens" in result.stdout  # an over-long sentence is cut, not a crash
    assert result.stdout.count(" ms, beam 1") == 1


def test_ctrl_c_at_the_prompt_leaves_with_status_0(run_dir, monkeypatch):
    def interrupted(self, prompt=""):
        raise KeyboardInterrupt

    monkeypatch.setattr("rich.console.Console.input", interrupted)
    result = run_cli("repl", "-c", str(run_dir))
    assert result.exit_code == 0 and "Traceback" not in result.stdout + result.stderr
