"""docs/config.md is generated from the schema's help texts and kept current."""

import dataclasses
from pathlib import Path

from kerasclf.config import Config, key
from kerasclf.config.reference import config_reference, missing_help

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_every_key_has_a_help_text():
    assert missing_help() == [], "give these keys help=... in kerasclf/config/schema.py"


def test_a_key_without_help_is_found():
    @dataclasses.dataclass
    class Inner:
        documented: int = key(1, help="has one")
        bare: int = key(2)

    @dataclasses.dataclass
    class Outer:
        inner: Inner = dataclasses.field(default_factory=Inner, metadata={"help": "a section"})
        plain: str = "x"

    assert missing_help(Outer) == ["inner.bare", "plain"]


def test_docs_config_md_is_current():
    assert DOC.is_file() and DOC.read_text() == config_reference(), (
        "docs/config.md is out of date: run `kerasclf config-reference > docs/config.md`"
    )


def test_every_key_appears_in_the_reference_with_its_help():
    text = config_reference()

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type):
                yield from walk(f.type, f"{prefix}{f.name}.")
            elif f.name not in ("kwargs", "options"):
                yield f"{prefix}{f.name}", f.metadata["help"]

    for name, help_text in walk(Config, ""):
        assert f"| `{name}` |" in text and help_text.replace("|", "\\|") in text, name
