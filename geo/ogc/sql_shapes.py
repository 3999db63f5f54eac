"""Filters compiled once per shape: a CQL2 filter's SQL built, keyed and compiled for its
first request, then reused with each later request's literals.

A QGIS session or a dashboard sends the same filter with other values (``amount_eur >
X``) again and again. Translating the tree to SQLAlchemy, generating the statement's
cache key and executing it through SQLAlchemy cost ~2 ms of Python per filtered page at
100 k rows, more than SQLite spends answering it. Here a filter's *shape* — its tree with
each number and string literal replaced by a numbered slot — keys a :class:`Template`:
the driver's SQL of the count or the page, compiled once from the tree with a distinct
*probe* value in each slot, and the parameter each probe became. A later request of the
same shape binds its own literals to those parameters and runs the SQL as it is.

This is exact only where the translation does not depend on a literal's value, so a
shape exists only for trees of comparisons (``= <> < <= > >=``), ``BETWEEN`` and ``IS
NULL`` of properties against literals, joined by ``AND``/``OR``/``NOT``: there
:class:`geo.ogc.sql.SqlFilter` binds each literal as it is (a number as its float, a
string as its text), whatever its value. Anything else — arithmetic and constant
folding, LIKE patterns, lists, instants, geometries, functions, a condition without a
property — has no shape and is translated per request as before. A probe that is not
found exactly once among the compiled parameters leaves the shape uncompiled too. The
values are converted as SQLAlchemy would convert them (its bind processors), since the
SQL runs as the driver's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

#: Operators whose SQL translation binds each literal as it is.
SHAPED_OPS = frozenset({"and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "between", "isnull"})


def _literal(node: Any) -> bool:
    """A number or string of the tree: a slot of its shape (booleans and nulls are not)."""
    return type(node) in (int, float) or type(node) is str


class _NoShape(Exception):
    """The tree has a node whose translation may depend on a literal's value."""


def filter_shape(tree: Any) -> tuple[str, tuple[Any, ...]] | None:
    """(the shape of a CQL2-JSON tree, its literals in slot order), or None when the tree
    has no shape (see the module's docstring)."""
    literals: list[Any] = []

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "property" in node:
                if len(node) != 1 or not isinstance(node["property"], str):
                    raise _NoShape
                return node
            op, args = node.get("op"), node.get("args")
            if op not in SHAPED_OPS or not isinstance(args, list) or len(node) != 2:
                raise _NoShape
            if not has_property(node):  # folded to a constant from its values
                raise _NoShape
            return {"op": op, "args": [walk(a) for a in args]}
        if type(node) in (int, float):
            literals.append(float(node))
            return {"slot": len(literals) - 1, "kind": "number"}
        if type(node) is str:
            literals.append(node)
            return {"slot": len(literals) - 1, "kind": "text"}
        if node is None or type(node) is bool:  # part of the shape (their own translation)
            return node
        raise _NoShape

    try:
        shape = walk(tree)
    except _NoShape:
        return None
    if not literals:
        return None  # nothing to bind: the tree itself is the key
    return orjson.dumps(shape).decode(), tuple(literals)


_GROWS = {"<": 1, "<=": 1, ">": -1, ">=": -1}


def slot_directions(tree: Any) -> tuple[int, ...]:
    """Per slot of ``tree``'s shape, in slot order, how its literal moves the matches: +1
    when a larger literal can only add rows (``p < X``), -1 when it can only remove
    them (``p >= X``), 0 when neither is known (``=``, ``<>``, a string, a literal not
    compared with a property directly).

    Each slot occurs once in the tree, so the whole filter's matches are monotone in each
    literal: a comparison's TRUE rows grow or shrink with it and its NULL rows stay put;
    ``AND`` and ``OR`` keep that and ``NOT`` turns it round. This lets a count known to
    exceed the cap answer for every filter of the shape that keeps all those rows
    (:func:`covers`): a dashboard's slider need not count again."""
    out: list[int] = []

    def prop(node: Any) -> bool:
        return isinstance(node, dict) and "property" in node

    def walk(node: Any, sign: int) -> None:
        if isinstance(node, dict) and "op" in node:
            op, args = node["op"], node["args"]
            if op in ("and", "or"):
                for a in args:
                    walk(a, sign)
                return
            if op == "not":
                for a in args:
                    walk(a, -sign)
                return
            numbers = [type(a) in (int, float) for a in args]
            if op in _GROWS and len(args) == 2 and prop(args[0]) and numbers[1]:
                out.append(sign * _GROWS[op])
                return
            if op in _GROWS and len(args) == 2 and prop(args[1]) and numbers[0]:
                out.append(-sign * _GROWS[op])
                return
            if op == "between" and len(args) == 3 and prop(args[0]) and all(numbers[1:]):
                out.extend((-sign, sign))
                return
            for a in args:
                walk(a, 0)
            return
        if _literal(node):
            out.append(0)

    walk(tree, 1)
    return tuple(out)


