# Shared helpers for scripts/platform-check and scripts/service-check (sourced, not run).
#
# Both scripts build Debian bookworm root filesystems with debootstrap, cache them under
# $CACHE (default /var/cache/edge-platform), copy in a clean clone of this project and
# ../shared, and run steps in them, each bounded in time, one summary row per step.
# Everything mounted or registered is undone by the EXIT trap, whatever happens.

SUITE=bookworm
MIRROR="${EDGE_MIRROR:-http://deb.debian.org/debian}"
CACHE="${EDGE_PLATFORM_CACHE:-/var/cache/edge-platform}"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$SCRIPTS/.." && pwd)"
SHARED="${EDGE_SHARED:-$PROJECT/../shared}"
ROWS=()     # summary rows: "name<TAB>result<TAB>detail"
CLEANUP=()  # commands run in reverse order on exit
FAILED=0

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

need_root() {
    ((EUID == 0)) || die "needs root (debootstrap, mounts, binfmt_misc): run it with sudo"
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found: sudo apt-get install ${TOOL_PKG[$tool]:-$tool}"
    done
}
declare -A TOOL_PKG=([debootstrap]=debootstrap [systemd-nspawn]=systemd-container [dpkg-deb]=dpkg
    [apt-get]=apt [nsenter]=util-linux [git]=git)

on_exit() { CLEANUP+=("$*"); }

run_cleanup() {
    local i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUP[i]}" >/dev/null 2>&1 || true
    done
    CLEANUP=()
}

# record NAME RESULT DETAIL: one summary row (RESULT: ok, FAIL, skip, info)
record() {
    ROWS+=("$1"$'\t'"$2"$'\t'"$3")
    [[ "$2" != FAIL ]] || FAILED=1
    printf '%s: %-28s %-5s %s\n' "$PROG" "$1" "$2" "$3" >&2
}

summary() {
    local row name result detail
    printf '\n%s summary (%s)\n' "$PROG" "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf '%-30s %-5s %s\n' check result detail
    for row in "${ROWS[@]}"; do
        IFS=$'\t' read -r name result detail <<<"$row"
        printf '%-30s %-5s %s\n' "$name" "$result" "$detail"
    done
}

# --------------------------------------------------------------------------- qemu-user

# Bookworm's own qemu-user (7.2) segfaults inside ai-edge-litert >= 2.2; trixie's (10.x)
# runs it. Fetch trixie's qemu-user .deb with a private apt state (the host's apt
# sources are left alone) and keep its static qemu-aarch64 / qemu-arm in $CACHE/qemu.
QEMU_SUITE=trixie

fetch_qemu() {
    local dir="$CACHE/qemu" apt_dir="$CACHE/qemu/apt"
    if [[ -x "$dir/qemu-aarch64" && -x "$dir/qemu-arm" ]]; then
        return 0
    fi
    say "fetching qemu-user from Debian $QEMU_SUITE (bookworm's 7.2 crashes inside ai-edge-litert)"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$MIRROR" "$QEMU_SUITE" \
        >"$apt_dir/sources.list"
    local opts=(-q -o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o Debug::NoLocking=1
        -o APT::Sandbox::User=root)
    timeout 300 apt-get "${opts[@]}" update >"$apt_dir/update.log" 2>&1 ||
        die "apt-get update for $QEMU_SUITE failed: see $apt_dir/update.log"
    (cd "$apt_dir" && rm -f qemu-user_*.deb && timeout 600 apt-get "${opts[@]}" download qemu-user) \
        >"$apt_dir/download.log" 2>&1 || die "could not download qemu-user from $QEMU_SUITE: see $apt_dir/download.log"
    rm -rf "$apt_dir/x"
    dpkg-deb -x "$apt_dir"/qemu-user_*.deb "$apt_dir/x"
    install -m 0755 "$apt_dir/x/usr/bin/qemu-aarch64" "$apt_dir/x/usr/bin/qemu-arm" "$dir/"
    rm -rf "$apt_dir/x" "$apt_dir"/qemu-user_*.deb
    say "using $("$dir/qemu-aarch64" --version | head -1)"
}

