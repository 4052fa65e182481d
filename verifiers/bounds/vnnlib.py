"""A reader for VNN-LIB 1.0 properties (the VNN-COMP 2021-2024 benchmark format).

Supported: ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``; ``assert`` over
``<=``, ``>=``, ``<``, ``>``, ``=`` between linear terms (numbers, variables, ``+``, ``-``,
``*`` by a constant); ``and`` / ``or`` nesting. The conjunction of all asserts is put in
disjunctive normal form; each disjunct must bound every input variable by constants (a box)
and constrain outputs linearly. The property is VIOLATED when some disjunct is satisfiable:
an input in its box whose output meets all its output constraints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from verifiers.errors import DataError

_MAX_DISJUNCTS = 100_000
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VAR = re.compile(r"^([XY])_(\d+)$")

Linear = tuple[dict[str, float], float]  # sum coef * var + constant
Atom = tuple[dict[str, float], float, bool]  # (coefs, constant, strict): sum + constant <= 0


@dataclass(frozen=True)
class Region:
    """One disjunct: x in [lower, upper] and ``C y + d <= 0`` (row-wise; ``< 0`` if strict)."""

    lower: np.ndarray  # [n_inputs]
    upper: np.ndarray
    C: np.ndarray  # [m, n_outputs]
    d: np.ndarray  # [m]
    strict: np.ndarray  # [m] bool

    def violated_by(self, y: np.ndarray, tol: float = 0.0) -> bool:
        """Does output ``y`` meet every constraint of the region (i.e. violate the property)?"""
        value = self.C @ np.asarray(y, dtype=np.float64).ravel() + self.d
        return bool(np.all(np.where(self.strict, value < -tol, value <= -tol)))


@dataclass(frozen=True)
class VnnProperty:
    num_inputs: int
    num_outputs: int
    regions: list[Region]


def parse_vnnlib(text: str) -> VnnProperty:
    """Parse VNN-LIB 1.0 text; raises DataError on anything outside the supported subset."""
    exprs = _read(text)
    names = {"X": set(), "Y": set()}
    formulas = []
    for expr in exprs:
        if not isinstance(expr, list) or not expr:
            raise DataError(f"vnnlib: unexpected top-level token {expr!r}")
        head = expr[0]
        if head == "declare-const":
            if len(expr) != 3 or expr[2] != "Real" or not _VAR.match(str(expr[1])):
                raise DataError(f"vnnlib: unsupported declaration {_show(expr)}")
            names[expr[1][0]].add(int(expr[1][2:]))
        elif head == "assert":
            if len(expr) != 2:
                raise DataError(f"vnnlib: assert takes one formula: {_show(expr)}")
            formulas.append(expr[1])
        else:
            raise DataError(f"vnnlib: unsupported command {head!r}")
    for kind in "XY":
        if names[kind] != set(range(len(names[kind]))):
            raise DataError(f"vnnlib: {kind} variables must be numbered 0..n-1")
    n_in, n_out = len(names["X"]), len(names["Y"])
    if not n_in or not n_out:
        raise DataError("vnnlib: needs declared X_i (inputs) and Y_j (outputs)")
    dnf: list[list[Atom]] = [[]]
    for formula in formulas:
        dnf = _product(dnf, _to_dnf(formula, names))
    return VnnProperty(n_in, n_out, [r for r in (_region(c, n_in, n_out) for c in dnf) if r])


def _read(text: str) -> list:
    text = re.sub(r";[^\n]*", "", text)
    stack: list[list] = [[]]
    for token in _TOKEN.findall(text):
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise DataError("vnnlib: unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    if len(stack) != 1:
        raise DataError("vnnlib: unbalanced '('")
    return stack[0]


def _show(expr) -> str:
    return expr if isinstance(expr, str) else "(" + " ".join(_show(e) for e in expr) + ")"


def _product(a: list[list[Atom]], b: list[list[Atom]]) -> list[list[Atom]]:
    if len(a) * len(b) > _MAX_DISJUNCTS:
        raise DataError(f"vnnlib: more than {_MAX_DISJUNCTS} disjuncts after normalisation")
    return [x + y for x in a for y in b]


def _to_dnf(expr, names: dict[str, set[int]]) -> list[list[Atom]]:
    if not isinstance(expr, list) or not expr:
        raise DataError(f"vnnlib: expected a formula, got {_show(expr)}")
    head, args = expr[0], expr[1:]
    if head == "and":
        out: list[list[Atom]] = [[]]
        for arg in args:
            out = _product(out, _to_dnf(arg, names))
        return out
    if head == "or":
        out = [c for arg in args for c in _to_dnf(arg, names)]
        if len(out) > _MAX_DISJUNCTS:
            raise DataError(f"vnnlib: more than {_MAX_DISJUNCTS} disjuncts")
        return out
    if head in ("<=", ">=", "<", ">", "=") and len(args) == 2:
        left, right = _term(args[0], names), _term(args[1], names)
        if head in ("<=", "<"):
            diff = _sub(left, right)
        elif head in (">=", ">"):
            diff = _sub(right, left)
        else:
            eq = _sub(left, right)
            return [[(eq[0], eq[1], False), (_neg(eq)[0], _neg(eq)[1], False)]]
        return [[(diff[0], diff[1], head in ("<", ">"))]]
    raise DataError(f"vnnlib: unsupported formula {_show(expr)}")


def _term(expr, names: dict[str, set[int]]) -> Linear:
    if isinstance(expr, str):
        if _VAR.match(expr):
            if int(expr[2:]) not in names[expr[0]]:
                raise DataError(f"vnnlib: {expr} is not declared")
            return {expr: 1.0}, 0.0
        try:
            return {}, float(expr)
        except ValueError:
            raise DataError(f"vnnlib: unknown symbol {expr!r}") from None
    head, args = expr[0], [_term(a, names) for a in expr[1:]]
    if head == "+" and args:
        out: Linear = ({}, 0.0)
        for a in args:
            out = _add(out, a)
        return out
    if head == "-" and len(args) == 1:
        return _neg(args[0])
    if head == "-" and len(args) >= 2:
        out = args[0]
        for a in args[1:]:
            out = _sub(out, a)
        return out
    if head == "*" and len(args) == 2:
        (ca, ka), (cb, kb) = args
        if ca and cb:
            raise DataError(f"vnnlib: nonlinear product {_show(expr)}")
        coefs, scale = (cb, ka) if not ca else (ca, kb)
        const = ka * kb
        return {v: c * scale for v, c in coefs.items()}, const
    raise DataError(f"vnnlib: unsupported term {_show(expr)}")


def _add(a: Linear, b: Linear) -> Linear:
    coefs = dict(a[0])
    for v, c in b[0].items():
        coefs[v] = coefs.get(v, 0.0) + c
    return coefs, a[1] + b[1]


def _neg(a: Linear) -> Linear:
    return {v: -c for v, c in a[0].items()}, -a[1]


def _sub(a: Linear, b: Linear) -> Linear:
    return _add(a, _neg(b))


def _region(atoms: list[Atom], n_in: int, n_out: int) -> Region | None:
    lower, upper = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    rows, consts, strict = [], [], []
    for coefs, const, is_strict in atoms:
        coefs = {v: c for v, c in coefs.items() if c != 0.0}
        kinds = {v[0] for v in coefs}
        if kinds == {"X"}:
            if len(coefs) != 1:
                raise DataError("vnnlib: input constraints must bound single variables")
            ((var, c),) = coefs.items()
            i, limit = int(var[2:]), -const / c
            if c > 0:
                upper[i] = min(upper[i], limit)
            else:
                lower[i] = max(lower[i], limit)
        elif kinds == {"Y"}:
            row = np.zeros(n_out)
            for var, c in coefs.items():
                row[int(var[2:])] += c
            rows.append(row)
            consts.append(const)
            strict.append(is_strict)
        elif not kinds:
            if const > 0 or (is_strict and const == 0):
                return None  # a constant constraint that never holds: empty disjunct
        else:
            raise DataError("vnnlib: a constraint mixes input and output variables")
    if not np.all(np.isfinite(lower) & np.isfinite(upper)):
        raise DataError("vnnlib: every input variable needs a lower and an upper bound")
    if np.any(lower > upper):
        return None
    return Region(lower, upper, np.array(rows).reshape(len(rows), n_out),
                  np.array(consts, dtype=np.float64), np.array(strict, dtype=bool))
