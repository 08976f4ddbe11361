#!/usr/bin/env bash
# Build edge from scratch in .venv/ next to this script, then install the A0 model.
# Running it again is harmless: the venv is reused and a model whose sha256
# matches is not downloaded again. See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [options]                  development install (.venv/ here)
       sudo ./install.sh --system [options]    the always-on service
       sudo ./install.sh --uninstall [--purge]

Without --system: creates .venv/ next to this script (if missing), installs edge
into it (editable), and installs the MoViNet-A0 model and the Kinetics-600 labels.

With --system: edge in /opt/edge (a venv that also sees the apt packages
python3-picamera2 and python3-libcamera), /etc/edge/config.yaml (never
overwritten: a changed default goes to config.yaml.new), the model in
/var/lib/edge/models, the `edge` system user (in the video, gpio and render
groups), the systemd unit edge.service (enabled and started) and /usr/local/bin/edge.
Running it again changes nothing that is already right.

Options:
  --dev               also install the test tools (pip install -e '.[dev]')
  --with notify       also install Apprise for the notify sink (pip extra edge[notify]); with
                      --system this happens by itself when /etc/edge/config.yaml has a notify sink
  --models-from DIR   copy the model files from DIR instead of downloading them
                      (sha256 still checked; same as EDGE_MODELS_FROM=DIR)
  --no-models         do not install any model
  --tflite-runtime    use tflite-runtime (with numpy<2) instead of ai-edge-litert;
                      done automatically when ai-edge-litert cannot be installed, and
                      always on 32-bit Arm (armv7l: numpy, OpenCV, PyYAML, PyAV from apt)
  --system            install as a system service (run with sudo)
  --uninstall         stop and remove the service and /opt/edge; keeps the config
                      (/etc/edge), the models (/var/lib/edge) and the logs (/var/log/edge)
  --purge             with --uninstall (or alone): also remove those and the edge user
  --root DIR          with --system/--uninstall: work in the staging root DIR (DIR/opt/edge,
                      DIR/etc/edge, ...) and leave this machine alone: no user, no systemctl
  -h, --help          show this help

Environment:
  PYTHON              the Python to build the venv with (default python3, >= 3.11;
                      with --system /usr/bin/python3, the one apt's picamera2 is for)
  EDGE_MODELS_FROM    as --models-from
  EDGE_MODEL_DIR      where models go (default: models/ in this checkout; ignored
                      with --system: always /var/lib/edge/models)

Exit status: 0 done; 1 the venv could not be built (or another step failed);
2 bad usage; 3 the venv is ready but the model could not be installed.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
PYTHON_GIVEN="${PYTHON:-}"
PYTHON="${PYTHON:-python3}"
DEV=0
WITH=() # optional extras (--with notify): pip install 'edge[notify]'
MODELS=1
MODELS_FROM="${EDGE_MODELS_FROM:-}"
FORCE_TFLITE=0
SYSTEM=0
UNINSTALL=0
PURGE=0
DESTROOT=""
PIP_CONSTRAINTS=()
VENV_ARGS=()
PKG_SOURCE="" # with --system: a clean copy of the package source, installed non-editable

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
            --with)
                (($# >= 2)) || usage_error "--with needs an extra: notify"
                [[ "$2" == notify ]] || usage_error "unknown extra $2 for --with (known: notify)"
                WITH+=("$2")
                shift
                ;;
            --with=*)
                [[ "${1#--with=}" == notify ]] || usage_error "unknown extra ${1#--with=} for --with (known: notify)"
                WITH+=("${1#--with=}")
                ;;
            --no-models) MODELS=0 ;;
            --tflite-runtime) FORCE_TFLITE=1 ;;
            --system) SYSTEM=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge)
                UNINSTALL=1
                PURGE=1
                ;;
            --root)
                (($# >= 2)) || usage_error "--root needs a folder"
                DESTROOT="$2"
                shift
                ;;
            --root=*) DESTROOT="${1#--root=}" ;;
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
    if ((UNINSTALL && DEV)); then
        usage_error "--dev is for the development install, not with --uninstall"
    fi
    if [[ -n "$DESTROOT" ]]; then
        ((SYSTEM || UNINSTALL)) || usage_error "--root goes with --system or --uninstall"
        mkdir -p "$DESTROOT" || usage_error "cannot create the staging root $DESTROOT"
        DESTROOT="$(cd "$DESTROOT" && pwd)"
        [[ "$DESTROOT" != / ]] || DESTROOT=""
    fi
}

