"""Server key files: made once with mode 0400, reused, and never silently replaced."""

import stat

import pytest

from signing.key_files import KeyFileError, load_or_create_seed


def test_a_key_is_made_once_and_then_reused(tmp_path):
    path = tmp_path / "keys" / "server.key"
    first = load_or_create_seed(path, if_lost="x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert bytes(load_or_create_seed(path, if_lost="x")) == bytes(first)


def test_a_file_that_is_not_a_seed_is_an_error_not_a_new_key(tmp_path):
    path = tmp_path / "server.key"
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match=r"holds 5 bytes.*restore it from backup \(nodes pinned"):
        load_or_create_seed(path, if_lost="nodes pinned it")
    assert path.read_bytes() == b"short"
