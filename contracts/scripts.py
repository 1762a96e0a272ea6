"""Checking a deployment script before anything runs it: it compiles, and calls only the catalog.

The coordinator runs this on submission and the node's supervisor again on dispatch, so a node
never queues a script it has not checked itself.
"""

from dataclasses import dataclass, field

from contracts.catalog import callable_functions, unknown_functions
from rhai import Engine, RhaiError

MAX_SCRIPT_BYTES = 64 * 1024


@dataclass
class ScriptRejected(Exception):
    code: str
    message: str
    line: int | None = None
    column: int | None = None
    functions: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        body: dict = {"error": self.code, "message": self.message}
        if self.line is not None:
            body.update(line=self.line, column=self.column)
        if self.functions:
            body["functions"] = self.functions
        return body


def check_script(source: str) -> list[str]:
    """Return the catalog functions the script calls, or raise ScriptRejected saying why not."""
    if len(source.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise ScriptRejected("script_too_large", f"scripts are limited to {MAX_SCRIPT_BYTES} bytes")
    try:
        ast = Engine().compile(source)
    except RhaiError as exc:
        raise ScriptRejected("script_parse", str(exc), line=exc.line, column=exc.column) from exc
    unknown = unknown_functions(ast.functions_called)
    if unknown:
        raise ScriptRejected(
            "unknown_function",
            f"the script calls {', '.join(unknown)}, which no node provides "
            "(see `zos catalog`, GET /api/v1/catalog or docs/workloads.md)",
            functions=unknown,
        )
    return sorted(ast.names_called & callable_functions().keys())