# --------------------------------------------------------------------------- system install
# sudo ./install.sh --system: the service. Every step compares before it writes, so
# a second run says "unchanged" for each part and changes nothing. With --root DIR
# every path is under DIR and the live system (users, apt, systemctl) is left alone.

SERVICE_USER=edge
EXTRA_GROUPS=(gpio render) # edge.service lists video itself; these only where they exist
APT_PACKAGES=(python3-picamera2 python3-gpiozero python3-lgpio)
MARKER="written by install.sh" # drop-ins carrying it are ours to replace or remove
CHANGES=0
TMPD=""

changed() {
    CHANGES=$((CHANGES + 1))
    say "$*"
}

live() { [[ -z "$DESTROOT" ]]; }

systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

system_paths() {
    OPT="$DESTROOT/opt/edge"
    VENV="$OPT/venv"
    STAMP="$OPT/installed.txt" # what the venv was built from: a rebuild only when it differs
    DEFAULT_RECORD="$OPT/config.yaml.default" # the shipped config.yaml last installed or offered
    ETC="$DESTROOT/etc/edge"
    STATE="$DESTROOT/var/lib/edge"
    MODEL_DIR="$STATE/models"
    LOGS="$DESTROOT/var/log/edge"
    UNIT_DIR="$DESTROOT/etc/systemd/system"
    UNIT="$UNIT_DIR/edge.service"
    DROPINS="$UNIT_DIR/edge.service.d"
    LINK="$DESTROOT/usr/local/bin/edge"
}

# put_file SRC DEST MODE [GROUP]: install SRC as DEST unless DEST already has that content and mode.
put_file() {
    local src="$1" dest="$2" mode="$3" group="${4:-}"
    if [[ -f "$dest" && ! -L "$dest" ]] && cmp -s "$src" "$dest" && [[ "$(stat -c %a "$dest")" == "${mode#0}" ]] &&
        [[ -z "$group" || "$(stat -c %G "$dest")" == "$group" ]]; then
        say "unchanged $dest"
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    local opts=(-m "$mode")
    if [[ -n "$group" ]]; then
        opts+=(-g "$group")
    fi
    install "${opts[@]}" "$src" "$dest"
    changed "wrote $dest"
}

remove_path() {
    if [[ -e "$1" || -L "$1" ]]; then
        rm -rf "$1"
        changed "removed $1"
    fi
}

# Remove a drop-in only if install.sh wrote it; say so when it is somebody else's.
remove_ours() {
    if [[ ! -f "$1" ]]; then
        return 0
    fi
    if grep -q "$MARKER" "$1"; then
        rm -f "$1"
        changed "removed $1"
    else
        say "left $1 alone (not written by install.sh)"
    fi
}

# put_dropin SRC DEST: as put_file, but a drop-in somebody else wrote is left alone.
put_dropin() {
    if [[ -f "$2" ]] && ! grep -q "$MARKER" "$2"; then
        say "left $2 alone (not written by install.sh)"
        return 0
    fi
    put_file "$1" "$2" 0644
}

group_exists() {
    if live; then
        getent group "$1" >/dev/null
    else
        [[ -f "$DESTROOT/etc/group" ]] && grep -q "^$1:" "$DESTROOT/etc/group"
    fi
}

in_group() { id -nG "$1" 2>/dev/null | tr ' ' '\n' | grep -qx "$2"; }

system_preflight() {
    if live && ((EUID != 0)); then
        die "--system installs for the whole machine: run it with sudo (sudo ./install.sh --system), or stage it with --root DIR"
    fi
    if [[ -z "$PYTHON_GIVEN" && -x /usr/bin/python3 ]]; then
        PYTHON=/usr/bin/python3 # the interpreter apt's python3-picamera2 is built for
    fi
    TMPD="$(mktemp -d)"
    trap 'rm -rf "$TMPD"' EXIT
}

apt_packages() {
    if ! live; then
        say "skipping apt packages (--root)"
        return 0
    fi
    local board="" pkg missing=()
    if [[ -r /proc/device-tree/model ]]; then
        board="$(tr -d '\0' </proc/device-tree/model)"
    fi
    if [[ "$board" != "Raspberry Pi"* ]] || ! command -v apt-get >/dev/null 2>&1; then
        return 0 # not a Pi: no CSI camera stack to install
    fi
    for pkg in "${APT_PACKAGES[@]}"; do
        # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        say "unchanged apt packages (${APT_PACKAGES[*]})"
        return 0
    fi
    say "installing ${missing[*]} with apt (camera and GPIO support from Raspberry Pi OS)"
    if apt-get install -y --no-install-recommends "${missing[@]}"; then
        changed "installed ${missing[*]}"
    else
        say "warning: apt-get install ${missing[*]} failed: the CSI camera or the GPIO sink may not work; run it yourself, then ./install.sh --system again"
    fi
}

