"""``recon bench``: every method on every case, each run in its own process; tables, JSON, plot, meshes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer

from recon.cli._common import info, print_json, user_errors

HELP = """Benchmark every method (recon fitters and Open3D baselines) on benchmark cases.

A case is a folder with input.* (a point cloud), an optional gt.* ground-truth mesh and an optional meta.json. Without --cases, the shared cases in <repository>/../shared/data/bench are used.

Each (case, method, repeat) runs in its own child process: a crash, a time-out or running out of memory is recorded as that run's failure and the bench carries on. Wall time is measured around the method call inside the child (start-up, imports, reading and one untimed warm-up excluded).

Writes into --out: results.json (every figure, settings, library versions, machine), results.md (one table per measure), quality_vs_time.png and meshes/<case>/<method>.ply. Quality is measured point-to-surface against gt.* (Chamfer-L1/L2, normal consistency, F-score at 0.2 %, 0.5 %, 1 % of the GT diagonal), or against the input points where there is none.

--report PATH also writes the benchmark page: the run's settings and machine, a summary per method against the better of Open3D's Poisson and ball pivoting, and every table. --from-results DIR/results.json --report PATH writes it again from an earlier run, running nothing.
"""


def _names(text: Optional[str], option: str) -> list[str] | None:
    from recon.errors import InputError

    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(f"{option}: give one or more comma-separated names")
    return names


def _command_line(cases, methods, only, out, repeat, timeout, memory_limit, samples, seed, report) -> str:
    """The command as the user could type it again (for results.json and results.md)."""
    parts = ["recon", "bench"]
    for flag, value, default in (
        ("--cases", cases, None),
        ("--methods", methods, None),
        ("--only", only, None),
        ("--out", out, Path("bench-results")),
        ("--repeat", repeat, 1),
        ("--timeout", timeout, 600.0),
        ("--memory-limit", memory_limit, None),
        ("--samples", samples, 100_000),
        ("--seed", seed, 0),
        ("--report", report, None),
    ):
        if value is not None and value != default:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def _report_from_results(results: Path, report: Path | None, *, cases, methods, only, quiet: bool) -> None:
    """Write the benchmark page from an earlier run's results.json; run nothing."""
    from recon.bench.document import load_results, write_document
    from recon.errors import InputError

    if report is None:
        raise InputError("--from-results needs --report PATH: the page to write from those results")
    given = [flag for flag, value in (("--cases", cases), ("--methods", methods), ("--only", only)) if value is not None]
    if given:
        raise InputError(f"--from-results runs nothing, so {', '.join(given)} cannot apply: drop them")
    data = load_results(results)
    source = results / "results.json" if results.is_dir() else results
    path = write_document(data, report, source=str(source), inputs=[source])
    info(f"wrote {path} from {source}", quiet=quiet)


def register(app: typer.Typer) -> None:
    app.command("bench", help=HELP, short_help="Benchmark methods on cases: quality, time, memory.")(bench)


@user_errors
def bench(
    cases: Optional[Path] = typer.Option(None, "--cases", help="Folder of cases (or one case folder). Default: ../shared/data/bench next to the repository.", show_default=False),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated methods (default: all; see --list).", show_default=False),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated case names to run (default: all).", show_default=False),
    out: Path = typer.Option(Path("bench-results"), "--out", "-o", help="Output folder (created; files in it are replaced)."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Runs per case and method; timings give median and min-max. Method order rotates per repeat."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.001, help="Seconds a method call may run; past it its child is killed and the run recorded as 'timeout'."),
    memory_limit: Optional[float] = typer.Option(None, "--memory-limit", min=0.001, help="GiB of address space per child; past it a run fails 'out of memory'. Default: half the machine's memory.", show_default=False),
    memory_mode: str = typer.Option("auto", "--memory-mode", help="How --memory-limit is enforced: address-space (RLIMIT_AS in the child), resident (the child is killed once its resident memory passes it) or auto (resident where an NVIDIA GPU is visible, since CUDA needs a large address space)."),
    samples: int = typer.Option(100_000, "--samples", min=1, help="Surface samples per mesh for the metrics."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the metric sampling."),
    list_methods: bool = typer.Option(False, "--list", help="List the methods and the cases, then exit."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json on stdout (progress stays on stderr)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the benchmark page (Markdown) here, e.g. docs/benchmarks.md.", show_default=False),
    from_results: Optional[Path] = typer.Option(None, "--from-results", help="Run nothing: write --report from this earlier run's results.json (or its folder).", show_default=False),
) -> None:
    import recon.bench
    from recon.bench.cases import discover_cases
    from recon.bench.methods import all_methods
    from recon.bench.runner import BenchSettings, resolve_memory_mode

    if from_results is not None:
        _report_from_results(from_results, report, cases=cases, methods=methods, only=only, quiet=quiet)
        return
    method_names = _names(methods, "--methods")
    case_names = _names(only, "--only")
    if list_methods:
        for name, m in all_methods().items():
            typer.echo(f"{name:14s} {m.kind:8s} {m.description}")
        try:
            found = discover_cases(cases, only=case_names)
            typer.echo("cases: " + ", ".join(c.name + ("" if c.gt else " (no gt)") for c in found))
        except Exception as exc:  # the list of methods is still useful without cases
            typer.echo(f"cases: {exc}")
        return
    settings = BenchSettings(
        repeat=repeat,
        timeout_s=timeout,
        memory_limit_bytes=None if memory_limit is None else int(memory_limit * 1024**3),
        memory_mode=resolve_memory_mode(memory_mode),
        n_samples=samples,
        seed=seed,
    )
    command = _command_line(cases, methods, only, out, repeat, timeout, memory_limit, samples, seed, report)
    data = recon.bench.run(
        cases,
        out_dir=out,
        methods=method_names,
        only=case_names,
        settings=settings,
        command=command,
        report=report,
        log=lambda line: info(line, quiet=quiet),
    )
    failed = [r for r in data["runs"] if not r["ok"]]
    info(
        f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'quality_vs_time.png'} and {out / 'meshes'}/"
        + (f" and {report}" if report is not None else "")
        + (f"; {len(failed)} of {len(data['runs'])} runs failed (see results.md)" if failed else ""),
        quiet=quiet,
    )
    if as_json:
        from recon.bench.report import json_safe

        print_json(json_safe({k: v for k, v in data.items() if k != "paths"}))
