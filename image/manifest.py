"""build/manifest.json: what went into an image and the sha256 of every file it produced.

The ledger stores it with the BootImage and serves the hashes; operators compare them with what
they downloaded.
"""

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def file_digest(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


def write_manifest(out: Path, info: dict, files: list[str]) -> dict:
    manifest = {**info, "files": {name: file_digest(out / name) for name in files}}
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(out / MANIFEST)
    return manifest


def read_manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())