ensure_user() {
    if ! live; then
        say "skipping the $SERVICE_USER user and its groups (--root: users are not touched)"
        return 0
    fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
        say "unchanged user $SERVICE_USER"
    else
        useradd --system --user-group --home-dir /var/lib/edge --no-create-home --shell /usr/sbin/nologin \
            --comment "edge video classification daemon" "$SERVICE_USER"
        changed "created the system user $SERVICE_USER"
    fi
    local g
    for g in video "${EXTRA_GROUPS[@]}"; do
        if ! getent group "$g" >/dev/null; then
            say "no $g group on this machine: skipped"
        elif ! in_group "$SERVICE_USER" "$g"; then
            usermod -aG "$g" "$SERVICE_USER"
            changed "added $SERVICE_USER to group $g"
        fi
    done
    # whoever ran sudo may then read the logs and the config (edge tail, edge status)
    if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]] && ! in_group "$SUDO_USER" "$SERVICE_USER"; then
        usermod -aG "$SERVICE_USER" "$SUDO_USER"
        changed "added $SUDO_USER to group $SERVICE_USER (reads /var/log/edge and /etc/edge/config.yaml; log in again to use it)"
    fi
}

ensure_dirs() {
    local d
    for d in "$OPT" "$ETC" "$MODEL_DIR" "$LOGS" "$UNIT_DIR" "$(dirname "$LINK")"; do
        if [[ ! -d "$d" ]]; then
            mkdir -p "$d"
            changed "created $d"
        fi
    done
}

# A clean copy of what pip needs, so nothing is built inside the checkout (build/, *.egg-info).
stage_source() {
    local items=(pyproject.toml edge) f
    for f in README.md LICENSE LICENSE.txt setup.cfg setup.py MANIFEST.in; do
        if [[ -e "$ROOT/$f" ]]; then
            items+=("$f")
        fi
    done
    mkdir -p "$1"
    tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - "${items[@]}" | tar -C "$1" -xf -
}

# apt's python3-picamera2 (its simplejpeg) is built against apt's numpy 1.x and fails
# to import under numpy 2 ("numpy.dtype size changed"), which the venv would otherwise get.
pin_numpy() {
    local v
    v="$("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)" || v=""
    if [[ "$v" == 1.* ]]; then
        printf 'numpy<2\n' >"$TMPD/constraints.txt"
        PIP_CONSTRAINTS=(-c "$TMPD/constraints.txt")
        say "keeping numpy<2 in the venv: apt's numpy is $v and python3-picamera2 is built against it"
    fi
}

program_stamp() {
    local digest
    digest="$(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
    printf 'source sha256 %s\n' "$digest"
    printf 'python %s\n' "$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
    printf 'constraints %s\n' "${PIP_CONSTRAINTS[*]:+numpy<2}"
    printf 'tflite-runtime %s\n' "$FORCE_TFLITE"
}

venv_usable() {
    [[ -f "$VENV/pyvenv.cfg" ]] && grep -q '^include-system-site-packages = true' "$VENV/pyvenv.cfg" &&
        [[ "$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" == \
            "$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')" ]]
}

# --with notify on a venv that is otherwise up to date: add the extra's packages (Apprise) alone.
# (Not part of the program stamp: dropping a notify sink must not rebuild the venv.)
install_extras() {
    local extra reqs
    for extra in "${WITH[@]}"; do
        if "$VENV/bin/python" -c 'import apprise' 2>/dev/null; then
            continue # notify is the only extra so far: Apprise is its package
        fi
        mapfile -t reqs < <("$VENV/bin/python" - "$ROOT/pyproject.toml" "$extra" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"][sys.argv[2]]))
PY
)
        "$VENV/bin/python" -m pip install --quiet "${PIP_CONSTRAINTS[@]}" "${reqs[@]}" ||
            die "could not install ${reqs[*]} (the $extra extra): see the pip output above"
        changed "installed ${reqs[*]} into $VENV (--with $extra)"
    done
}

