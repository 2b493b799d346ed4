"""Runtime of the two-process assert harness. Its source is embedded in sandboxed programs: stdlib only.

An ``assert`` test is judged in two sandboxed runs:

1. the **candidate run** executes the solution, then the test code with every solution name the test uses
   replaced by a recorder. Each call the test makes into the solution is logged as plain data (callee,
   arguments, returned value or raised builtin exception type) and the log is printed as one JSON line.
2. the **verifier run** executes only the test code, never the solution: the solution's names are stubs
   that check their arguments against the log and return the logged values. Its verdict is whether the
   test code ran to its end.

Everything the candidate run prints is under the solution's control (it shares the process), so the log
is treated as nothing more than the solution's answers: forging it is the same as returning those values.
Values cross as tagged plain data (exact builtin types only), so no object of the solution's (rigged
``__eq__``, ``int`` subclasses) ever reaches the verifier, and the verifier's exit is trusted because no
solution code runs in it.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import random
import sys
from typing import Any

_MAX_DEPTH = 200
_SEED = 20240601  # the same random stream in both runs, so tests that draw inputs agree


class Unencodable(Exception):
    """A value that is not plain builtin data."""


class TraceMismatch(BaseException):
    """The verifier's test made a call the log does not hold (not catchable by ``except Exception``)."""


def encode(value: Any, depth: int = 0) -> Any:
    """``value`` as tagged JSON data; only exact builtin types (no subclasses) are accepted.

    >>> encode([1, (2.5, "a")])
    {'l': [{'i': '0x1'}, {'t': [{'f': '0x1.4000000000000p+1'}, {'s': 'a'}]}]}
    """
    if depth > _MAX_DEPTH:
        raise Unencodable("nested too deeply")
    kind = type(value)
    if value is None:
        return None
    if kind is bool:
        return {"b": value}
    if kind is int:
        return {"i": hex(value)}
    if kind is float:
        return {"f": value.hex()}
    if kind is complex:
        return {"c": [value.real.hex(), value.imag.hex()]}
    if kind is str:
        return {"s": value}
    if kind is bytes:
        return {"y": value.hex()}
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = {list: "l", tuple: "t", set: "e", frozenset: "z"}[kind]
        return {tag: [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(key, depth + 1), encode(item, depth + 1)] for key, item in value.items()]}
    raise Unencodable(kind.__name__)


def as_plain(value: Any, depth: int = 0) -> Any:
    """``value`` with instances of builtin subclasses (``defaultdict``, ``Counter``, named tuples,
    ``IntEnum``) turned into their base type, read through the base type's own methods so that no
    override of the subclass runs; anything else is left as it is (``encode`` then refuses it).

    >>> import collections
    >>> as_plain(collections.Counter("aab")), as_plain(collections.namedtuple("P", "x y")(1, 2))
    ({'a': 2, 'b': 1}, (1, 2))
    """
    if depth > _MAX_DEPTH:
        raise Unencodable("nested too deeply")
    for base, convert in _BASE_CONVERSIONS:
        if isinstance(value, base):
            return convert(value, depth + 1)
    return value


_BASE_CONVERSIONS: tuple[tuple[type, Any], ...] = (
    (bool, lambda value, depth: bool(int.__index__(value))),
    (int, lambda value, depth: int.__index__(value)),
    (float, lambda value, depth: float.__add__(value, 0.0)),
    (complex, lambda value, depth: complex.__add__(value, 0j)),
    (str, lambda value, depth: str.__getitem__(value, slice(None))),
    (bytes, lambda value, depth: bytes.__getitem__(value, slice(None))),
    (list, lambda value, depth: [as_plain(item, depth) for item in list.__iter__(value)]),
    (tuple, lambda value, depth: tuple(as_plain(item, depth) for item in tuple.__iter__(value))),
    (set, lambda value, depth: {as_plain(item, depth) for item in set.__iter__(value)}),
    (frozenset, lambda value, depth: frozenset(as_plain(item, depth) for item in frozenset.__iter__(value))),
    (
        dict,
        lambda value, depth: {as_plain(k, depth): as_plain(v, depth) for k, v in dict.items(value)},
    ),
)


