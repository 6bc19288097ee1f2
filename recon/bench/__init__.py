"""The benchmark: every method (recon fitters and Open3D baselines) on every case, each run isolated.

    from recon.bench import run
    data = run(None, methods=["o3d-poisson"], only=["bunny"], out_dir="bench-results")

Modules: :mod:`.cases` (discover case folders), :mod:`.methods` (the method registry),
:mod:`.baselines` (Open3D Poisson and ball pivoting), :mod:`.child` (one run in its own
process), :mod:`.runner` (run and measure), :mod:`.report` (results.json, results.md, plot),
:mod:`.document` (the benchmark page of ``recon bench --report``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def run(
    cases_dir: str | Path | None = None,
    *,
    out_dir: str | Path,
    methods: list[str] | None = None,
    only: list[str] | None = None,
    settings=None,
    command: str | None = None,
    report: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Discover cases, run the methods, write results.json / results.md / the plot / meshes into ``out_dir``.

    ``cases_dir`` None: the shared cases (``<repo>/../shared/data/bench``). ``report``: also
    write the benchmark page there (:mod:`recon.bench.document`). Returns the results dict
    (as written to results.json, plus ``paths``).
    """
    from recon.bench.cases import discover_cases
    from recon.bench.methods import select_methods
    from recon.bench.report import write_outputs
    from recon.bench.runner import BenchSettings, run_bench
    from recon.errors import InputError

    cases = discover_cases(None if cases_dir is None else Path(cases_dir), only=only)
    chosen = select_methods(methods)
    out = Path(out_dir)
    inputs = [p for c in cases for p in (c.input, c.gt) if p is not None]
    for c in cases:
        try:
            if out.resolve() == c.folder.resolve() or c.folder.resolve() in out.resolve().parents:
                raise InputError(f"--out {out} lies inside the case folder {c.folder}: choose another output folder")
        except OSError:
            pass
    if report is not None:  # checked before the run, which may take hours
        if Path(report).resolve() in {(out / name).resolve() for name in ("results.json", "results.md")}:
            raise InputError(f"--report {report} would replace the run's own {Path(report).name}: choose another path")
        if not Path(report).resolve().parent.is_dir() and Path(report).resolve().parent != out.resolve():
            raise InputError(f"--report: the folder of {report} does not exist")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot create {out} ({exc.strerror})") from None
    data = run_bench(cases, chosen, out_dir=out, settings=settings or BenchSettings(), log=log)
    paths = write_outputs(data, out, command=command, inputs=inputs)
    if report is not None:
        from recon.bench.document import write_document

        paths["report"] = write_document(data, report, source=str(paths["json"]), inputs=[*inputs, paths["json"]])
    data["paths"] = {k: str(v) for k, v in paths.items()}
    return data
