"""The user's ed25519 signing keys on disk: `<config>/keys/NAME` (private) and `NAME.pub`.

The private file holds the 32-byte seed as hex, the public file the 64-hex public key the ledger
stores; both are one line so they can be inspected and copied by hand. The private file is created
0600 in a 0700 directory and never overwritten unless asked, and a private file that others can
read is refused, as ssh does, because anyone who reads it can deploy as the user.
"""

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from client.errors import CliError
from signing.keys import key_id, public_key_hex

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SEED_HEX_LEN = 64


@dataclass(frozen=True)
class KeyFiles:
    name: str
    private: Path
    public: Path


def check_name(name: str) -> str:
    """Key names are file names and ledger key names at once, so both rules apply."""
    if not NAME_PATTERN.match(name):
        raise CliError(
            f"invalid key name {name!r}",
            hint="use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def key_files(keys_dir: Path, ref: str) -> KeyFiles:
    """Resolve a key reference: a name under keys_dir, or a path to a private key file."""
    if "/" in ref or ref.startswith("~"):
        private = Path(ref).expanduser()
        return KeyFiles(private.name, private, private.with_name(private.name + ".pub"))
    check_name(ref)
    return KeyFiles(ref, keys_dir / ref, keys_dir / f"{ref}.pub")


def _write_private(path: Path, text: str, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    if force and path.exists():
        # A pre-existing file keeps its mode on O_TRUNC; start afresh so it is 0600 for sure.
        path.unlink()
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def generate_key(keys_dir: Path, name: str, *, force: bool = False) -> tuple[KeyFiles, SigningKey]:
    files = key_files(keys_dir, check_name(name))
    existing = [p for p in (files.private, files.public) if p.exists()]
    if existing and not force:
        raise CliError(
            f"key {name!r} already exists ({existing[0]})",
            hint="choose another --name, or pass --force to replace it "
            "(a replaced key must be registered again)",
        )
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    key = SigningKey.generate()
    _write_private(files.private, bytes(key).hex() + "\n", force=force)
    files.public.write_text(public_key_hex(key) + "\n", encoding="ascii")
    return files, key


def load_signing_key(keys_dir: Path, ref: str) -> tuple[KeyFiles, SigningKey]:
    files = key_files(keys_dir, ref)
    if not files.private.exists():
        if files.private.parent != keys_dir:
            hint = "check the path, or use a key name from `zos keygen` with --key / ZOS_KEY"
        else:
            hint = (
                f"run `zos keygen --name {files.name}` and `zos key register --name "
                f"{files.name}`, or pick an existing key with --key / ZOS_KEY"
            )
        raise CliError(f"no private key {files.private}", hint=hint)
    mode = stat.S_IMODE(files.private.stat().st_mode)
    if mode & 0o077:
        raise CliError(
            f"private key {files.private} is readable by others (mode {mode:04o})",
            hint=f"run `chmod 600 {files.private}`",
        )
    text = files.private.read_text(encoding="ascii", errors="replace").strip()
    try:
        if len(text) != SEED_HEX_LEN:
            raise ValueError
        return files, SigningKey(bytes.fromhex(text))
    except ValueError:
        raise CliError(
            f"{files.private} is not a ZOS private key (expected 64 hex characters)",
            hint="generate a new one with `zos keygen --name NAME`",
        ) from None


def load_public_key(keys_dir: Path, ref: str) -> tuple[KeyFiles, str]:
    """The hex public key: from NAME.pub, or derived from the private key if the .pub is gone."""
    files = key_files(keys_dir, ref)
    if files.public.exists():
        text = files.public.read_text(encoding="ascii", errors="replace").strip().lower()
        if re.fullmatch(r"[0-9a-f]{64}", text):
            return files, text
        raise CliError(
            f"{files.public} is not a ZOS public key (expected 64 hex characters)",
            hint=f"delete it; it is re-derived from {files.private}",
        )
    files, key = load_signing_key(keys_dir, ref)
    return files, public_key_hex(key)


def local_public_keys(keys_dir: Path) -> dict[str, str]:
    """hex public key → local key name, to mark which registered keys this machine holds."""
    found: dict[str, str] = {}
    if not keys_dir.is_dir():
        return found
    for pub in sorted(keys_dir.glob("*.pub")):
        text = pub.read_text(encoding="ascii", errors="replace").strip().lower()
        if re.fullmatch(r"[0-9a-f]{64}", text):
            found[text] = pub.name.removesuffix(".pub")
    return found


def describe(key: SigningKey) -> str:
    return f"{public_key_hex(key)} (key id {key_id(key.verify_key)})"
