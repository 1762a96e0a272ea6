"""The catalog table itself: its examples pass the script check, its entries are consistent, and
docs/workloads.md carries exactly what it says."""

import json
import re
from pathlib import Path

import pytest

from contracts import catalog
from contracts.catalog import CATALOG, DOCS_BEGIN, DOCS_END
from contracts.scripts import ScriptRejected, check_script

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS_DOC = ROOT / "docs" / "workloads.md"
TYPES = {"string": str, "int": int, "bool": bool, "map": dict, "array<string>": list}


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_example_compiles_passes_the_script_check_and_calls_its_function(name):
    assert name in check_script(CATALOG[name].example)


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_entry_is_complete_and_its_defaults_fit_their_own_type_and_range(name):
    function = CATALOG[name]
    assert function.doc and function.returns and function.example
    for param in function.params:
        assert (param.type == "map") == bool(param.fields), f"{name}: a map lists its fields"
    for arg in (*function.params, *function.spec_fields):
        assert arg.doc, f"{name}: {arg.name} has no doc"
        assert (arg.minimum is None) == (arg.maximum is None)
        if arg.required:
            assert arg.default is None, f"{name}: required {arg.name} has a default"
        if arg.default is not None:
            assert type(arg.default) is TYPES[arg.type]
            if arg.minimum is not None:
                assert arg.minimum <= arg.default <= arg.maximum
            if arg.choices:
                assert arg.default in arg.choices


def test_the_docs_section_is_what_the_catalog_generates():
    document = WORKLOADS_DOC.read_text()
    assert catalog.replace_section(document) == document, (
        "docs/workloads.md is out of date: python -m contracts.catalog --write docs/workloads.md"
    )


def test_the_docs_name_every_function_and_each_field_with_its_default_and_range():
    document = WORKLOADS_DOC.read_text()
    section = document[document.index(DOCS_BEGIN) : document.index(DOCS_END)]
    for function in CATALOG.values():
        assert f"`{function.signature}`" in section
        table = section[section.find(f"`{function.name}`'s") :].splitlines()
        for field in function.spec_fields:
            row = next(line for line in table if line.startswith(f"| `{field.name}` |"))
            if field.default is not None:
                assert f"`{json.dumps(field.default)}`" in row, row
            if field.minimum is not None:
                assert f"{field.minimum}-{field.maximum}" in row, row


def test_the_docs_hand_written_parts_quote_no_defaults_of_their_own():
    """Numbers for defaults live in the generated section only, so they cannot drift."""
    document = WORKLOADS_DOC.read_text()
    outside = document[: document.index(DOCS_BEGIN)] + document[document.index(DOCS_END) :]
    assert not re.search(r"defaults? to \d", outside)


def test_the_command_line_prints_the_served_json_and_the_markdown(capsys):
    assert catalog.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == catalog.as_json()
    assert catalog.main(["--markdown"]) == 0
    assert capsys.readouterr().out == catalog.markdown()


def test_write_regenerates_only_the_section_between_the_markers(tmp_path):
    stale = tmp_path / "doc.md"
    stale.write_text(f"before\n{DOCS_BEGIN}\nold table\n{DOCS_END}\nafter\n")
    assert catalog.main(["--write", str(stale)]) == 0
    text = stale.read_text()
    assert text.startswith(f"before\n{DOCS_BEGIN}\n") and text.endswith(f"{DOCS_END}\nafter\n")
    assert "old table" not in text and "`vm_create(spec)`" in text


EXAMPLES = sorted((ROOT / "examples").glob("*.rhai"))


def test_the_examples_the_editor_offers_are_there():
    assert {path.stem for path in EXAMPLES} >= {"hello", "vm", "herodb", "volume"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_passes_the_coordinators_script_check(path):
    called = check_script(path.read_text(encoding="utf-8"))
    if path.stem in ("vm", "herodb", "volume"):
        assert any(name.startswith(f"{path.stem}_") for name in called), called


def test_test_functions_are_refused_unless_the_process_is_a_test_grid(monkeypatch):
    """test_mark exists only where ZOS_TEST_FUNCTIONS=1 (never in production): elsewhere a
    script calling it is refused like any unknown name, and the catalog never lists it."""
    script = catalog.TEST_FUNCTIONS["test_mark"].example
    monkeypatch.delenv(catalog.TEST_FUNCTIONS_ENV, raising=False)
    with pytest.raises(ScriptRejected) as refused:
        check_script(script)
    assert refused.value.functions == ["test_mark"]
    monkeypatch.setenv(catalog.TEST_FUNCTIONS_ENV, "1")
    assert check_script(script) == ["test_mark"]
    served = {f["name"] for f in catalog.as_json()["functions"]}
    assert served == CATALOG.keys() and "test_mark" not in catalog.markdown()
