"""Running `zos` in-process with a private HOME, capturing what it prints."""

import io
from dataclasses import dataclass
from pathlib import Path

from zoscli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with nothing from the developer's own setup in it."""
    return {"HOME": str(home), **extra}


def run(env: dict[str, str], *argv: str, stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=env, stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return Result(code, out.getvalue(), err.getvalue())
