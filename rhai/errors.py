"""The engine's one exception type.

Every failure a script can cause -- at compile time or at run time -- surfaces as `RhaiError`, so
a host only ever needs one `except`. `kind` uses Rhai's own variant names (`ErrorParsing`,
`ErrorArithmetic`, ...) so script authors can look them up in the Rhai book.
"""

from __future__ import annotations

from typing import Any

#: Errors a script's `try ... catch` may intercept; everything else (limits, parse errors) is final.
CATCHABLE_KINDS = frozenset(
    {
        "ErrorRuntime",
        "ErrorArithmetic",
        "ErrorVariableNotFound",
        "ErrorFunctionNotFound",
        "ErrorPropertyNotFound",
        "ErrorIndexNotFound",
        "ErrorModuleNotFound",
        "ErrorInFunctionCall",
        "ErrorInModule",
        "ErrorUnboundThis",
        "ErrorMismatchDataType",
        "ErrorMismatchOutputType",
        "ErrorIndexingType",
        "ErrorArrayBounds",
        "ErrorStringBounds",
        "ErrorBitFieldBounds",
        "ErrorFor",
        "ErrorDataRace",
        "ErrorNonPureMethodCallOnConstant",
        "ErrorAssignmentToConstant",
        "ErrorDotExpr",
        "ErrorCustomSyntax",
        "ErrorSystem",
    }
)

#: Resource-limit errors: never caught by scripts and never wrapped in ErrorInFunctionCall.
SYSTEM_KINDS = frozenset(
    {
        "ErrorTooManyOperations",
        "ErrorStackOverflow",
        "ErrorDataTooLarge",
        "ErrorTooManyVariables",
        "ErrorTooManyModules",
        "ErrorTerminated",
    }
)


#: Longest text of an inner error repeated in the message of the error that wraps it. Each
#: wrapping level repeats its inner message, so unbounded, `let s = "eval(s)"; eval(s)` built
#: messages quadratic in the nesting depth (gigabytes from a 30-byte script).
MAX_NESTED_MESSAGE = 600


def wrapped_message(function: str, inner: RhaiError) -> str:
    """`Error in call to function 'f': <inner>`, with a long inner text shortened to its start
    and the innermost error (its position first), so the message stays small at any depth."""
    text = str(inner)
    if len(text) > MAX_NESTED_MESSAGE:
        half = MAX_NESTED_MESSAGE // 2
        root = str(inner.root())
        if len(root) > half:
            root = root[: half - 3] + "..."
        text = text[: MAX_NESTED_MESSAGE - len(root) - 5] + " ... " + root
    return f"Error in call to function '{function}': {text}"


class RhaiError(Exception):
    """A script failed to compile or to run.

    - `kind`: Rhai's variant name, e.g. `"ErrorParsing"`, `"ErrorArithmetic"`.
    - `parse_kind`: for `ErrorParsing`, Rhai's `ParseErrorType` name (`"MissingToken"`,
      `"BadInput"`, ...); `lex_kind` refines `BadInput` (`"MalformedNumber"`, ...).
    - `line`, `column`: 1-based position in the script, or None when there is none.
    - `message`: the description without the position; `str(err)` prefixes the position.
    - `value`: the thrown value for `ErrorRuntime`.
    - `inner`: the wrapped error for `ErrorInFunctionCall` / `ErrorInModule`.
    - `details`: variant-specific fields (`function`, `variable`, `index`, `length`, ...).
    """

    def __init__(
        self,
        kind: str,
        message: str,
        line: int | None = None,
        column: int | None = None,
        *,
        parse_kind: str | None = None,
        lex_kind: str | None = None,
        value: Any = None,
        inner: RhaiError | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
        self.parse_kind = parse_kind
        self.lex_kind = lex_kind
        self.value = value
        self.inner = inner
        self.details = details

    @property
    def catchable(self) -> bool:
        return self.kind in CATCHABLE_KINDS

    @property
    def position(self) -> tuple[int, int] | None:
        if self.line is None:
            return None
        return (self.line, self.column or 0)

    def at(self, line: int, column: int) -> RhaiError:
        """Attach a position if the error has none yet (natives raise without knowing one)."""
        if self.line is None:
            self.line, self.column = line, column
        return self

    def root(self) -> RhaiError:
        """The innermost error under any ErrorInFunctionCall wrapping."""
        err = self
        while err.inner is not None:
            err = err.inner
        return err

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"line {self.line}, column {self.column}: {self.message}"

    def __repr__(self) -> str:
        return f"RhaiError({self.kind!r}, {str(self)!r})"
