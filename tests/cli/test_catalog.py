"""`zos catalog [NAME]` against a live control plane: it prints what `GET /api/v1/catalog`
serves, which is contracts/catalog.py, and needs neither a token nor Django."""

import json
import os
import subprocess
import sys

import pytest

from contracts.catalog import CATALOG
from tests.cli.helpers import isolated_env, run
from tests.integration.conftest import ROOT
from zoscli.main import build_parser


@pytest.fixture
def env(tmp_path, live_server) -> dict[str, str]:
    return isolated_env(tmp_path, ZOS_URL=live_server.url)  # no token: the catalog is public


def test_the_list_names_every_catalog_function(env):
    listed = run(env, "catalog")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split() == ["FUNCTION", "DOES"]
    signatures = [line.split("  ")[0] for line in lines[1 : len(CATALOG) + 1]]
    assert signatures == [f.signature for f in CATALOG.values()]


def test_one_function_shows_its_fields_with_defaults_and_ranges_and_its_example(env):
    shown = run(env, "catalog", "vm_create")
    assert shown.code == 0, shown.err
    function = CATALOG["vm_create"]
    assert shown.out.startswith(f"{function.signature}  ->  {function.returns}\n")
    rows = {line.split()[0]: line.split() for line in shown.out.splitlines() if line}
    for field in function.spec_fields:
        row = rows[field.name]
        assert row[1:3] == [field.type, "yes" if field.required else "no"]
        if field.default is not None:
            assert json.dumps(field.default) in row
        if field.minimum is not None:
            assert f"{field.minimum}-{field.maximum}" in row
    for line in function.example.splitlines():
        assert f"  {line}" in shown.out


def test_json_is_the_served_entry(env):
    shown = run(env, "catalog", "herodb_create", "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == CATALOG["herodb_create"].as_dict()


def test_an_unknown_name_fails_with_the_closest_names(env):
    missing = run(env, "catalog", "vm_creat")
    assert missing.code == 1
    assert "no catalog function 'vm_creat'" in missing.err
    assert "did you mean vm_create" in missing.err


def test_the_cli_process_loads_no_django(live_server, tmp_path):
    probe = (
        "import sys\n"
        "from zoscli.main import main\n"
        f"code = main(['--url', {live_server.url!r}, 'catalog', 'sleep'])\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOS_")}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sleep(ms)  ->  ()")


def test_docs_cli_documents_every_command_including_catalog():
    subcommands = next(a for a in build_parser()._actions if a.dest == "command")
    documented = (ROOT / "docs" / "cli.md").read_text()
    assert "catalog" in subcommands.choices
    assert [c for c in subcommands.choices if f"zos {c}" not in documented] == []