def decode(data: Any, depth: int = 0) -> Any:
    """The plain value ``encode`` produced (raises ``ValueError`` for anything else)."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    if data is None:
        return None
    if type(data) is not dict or len(data) != 1:
        raise ValueError("not an encoded value")
    ((tag, body),) = data.items()
    if tag == "b" and type(body) is bool:
        return body
    if tag == "i" and type(body) is str:
        return int(body, 16)
    if tag == "f" and type(body) is str:
        return float.fromhex(body)
    if tag == "c" and type(body) is list and len(body) == 2:
        return complex(float.fromhex(body[0]), float.fromhex(body[1]))
    if tag == "s" and type(body) is str:
        return body
    if tag == "y" and type(body) is str:
        return bytes.fromhex(body)
    if tag in ("l", "t", "e", "z") and type(body) is list:
        items = [decode(item, depth + 1) for item in body]
        return {"l": list, "t": tuple, "e": set, "z": frozenset}[tag](items)
    if tag == "d" and type(body) is list:
        return {decode(pair[0], depth + 1): decode(pair[1], depth + 1) for pair in body}
    raise ValueError(f"bad tag {tag!r}")


def _encode_argument(value: Any) -> Any:
    if isinstance(value, _Handle):  # both sides' handles carry their number
        return {"handle": value._number}
    try:
        return encode(value)
    except (Unencodable, RecursionError, ValueError):
        return {"opaque": type(value).__name__ if type(value).__module__ == "builtins" else "object"}


def _encode_call(args: tuple, kwargs: dict) -> Any:
    return [
        [_encode_argument(arg) for arg in args],
        [[key, _encode_argument(v)] for key, v in kwargs.items()],
    ]


def solution_names(test_code: str) -> set[str]:
    """The names the test code reads but neither binds itself nor gets from the builtins: the solution's.

    >>> sorted(solution_names("import math\\ndef check(f):\\n    assert abs(f(2) - math.pi) < EPS\\ncheck(area)"))
    ['EPS', 'area']
    """
    tree = ast.parse(test_code)
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            bound.update(node.names)
    return {name for name in read - bound if not hasattr(builtins, name) and not name.startswith("__")}


# Exceptions a logged call may re-raise in the verifier: builtin ones that cannot end a loop silently.
def _replayable_exception(name: Any) -> type[Exception]:
    kind = getattr(builtins, name, None) if type(name) is str else None
    if (
        isinstance(kind, type)
        and issubclass(kind, Exception)
        and not issubclass(kind, StopIteration | StopAsyncIteration)
    ):
        return kind
    return RuntimeError


def candidate_view(test_code: str) -> str:
    """The test code the candidate run gets: each ``assert`` only evaluates its non-literal operands.

    The expected values an assert compares against then never enter the solution's process, and a
    failing assert does not stop the candidate run (the verifier stops at it instead).

    >>> candidate_view("assert f(1) == [2, 3], 'msg'")
    'f(1)'
    >>> candidate_view("assert abs(f(2) - 0.5) < 1e-6 and not g(3)")
    'f(2)\\ng(3)'
    """

    class _KeepOperands(ast.NodeTransformer):
        def visit_Assert(self, node: ast.Assert) -> Any:
            kept = [ast.Expr(value=part) for part in _operands(node.test)]
            return [ast.copy_location(statement, node) for statement in kept] or ast.Pass()

    tree = _KeepOperands().visit(ast.parse(test_code))
    return ast.unparse(ast.fix_missing_locations(tree))


def _operands(expression: ast.expr) -> list[ast.expr]:
    if isinstance(expression, ast.Compare):
        parts = [expression.left, *expression.comparators]
    elif isinstance(expression, ast.BoolOp):
        parts = list(expression.values)
    elif isinstance(expression, ast.UnaryOp):
        parts = [expression.operand]
    elif isinstance(expression, ast.BinOp):
        parts = [expression.left, expression.right]
    elif (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Name)
        and expression.func.id in _PURE_BUILTINS
        and not any(isinstance(arg, ast.Starred) for arg in expression.args)
    ):
        parts = [*expression.args, *(keyword.value for keyword in expression.keywords)]
    else:
        return [] if _is_literal(expression) else [expression]
    return [kept for part in parts for kept in _operands(part)]


# Builtins an assert wraps around the solution's answer (``abs(f(x) - 0.5) < 1e-6``): only their
# arguments need evaluating in the candidate run, which keeps the expected value out of it.
_PURE_BUILTINS = frozenset(
    {
        "abs",
        "len",
        "round",
        "sorted",
        "set",
        "frozenset",
        "list",
        "tuple",
        "str",
        "int",
        "float",
        "bool",
        "sum",
        "min",
        "max",
        "repr",
        "type",
        "isinstance",
        "dict",
    }
)


def _is_literal(expression: ast.expr) -> bool:
    try:
        ast.literal_eval(expression)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False
    return True


class _Handle:
    """An object the solution returned that is not plain data: only its methods can be called."""

    def __init__(self, log: Any, number: int, target: Any = None) -> None:
        self._log, self._number, self._target = log, number, target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._log.attribute(self, name)

    def _no_value(self, *args: Any) -> Any:
        raise TypeError("an object returned by the solution is not plain data: it has no value to test")

    __eq__ = __ne__ = __bool__ = __len__ = __iter__ = __index__ = __float__ = __int__ = _no_value  # type: ignore[assignment]
    __hash__ = object.__hash__


# -------------------------------------------------------------------------------- candidate run


class _CandidateLog:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.handles: list[Any] = []

    def recorder(self, callee: list, target: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            record: dict[str, Any] = {"callee": callee, "call": _encode_call(args, kwargs)}
            self.records.append(record)
            args = tuple(arg._target if isinstance(arg, _Handle) else arg for arg in args)
            state = random.getstate()  # the solution's draws must not shift the test's random stream
            try:
                result = target(*args, **kwargs)
            except Exception as error:
                record["raise"] = _replayable_exception(type(error).__name__).__name__
                raise
            finally:
                random.setstate(state)
            record["after"] = _encode_call(args, kwargs)
            try:
                record["result"] = encode(as_plain(result))
            except (Unencodable, RecursionError, ValueError):
                self.handles.append(result)
                record["result"] = {"handle": len(self.handles) - 1}
                return _Handle(self, len(self.handles) - 1, result)
            return decode(record["result"])

        return call

    def attribute(self, handle: _Handle, name: str) -> Any:
        value = getattr(handle._target, name)
        if callable(value):
            return self.recorder(["method", handle._number, name], value)
        record: dict[str, Any] = {"callee": ["attribute", handle._number, name]}
        self.records.append(record)
        record["result"] = encode(value)
        return decode(record["result"])


def run_candidate(solution: str, test_code: str, nonce: str) -> None:
    """Run the solution, then the test against recorders; print ``nonce`` and the log as the last line."""
    write, stdout_fd = os.write, 1
    log = _CandidateLog()
    values: dict[str, Any] = {}
    names: list[str] = []
    try:
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(solution, "solution.py", "exec"), namespace)
        test_namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        for name in sorted(solution_names(test_code) & namespace.keys()):
            value = namespace[name]
            if callable(value):
                names.append(name)
                test_namespace[name] = log.recorder(["name", name], value)
            else:
                try:
                    values[name] = encode(value)
                except (Unencodable, RecursionError, ValueError):
                    continue  # not plain data: the test cannot use it (NameError in the verifier)
                test_namespace[name] = decode(values[name])
        random.seed(_SEED)
        exec(compile(test_code, "tests.py", "exec"), test_namespace)
    except BaseException:  # noqa: BLE001 - whatever happened, the log so far is the answer
        pass
    finally:
        try:
            line = json.dumps({"names": names, "values": values, "records": log.records})
        except BaseException:  # noqa: BLE001
            line = "{}"
        write(stdout_fd, ("\n" + nonce + line + "\n").encode("utf-8", errors="surrogatepass"))


# -------------------------------------------------------------------------------- verifier run


class _VerifierLog:
    def __init__(self, records: list) -> None:
        self.records = records
        self.position = 0

    def take(self, callee: list, call: Any = None) -> dict:
        """The next logged call to ``callee`` (with these encoded arguments, when given).

        Logged calls the verifier does not make are skipped: the candidate run evaluates every operand
        of an assert, also those a short-circuiting ``or`` never reaches.
        """
        for index in range(self.position, len(self.records)):
            record = self.records[index]
            if (
                type(record) is dict
                and record.get("callee") == callee
                and (call is None or record.get("call") == call)
            ):
                self.position = index + 1
                return record
        raise TraceMismatch(f"the candidate run made no call to {callee} with these arguments")

    def stub(self, callee: list) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            record = self.take(callee, _encode_call(args, kwargs))
            if "raise" in record:
                raise _replayable_exception(record["raise"])("raised by the solution")
            if "result" not in record:
                raise TraceMismatch("the call did not return")
            _apply_mutations(args, record.get("after"))
            result = record["result"]
            if type(result) is dict and set(result) == {"handle"} and type(result["handle"]) is int:
                return _Handle(self, result["handle"])
            return decode(result)

        return call

    def attribute(self, handle: _Handle, name: str) -> Any:
        callee = ["attribute", handle._number, name]
        try:
            return decode(self.take(callee).get("result"))
        except TraceMismatch:  # not a logged attribute read: a method
            return self.stub(["method", handle._number, name])


def _apply_mutations(args: tuple, after: Any) -> None:
    """Replay in-place changes the solution made to list, dict and set arguments."""
    if type(after) is not list or len(after) != 2 or type(after[0]) is not list or len(after[0]) != len(args):
        raise TraceMismatch("bad argument record")
    for arg, encoded in zip(args, after[0], strict=True):
        kind = type(arg)
        if kind not in (list, dict, set):
            continue
        new = decode(encoded)
        if type(new) is not kind:
            raise TraceMismatch("argument changed type")
        if new != arg:
            if kind is list:
                arg[:] = new
            else:
                arg.clear()
                arg.update(new)


def run_verifier(test_code: str, marker: str) -> None:
    """Run the test against the log read from stdin; print ``marker`` when it ran to its end."""
    trace = json.loads(sys.stdin.read())
    log = _VerifierLog(trace["records"] if type(trace.get("records")) is list else [])
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    allowed = solution_names(test_code)  # a log naming a builtin or a name of the test's gets nothing
    for name in trace.get("names", []):
        if type(name) is str and name in allowed:
            namespace[name] = log.stub(["name", name])
    for name, value in dict(trace.get("values", {})).items():
        if type(name) is str and name in allowed:
            namespace[name] = decode(value)
    random.seed(_SEED)
    exec(compile(test_code, "tests.py", "exec"), namespace)
    print(marker)
