"""``conveyor-worker run``: what a bad target says, and the help."""

from pathlib import Path

import pytest

from worker_base import cli

MODELS = """
from worker_base import Model

class NotAModel:
    pass

class Broken(Model):
    name = "broken"
    def __init__(self):
        raise RuntimeError("no weights")
    async def process_request(self, body):
        raise NotImplementedError
    def get_request_format(self):
        raise NotImplementedError
    def get_response_format(self):
        raise NotImplementedError
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my_models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_colon", "expected package.module:ModelClass"),
        ("a:b:c", "expected package.module:ModelClass"),
        ("missing_module_xyz:Model", "cannot import module 'missing_module_xyz'"),
        ("my_models:Nope", "module 'my_models' has no attribute 'Nope'"),
        ("my_models:NotAModel", "is not a subclass of worker_base.Model"),
        ("my_models:Broken", "my_models:Broken() failed: RuntimeError: no weights"),
    ],
)
def test_a_bad_target_is_a_usage_error(
    project: Path, target: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith("conveyor-worker: error: ")
    assert says in err


def test_help_names_the_target_and_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "AMQP_URL" in out and "MODEL_NAME" in out
    with pytest.raises(SystemExit) as raised:
        cli.main(["run", "--help"])
    assert "MODULE:CLASS" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main([])
    assert raised.value.code == 2
