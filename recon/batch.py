"""Many clouds, one reconstruction each: a folder, a glob or a list file of clouds.

    from recon.batch import expand_inputs, run_batch
    rows = run_batch(expand_inputs("scans/"), "meshes/", method="csp")

Each cloud is one task (on Ray, or in this process with ``workers=0``) that reads it,
calls :func:`recon.pipeline.reconstruct` and writes ``<out_dir>/<stem>.mesh.ply``. A cloud
that fails is listed with its one-line reason; the others go on.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from recon.errors import InputError

LIST_SUFFIXES = (".list", ".lst")
"A file with one of these suffixes names one cloud per line."


@dataclass
class BatchRow:
    """One cloud's outcome."""

    input: str
    output: str
    ok: bool
    seconds: float = 0.0
    faces: int = 0
    skipped: bool = False
    error: str = ""

    def line(self) -> str:
        """One line for the terminal."""
        if self.skipped:
            return f"skipped  {self.input} -> {self.output} (done before)"
        if self.ok:
            return f"ok       {self.input} -> {self.output} ({self.faces:,} faces, {self.seconds:.1f} s)"
        return f"FAILED   {self.input}: {self.error}"


def is_batch_input(text: str) -> bool:
    """Whether a command-line input names many clouds: a folder, a glob or a list file."""
    p = Path(text)
    return p.is_dir() or glob.has_magic(text) or p.suffix.lower() in LIST_SUFFIXES


def expand_inputs(text: str) -> list[Path]:
    """The clouds named by ``text``: the cloud files in a folder (not its sub-folders),
    the matches of a glob, or the lines of a list file (relative to the list's folder;
    blank lines and ``#`` comments skipped). Sorted, without repeats."""
    from recon.io.clouds import SUPPORTED_CLOUD_EXTENSIONS

    p = Path(text)
    if p.is_dir():
        found = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in SUPPORTED_CLOUD_EXTENSIONS
                 and not q.name.endswith(".mesh.ply")]
    elif glob.has_magic(text):
        found = [Path(q) for q in glob.glob(text) if Path(q).is_file()]
    elif p.suffix.lower() in LIST_SUFFIXES:
        try:
            lines = p.read_text().splitlines()
        except OSError as exc:
            raise InputError(f"cannot read the list {p}: {exc.strerror or exc}") from None
        found = [(p.parent / s.strip()) for s in lines if s.strip() and not s.strip().startswith("#")]
    else:
        found = [p]
    found = sorted(set(found))
    if not found:
        raise InputError(f"no point clouds found in {text}")
    return found


def fit_one_task(source: str, output: str, method: str, options: dict, seed: int, threads: int | None) -> dict:
    """Reconstruct one cloud and write its mesh; returns its row (a failure is a row too)."""
    if threads:
        os.environ["RECON_TORCH_THREADS"] = str(threads)
    from recon.errors import ReconError
    from recon.pipeline import reconstruct

    t = time.perf_counter()
    try:
        result = reconstruct(source, method=method, seed=seed, fit_field=False, **options)
        result.write_mesh(output)
    except ReconError as exc:
        return asdict(BatchRow(source, output, False, time.perf_counter() - t, error=str(exc).splitlines()[0]))
    return asdict(BatchRow(source, output, True, time.perf_counter() - t, faces=int(result.mesh.n_faces)))


def run_batch(inputs, out_dir, *, method: str, options: dict | None = None, seed: int = 0,
              workers: int | None = None, ray_address: str | None = None, resume: bool = False,
              on_row=None, executor=None) -> list[BatchRow]:
    """Reconstruct every cloud of ``inputs`` into ``out_dir`` (created if missing).

    method, options : the fitter and the ``reconstruct`` options of every cloud
    workers, ray_address : as in :func:`recon.tiling.run.reconstruct_tiled`
    resume          : skip clouds whose mesh is already in ``out_dir``
    on_row          : ``on_row(BatchRow)`` as each cloud finishes
    Returns one BatchRow per input, in input order.
    """
    from recon.pipeline import prepare
    from recon.tiling.executor import make_executor

    if method != "auto":  # a named method's options are checked before any cloud is read
        prepare(method, seed=seed, **{k: v for k, v in (options or {}).items()
                                      if k not in ("sample", "voxel_size", "remove_outliers", "min_component")})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = {}
    for src in inputs:
        dst = out / f"{Path(src).stem}.mesh.ply"
        if dst in targets.values():
            raise InputError(f"two inputs would write {dst}: {Path(src).name} and another cloud named alike")
        targets[str(src)] = dst
    rows = {}
    jobs = []
    for src, dst in targets.items():
        if resume and dst.exists():
            rows[src] = BatchRow(src, str(dst), True, skipped=True)
            if on_row is not None:
                on_row(rows[src])
        else:
            jobs.append((src, (src, str(dst), method, dict(options or {}), seed, None)))
    own = executor is None
    executor = executor or make_executor(workers=workers, address=ray_address)
    if executor.name == "ray":
        jobs = [(k, a[:-1] + (1,)) for k, a in jobs]  # one thread per task: the tasks share the cores

    def done(key, result):
        if result is not None:
            rows[key] = BatchRow(**result)
            if on_row is not None:
                on_row(rows[key])

    try:
        outcome = executor.run(fit_one_task, jobs, on_done=done)
    finally:
        if own:
            executor.close()
    for key, message in outcome.failures.items():
        rows[key] = BatchRow(key, str(targets[key]), False, error=message)
        if on_row is not None:
            on_row(rows[key])
    return [rows[str(src)] for src in inputs]
