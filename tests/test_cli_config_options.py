"""recon fit's method options, built from config dataclasses: names, types, help, conversion."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from recon.cli._config_options import attribute_docs, collect_options, option_help, to_typer


@dataclass
class Base:
    steps: int = 10
    """Number of steps,
    written over two lines."""


@dataclass
class AConfig(Base):
    rate: float = 0.5
    "Step size."
    name: str = "x"
    flag: bool = True
    "A switch."
    mode: Literal["fast", "exact"] = "fast"
    "How to go."
    limit: Optional[int] = None
    "At most this many; None for no limit."
    box: tuple[float, float, float] = (1.0, 2.0, 3.0)
    "Three sizes."
    table: dict = dataclasses.field(default_factory=dict, metadata={"help": "Anything, as a Python literal."})
    seed: int = 0
    "Random seed."


@dataclass
class BConfig:
    rate: float = 0.1
    "Another method's step size."
    only_b: int = 3


class Spec:
    def __init__(self, name, cls):
        self.name, self.config_cls = name, cls


def test_attribute_docs_reads_docstrings_metadata_and_base_classes():
    docs = attribute_docs(AConfig)
    assert docs["steps"] == "Number of steps, written over two lines."
    assert docs["rate"] == "Step size." and docs["flag"] == "A switch."
    assert docs["table"] == "Anything, as a Python literal."
    assert "name" not in docs  # no docstring written: no help invented


def test_union_of_configs_with_every_default_and_reserved_names_left_out():
    options = {o.name: o for o in collect_options([Spec("a", AConfig), Spec("b", BConfig)], reserved=("seed",))}
    assert "seed" not in options
    assert set(options) == {"steps", "rate", "name", "flag", "mode", "limit", "box", "table", "only_b"}
    assert options["rate"].defaults == {"a": 0.5, "b": 0.1} and options["rate"].help == "Step size."
    assert options["only_b"].methods == ["b"]
    # a field each method documents its own way: each says its own
    assert option_help(options["rate"]) == "a: Step size. (default 0.5) | b: Another method's step size. (default 0.1)"
    assert option_help(options["name"]) == "(undocumented) (a default: 'x')"
    assert option_help(options["steps"]) == "Number of steps, written over two lines. (a default: 10)"
    assert options["limit"].flag == "--limit" and options["only_b"].flag == "--only-b"


def test_a_field_documented_alike_lists_every_default_once():
    @dataclass
    class C1:
        n: int = 1
        "How many."

    @dataclass
    class C2:
        n: int = 2
        "How many."

    (opt,) = collect_options([Spec("one", C1), Spec("two", C2)])
    assert option_help(opt) == "How many. (defaults: one 1, two 2)"


def _typer(name):
    (opt,) = [o for o in collect_options([Spec("a", AConfig)]) if o.name == name]
    return to_typer(opt)


def test_types_map_to_options_and_values_convert_back():
    flag = _typer("flag")
    assert flag.annotation == Optional[bool] and flag.option.param_decls[0] == "--flag/--no-flag"
    assert flag.option.default is None  # unset stays distinguishable from False
    mode = _typer("mode")
    choice = typing.get_args(mode.annotation)[0]
    assert [c.value for c in choice] == ["fast", "exact"]
    assert mode.convert(choice("exact")) == "exact" and type(mode.convert(choice("exact"))) is str
    assert _typer("limit").annotation == Optional[int]
    box = _typer("box")
    assert box.convert([1.0, 2.5, 3.0]) == (1.0, 2.5, 3.0)
    table = _typer("table")
    assert table.annotation == Optional[str]
    assert table.convert("{'a': 1}") == {"a": 1} and table.convert("plain") == "plain"


@pytest.mark.parametrize("name", ["steps", "rate", "name", "flag", "mode", "limit", "box", "table"])
def test_every_option_defaults_to_none(name):
    assert _typer(name).option.default is None
