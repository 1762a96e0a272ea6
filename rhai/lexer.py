"""Rhai tokenizer: source text to a list of positioned tokens.

Backtick strings with `${...}` are lexed recursively: the token carries its literal parts and,
for each interpolation, the token list of the embedded block, so the parser never re-reads text.
"""

from __future__ import annotations

from typing import Any

from .errors import RhaiError
from .values import INT_MAX, Char

KEYWORDS = frozenset(
    [
        "true",
        "false",
        "let",
        "const",
        "if",
        "else",
        "switch",
        "do",
        "while",
        "until",
        "loop",
        "for",
        "in",
        "continue",
        "break",
        "return",
        "throw",
        "try",
        "catch",
        "import",
        "export",
        "as",
        "global",
        "private",
        "fn",
        "this",
    ]
)

RESERVED = frozenset(
    [
        "var",
        "static",
        "is",
        "goto",
        "match",
        "case",
        "public",
        "protected",
        "new",
        "use",
        "with",
        "module",
        "package",
        "super",
        "spawn",
        "thread",
        "go",
        "sync",
        "async",
        "await",
        "yield",
        "default",
        "void",
        "null",
        "nil",
        "shared",
    ]
)

# Longest first so that greedy matching picks `..=` over `..` over `.`.
SYMBOLS = sorted(
    [
        "+",
        "-",
        "*",
        "/",
        "%",
        "**",
        "<<",
        ">>",
        "&",
        "|",
        "^",
        "!",
        "&&",
        "||",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "=",
        "+=",
        "-=",
        "*=",
        "/=",
        "%=",
        "**=",
        "<<=",
        ">>=",
        "&=",
        "|=",
        "^=",
        "..",
        "..=",
        "??",
        "?.",
        "?[",
        "=>",
        "::",
        "#",
        "#{",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ";",
        ":",
        ".",
        "++",
        "--",
        "@",
        "$",
        "~",
        "?",
    ],
    key=len,
    reverse=True,
)
_SYMBOL_CHARS = frozenset("".join(SYMBOLS))
# the symbols by their first character, longest first (the lexer takes the longest match)
_SYMBOLS_AT = {c: [s for s in SYMBOLS if s[0] == c] for c in {s[0] for s in SYMBOLS}}


def _is_digit(ch: str) -> bool:
    return len(ch) == 1 and "0" <= ch <= "9"


class Token:
    """One token: `kind` is int/float/str/char/istr/ident/kw/sym/eof; `value` its payload."""

    __slots__ = ("col", "kind", "line", "value")

    def __init__(self, kind: str, value: Any, line: int, col: int) -> None:
        self.kind = kind
        self.value = value
        self.line = line
        self.col = col

    def is_sym(self, s: str) -> bool:
        return self.kind == "sym" and self.value == s

    def is_kw(self, s: str) -> bool:
        return self.kind == "kw" and self.value == s

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.value!r}, {self.line}:{self.col})"


def lex_error(lex_kind: str, message: str, line: int, col: int) -> RhaiError:
    return RhaiError("ErrorParsing", message, line, col, parse_kind="BadInput", lex_kind=lex_kind)


