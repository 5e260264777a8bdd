"""Serving code uses other libraries through their public API only.

Reads every serving source file (``conveyor/``, ``api/``, ``registry/``, ``worker_base/``,
``models/``; tests excluded) from the test's runfiles and fails naming the file and line of:

- a private member read or written (``x._name``: one leading underscore, not a dunder) on
  anything but ``self``, ``cls`` or ``super()``: the project's own private members are used
  through ``self``/``cls`` only, and another library's never;
- an import of an underscore-named module or name from a package that is not the project's
  (``from redis._parsers import ...``, ``from uvicorn.protocols import _x``);
- a class that subclasses a class imported from another package (the standard library's
  included), unless that class is made to be subclassed (``ALLOWED_BASES``), or is an
  exception (its name ends in ``Error``, ``Exception`` or ``Warning``);
- an assignment to an attribute of another package's module or class (a patch);
- a ``logging.Filter`` that looks at a record's text (``getMessage()``, ``msg``, ``message``):
  another library's log lines are quieted by logger name and level, never by their words.

``KNOWN_VIOLATIONS`` lists what other work is removing; the test also fails when an entry no
longer occurs, so the list only shrinks.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

OURS = {"conveyor", "api", "registry", "worker_base", "models", "proto", "tools"}
LAYERS = ("conveyor", "api", "registry", "worker_base", "models")

ANY_BODY = "any"
ATTRIBUTES_ONLY = "attributes only"

ALLOWED_BASES: dict[str, str] = {
    # Interfaces and data declarations of the language.
    "abc.ABC": ANY_BODY,
    "typing.Protocol": ANY_BODY,
    "typing.Generic": ANY_BODY,
    "typing.NamedTuple": ANY_BODY,
    "typing.TypedDict": ANY_BODY,
    "enum.Enum": ANY_BODY,
    "enum.IntEnum": ANY_BODY,
    "enum.StrEnum": ANY_BODY,
    "enum.Flag": ANY_BODY,
    "enum.IntFlag": ANY_BODY,
    # asyncio's protocol and transport interfaces (docs: "Transports and Protocols").
    "asyncio.BaseProtocol": ANY_BODY,
    "asyncio.Protocol": ANY_BODY,
    "asyncio.BufferedProtocol": ANY_BODY,
    "asyncio.DatagramProtocol": ANY_BODY,
    "asyncio.BaseTransport": ANY_BODY,
    "asyncio.Transport": ANY_BODY,
    "asyncio.ReadTransport": ANY_BODY,
    "asyncio.WriteTransport": ANY_BODY,
    # logging's extension points.
    "logging.Filter": ANY_BODY,
    "logging.Formatter": ANY_BODY,
    "logging.Handler": ANY_BODY,
    "logging.StreamHandler": ANY_BODY,
    "logging.LoggerAdapter": ANY_BODY,
    # Models and settings.
    "pydantic.BaseModel": ANY_BODY,
    "pydantic.RootModel": ANY_BODY,
    "pydantic_settings.BaseSettings": ANY_BODY,
    # FastAPI/Starlette's application, route class (route_class=) and middleware bases.
    "fastapi.FastAPI": ANY_BODY,
    "fastapi.routing.APIRoute": ANY_BODY,
    "starlette.middleware.base.BaseHTTPMiddleware": ANY_BODY,
    # prometheus_client's custom collectors (registry.register).
    "prometheus_client.registry.Collector": ANY_BODY,
    # OpenTelemetry SDK's interface for custom trace and span ids, TracerProvider(id_generator=).
    "opentelemetry.sdk.trace.id_generator.IdGenerator": ANY_BODY,
    # aiormq's transport hook: an abstract factory, Connection(transport_factory=...).
    "aiormq.TransportFactory": ANY_BODY,
    "aiormq.connection.TransportFactory": ANY_BODY,
    # aio-pika's connection classes, given as connect_robust's connection_class: to declare
    # connection parameters (PARAMETERS), overriding none of their methods.
    "aio_pika.RobustConnection": ATTRIBUTES_ONLY,
    "aio_pika.robust_connection.RobustConnection": ATTRIBUTES_ONLY,
    # redis-py's pools, given as connection_pool_class (Sentinel.master_for): to combine them,
    # overriding none of their methods.
    "redis.asyncio.BlockingConnectionPool": ATTRIBUTES_ONLY,
    "redis.asyncio.connection.BlockingConnectionPool": ATTRIBUTES_ONLY,
    "redis.asyncio.sentinel.SentinelConnectionPool": ATTRIBUTES_ONLY,
}
"""Classes of other packages made to be subclassed, by full import path, with what a subclass
may hold: ``any`` body, or class ``attributes only`` (no method overridden)."""

EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning")
NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make", "_field_defaults"}
"""Public methods of named tuples, underscore-named so as not to clash with their fields."""
PUBLIC_UNDERSCORE = {"os._exit"}
"""Documented functions of the standard library named with one underscore."""
RECORD_TEXT = {"getMessage", "msg", "message"}

KNOWN_VIOLATIONS: set[str] = {
    # Not a use of a private member, but a name for a type: types-protobuf declares every
    # message's ``DESCRIPTOR`` as ``Descriptor | google._upb._message.Descriptor``, so the model
    # contract's return type must name the second to accept what generated code gives. The
    # import runs only under ``TYPE_CHECKING``: nothing at run time depends on it, and a
    # rename in a later protobuf fails the build's mypy, not the service (docs/decisions.md).
    "conveyor/descriptors.py: imports from private module google._upb._message",
}
"""``path: message`` of the violations accepted, each with its reason; the test fails when an
entry no longer occurs, so the list only shrinks."""


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    message: str

    @property
    def key(self) -> str:
        return f"{self.path}: {self.message}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _root() -> Path:
    runfiles = os.environ.get("RUNFILES_DIR") or os.environ.get("TEST_SRCDIR")
    if runfiles:
        return Path(runfiles) / os.environ.get("TEST_WORKSPACE", "conveyor")
    return Path(__file__).resolve().parents[2]


def _is_test(path: Path) -> bool:
    return "tests" in path.parts or path.name.startswith("test_") or path.name == "conftest.py"


def _sources() -> list[Path]:
    root = _root()
    return sorted(
        path
        for layer in LAYERS
        for path in (root / layer).rglob("*.py")
        if not _is_test(path.relative_to(root))
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _ours(module: str) -> bool:
    return module.split(".")[0] in OURS


class _Module:
    """One source file: what its names refer to, and the checks."""

    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.tree = tree
        self.name = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        self.imported: dict[str, str] = {}  # local name -> full import path
        self.classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        self.imported.update({node.name: f"{self.name}.{node.name}" for node in self.classes})
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imported[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        self.imported[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def violation(self, node: ast.AST, message: str) -> Violation:
        return Violation(self.path, getattr(node, "lineno", 0), message)

    def resolve(self, node: ast.expr) -> str | None:
        """The full import path an expression names (``asyncio.Transport``), or None."""
        if isinstance(node, ast.Subscript):
            return self.resolve(node.value)
        if isinstance(node, ast.Name):
            return self.imported.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            return f"{owner}.{node.attr}" if owner else None
        return None

    def foreign(self, node: ast.expr) -> str | None:
        """What ``node`` names when that comes from another package."""
        name = self.resolve(node)
        return name if name is not None and not _ours(name) else None

    def check(self, classes: dict[str, tuple[_Module, ast.ClassDef]]) -> Iterator[Violation]:
        """The violations in this file; ``classes``: the project's classes by full name."""
        yield from self.imports()
        yield from self.private_members()
        yield from self.subclasses(classes)
        yield from self.patches()

    def imports(self) -> Iterator[Violation]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not _ours(alias.name) and any(map(_private, alias.name.split("."))):
                        yield self.violation(node, f"imports private module {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if _ours(node.module):
                    continue
                if any(map(_private, node.module.split("."))):
                    yield self.violation(node, f"imports from private module {node.module}")
                for alias in node.names:
                    if _private(alias.name):
                        yield self.violation(node, f"imports {node.module}.{alias.name}")

    def private_members(self) -> Iterator[Violation]:
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Attribute) or not _private(node.attr):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if (
                isinstance(owner, ast.Call)
                and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"
            ):
                continue
            if node.attr in NAMEDTUPLE_API or self.resolve(node) in PUBLIC_UNDERSCORE:
                continue
            yield self.violation(node, f"uses private member {ast.unparse(node)}")
        for node in ast.walk(self.tree):  # the same by name: getattr(x, "_name")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
                and not (isinstance(node.args[0], ast.Name) and node.args[0].id in ("self", "cls"))
            ):
                yield self.violation(node, f"uses private member {ast.unparse(node)}")

    def subclasses(self, classes: dict[str, tuple[_Module, ast.ClassDef]]) -> Iterator[Violation]:
        for node in self.classes:
            foreign = list(_foreign_bases(self, node, classes, set()))
            if foreign:
                own = _own_members(self, node, classes)
                for use in _self_privates(node):
                    if use.attr not in own:
                        yield self.violation(
                            use, f"uses {ast.unparse(use)}, inherited from {foreign[0][0]}"
                        )
            for name, through in foreign:
                if name.rsplit(".", 1)[-1].endswith(EXCEPTION_SUFFIXES):
                    continue
                via = f" (through {through})" if through else ""
                allowed = ALLOWED_BASES.get(name)
                if allowed is None:
                    yield self.violation(node, f"class {node.name} subclasses {name}{via}")
                elif allowed == ATTRIBUTES_ONLY and _defines_methods(node):
                    yield self.violation(
                        node, f"class {node.name} overrides methods of {name} (attributes only)"
                    )
                if name == "logging.Filter":
                    for text in _record_text(node):
                        yield self.violation(
                            text, f"log filter {node.name} reads a record's text ({text.attr})"
                        )

    def patches(self) -> Iterator[Violation]:
        for node in ast.walk(self.tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, ast.Delete):
                targets = node.targets
            for target in targets:
                if isinstance(target, ast.Attribute) and self.foreign(target.value):
                    yield self.violation(node, f"patches {ast.unparse(target)}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("setattr", "delattr")
                and node.args
                and self.foreign(node.args[0])
            ):
                yield self.violation(node, f"patches {ast.unparse(node.args[0])} ({node.func.id})")


