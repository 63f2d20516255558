from pathlib import Path

from onnxq.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented_with_its_description() -> None:
    text = DOC.read_text()
    for name, field in Settings.model_fields.items():
        assert f"`ONNXQ_{name.upper()}`" in text, name
        assert field.description and field.description in text, name
