#!/usr/bin/env bash
# Build edge from scratch in .venv/ next to this script, then install the A0 model.
# Running it again is harmless: the venv is reused and a model whose sha256
# matches is not downloaded again. See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [options]

Creates .venv/ next to this script (if missing), installs edge into it
(editable), and installs the MoViNet-A0 model and the Kinetics-600 labels.

Options:
  --dev               also install the test tools (pip install -e '.[dev]')
  --models-from DIR   copy the model files from DIR instead of downloading them
                      (sha256 still checked; same as EDGE_MODELS_FROM=DIR)
  --no-models         do not install any model
  --tflite-runtime    use tflite-runtime (with numpy<2) instead of ai-edge-litert;
                      done automatically when ai-edge-litert cannot be installed
  --system            install as a system service (not yet supported)
  -h, --help          show this help

Environment:
  PYTHON              the Python to build the venv with (default python3, >= 3.11)
  EDGE_MODELS_FROM    as --models-from
  EDGE_MODEL_DIR      where models go (default: models/ in this checkout)

Exit status: 0 done; 1 the venv could not be built; 2 bad usage;
3 the venv is ready but the model could not be installed.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
DEV=0
MODELS=1
MODELS_FROM="${EDGE_MODELS_FROM:-}"
FORCE_TFLITE=0
SYSTEM=0

export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'install: %s\n' "$*"; }
die() {
    printf 'install: error: %s\n' "$*" >&2
    exit 1
}
usage_error() {
    printf 'install: error: %s (see ./install.sh --help)\n' "$*" >&2
    exit 2
}

parse_args() {
    while (($#)); do
        case "$1" in
            --dev) DEV=1 ;;
            --no-models) MODELS=0 ;;
            --tflite-runtime) FORCE_TFLITE=1 ;;
            --system) SYSTEM=1 ;;
            --models-from)
                (($# >= 2)) || usage_error "--models-from needs a folder"
                MODELS_FROM="$2"
                shift
                ;;
            --models-from=*) MODELS_FROM="${1#--models-from=}" ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) usage_error "unknown option $1" ;;
        esac
        shift
    done
    if [[ -n "$MODELS_FROM" ]]; then
        # resolved against the caller's folder, before anything changes it
        [[ -d "$MODELS_FROM" ]] || usage_error "model folder $MODELS_FROM does not exist"
        MODELS_FROM="$(cd "$MODELS_FROM" && pwd)"
    fi
}

# --------------------------------------------------------------------------- system install
# Placeholder for the system-wide install (service user, /opt/edge, /etc/edge,
# /var/lib/edge/models, the systemd unit). Another issue fills this in.
system_install() {
    printf 'install: --system is not yet supported\n' >&2
    exit 2
}

# --------------------------------------------------------------------------- venv

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 ||
        die "$PYTHON not found: install Python 3.11 or newer (sudo apt install python3 python3-venv), or set PYTHON=/path/to/python3"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "edge needs Python 3.11 or newer but $PYTHON is $("$PYTHON" -V 2>&1): use Raspberry Pi OS Bookworm, or set PYTHON=/path/to/python3.11"
}

make_venv() {
    if [[ -e "$VENV" ]]; then
        if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
            ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
            die "$VENV exists but is broken or too old: remove it (rm -rf $VENV) and run ./install.sh again"
        fi
        say "using the existing $VENV"
    else
        say "creating $VENV with $("$PYTHON" -V 2>&1)"
        if ! "$PYTHON" -m venv "$VENV"; then
            rm -rf "$VENV" # never leave a venv without pip behind
            die "could not create the venv: install the venv module (sudo apt install python3-venv) and run again"
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip || die "could not upgrade pip in $VENV: check the network"
}

# The project's requirements from pyproject.toml (one a line, markers kept), without $1.
requirements_without() {
    "$VENV/bin/python" - "$ROOT/pyproject.toml" "$DEV" "$1" <<'PY'
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
reqs = list(project.get("dependencies", []))
if sys.argv[2] == "1":
    reqs += project.get("optional-dependencies", {}).get("dev", [])
skip = sys.argv[3].lower().replace("_", "-")
for req in reqs:
    name = re.match(r"[A-Za-z0-9._-]+", req.strip()).group(0).lower().replace("_", "-")
    if name != skip:
        print(req)
PY
}

install_package() {
    local target="$ROOT"
    if ((DEV)); then
        target="${ROOT}[dev]"
    fi
    local pip=("$VENV/bin/python" -m pip install --quiet)
    say "installing edge and its dependencies into $VENV (minutes on a Pi Zero)"
    if ((!FORCE_TFLITE)); then
        local litert
        litert="$("$VENV/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
print(next((d.split(";")[0].strip() for d in deps if d.lower().startswith("ai-edge-litert")), "ai-edge-litert"))
PY
)"
        if "${pip[@]}" "$litert"; then
            "${pip[@]}" -e "$target" || die "pip install -e $target failed: see the pip output above"
            return 0
        fi
        say "ai-edge-litert cannot be installed on this platform ($(uname -m), $("$VENV/bin/python" -V 2>&1))"
    fi
    say "falling back to tflite-runtime with numpy<2 (about 10x slower than ai-edge-litert)"
    local reqs
    mapfile -t reqs < <(requirements_without ai-edge-litert)
    "${pip[@]}" tflite-runtime 'numpy<2' "${reqs[@]}" ||
        die "could not install tflite-runtime either (it has wheels for Python <= 3.11 only): check the network and the Python version"
    "${pip[@]}" --no-deps -e "$target" || die "pip install -e $target failed: see the pip output above"
}

# --------------------------------------------------------------------------- models

install_models() {
    local edge="$VENV/bin/edge"
    if ((!MODELS)); then
        say "skipping the models (--no-models)"
        return 0
    fi
    local args=(models fetch a0)
    if [[ -n "$MODELS_FROM" ]]; then
        say "installing the A0 model from $MODELS_FROM"
        args+=(--from "$MODELS_FROM")
    else
        say "installing the A0 model"
    fi
    if ! "$edge" "${args[@]}"; then
        printf 'install: error: the model could not be installed (see above); the venv is ready, so fix that and run: %s %s\n' \
            "$(shown "$edge")" "${args[*]}" >&2
        exit 3
    fi
}

# A path as the user would type it from where they are.
shown() {
    if [[ "$PWD" == "$ROOT" ]]; then
        printf '%s' "${1#"$ROOT"/}"
    else
        printf '%s' "$1"
    fi
}

next_steps() {
    local edge
    edge="$(shown "$VENV/bin/edge")"
    cat <<EOF

edge is installed in $(shown "$VENV"). Next:
  $edge doctor                  check this board and the install
  $edge classify VIDEO.mp4      classify a video file
  $edge run                     run the daemon (config: \$EDGE_CONFIG, /etc/edge/config.yaml or ./config.yaml)
EOF
    if ((DEV)); then
        printf '  %s -m pytest -q          run the tests\n' "$(shown "$VENV/bin/python")"
    fi
}

main() {
    parse_args "$@"
    if ((SYSTEM)); then
        system_install
    fi
    check_python
    make_venv
    install_package
    install_models
    next_steps
}

main "$@"