install_program() {
    local src="$TMPD/src" want
    stage_source "$src"
    pin_numpy
    want="$(program_stamp "$src")"
    if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$want" ]] && venv_usable &&
        "$VENV/bin/python" -c 'import edge' 2>/dev/null; then
        say "unchanged $VENV (edge $("$VENV/bin/python" -c 'import edge; print(edge.__version__)'))"
    else
        if [[ -e "$VENV" ]] && ! venv_usable; then
            say "$VENV was made by another Python or without the apt packages: building it again"
            rm -rf "$VENV" "$STAMP"
        fi
        PKG_SOURCE="$src"
        VENV_ARGS=(--system-site-packages) # apt's python3-picamera2 and python3-libcamera
        make_venv
        install_package
        printf '%s\n' "$want" >"$STAMP"
        changed "installed edge $("$VENV/bin/python" -c 'import edge; print(edge.__version__)') into $VENV"
    fi
    install_extras
    local target=/opt/edge/venv/bin/edge
    if [[ -L "$LINK" && "$(readlink "$LINK")" == "$target" ]]; then
        say "unchanged $LINK"
    elif [[ -e "$LINK" && ! -L "$LINK" ]]; then
        say "warning: $LINK exists and is not a link: left alone (the service does not need it)"
    else
        ln -sfn "$target" "$LINK"
        changed "linked $LINK -> $target"
    fi
}

# /etc/edge/config.yaml is the user's: never overwritten. A changed shipped default is
# written beside it as config.yaml.new, once.
install_config() {
    local shipped="$ROOT/config.yaml" conf="$ETC/config.yaml" group=""
    [[ -f "$shipped" ]] || die "$shipped is missing from this checkout: there is no default config to install"
    if live && getent group "$SERVICE_USER" >/dev/null; then
        group="$SERVICE_USER" # 0640 root:edge: an RTSP URL may carry a password
    fi
    if [[ ! -e "$conf" ]]; then
        put_file "$shipped" "$conf" 0640 "$group"
    elif cmp -s "$shipped" "$conf"; then
        say "unchanged $conf"
    elif [[ -f "$DEFAULT_RECORD" ]] && cmp -s "$shipped" "$DEFAULT_RECORD"; then
        say "unchanged $conf (your edits are kept)"
    elif [[ -f "$conf.new" ]] && cmp -s "$shipped" "$conf.new"; then
        say "unchanged $conf.new (the new default, not merged into $conf yet)"
    else
        put_file "$shipped" "$conf.new" 0640 "$group"
        say "the shipped default config changed: it is in $conf.new and your $conf is left as it is;" \
            "merge what you want (diff $conf $conf.new), then delete $conf.new"
    fi
    put_file "$shipped" "$DEFAULT_RECORD" 0644
}

system_models() {
    if ((!MODELS)); then
        say "skipping the models (--no-models)"
        return 0
    fi
    local args=(models fetch a0 demo) out line  # demo: the clip `edge run --demo` plays (Apache-2.0, 123 KB)
    if [[ -n "$MODELS_FROM" ]]; then
        args+=(--from "$MODELS_FROM")
    fi
    # status lines (stdout) are read here; the download progress (stderr) shows as it goes
    if ! out="$(EDGE_MODEL_DIR="$MODEL_DIR" "$VENV/bin/edge" "${args[@]}")"; then
        printf '%s\n' "$out"
        printf 'install: error: the model could not be installed (see above); fix that and run the install again, or: sudo EDGE_MODEL_DIR=%s %s %s\n' \
            "${MODEL_DIR#"$DESTROOT"}" /opt/edge/venv/bin/edge "${args[*]}" >&2
        exit 3
    fi
    while IFS= read -r line; do
        case "$line" in
            "") ;;
            *"already installed"*) say "unchanged $line" ;;
            *": installed "*) changed "$line" ;;
            *) say "$line" ;;
        esac
    done <<<"$out"
}

# One question about the installed config, asked of edge's own loader (so it reads what the daemon reads):
#   config_query network: "HOST IP" when the source is a network stream (IP empty for a host name), else nothing
#   config_query notify:  1 when the config has a sink of type notify, else 0
# Fails, with the problem on stderr, when the config does not validate.
config_query() {
    "$VENV/bin/python" - "$ETC/config.yaml" "$1" <<'PY'
import ipaddress
import sys
from urllib.parse import urlsplit

from edge.config import load
from edge.errors import EdgeError

try:
    cfg = load(sys.argv[1])
except EdgeError as err:
    sys.exit(f"{err}")
if sys.argv[2] == "notify":
    print(int(any(getattr(s, "type", None) == "notify" for s in cfg.sinks)))
    sys.exit(0)
spec = cfg.source.spec or ""
if cfg.source.kind in ("picamera2", "v4l2") or "://" not in spec or spec.startswith("file:"):
    sys.exit(0)
host = urlsplit(spec).hostname or ""
try:
    ip = str(ipaddress.ip_address(host))
except ValueError:
    ip = ""
print(host, ip)
PY
}

