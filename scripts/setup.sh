#!/usr/bin/env bash
# Set up recon from a clean clone: system libraries, a Python 3.11 virtualenv in .venv,
# and the project installed into it (editable, with the test tools).
#
#   bash scripts/setup.sh            # then: .venv/bin/recon --help
#   bash scripts/setup.sh --test     # also what only the tests need (scripts/test.sh does this)
#
# Idempotent: a second run installs nothing new and takes a few seconds. Needs no input
# (CI runs it with no stdin). Environment:
#   PYTHON=/path/to/python3.11   the interpreter for the venv (default: python3.11, python3)
#   RECON_VENV=.venv             where the venv goes
#   RECON_SKIP_APT=1             never call apt-get (only report missing libraries)
#   RECON_EXTRAS=test,web,video,csp,ray  the optional-dependency groups to install (comma-separated)
set -euo pipefail

FOR_TESTS=0
for arg in "$@"; do
    case "$arg" in
        --test) FOR_TESTS=1 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) printf 'setup: unknown option %s (use --test or --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
VENV="${RECON_VENV:-$ROOT/.venv}"
EXTRAS="${RECON_EXTRAS:-test,web,video,csp,ray}"

say() { printf 'setup: %s\n' "$*" >&2; }

# --------------------------------------------------------------------------- system libraries
# Shared libraries the wheels load but do not ship (found with ldd over the installed
# wheels): Open3D needs libusb-1.0 and libgomp, Open3D and VTK (pyvista) need libGL/libEGL,
# X11 client libraries for VTK's render windows. Offscreen rendering without a GPU or a
# display (recon view --screenshot, recon render's previews) goes through Mesa's EGL and
# its software rasteriser: libegl-mesa0 and libgl1-mesa-dri (only "recommended" by the
# others, so named here).
DEB_PACKAGES=(libusb-1.0-0 libgomp1 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libx11-6 libxrender1)
# The tests also drive `recon view --web` in a real headless browser.
TEST_DEB_PACKAGES=(chromium)
if ((FOR_TESTS)); then DEB_PACKAGES+=("${TEST_DEB_PACKAGES[@]}"); fi

PYTHON_BIN="${PYTHON:-}"
if [[ -z "$PYTHON_BIN" ]]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            PYTHON_BIN="$(command -v "$candidate")"
            break
        fi
    done
fi

# Debian's own python3.11 comes without venv/ensurepip: that is one more package.
if [[ -z "$PYTHON_BIN" ]]; then
    DEB_PACKAGES+=(python3.11 python3.11-venv)
elif [[ ! -x "$VENV/bin/python" ]] && ! "$PYTHON_BIN" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    DEB_PACKAGES+=("python$("$PYTHON_BIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${DEB_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
else
    say "not a Debian system (no dpkg): make sure these libraries are installed: ${DEB_PACKAGES[*]}"
fi

if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 && -z "${RECON_SKIP_APT:-}" ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    else
        say "missing system packages: ${missing[*]}"
        say "install them with: sudo apt-get install ${missing[*]}   (then run this script again)"
        [[ -n "${RECON_SKIP_APT:-}" ]] || exit 1
    fi
fi

if [[ -z "$PYTHON_BIN" ]]; then
    PYTHON_BIN="$(command -v python3.11 || true)"
    [[ -n "$PYTHON_BIN" ]] || { say "no Python >= 3.11 found; set PYTHON=/path/to/python3.11"; exit 1; }
fi

# --------------------------------------------------------------------------- virtualenv
if [[ -x "$VENV/bin/python" ]] &&
    ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    say "$VENV holds an unusable or too old Python: recreating it"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV with $PYTHON_BIN ($("$PYTHON_BIN" --version 2>&1))"
    "$PYTHON_BIN" -m venv "$VENV"
fi

# --------------------------------------------------------------------------- the project
# torch is deliberately not a dependency: nothing in recon's CPU path needs it, and a bare
# `pip install torch` on a CPU-only machine pulls a multi-GB CUDA build. A future network
# fitter brings it as an optional extra (`.[csp]`) pinned to a CPU build where one exists.
# open3d comes as `open3d-cpu` on x86_64 (see pyproject.toml) for the same reason.
STAMP="$VENV/.recon-setup"
want="$( (cat pyproject.toml scripts/setup.sh; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c 'import recon.cli.main' >/dev/null 2>&1; then
    say "recon already installed in $VENV (pyproject.toml unchanged)"
else
    say "installing recon (editable) and its dependencies into $VENV"
    export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
    # (the filter drops pip's notes about local index folders this machine's pip config
    # names but does not have; pip's own exit status still decides, through pipefail)
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]" </dev/null 2>&1 |
        { grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" || true; }
    echo "$want" >"$STAMP"
fi

"$VENV/bin/python" -c 'import recon, open3d, numba, trimesh' >/dev/null ||
    { say "the installed packages do not import (see the error above)"; exit 1; }
say "ready: $VENV/bin/recon --help"