def _foreign_bases(
    module: _Module,
    node: ast.ClassDef,
    classes: dict[str, tuple[_Module, ast.ClassDef]],
    seen: set[str],
) -> Iterator[tuple[str, str]]:
    """Each base of another package that ``node`` inherits, with the project class that names
    it when that is not ``node`` itself."""
    for base in node.bases:
        name = module.resolve(base)
        if name is None or name in seen:
            continue
        seen.add(name)
        if not _ours(name):
            yield name, ""
        elif name in classes:
            owner, parent = classes[name]
            for foreign, through in _foreign_bases(owner, parent, classes, seen):
                yield foreign, through or name


def _own_members(
    module: _Module, node: ast.ClassDef, classes: dict[str, tuple[_Module, ast.ClassDef]]
) -> set[str]:
    """Names that ``node`` and its project ancestors define (methods, class attributes, and
    attributes they assign through ``self``/``cls``)."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
        elif isinstance(item, (ast.Assign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    for use in _self_privates(node, ast.Store):
        names.add(use.attr)
    for base in node.bases:
        name = module.resolve(base)
        if name in classes:
            owner, parent = classes[name]
            names |= _own_members(owner, parent, classes)
    return names


def _self_privates(
    node: ast.ClassDef, context: type[ast.expr_context] = ast.Load
) -> Iterator[ast.Attribute]:
    """``self._x`` and ``cls._x`` in the class's code, read (or, with ``ast.Store``, set)."""
    for item in ast.walk(node):
        if (
            isinstance(item, ast.Attribute)
            and isinstance(item.ctx, context)
            and _private(item.attr)
            and isinstance(item.value, ast.Name)
            and item.value.id in ("self", "cls")
        ):
            yield item