# A notify sink in an existing /etc/edge/config.yaml asks for Apprise, as --with notify does
# (a plain look at the text: the venv that could parse it may not exist yet).
notify_extra_from_config() {
    if [[ -f "$ETC/config.yaml" && " ${WITH[*]} " != *" notify "* ]] &&
        grep -Eq '^[[:space:]-]*type:[[:space:]]*["'"'"']?notify["'"'"']?[[:space:]]*(#.*)?$' "$ETC/config.yaml"; then
        WITH+=(notify)
        say "the config has a notify sink: installing Apprise too"
    fi
}

install_unit() {
    put_file "$ROOT/systemd/edge.service" "$UNIT" 0644

    local present=() g
    for g in "${EXTRA_GROUPS[@]}"; do
        if group_exists "$g"; then
            present+=("$g")
        fi
    done
    if ((${#present[@]})); then
        printf '%s\n' "# $MARKER: the extra device groups that exist on this machine" \
            "# (a group that does not exist would stop edge.service from starting)" \
            "[Service]" "SupplementaryGroups=${present[*]}" >"$TMPD/groups.conf"
        put_dropin "$TMPD/groups.conf" "$DROPINS/groups.conf"
    else
        say "no group ${EXTRA_GROUPS[*]} here: edge.service runs with the video group only"
        remove_ours "$DROPINS/groups.conf"
    fi

    local net host="" ip=""
    if ! net="$(config_query network)"; then
        say "warning: $ETC/config.yaml does not validate, so the network drop-in was not updated (edge check-config -c /etc/edge/config.yaml)"
    elif [[ -n "$net" ]]; then
        read -r host ip <<<"$net"
        if [[ -n "$ip" ]]; then
            sed "s|^IPAddressAllow=.*|IPAddressAllow=$ip|" "$ROOT/systemd/edge-network.conf" >"$TMPD/network.conf"
            say "the source is a network stream at $ip: edge may reach that address only"
        else
            cp "$ROOT/systemd/edge-network.conf" "$TMPD/network.conf"
            say "the source is a network stream at $host (a name): edge may reach the local network, not the internet"
        fi
        put_dropin "$TMPD/network.conf" "$DROPINS/network.conf"
    else
        remove_ours "$DROPINS/network.conf"
    fi
    local has_notify=0
    has_notify="$(config_query notify)" || has_notify=""
    if [[ -z "$has_notify" ]]; then
        say "warning: $ETC/config.yaml does not validate, so the notify drop-in was not updated (edge check-config -c /etc/edge/config.yaml)"
    elif ((has_notify)); then
        say "the config has a notify sink: edge may open outgoing connections to the internet (no listening socket)"
        put_dropin "$ROOT/systemd/edge-notify.conf" "$DROPINS/notify.conf"
    else
        remove_ours "$DROPINS/notify.conf"
    fi
    if [[ -d "$DROPINS" ]]; then
        rmdir "$DROPINS" 2>/dev/null || true # only when empty
    fi
}

start_service() {
    if ! live; then
        say "skipping systemctl (--root); on the target: systemctl daemon-reload && systemctl enable --now edge"
        return 0
    fi
    if ! systemd_running; then
        say "systemd is not running here: edge was not started (on a booted system: sudo systemctl enable --now edge)"
        return 0
    fi
    if ((CHANGES)); then
        systemctl daemon-reload
    fi
    if ! systemctl is-enabled --quiet edge 2>/dev/null; then
        systemctl enable --quiet edge
        changed "enabled edge.service (starts at boot)"
    fi
    if systemctl is-active --quiet edge; then
        if ((CHANGES)); then
            systemctl restart edge
            say "restarted edge.service"
        else
            say "unchanged edge.service (running)"
        fi
        return 0
    fi
    systemctl reset-failed edge 2>/dev/null || true # forget an earlier start-limit hit
    say "starting edge.service (ready after the first inference: up to a minute on a Pi Zero)"
    if systemctl start edge; then
        changed "started edge.service"
    else
        say "warning: edge.service did not start: journalctl -u edge -n 50 says why; edge doctor checks the usual causes"
    fi
}

system_summary() {
    if ((CHANGES == 0 && UNINSTALL)); then
        say "nothing to remove"
    elif ((CHANGES == 0)); then
        say "nothing changed: everything was already in place"
    else
        say "done ($CHANGES changes)"
    fi
    if ! live || ((UNINSTALL)); then
        return 0
    fi
    cat <<'EOF'

edge runs as a service. Next:
  sudo nano /etc/edge/config.yaml     watch rules and sinks (check it: edge check-config -c /etc/edge/config.yaml)
  sudo systemctl reload edge          apply the config without a restart
  edge status                         what it sees now
  edge tail                           events and predictions as they come
  journalctl -u edge -f               the service's own log
  edge doctor                         camera, GPIO, display, disk, model and service checks
EOF
}

system_install() {
    system_paths
    say "installing the edge service${DESTROOT:+ into the staging root $DESTROOT}"
    check_python
    platform_preflight
    apt_packages
    ensure_user
    ensure_dirs
    notify_extra_from_config
    install_program
    install_config
    system_models
    install_unit
    start_service
    system_summary
}

system_uninstall() {
    system_paths
    if live && ((EUID != 0)); then
        die "--uninstall changes the whole machine: run it with sudo"
    fi
    say "removing the edge service${DESTROOT:+ from the staging root $DESTROOT}"
    if ! live; then
        say "skipping systemctl (--root)"
    elif systemd_running; then
        if systemctl is-enabled --quiet edge 2>/dev/null || systemctl is-active --quiet edge; then
            systemctl disable --now --quiet edge
            changed "stopped and disabled edge.service"
        fi
    fi
    remove_path "$UNIT"
    if ((PURGE)); then
        remove_path "$DROPINS"
    else
        remove_ours "$DROPINS/groups.conf"
        remove_ours "$DROPINS/network.conf"
        remove_ours "$DROPINS/notify.conf"
        if [[ -d "$DROPINS" ]]; then
            rmdir "$DROPINS" 2>/dev/null || say "kept $DROPINS (your own drop-ins)"
        fi
    fi
    if [[ -L "$LINK" && "$(readlink "$LINK")" == /opt/edge/* ]]; then
        rm -f "$LINK"
        changed "removed $LINK"
    fi
    remove_path "$OPT"
    if live && systemd_running; then
        systemctl daemon-reload
        systemctl reset-failed edge 2>/dev/null || true
    fi
    if ((PURGE)); then
        remove_path "$ETC"
        remove_path "$STATE"
        remove_path "$LOGS"
        if live && getent passwd "$SERVICE_USER" >/dev/null; then
            userdel "$SERVICE_USER"
            changed "removed the user $SERVICE_USER"
        fi
        if live && getent group "$SERVICE_USER" >/dev/null; then
            groupdel "$SERVICE_USER"
            changed "removed the group $SERVICE_USER"
        fi
    else
        say "kept $ETC (config), $STATE (models, clips) and $LOGS (logs): --purge removes them and the $SERVICE_USER user"
    fi
    system_summary
}

# --------------------------------------------------------------------------- platform
# ai-edge-litert has wheels for 64-bit Arm and x86-64 only. On 32-bit Raspberry Pi OS
# (armhf: armv7l, or a 64-bit kernel under a 32-bit userland) the runtime is tflite-runtime
# 2.14 (armv7l wheels for Python <= 3.11, built against numpy 1), and numpy, OpenCV and
# PyYAML have no armv7l wheels on PyPI: they come from apt, which the venv sees
# (--system-site-packages). ARMv6 (Pi Zero, Pi 1) has no TFLite runtime wheel at all.

ARM32_APT=(python3-numpy python3-opencv python3-yaml python3-av)
ARM32_DEV_APT=(python3-pil)                                   # pillow: no armv7l wheel either
ARM32_FROM_APT=(numpy opencv-python-headless pyyaml av pillow) # requirements apt provides there
# --dev's deployment tools run on the machine that deploys, not on the Pi, and need
# cryptography, which has no armv7l wheel either (pip would compile cffi): left out there
ARM32_NOT_HERE=(ansible-core ansible-lint)
FROM_APT=() # requirements pip leaves alone (apt's, or not for this board)

# the ai-edge-litert requirement the 64-bit path installs (pyproject's, without its marker)
litert_requirement() {
    "$VENV/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
print(next((d.split(";")[0].strip() for d in deps if d.lower().startswith("ai-edge-litert")), "ai-edge-litert"))
PY
}

# tflite-runtime ships no TFLite schema module, and edge/split.py needs one to cut a model at its
# head pool (window/ema forgetting, the ensemble, edge learn). The module is pure Python generated
# code in ai-edge-litert's wheels, the same file on every platform: take it from the 64-bit Arm
# wheel of the version the 64-bit path installs, as the venv's edge_tflite_schema.py (never as an
# ai_edge_litert package: edge/runtime.py picks the runtime by that name), with pip's flatbuffers.
ARM64_WHEEL_TAGS=(manylinux_2_17_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64 manylinux_2_34_aarch64)
install_tflite_schema() {
    local py="$VENV/bin/python" spec dl plat platforms=()
    if "$py" -c 'import edge_tflite_schema as s; s.ModelT' 2>/dev/null; then
        say "TFLite schema module present (edge_tflite_schema, for splitting models)"
        return 0
    fi
    spec="$(litert_requirement)"
    for plat in "${ARM64_WHEEL_TAGS[@]}"; do platforms+=(--platform "$plat"); done
    dl="$(mktemp -d)"
    say "fetching the TFLite schema module from the $spec wheel (tflite-runtime has none; it splits models)"
    if "$py" -m pip install --quiet "${PIP_CONSTRAINTS[@]}" flatbuffers &&
        "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 "${platforms[@]}" \
            -d "$dl" "$spec" &&
        "$py" - "$dl" <<'PY'
import glob
import sys
import sysconfig
import zipfile
from pathlib import Path

wheel = sorted(glob.glob(sys.argv[1] + "/ai_edge_litert-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z:
    code = z.read("ai_edge_litert/schema_py_generated.py")
out = Path(sysconfig.get_paths()["purelib"]) / "edge_tflite_schema.py"
out.write_bytes(b"# ai_edge_litert/schema_py_generated.py from " + Path(wheel).name.encode() +
                b" (Apache-2.0), put here by edge's install.sh for tflite-runtime\n" + code)
PY
    then
        if "$py" -c 'import edge_tflite_schema as s; s.ModelT'; then
            say "installed edge_tflite_schema from $(basename "$(ls "$dl"/*.whl)")"
        else
            say "warning: the fetched TFLite schema module does not import (see above): models are not split, so the window/ema policies fall back to cumulative and the ensemble and edge learn cannot run; report it"
        fi
    else
        say "warning: could not fetch the TFLite schema module (see above): models are not split, so the window/ema policies fall back to cumulative and the ensemble and edge learn cannot run; run ./install.sh again once PyPI is reachable"
    fi
    rm -rf "$dl"
}

platform_preflight() {
    local machine bits py
    machine="$(uname -m)"
    bits="$("$PYTHON" -c 'import struct; print(struct.calcsize("P") * 8)')" || bits=""
    case "$machine" in
        armv6l | armv5*)
            die "this is an ARMv6 board ($machine: Pi Zero, Pi Zero W or Pi 1): no TFLite runtime is built for it (ai-edge-litert is 64-bit only, tflite-runtime starts at armv7l); edge needs a Pi Zero 2 W, 3, 4 or 5"
            ;;
        armv7l | armv8l) ;;
        aarch64 | arm64) [[ "$bits" == 32 ]] || return 0 ;; # a 64-bit kernel under a 32-bit OS
        *) return 0 ;;
    esac
    py="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "$py" != 3.11 ]]; then
        die "on 32-bit Arm the only TFLite runtime is tflite-runtime 2.14, which has wheels for Python 3.11 only, and $PYTHON is Python $py: use Raspberry Pi OS Bookworm (Python 3.11), set PYTHON=/path/to/python3.11, or install the 64-bit Raspberry Pi OS (about 10x faster with ai-edge-litert)"
    fi
    say "32-bit Arm ($machine, Python $py): tflite-runtime with numpy, OpenCV, PyYAML and PyAV from apt (the 64-bit OS runs the about 10x faster ai-edge-litert)"
    FORCE_TFLITE=1
    VENV_ARGS=(--system-site-packages)
    FROM_APT=("${ARM32_FROM_APT[@]}" "${ARM32_NOT_HERE[@]}")
    local want=("${ARM32_APT[@]}") pkg missing=()
    if ((DEV)); then
        want+=("${ARM32_DEV_APT[@]}")
        say "leaving out ${ARM32_NOT_HERE[*]} (--dev's deployment tools: run them on the machine that deploys)"
    fi
    for pkg in "${want[@]}"; do
        # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        say "apt packages present (${want[*]})"
    elif ((EUID != 0)) || ! command -v apt-get >/dev/null 2>&1; then
        die "32-bit Arm needs ${missing[*]} from apt (no armv7l wheels on PyPI): run  sudo apt-get install -y ${missing[*]}  then ./install.sh again"
    else
        say "installing ${missing[*]} with apt"
        if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
            say "apt-get install failed: updating the package lists and trying once more"
            apt-get update && apt-get install -y --no-install-recommends "${missing[@]}" ||
                die "apt-get install ${missing[*]} failed (see above): fix apt (sudo apt-get update), then ./install.sh again"
        fi
    fi
    if [[ "$("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)" != 1.* ]]; then
        die "tflite-runtime needs numpy 1.x, but $PYTHON sees numpy $("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>&1 | tail -n 1): remove the numpy that pip installed system-wide (sudo pip uninstall numpy) so apt's python3-numpy is used"
    fi
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
        say "creating $VENV with $("$PYTHON" -V 2>&1)${VENV_ARGS[*]:+ (${VENV_ARGS[*]})}"
        if ! "$PYTHON" -m venv "${VENV_ARGS[@]}" "$VENV"; then
            rm -rf "$VENV" # never leave a venv without pip behind
            die "could not create the venv: install the venv module (sudo apt install python3-venv) and run again"
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip || die "could not upgrade pip in $VENV: check the network"
}

# The project's requirements from pyproject.toml (one a line, markers kept), without $1 $2 ...
requirements_without() {
    INSTALL_WITH="${WITH[*]}" "$VENV/bin/python" - "$ROOT/pyproject.toml" "$DEV" "$@" <<'PY'
import os
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
reqs = list(project.get("dependencies", []))
if sys.argv[2] == "1":
    reqs += project.get("optional-dependencies", {}).get("dev", [])
for extra in os.environ.get("INSTALL_WITH", "").split():  # --with notify
    reqs += project.get("optional-dependencies", {}).get(extra, [])
skip = {name.lower().replace("_", "-") for name in sys.argv[3:]}
for req in reqs:
    name = re.match(r"[A-Za-z0-9._-]+", req.strip()).group(0).lower().replace("_", "-")
    if name not in skip:
        print(req)
PY
}

install_package() {
    local target="$ROOT" editable=(-e)
    if ((DEV)); then
        target="${ROOT}[dev]"
    fi
    if [[ -n "$PKG_SOURCE" ]]; then
        target="$PKG_SOURCE"
        editable=()
    fi
    if ((${#WITH[@]})); then # --with notify: edge[notify], or edge[dev,notify]
        local extras
        extras="$(IFS=,; printf '%s' "${WITH[*]}")"
        if [[ "$target" == *"]" ]]; then
            target="${target%]},$extras]"
        else
            target="$target[$extras]"
        fi
    fi
    local pip=("$VENV/bin/python" -m pip install --quiet "${PIP_CONSTRAINTS[@]}")
    say "installing edge and its dependencies into $VENV (minutes on a Pi Zero)"
    if ((!FORCE_TFLITE)); then
        local litert
        litert="$(litert_requirement)"
        if "${pip[@]}" "$litert"; then
            "${pip[@]}" "${editable[@]}" "$target" || die "pip install ${editable[*]} $target failed: see the pip output above"
            return 0
        fi
        say "ai-edge-litert cannot be installed on this platform ($(uname -m), $("$VENV/bin/python" -V 2>&1))"
    fi
    say "falling back to tflite-runtime with numpy<2 (about 10x slower than ai-edge-litert)"
    local reqs
    mapfile -t reqs < <(requirements_without ai-edge-litert "${FROM_APT[@]}")
    "${pip[@]}" tflite-runtime 'numpy<2' "${reqs[@]}" ||
        die "could not install tflite-runtime either (it has wheels for Python <= 3.11 only): check the network and the Python version"
    "${pip[@]}" --no-deps "${editable[@]}" "$target" || die "pip install ${editable[*]} $target failed: see the pip output above"
    install_tflite_schema
}

# --------------------------------------------------------------------------- models

install_models() {
    local edge="$VENV/bin/edge"
    if ((!MODELS)); then
        say "skipping the models (--no-models)"
        return 0
    fi
    local args=(models fetch a0 demo)  # demo: the clip `edge run --demo` plays (Apache-2.0, 123 KB)
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
    if ((UNINSTALL)); then
        system_uninstall
        exit 0
    fi
    if ((SYSTEM)); then
        system_preflight
        system_install
        exit 0
    fi
    check_python
    platform_preflight
    make_venv
    install_package
    install_models
    next_steps
}

main "$@"
