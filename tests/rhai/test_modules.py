"""`Engine.register_module`: a host's named set of functions and constants (`zos::f()`)."""

import pytest

from rhai import Engine, RhaiError


@pytest.fixture
def engine() -> Engine:
    calls: list[tuple] = []
    engine = Engine()
    engine.calls = calls  # type: ignore[attr-defined]
    engine.register_module(
        "zos",
        {
            "vm_create": lambda name, cpu=1: calls.append((name, cpu)) or f"vm-{name}",
            "MAX_CPU": 8,
            "SIZES": (1, 2),
        },
    )
    return engine


def test_namespaced_call_and_constant(engine: Engine) -> None:
    assert engine.eval('zos::vm_create("web", zos::MAX_CPU)') == "vm-web"
    assert engine.calls == [("web", 8)]  # type: ignore[attr-defined]


def test_constants_are_visible_in_functions_and_copied_on_read(engine: Engine) -> None:
    src = "fn twice() { zos::MAX_CPU * 2 } let s = zos::SIZES; s.push(3); [twice(), s, zos::SIZES]"
    assert engine.eval(src) == [16, [1, 2, 3], [1, 2]]


def test_the_host_sees_namespaced_names_it_must_provide(engine: Engine) -> None:
    assert engine.compile('zos::vm_create("a")').functions_called == {"zos::vm_create"}


@pytest.mark.parametrize(
    ("src", "kind", "parse_kind"),
    [
        ("zos::NOPE", "ErrorVariableNotFound", None),
        ("zos::nope(1)", "ErrorFunctionNotFound", None),
        ("other::f()", "ErrorParsing", "ModuleUndefined"),
        ("zos::1", "ErrorParsing", "VariableExpected"),
    ],
)
def test_unknown_members_and_modules(engine: Engine, src: str, kind: str, parse_kind: str) -> None:
    with pytest.raises(RhaiError) as info:
        engine.eval(src)
    assert (info.value.kind, info.value.parse_kind) == (kind, parse_kind)
    assert (info.value.line, info.value.column) == (1, 1 if parse_kind != "VariableExpected" else 6)


def test_module_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError, match="not a Rhai identifier"):
        Engine().register_module("zos-os", {})