def _defines_methods(node: ast.ClassDef) -> bool:
    return any(
        isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        for item in node.body
    )


def _record_text(node: ast.ClassDef) -> Iterator[ast.Attribute]:
    for item in ast.walk(node):
        if isinstance(item, ast.Attribute) and item.attr in RECORD_TEXT:
            yield item


def _check(modules: list[_Module]) -> list[Violation]:
    classes = {f"{m.name}.{node.name}": (m, node) for m in modules for node in m.classes}
    return [violation for module in modules for violation in module.check(classes)]


def _violations() -> list[Violation]:
    root = _root()
    return _check(
        [
            _Module(str(path.relative_to(root)), ast.parse(path.read_text(), filename=str(path)))
            for path in _sources()
        ]
    )


def test_serving_code_finds_its_sources() -> None:
    sources = {str(path.relative_to(_root())) for path in _sources()}
    for layer in LAYERS:
        assert any(path.startswith(f"{layer}/") for path in sources), f"no sources of {layer}/"
    assert "conveyor/amqp.py" in sources and "conveyor/waiter.py" in sources


def test_serving_code_uses_public_apis_only() -> None:
    wrong = [str(v) for v in _violations() if v.key not in KNOWN_VIOLATIONS]
    assert wrong == [], "\n".join(wrong)


