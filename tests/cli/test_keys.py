"""Key files: 0600, never silently overwritten, refused when others can read them."""

import stat

import pytest

from client.errors import CliError
from signing.keys import public_key_hex
from tests.cli.helpers import isolated_env, run
from zoscli.keys import generate_key, load_public_key, load_signing_key, local_public_keys


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_writes_private_0600_in_private_dir(tmp_path):
    env = isolated_env(tmp_path)
    result = run(env, "keygen")
    assert result.code == 0, result.err
    keys_dir = tmp_path / ".config/zos/keys"
    assert _mode(keys_dir) == 0o700
    assert _mode(keys_dir / "default") == 0o600
    public = (keys_dir / "default.pub").read_text().strip()
    assert len(public) == 64
    assert public in result.out
    assert "zos key register" in result.out
    _, key = load_signing_key(keys_dir, "default")
    assert public_key_hex(key) == public


def test_keygen_mode_is_0600_even_with_a_permissive_umask(tmp_path):
    import os

    old = os.umask(0)
    try:
        files, _ = generate_key(tmp_path / "keys", "laptop")
    finally:
        os.umask(old)
    assert _mode(files.private) == 0o600


def test_keygen_never_overwrites_without_force(tmp_path):
    env = isolated_env(tmp_path)
    assert run(env, "keygen", "--name", "work").code == 0
    private = tmp_path / ".config/zos/keys/work"
    before = private.read_text()
    again = run(env, "keygen", "--name", "work")
    assert again.code == 2
    assert "already exists" in again.err and "--force" in again.err
    assert private.read_text() == before
    forced = run(env, "keygen", "--name", "work", "--force")
    assert forced.code == 0
    assert private.read_text() != before
    assert _mode(private) == 0o600


def test_keygen_uses_configured_key_name(tmp_path):
    env = isolated_env(tmp_path, ZOS_KEY="fromenv")
    assert run(env, "keygen").code == 0
    assert (tmp_path / ".config/zos/keys/fromenv").exists()


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a/b", "x" * 65, ""])
def test_bad_key_names_are_refused(tmp_path, name):
    result = run(isolated_env(tmp_path), "keygen", "--name", name)
    assert result.code == 2
    assert "error:" in result.err


def test_private_key_readable_by_others_is_refused(tmp_path):
    files, _ = generate_key(tmp_path, "k")
    files.private.chmod(0o644)
    with pytest.raises(CliError, match="readable by others") as caught:
        load_signing_key(tmp_path, "k")
    assert "chmod 600" in caught.value.hint


def test_missing_key_says_how_to_make_one(tmp_path):
    with pytest.raises(CliError, match="no private key") as caught:
        load_signing_key(tmp_path, "nokey")
    assert "zos keygen --name nokey" in caught.value.hint
    with pytest.raises(CliError, match="no private key") as caught:
        load_signing_key(tmp_path, str(tmp_path / "elsewhere/key"))
    assert "check the path" in caught.value.hint


def test_corrupt_private_key_is_reported(tmp_path):
    (tmp_path / "bad").write_text("not a key\n")
    (tmp_path / "bad").chmod(0o600)
    with pytest.raises(CliError, match="not a ZOS private key"):
        load_signing_key(tmp_path, "bad")


def test_key_by_path_and_public_key_derivation(tmp_path):
    files, key = generate_key(tmp_path / "keys", "k")
    files.public.unlink()
    _, public = load_public_key(tmp_path, str(files.private))
    assert public == public_key_hex(key)


def test_local_public_keys_maps_hex_to_name(tmp_path):
    _, a = generate_key(tmp_path, "a")
    _, b = generate_key(tmp_path, "b")
    assert local_public_keys(tmp_path) == {public_key_hex(a): "a", public_key_hex(b): "b"}