def covers(directions: Sequence[int], wider: Sequence[Any], narrower: Sequence[Any]) -> bool:
    """Whether the literals ``wider`` match every row ``narrower`` matches, in a shape of
    slot ``directions`` (:func:`slot_directions`)."""
    for d, w, n in zip(directions, wider, narrower, strict=True):
        if d > 0:
            if not w >= n:
                return False
        elif d < 0:
            if not w <= n:
                return False
        elif type(w) is not type(n) or w != n:
            return False
    return True


def has_property(node: Any) -> bool:
    """Whether a CQL2-JSON node refers to a property anywhere (else it is a constant,
    which the translator folds from its values)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if "property" in n:
                return True
            stack.extend(n.get("args", []))
        elif isinstance(n, list):
            stack.extend(n)
    return False


def probe(i: int, kind: str) -> Any:
    """The distinct value compiled into slot ``i`` (found again among the parameters)."""
    if kind == "number":
        return -987654321.125 - 1024.0 * i
    return f"\ue000cmm-slot-{i}\ue000"


def probe_tree(tree: Any) -> Any:
    """``tree`` with each literal of its shape replaced by its slot's probe."""
    literals = 0

    def walk(node: Any) -> Any:
        nonlocal literals
        if isinstance(node, dict) and "op" in node:
            return {"op": node["op"], "args": [walk(a) for a in node["args"]]}
        if _literal(node):
            value = probe(literals, "number" if type(node) is not str else "text")
            literals += 1
            return value
        return node

    return walk(tree)


@dataclass(frozen=True)
class Template:
    """A statement compiled for a shape: its driver SQL, its parameters (by name; their
    order when the driver takes them by position), the parameter of each slot and the
    driver conversions of the parameters (SQLAlchemy's bind processors, which a statement
    run as driver SQL does not apply)."""

    sql: str
    order: tuple[str, ...] | None
    fixed: Mapping[str, Any]
    slots: tuple[str, ...]
    convert: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, compiled: Any, kinds: Sequence[str]) -> Template | None:
        """The template of a statement compiled from a probe tree (with its LIMIT and
        OFFSET rendered); None when a probe is not one parameter of its own, or the
        driver's names differ from SQLAlchemy's."""
        if getattr(compiled, "escaped_bind_names", None):
            return None
        params = dict(compiled.construct_params())
        convert = dict(compiled._bind_processors)
        slots: list[str] = []
        for i in range(len(kinds)):
            value = probe(i, kinds[i])
            names = [k for k, v in params.items() if type(v) is type(value) and v == value]
            if len(names) != 1:
                return None
            slots.append(names[0])
        fixed = {
            k: (convert[k](v) if k in convert else v) for k, v in params.items() if k not in slots
        }
        order = tuple(compiled.positiontup) if compiled.positional else None
        return cls(str(compiled), order, fixed, tuple(slots), convert)

    def parameters(self, literals: Sequence[Any], named: Mapping[str, Any] | None = None) -> Any:
        """The driver's parameters for ``literals`` and the ``named`` parameters of this
        request (a box's): a tuple by position, or a dict."""
        params = dict(self.fixed)
        values = {**dict(zip(self.slots, literals, strict=True)), **(named or {})}
        for name, value in values.items():
            convert = self.convert.get(name)
            params[name] = convert(value) if convert is not None else value
        if self.order is not None:
            return tuple(params[n] for n in self.order)
        return params
