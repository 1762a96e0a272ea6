"""The node identity: one seed, kept everywhere, never silently replaced (§2 step 4)."""

import stat
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from nodeagent.identity import IdentityError, NodeIdentity, load_or_create_identity, seed_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _fingerprint(path: Path) -> tuple:
    """What must not change when nothing is rewritten: content, inode, mtime, mode."""
    st = path.stat()
    return path.read_bytes(), st.st_ino, st.st_mtime_ns, st.st_mode


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, list[Path]]:
    return tmp_path / "cache", [tmp_path / "pool1", tmp_path / "pool2"]


def test_a_new_node_gets_a_seed_readable_only_by_root(tmp_path):
    identity = load_or_create_identity(tmp_path / "cache")

    seed = tmp_path / "cache" / "identity" / "seed"
    assert seed.read_bytes() == identity.seed
    assert len(identity.seed) == 32
    assert _mode(seed) == 0o400
    assert _mode(seed.parent) == 0o700
    assert [p.name for p in seed.parent.iterdir()] == ["seed"], "no temp file left behind"
    assert len(identity.public_key_hex) == 64
    int(identity.public_key_hex, 16)


def test_the_seed_is_mirrored_on_every_pool(dirs):
    data, mirrors = dirs
    identity = load_or_create_identity(data, mirrors)

    for root in (data, *mirrors):
        assert seed_path(root).read_bytes() == identity.seed
        assert _mode(seed_path(root)) == 0o400
        assert _mode(seed_path(root).parent) == 0o700


def test_a_lost_cache_is_recovered_from_a_mirror(dirs):
    data, mirrors = dirs
    first = load_or_create_identity(data, mirrors)
    seed_path(data).unlink()
    seed_path(mirrors[0]).unlink()

    again = load_or_create_identity(data, mirrors)

    assert again.public_key_hex == first.public_key_hex
    assert seed_path(data).read_bytes() == first.seed
    assert seed_path(mirrors[0]).read_bytes() == first.seed


def test_a_fresh_cache_directory_is_filled_from_a_mirror(tmp_path):
    pool = tmp_path / "pool"
    first = load_or_create_identity(tmp_path / "old-cache", [pool])

    again = load_or_create_identity(tmp_path / "new-cache", [pool])

    assert again == first
    assert seed_path(tmp_path / "new-cache").read_bytes() == first.seed


def test_a_corrupt_seed_is_an_error_and_is_left_as_it_is(dirs):
    data, mirrors = dirs
    load_or_create_identity(data, mirrors)
    primary = seed_path(data)
    primary.chmod(0o600)
    primary.write_bytes(b"\x00" * 31)
    primary.chmod(0o400)
    before = {p: _fingerprint(p) for p in (primary, *map(seed_path, mirrors))}

    with pytest.raises(IdentityError) as raised:
        load_or_create_identity(data, mirrors)

    message = str(raised.value)
    assert str(primary) in message
    assert "31 bytes" in message
    assert "delete it" in message and "Restore" in message
    assert {p: _fingerprint(p) for p in before} == before


def test_a_corrupt_mirror_is_an_error_too(dirs):
    data, mirrors = dirs
    load_or_create_identity(data, mirrors)
    bad = seed_path(mirrors[1])
    bad.chmod(0o600)
    bad.write_bytes(b"x" * 33)

    with pytest.raises(IdentityError, match=str(bad)):
        load_or_create_identity(data, mirrors)
    assert bad.read_bytes() == b"x" * 33


def test_a_directory_where_the_seed_should_be_is_unreadable_and_an_error(tmp_path):
    seed_path(tmp_path).mkdir(parents=True)

    with pytest.raises(IdentityError, match="unreadable"):
        load_or_create_identity(tmp_path)


def test_copies_that_disagree_are_an_error_listing_them(dirs):
    data, mirrors = dirs
    load_or_create_identity(data, mirrors[:1])
    other = load_or_create_identity(mirrors[1])
    before = _fingerprint(seed_path(data))

    with pytest.raises(IdentityError) as raised:
        load_or_create_identity(data, mirrors)

    message = str(raised.value)
    assert "disagree" in message
    for root in (data, *mirrors):
        assert str(seed_path(root)) in message
    assert other.public_key_hex[:16] in message
    assert other.seed.hex() not in message, "the error must not leak the private seed"
    assert _fingerprint(seed_path(data)) == before


def test_loading_twice_returns_the_same_identity_and_rewrites_nothing(dirs):
    data, mirrors = dirs
    first = load_or_create_identity(data, mirrors)
    before = {p: _fingerprint(p) for p in map(seed_path, (data, *mirrors))}

    again = load_or_create_identity(data, mirrors)

    assert again == first
    assert {p: _fingerprint(p) for p in before} == before


def test_a_mirror_naming_the_data_directory_is_one_location(tmp_path):
    identity = load_or_create_identity(tmp_path / "cache", [tmp_path / "x" / ".." / "cache"])
    assert seed_path(tmp_path / "cache").read_bytes() == identity.seed


def test_a_pool_that_cannot_be_written_does_not_stop_the_node(tmp_path, caplog):
    broken = tmp_path / "not-a-directory"
    broken.write_text("a file where a pool should be mounted")

    identity = load_or_create_identity(tmp_path / "cache", [broken])

    assert seed_path(tmp_path / "cache").read_bytes() == identity.seed
    assert f"cannot write the node identity to {seed_path(broken)}" in caplog.text


def test_an_identity_that_cannot_be_stored_anywhere_is_an_error(tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache should be")

    with pytest.raises(IdentityError, match="cannot store"):
        load_or_create_identity(blocked)


def test_a_seed_readable_by_others_is_narrowed_to_0400(tmp_path):
    identity = load_or_create_identity(tmp_path)
    seed_path(tmp_path).chmod(0o644)

    assert load_or_create_identity(tmp_path) == identity
    assert _mode(seed_path(tmp_path)) == 0o400


def test_signatures_verify_with_the_public_key(tmp_path):
    identity = load_or_create_identity(tmp_path)
    message = b"zos-ws-v1\nchallenge"

    signature = identity.sign(message)

    assert len(signature) == 64
    verify_key = VerifyKey(bytes.fromhex(identity.public_key_hex))
    assert verify_key.verify(message, signature) == message
    assert identity.signing_key.verify_key == verify_key


def test_the_seed_never_appears_in_repr():
    identity = NodeIdentity(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(identity)
    assert repr(bytes(range(32))) not in repr(identity)


def test_a_seed_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        NodeIdentity(b"short")