# register_binfmt ARCH: run ARCH binaries with our qemu, under our own entry name (the F
# flag opens the interpreter now, so the chroot needs no copy). Removed again on exit.
register_binfmt() {
    local arch="$1" name magic mask qemu
    case "$arch" in
        arm64)
            name=edge-platform-aarch64 qemu="$CACHE/qemu/qemu-aarch64"
            magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
            ;;
        armhf)
            name=edge-platform-arm qemu="$CACHE/qemu/qemu-arm"
            magic='\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
            ;;
        *) die "unknown architecture $arch (arm64 or armhf)" ;;
    esac
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    local bm=/proc/sys/fs/binfmt_misc
    if [[ ! -e "$bm/register" ]]; then
        mount -t binfmt_misc binfmt_misc "$bm" || die "cannot mount binfmt_misc on $bm"
    fi
    if [[ -e "$bm/$name" ]]; then
        printf -- '-1' >"$bm/$name" # a leftover of an interrupted run
    fi
    printf ':%s:M::%s:%s:%s:OPF' "$name" "$magic" "$mask" "$qemu" >"$bm/register" ||
        die "cannot register $qemu with binfmt_misc"
    on_exit "printf -- -1 >$bm/$name"
}

# --------------------------------------------------------------------------- root filesystems

# base_rootfs ARCH PACKAGES: a debootstrap minbase of bookworm for ARCH with PACKAGES, made
# once and kept in $CACHE/base-ARCH-HASH (HASH of the package list); prints its path.
base_rootfs() {
    local arch="$1" pkgs="$2" hash dir
    hash="$(printf '%s %s' "$SUITE" "$pkgs" | sha256sum | cut -c1-10)"
    dir="$CACHE/base-$arch-$hash"
    if [[ -f "$dir/.complete" ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    remove_tree "$dir.partial"
    say "debootstrap $SUITE $arch into $dir (once; minutes, more under emulation)"
    if ! timeout 2400 debootstrap --arch="$arch" --variant=minbase --include="$pkgs" "$SUITE" "$dir.partial" \
        "$MIRROR" >"$CACHE/debootstrap-$arch.log" 2>&1; then
        umount -R "$dir.partial/proc" "$dir.partial/sys" 2>/dev/null || true
        die "debootstrap $arch failed: see $CACHE/debootstrap-$arch.log"
    fi
    rm -rf "$dir.partial/var/cache/apt/archives/"*.deb
    touch "$dir.partial/.complete"
    mv "$dir.partial" "$dir"
    printf '%s\n' "$dir"
}

# remove_tree DIR: rm -rf, but never while anything is still mounted below DIR (a bound
# /dev left by a killed run would otherwise take the host's device nodes with it).
remove_tree() {
    local dir
    dir="$(realpath -m "$1")"
    if awk -v d="$dir/" 'index($2 "/", d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        die "$dir still has mounts below it (an interrupted run?): umount -R -l them, then run again"
    fi
    rm -rf "$dir"
}

# work_rootfs BASE DEST: a fresh copy of BASE at DEST (every run starts clean).
work_rootfs() {
    remove_tree "$2"
    cp -a "$1" "$2"
}

# The package index and apt reached the way this machine reaches them: pip's configuration
# and any extra CA certificates (a proxying CA) are copied in when the host has them.
copy_host_net_config() {
    local root="$1" f
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    [[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$root/etc/pip.conf"
    if [[ -d /etc/xdg/pip ]]; then
        mkdir -p "$root/etc/xdg"
        cp -a /etc/xdg/pip "$root/etc/xdg/"
    fi
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        for f in /usr/local/share/ca-certificates/*.crt; do
            cp "$f" "$root/usr/local/share/ca-certificates/"
        done
        chroot "$root" update-ca-certificates >/dev/null 2>&1 || say "warning: update-ca-certificates failed in $root"
    fi
}

# copy_project ROOT DIR: a clean clone of this checkout's HEAD at ROOT/DIR/main and a copy of
# ../shared at ROOT/DIR/shared (what the README's `EDGE_MODELS_FROM=../shared/models` expects).
copy_project() {
    local root="$1" dir="$2" rev
    mkdir -p "$root$dir"
    git clone -q --no-hardlinks "$PROJECT" "$root$dir/main" || die "git clone of $PROJECT failed"
    rev="$(git -C "$root$dir/main" rev-parse --short HEAD)"
    if [[ -d "$SHARED" ]]; then
        cp -a "$SHARED" "$root$dir/shared"
    else
        say "warning: no $SHARED: installs download the model and the real-model tests skip"
    fi
    printf '%s\n' "$rev"
}

# with_timeout SECONDS LOG CMD...: run CMD bounded, output to LOG; returns CMD's status (124: timed out).
with_timeout() {
    local secs="$1" log="$2"
    shift 2
    timeout --kill-after=30 "$secs" "$@" >"$log" 2>&1
}

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