def test_known_violations_still_occur() -> None:
    occurring = {v.key for v in _violations()}
    gone = sorted(KNOWN_VIOLATIONS - occurring)
    assert gone == [], "no longer found; delete from KNOWN_VIOLATIONS:\n" + "\n".join(gone)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import x\nx.y._z = 1\n", ["uses private member x.y._z", "patches x.y._z"]),
        ("def f(o):\n    return o._secret\n", ["uses private member o._secret"]),
        (
            "def f(o):\n    return getattr(o, '_secret', None)\n",
            ["uses private member getattr(o, '_secret', None)"],
        ),
        ("class A:\n    def f(self):\n        return self._own, super()._up\n", []),
        ("from redis._parsers import X\n", ["imports from private module redis._parsers"]),
        ("from uvicorn.protocols import _impl\n", ["imports uvicorn.protocols._impl"]),
        ("from conveyor import _internal\n", []),
        (
            "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
            "class P(HttpToolsProtocol):\n    pass\n",
            ["class P subclasses uvicorn.protocols.http.httptools_impl.HttpToolsProtocol"],
        ),
        ("import asyncio\nclass T(asyncio.Transport):\n    pass\n", []),
        (
            "import asyncio\nclass T(asyncio.Transport):\n"
            "    def __init__(self):\n        self._mine = 1\n"
            "    def f(self):\n        return self._mine, self._extra\n",
            ["uses self._extra, inherited from asyncio.Transport"],
        ),
        ("from aiormq.exceptions import AMQPError\nclass E(AMQPError):\n    pass\n", []),
        (
            "from aio_pika import RobustConnection\n"
            "class C(RobustConnection):\n    PARAMETERS = ()\n",
            [],
        ),
        (
            "from aio_pika import RobustConnection\n"
            "class C(RobustConnection):\n    def connect(self): ...\n",
            ["class C overrides methods of aio_pika.RobustConnection (attributes only)"],
        ),
        (
            "import logging\nclass F(logging.Filter):\n"
            "    def filter(self, record):\n        return 'x' not in record.getMessage()\n",
            ["log filter F reads a record's text (getMessage)"],
        ),
        ("import asyncio\nasyncio.sleep = None\n", ["patches asyncio.sleep"]),
        ("import x\nsetattr(x.C, 'm', None)\n", ["patches x.C (setattr)"]),
        ("from collections import namedtuple\nP = namedtuple('P', 'a')\nP(1)._replace(a=2)\n", []),
    ],
)
def test_each_rule_on_a_sample(source: str, expected: list[str]) -> None:
    assert [v.message for v in _check([_Module("sample.py", ast.parse(source))])] == expected


def test_a_subclass_of_a_project_class_inherits_its_bases() -> None:
    base = "from uvicorn.protocols.http.h11_impl import H11Protocol\nclass A(H11Protocol): ...\n"
    derived = "from conveyor.a import A\nclass B(A):\n    def f(self):\n        self._x()\n"
    found = _check(
        [_Module("conveyor/a.py", ast.parse(base)), _Module("api/b.py", ast.parse(derived))]
    )
    assert [str(v) for v in found] == [
        "conveyor/a.py:2: class A subclasses uvicorn.protocols.http.h11_impl.H11Protocol",
        "api/b.py:4: uses self._x, inherited from uvicorn.protocols.http.h11_impl.H11Protocol",
        "api/b.py:2: class B subclasses uvicorn.protocols.http.h11_impl.H11Protocol"
        " (through conveyor.a.A)",
    ]
