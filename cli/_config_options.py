"""Command-line options built from fitter config dataclasses (nerfstudio style).

Every field of every registered config becomes one option of ``recon fit``:

- name: ``learning_rate`` -> ``--learning-rate``;
- type: from the annotation (``int``, ``float``, ``str``, ``bool`` -> ``--x/--no-x``,
  ``Literal[...]`` -> a choice, ``X | None`` -> ``X``, fixed-length ``tuple[...]`` -> that
  many values; anything else is read as a Python literal);
- help: ``dataclasses.field(metadata={"help": ...})`` if given, else the string
  literal written on the line after the field (its attribute docstring, read with
  ``ast`` from the class source), plus each method's default.

Every option defaults to None, so the command can tell what the user set and pass
only that to the chosen method (the rest keeps the config's own defaults).
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union


def attribute_docs(config_cls: type) -> dict[str, str]:
    """Field name -> help text of a config dataclass (metadata ``help`` wins over docstrings)."""
    docs: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError, IndentationError):
            continue
        node = tree.body[0] if tree.body else None
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for stmt, nxt in zip(body, body[1:]):
            if (
                isinstance(stmt, (ast.AnnAssign, ast.Assign))
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                targets = [stmt.target] if isinstance(stmt, ast.AnnAssign) else stmt.targets
                for target in targets:
                    if isinstance(target, ast.Name):
                        docs[target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    if dataclasses.is_dataclass(config_cls):
        for f in dataclasses.fields(config_cls):
            if "help" in f.metadata:
                docs[f.name] = " ".join(str(f.metadata["help"]).split())
    return docs


@dataclass
class ConfigOption:
    """One ``recon fit`` option: a config field shared by one or more methods."""

    name: str
    "The dataclass field name (the Python keyword)."
    annotation: Any
    "The field's type, resolved."
    helps: dict[str, str]
    "Method name -> that method's help text for the field ('' when undocumented)."
    defaults: dict[str, Any]
    "Method name -> that method's default for the field."

    @property
    def help(self) -> str:
        """The first method's non-empty help text ('' when none documents the field)."""
        return next((text for text in self.helps.values() if text), "")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def methods(self) -> list[str]:
        return list(self.defaults)


_MISSING = object()


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        try:
            return f.default_factory()  # type: ignore[misc]
        except Exception:
            return _MISSING
    return _MISSING


def collect_options(specs, *, reserved=()) -> list[ConfigOption]:
    """The union of the config fields of ``specs`` (FitterSpec-like: ``name``, ``config_cls``).

    Fields named in ``reserved`` (the command's own options) are left out; the command
    maps those itself. The first method declaring a field decides its type.
    """
    options: dict[str, ConfigOption] = {}
    for spec in specs:
        cls = spec.config_cls
        try:
            hints = typing.get_type_hints(cls)
        except Exception:
            hints = {}
        docs = attribute_docs(cls)
        for f in dataclasses.fields(cls):
            if not f.init or f.name in reserved or f.name.startswith("_"):
                continue
            default = _default_of(f)
            if f.name not in options:
                options[f.name] = ConfigOption(
                    name=f.name, annotation=hints.get(f.name, str), helps={}, defaults={}
                )
            opt = options[f.name]
            opt.helps[spec.name] = docs.get(f.name, "")
            opt.defaults[spec.name] = default
    return list(options.values())


# ----------------------------------------------------------------------------- typer


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin is Union or origin is getattr(types, "UnionType", None):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


@dataclass
class TyperParam:
    """How one option appears to typer, and how to turn what typer gives back into the field value."""

    annotation: Any
    option: Any
    convert: Any


def _show(value) -> str:
    if value is _MISSING:
        return "required"
    if isinstance(value, enum.Enum):
        value = value.value
    return repr(value) if isinstance(value, str) else str(value)


def option_help(opt: ConfigOption) -> str:
    """The --help text: the field's docstring and each method's default; when methods
    document the same field differently (it means something else to each), each says its
    own. Parentheses, not brackets: typer's rich help would take [..] for markup."""
    texts = {m: opt.helps.get(m, "") for m in opt.defaults}
    distinct = {t for t in texts.values() if t}
    if len(distinct) > 1:
        return " | ".join(f"{m}: {texts[m] or '(undocumented)'} (default {_show(v)})" for m, v in opt.defaults.items())
    text = next(iter(distinct), "(undocumented)")
    if len(opt.defaults) == 1:
        ((method, value),) = opt.defaults.items()
        return f"{text} ({method} default: {_show(value)})"
    return f"{text} (defaults: " + ", ".join(f"{m} {_show(v)}" for m, v in opt.defaults.items()) + ")"


def to_typer(opt: ConfigOption, *, panel: str = "Method options") -> TyperParam:
    """The annotation and ``typer.Option`` for ``opt`` (every option defaults to None)."""
    import typer

    tp = _unwrap_optional(opt.annotation)
    origin = typing.get_origin(tp)
    help_text = option_help(opt)
    common = dict(help=help_text, show_default=False, rich_help_panel=panel)
    identity = lambda v: v  # noqa: E731

    if tp is bool:
        flag = opt.flag
        negative = "--no-" + flag[2:]
        return TyperParam(Optional[bool], typer.Option(None, f"{flag}/{negative}", **common), identity)
    if tp in (int, float, str):
        return TyperParam(Optional[tp], typer.Option(None, opt.flag, **common), identity)
    if origin is Literal:
        values = typing.get_args(tp)
        if all(isinstance(v, str) for v in values):
            choice = enum.Enum(f"{opt.name.title().replace('_', '')}Choice", {v: v for v in values}, type=str)
            return TyperParam(Optional[choice], typer.Option(None, opt.flag, **common), lambda v: None if v is None else v.value)
    if origin is tuple:
        args = typing.get_args(tp)
        if args and Ellipsis not in args and all(a in (int, float, str) for a in args):
            return TyperParam(
                Optional[typing.Tuple[args]],  # type: ignore[valid-type]
                typer.Option(None, opt.flag, **common),
                lambda v: None if v is None else tuple(v),
            )

    def literal(text):
        if text is None:
            return None
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    return TyperParam(Optional[str], typer.Option(None, opt.flag, metavar="VALUE", **common), literal)
