"""The `recon` command line: a typer app over the library (no logic lives here).

Each subcommand is one module ``cli/<name>.py`` (installed as ``recon.cli.<name>``) that
defines ``register(app)``; adding a command is one new file and one name below.
"""

from __future__ import annotations

import importlib

import typer

COMMANDS = ["info", "fit", "mesh", "eval", "render", "bench", "view", "normals"]

app = typer.Typer(
    name="recon",
    help="Point clouds to surfaces and pictures: fit a field, mesh it, render it, measure it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"recon.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"recon.cli.{name}":
                continue  # command not built yet
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
