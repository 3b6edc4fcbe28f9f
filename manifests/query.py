"""`--where` queries, checked on their syntax tree before pandas sees them.

pandas' `DataFrame.eval` is a small language with a door to Python: `@name` reads any variable
in scope, and from there attribute access reaches `os.system`. A query often arrives with a
dataset or a recipe from someone else, so it is parsed with `ast` first and only a whitelist
of node kinds passes: column names, literals, comparisons (including `in [...]`),
`and`/`or`/`not` (and pandas' `&`, `|`, `~`), arithmetic, and a few numeric functions. No `@`,
no attribute access, no subscripts, no other calls, no dunder names. pandas then evaluates the
checked text with empty variable scopes, so even a gap in this list reaches no Python object.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Collection, Sequence
from typing import Any

import pandas as pd

from manifests.errors import ManifestError

FUNCTIONS = frozenset({"abs", "sqrt", "exp", "log", "log10"})
"""Functions a query may call: numeric ones that pandas' eval evaluates itself."""
MAX_LENGTH = 4000
"""Longer text is refused before parsing (a query is a line, not a program)."""
MAX_EXPONENT = 8
"""`x ** n` takes a literal n up to this: pandas computes eagerly, and 10**10**10 never ends."""
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)

_OPERATORS: dict[type, str] = {
    ast.And: "and",
    ast.Or: "or",
    ast.Not: "not",
    ast.Invert: "~",
    ast.USub: "-",
    ast.UAdd: "+",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_CONTAINERS = (ast.List, ast.Tuple)
_LITERALS = (str, int, float, bool)


def describe_columns(columns: Collection[str], stems: Collection[str] = ()) -> str:
    """The columns in one line, each per-stem column once as `<stem>_name`."""
    per_stem = {c.removeprefix(f"{s}_") for c in columns for s in stems if c.startswith(f"{s}_")}
    own = sorted(c for c in columns if not any(c.startswith(f"{s}_") for s in stems))
    text = "columns: " + ", ".join(own)
    if per_stem:
        text += f"; for each <stem> of {', '.join(stems)}: <stem>_" + ", <stem>_".join(
            sorted(per_stem)
        )
    return text


def column_summary(wide: pd.DataFrame, stems: Sequence[str]) -> list[tuple[str, str, str]]:
    """(name, type, example values) of every column `--where` can use (`msaug columns`), each
    per-stem column once as `<stem>_name`, with examples from all stems."""
    rows, seen = [], set()
    for column in wide.columns:
        stem = next((s for s in stems if column.startswith(f"{s}_")), None)
        base = column.removeprefix(f"{stem}_") if stem else column
        name = f"<stem>_{base}" if stem else column
        if name in seen:
            continue
        seen.add(name)
        same = [f"{s}_{base}" for s in stems if f"{s}_{base}" in wide] if stem else [column]
        values = pd.concat([wide[c] for c in same]).dropna()
        examples = [_example(v) for v in values.drop_duplicates().head(3)] if len(values) else []
        rows.append((name, str(wide[column].dtype), ", ".join(examples) or "(all null)"))
    return rows


def _example(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    text = f"{value:.4g}" if isinstance(value, float) else repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _refuse(where: str, what: str, columns: str) -> ManifestError:
    return ManifestError(
        f"--where {where!r}: {what} is not allowed in a query; a query uses columns, "
        f"literals, comparisons, in [...], and/or/not, arithmetic and {sorted(FUNCTIONS)}. "
        f"The {columns}"
    )


def _syntax_hint(where: str) -> str:
    if "@" in where:
        return "; '@' (a Python variable) is not allowed in a query"
    if "`" in where:
        return "; backtick-quoted names are not needed: every column is one word"
    stripped = where.replace("==", "").replace("!=", "").replace("<=", "").replace(">=", "")
    if "=" in stripped:
        return "; compare with == (a single = assigns)"
    return ""


def _check_arithmetic(node: ast.BinOp, where: str, numeric: Collection[str], listed: str) -> None:
    """Arithmetic on numeric columns only, never on two literals (nothing to compute: write
    the value), and small literal exponents: so a query cannot make pandas build a gigabyte
    string or an integer with billions of digits."""
    sides = (node.left, node.right)
    if all(isinstance(side, ast.Constant) for side in sides):
        raise _refuse(where, f"arithmetic on two literals ({ast.unparse(node)})", listed)
    for side in sides:
        if isinstance(side, ast.Constant) and isinstance(side.value, str):
            raise _refuse(where, f"arithmetic on the text {side.value!r}", listed)
        if isinstance(side, ast.Name) and side.id not in numeric:
            raise _refuse(where, f"arithmetic on the non-numeric column {side.id!r}", listed)
    if isinstance(node.op, ast.Pow):
        exponent = node.right
        if not (
            isinstance(exponent, ast.Constant)
            and isinstance(exponent.value, int | float)
            and abs(exponent.value) <= MAX_EXPONENT
        ):
            raise _refuse(where, f"an exponent other than a number up to {MAX_EXPONENT}", listed)


def _check_node(
    node: ast.AST, where: str, columns: Collection[str], listed: str, numeric: Collection[str]
) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
        _check_arithmetic(node, where, numeric, listed)
    if isinstance(node, ast.Expression):
        _check_node(node.body, where, columns, listed, numeric)
    elif isinstance(node, ast.BoolOp | ast.UnaryOp | ast.BinOp | ast.Compare):
        ops = node.ops if isinstance(node, ast.Compare) else [node.op]
        for op in ops:
            if type(op) not in _OPERATORS:
                raise _refuse(where, f"the operator {type(op).__name__}", listed)
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.operator | ast.unaryop | ast.boolop | ast.cmpop):
                _check_node(child, where, columns, listed, numeric)
    elif isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise _refuse(where, f"the name {node.id!r}", listed)
        if node.id not in columns:
            close = difflib.get_close_matches(node.id, list(columns), n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ManifestError(f"--where {where!r}: no column {node.id!r}{hint}. The {listed}")
    elif isinstance(node, ast.Constant):
        if type(node.value) not in _LITERALS:
            raise _refuse(where, f"the literal {node.value!r}", listed)
    elif isinstance(node, _CONTAINERS):
        for element in node.elts:
            if not isinstance(element, ast.Constant):
                raise _refuse(where, "anything but literals inside [...]", listed)
            _check_node(element, where, columns, listed, numeric)
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or node.keywords or len(node.args) != 1:
            shown = name or ast.unparse(node.func)
            raise _refuse(where, f"the call {shown}(...)", listed)
        _check_node(node.args[0], where, columns, listed, numeric)
    elif isinstance(node, ast.Attribute):
        raise _refuse(where, f"the attribute access {ast.unparse(node)!r}", listed)
    else:
        raise _refuse(where, f"{ast.unparse(node)!r} ({type(node).__name__})", listed)


def check_query(
    where: str,
    columns: Collection[str],
    stems: Collection[str] = (),
    numeric: Collection[str] | None = None,
) -> None:
    """Refuse `where` with one line unless every token is on the whitelist above."""
    if not isinstance(where, str):
        raise ManifestError(f"--where must be text, got {where!r}")
    if len(where) > MAX_LENGTH:
        raise ManifestError(f"--where is {len(where)} characters; a query has at most {MAX_LENGTH}")
    try:
        tree = ast.parse(where.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ManifestError(
            f"--where {where!r} does not parse ({exc.msg if isinstance(exc, SyntaxError) else exc})"
            f"{_syntax_hint(where)}; see `msaug select --help` for the columns"
        ) from None
    except RecursionError:
        raise ManifestError(f"--where {where!r} nests too deeply") from None
    listed = describe_columns(columns, stems)
    try:
        _check_node(tree, where, columns, listed, columns if numeric is None else numeric)
    except RecursionError:
        raise ManifestError(f"--where {where[:80]!r}... nests too deeply") from None


def unknown_values(where: str, frame: Any) -> str:
    """For a query that selected nothing: the text literals compared with a column that holds
    no such value, with the values it does hold ("mode == 'coherant'": coherent,
    incoherent). Empty when every literal exists."""
    hints = []
    for node in ast.walk(ast.parse(where.strip(), mode="eval")):
        if not isinstance(node, ast.Compare):
            continue
        names = [n.id for n in (node.left, *node.comparators) if isinstance(n, ast.Name)]
        texts = [
            c.value
            for n in (node.left, *node.comparators)
            for c in (n.elts if isinstance(n, ast.List | ast.Tuple) else [n])
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        ]
        for name in names:
            held = {str(v) for v in frame[name].dropna().unique()} if name in frame else set()
            for text in texts:
                if held and text not in held:
                    shown = sorted(held)[:8]
                    more = ", ..." if len(held) > 8 else ""
                    close = difflib.get_close_matches(text, list(held), n=1)
                    guess = f" (did you mean {close[0]!r}?)" if close else ""
                    hints.append(
                        f"{name} has no value {text!r}{guess}; it holds {', '.join(shown)}{more}"
                    )
    return "; ".join(hints)
