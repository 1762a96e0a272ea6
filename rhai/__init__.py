"""A pure-Python Rhai script engine: compile once to Python code, run sandboxed with limits."""

from .engine import AST, Engine, Scope
from .errors import RhaiError
from .values import Char, FnPtr, Range, to_json_value, to_string

__all__ = [
    "AST",
    "Char",
    "Engine",
    "FnPtr",
    "Range",
    "RhaiError",
    "Scope",
    "to_json_value",
    "to_string",
]