class Lexer:
    """Scans a source string; `tokens()` gives the whole list, ending with an `eof` token."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.line = 1
        self.col = 1

    # ---- character helpers ----
    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    def advance(self) -> str:
        ch = self.src[self.i]
        self.i += 1
        if ch == "\n":
            self.line += 1
            self.col = 1
        else:
            self.col += 1
        return ch

    def tokens(self) -> list[Token]:
        out = self.scan(stop_at_brace=False)
        out.append(Token("eof", None, self.line, self.col))
        return out

    def scan(self, stop_at_brace: bool) -> list[Token]:
        """Tokens up to the end, or (inside `${...}`) up to the unmatched closing brace."""
        out: list[Token] = []
        depth = 0
        while True:
            self.skip_space()
            if self.i >= len(self.src):
                if stop_at_brace:
                    raise lex_error(
                        "UnterminatedString", "Open string is not terminated", self.line, self.col
                    )
                return out
            ch = self.peek()
            if stop_at_brace:
                if ch == "}" and depth == 0:
                    self.advance()
                    return out
                if ch in "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
            out.append(self.next_token())
            if stop_at_brace and out[-1].kind == "sym" and out[-1].value == "#{":
                depth += 1

    def skip_space(self) -> None:
        src = self.src
        while self.i < len(src):
            ch = src[self.i]
            if ch in " \t\r\n\f\v" or ch == "\ufeff":
                self.advance()
            elif ch == "/" and self.peek(1) == "/":
                while self.i < len(src) and src[self.i] != "\n":
                    self.advance()
            elif ch == "/" and self.peek(1) == "*":
                line, col = self.line, self.col
                self.advance()
                self.advance()
                level = 1
                while level:
                    if self.i >= len(src):
                        raise lex_error(
                            "UnterminatedString", "Comment is not terminated", line, col
                        )
                    if src.startswith("/*", self.i):
                        level += 1
                        self.advance()
                    elif src.startswith("*/", self.i):
                        level -= 1
                        self.advance()
                    self.advance()
            else:
                return

    def next_token(self) -> Token:
        line, col = self.line, self.col
        ch = self.peek()
        if _is_digit(ch):
            return self.number(line, col)
        if ch.isascii() and (ch.isalpha() or ch == "_"):
            return self.identifier(line, col)
        if ch == '"':
            self.advance()
            return Token("str", self.quoted('"', line, col), line, col)
        if ch == "'":
            return self.char_literal(line, col)
        if ch == "`":
            return self.backtick(line, col)
        if ch == "#" and self.raw_string_start():
            return self.raw_string(line, col)
        if ch == "#" and self.peek(1) != "{":
            raise RhaiError(
                "ErrorParsing",
                "Unknown operator: '#'",
                line,
                col,
                parse_kind="UnknownOperator",
            )
        for sym in _SYMBOLS_AT.get(ch, ()):
            if self.src.startswith(sym, self.i):
                for _ in sym:
                    self.advance()
                if sym in ("++", "--"):
                    raise RhaiError(
                        "ErrorParsing",
                        f"'{sym}' is not a valid symbol. This is not C or JavaScript! "
                        f"Should it be '{sym[0]}= 1'?",
                        line,
                        col,
                        parse_kind="BadInput",
                        lex_kind="ImproperSymbol",
                    )
                if sym in ("@", "$", "~", "?"):
                    raise lex_error("UnexpectedInput", f"Unexpected '{sym}'", line, col)
                return Token("sym", sym, line, col)
        raise lex_error("UnexpectedInput", f"Unexpected '{ch}'", line, col)

    # ---- identifiers ----
    def identifier(self, line: int, col: int) -> Token:
        start = self.i
        while self.i < len(self.src) and (
            self.src[self.i].isascii() and (self.src[self.i].isalnum() or self.src[self.i] == "_")
        ):
            self.advance()
        word = self.src[start : self.i]
        if word in KEYWORDS:
            return Token("kw", word, line, col)
        if word in RESERVED:
            return Token("reserved", word, line, col)
        if word == "_":
            return Token("sym", "_", line, col)
        stripped = word.lstrip("_")
        if not stripped or not stripped[0].isalpha():
            raise lex_error("MalformedIdentifier", f"Invalid identifier: '{word}'", line, col)
        return Token("ident", word, line, col)

    # ---- numbers ----
    def number(self, line: int, col: int) -> Token:
        src = self.src
        start = self.i
        if src[self.i] == "0" and self.peek(1) in ("x", "X", "o", "O", "b", "B"):
            radix = {"x": 16, "o": 8, "b": 2}[self.peek(1).lower()]
            self.advance()
            self.advance()
            digits_start = self.i
            while self.i < len(src) and (src[self.i].isalnum() or src[self.i] == "_"):
                self.advance()
            text = src[digits_start : self.i].replace("_", "")
            if self.peek() == "." and self.peek(1).isalnum():
                self.advance()
                while self.i < len(src) and (src[self.i].isalnum() or src[self.i] == "_"):
                    self.advance()
                text = "!"
            try:
                if not text or src[digits_start] == "_":
                    raise ValueError(text)
                value = int(text, radix)
            except ValueError:
                raise lex_error(
                    "MalformedNumber", f"Invalid number: '{src[start : self.i]}'", line, col
                ) from None
            if value >= 2**64:
                raise lex_error(
                    "MalformedNumber", f"Invalid number: '{src[start : self.i]}'", line, col
                )
            if value > INT_MAX:
                value -= 2**64
            return Token("int", value, line, col)
        self.digits()
        is_float = False
        if self.peek() == "." and _is_digit(self.peek(1)):
            is_float = True
            self.advance()
            self.digits()
        elif self.peek() == "." and not (
            self.peek(1) == "." or self.peek(1) == "_" or self.peek(1).isalpha()
        ):
            is_float = True
            self.advance()
        if self.peek() in ("e", "E") and (
            _is_digit(self.peek(1)) or (self.peek(1) in "+-" and _is_digit(self.peek(2)))
        ):
            is_float = True
            self.advance()
            if self.peek() in "+-":
                self.advance()
            self.digits()
        # a number running straight into letters or `_` is malformed (`3abc`, `123._4`)
        if self.i < len(src) and (src[self.i].isalnum() or src[self.i] == "_"):
            while self.i < len(src) and (src[self.i].isalnum() or src[self.i] in "_."):
                self.advance()
            raise lex_error(
                "MalformedNumber", f"Invalid number: '{src[start : self.i]}'", line, col
            )
        text = src[start : self.i].replace("_", "")
        if is_float:
            return Token("float", float(text), line, col)
        return Token("int", int(text), line, col)

    def digits(self) -> None:
        src = self.src
        while self.i < len(src) and (_is_digit(src[self.i]) or src[self.i] == "_"):
            self.advance()

    # ---- chars and strings ----
    def escape(self, line: int, col: int) -> str:
        """After a backslash: the escaped character."""
        ch = self.advance() if self.i < len(self.src) else ""
        simple = {"\\": "\\", "t": "\t", "r": "\r", "n": "\n", "'": "'", '"': '"', "0": "\0"}
        if ch in simple and ch:
            return simple[ch]
        width = {"x": 2, "u": 4, "U": 8}.get(ch)
        if width is None:
            raise lex_error(
                "MalformedEscapeSequence", f"Invalid escape sequence: '\\{ch}'", line, col
            )
        hexits = self.src[self.i : self.i + width]
        if len(hexits) != width or any(c not in "0123456789abcdefABCDEF" for c in hexits):
            raise lex_error(
                "MalformedEscapeSequence",
                f"Invalid escape sequence: '\\{ch}{hexits}'",
                line,
                col,
            )
        for _ in range(width):
            self.advance()
        code = int(hexits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise lex_error(
                "MalformedEscapeSequence", f"Invalid escape sequence: '\\{ch}{hexits}'", line, col
            )
        return chr(code)

    def quoted(self, quote: str, line: int, col: int) -> str:
        """Body of a `"..."` string (opening quote already consumed)."""
        out: list[str] = []
        src = self.src
        while True:
            if self.i >= len(src):
                raise lex_error("UnterminatedString", "Open string is not terminated", line, col)
            ch = src[self.i]
            if ch == quote:
                self.advance()
                if self.peek() == quote:
                    self.advance()
                    out.append(quote)
                    continue
                return "".join(out)
            if ch == "\n":
                raise lex_error("UnterminatedString", "Open string is not terminated", line, col)
            if ch == "\\":
                eline, ecol = self.line, self.col
                self.advance()
                if self.peek() == "\n" or (self.peek() == "\r" and self.peek(1) == "\n"):
                    if self.peek() == "\r":
                        self.advance()
                    self.advance()
                    # continuation: drop leading whitespace up to the opening quote's column
                    while self.peek() in (" ", "\t") and self.peek() and self.col <= col:
                        self.advance()
                    continue
                out.append(self.escape(eline, ecol))
                continue
            out.append(self.advance())

    def char_literal(self, line: int, col: int) -> Token:
        self.advance()
        if self.peek() == "'" or not self.peek():
            if self.peek():
                self.advance()
            raise lex_error("MalformedChar", "Invalid character: ''", line, col)
        if self.peek() == "\\":
            self.advance()
            value = self.escape(line, col)
        else:
            value = self.advance()
        if self.peek() != "'":
            while self.i < len(self.src) and self.peek() not in ("'", "\n"):
                self.advance()
            if self.peek() == "'":
                self.advance()
            raise lex_error("MalformedChar", "Invalid character literal", line, col)
        self.advance()
        return Token("char", Char(value), line, col)

    def raw_string_start(self) -> bool:
        j = self.i
        while j < len(self.src) and self.src[j] == "#":
            j += 1
        return j < len(self.src) and self.src[j] == '"'

    def raw_string(self, line: int, col: int) -> Token:
        hashes = 0
        while self.peek() == "#":
            self.advance()
            hashes += 1
        self.advance()
        end = '"' + "#" * hashes
        stop = self.src.find(end, self.i)
        if stop < 0:
            while self.i < len(self.src):
                self.advance()
            raise lex_error("UnterminatedString", "Open string is not terminated", line, col)
        text = self.src[self.i : stop]
        while self.i < stop + len(end):
            self.advance()
        return Token("str", text, line, col)

    def backtick(self, line: int, col: int) -> Token:
        """A backtick string: verbatim text and `${...}` blocks (as token lists)."""
        self.advance()
        src = self.src
        if src.startswith("\r\n", self.i):
            self.advance()
            self.advance()
        elif self.peek() == "\n":
            self.advance()
        parts: list[Any] = []
        buf: list[str] = []
        while True:
            if self.i >= len(src):
                raise lex_error("UnterminatedString", "Open string is not terminated", line, col)
            ch = src[self.i]
            if ch == "`":
                self.advance()
                if self.peek() == "`":
                    self.advance()
                    buf.append("`")
                    continue
                break
            if ch == "\\" and src.startswith("${", self.i + 1):
                self.advance()
                self.advance()
                self.advance()
                buf.append("${")
                continue
            if ch == "$" and self.peek(1) == "{":
                bline, bcol = self.line, self.col
                self.advance()
                self.advance()
                parts.append("".join(buf))
                buf = []
                inner = self.scan(stop_at_brace=True)
                inner.append(Token("eof", None, self.line, self.col))
                parts.append((inner, bline, bcol))
                continue
            buf.append(self.advance())
        parts.append("".join(buf))
        if len(parts) == 1:
            return Token("str", parts[0], line, col)
        return Token("istr", parts, line, col)


def tokenize(src: str) -> list[Token]:
    """The whole token list of `src`, ending with an `eof` token."""
    return Lexer(src).tokens()
