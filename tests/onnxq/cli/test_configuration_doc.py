from pathlib import Path

from onnxq.cli.main import configuration_doc

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_configuration_doc_is_generated_from_the_current_settings() -> None:
    assert DOC.read_text() == configuration_doc(), "run: onnxq config-doc > docs/configuration.md"
