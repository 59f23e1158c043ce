#!/usr/bin/env bash
# Build (once) a Debian 13 "trixie" chroot holding Debian's Blender 4.3.2, Xvfb, xdotool and
# ImageMagick, cached OUTSIDE the checkout, for the real-binary test tier (tests/binary/).
#
# Why a chroot: no Blender >= 4.2 binary can be downloaded on these machines, but Debian 13
# packages Blender 4.3.2 (Python 3.13) and the Debian mirror is reachable.
#
# Usage (as root):  tools/blender_chroot.sh [--print-dir | --remove]
#   RENDER_TAG_CACHE           cache root (default ~/.cache/render-tag)
#   RENDER_TAG_BLENDER_CHROOT  the chroot itself (default $RENDER_TAG_CACHE/blender-trixie)
#   RENDER_TAG_DEBIAN_MIRROR   mirror (default: the first Debian URI in this machine's apt sources)
#
# Idempotent: a finished chroot carries a stamp file and a second run returns at once. The build
# goes into "<dir>.partial-<pid>" and is renamed only on success, so a killed build never looks
# complete. Every mount the build needs lives in a private mount namespace (unshare -m) that dies
# with the build, and nothing is ever removed while something is mounted under it.
set -euo pipefail

CACHE="${RENDER_TAG_CACHE:-$HOME/.cache/render-tag}"
ROOT="${RENDER_TAG_BLENDER_CHROOT:-$CACHE/blender-trixie}"
STAMP_NAME=".render-tag-chroot-complete"
# python3-numpy: Debian's blender package does not pull it in, but every upstream Blender ships numpy
# and the extension relies on that (it does not bundle numpy).
PACKAGES=(blender python3-numpy xvfb xauth x11-utils imagemagick libgl1-mesa-dri libegl1 libegl-mesa0
          libglx-mesa0 xdotool fonts-dejavu-core)

log() { printf '[blender_chroot] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# True when anything is mounted at or under $1 (in this mount namespace).
mounted_under() {
    local dir
    dir="$(readlink -f "$1")"
    awk -v d="$dir" '{ gsub(/\\040/, " ", $2); if ($2 == d || index($2, d "/") == 1) { found = 1 } }
                     END { exit found ? 0 : 1 }' /proc/self/mounts
}

# rm -rf, but only when nothing is mounted inside (a bind-mounted checkout would be deleted too).
safe_remove() {
    local dir="$1"
    [[ -e "$dir" ]] || return 0
    if mounted_under "$dir"; then
        die "refusing to remove $dir: something is still mounted under it (see: grep '$dir' /proc/mounts)"
    fi
    rm -rf --one-file-system -- "$dir"
}

debian_mirror() {
    if [[ -n "${RENDER_TAG_DEBIAN_MIRROR:-}" ]]; then echo "$RENDER_TAG_DEBIAN_MIRROR"; return; fi
    local uri
    uri="$( { grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
              grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                  | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'; } \
            | grep -E '/debian/?$' | head -n1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

# The part that runs inside a private mount namespace: mounts die with it.
inside_namespace() {
    local dir="$1"
    mount -t proc proc "$dir/proc"
    mount --rbind /sys "$dir/sys"
    mount --make-rslave "$dir/sys"
    mount --rbind /dev "$dir/dev"
    mount --make-rslave "$dir/dev"
    cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
    ln -sf /proc/self/mounts "$dir/etc/mtab"
    # No daemon may start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
    chmod +x "$dir/usr/sbin/policy-rc.d"
    chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        LANG=C.UTF-8 sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${PACKAGES[*]} \
                            && apt-get clean" >&2
    chroot "$dir" blender --version | head -n1
}

main() {
    case "${1:-}" in
        --print-dir) echo "$ROOT"; return ;;
        --remove) safe_remove "$ROOT"; log "removed $ROOT"; return ;;
        --inside-namespace) inside_namespace "$2"; return ;;
        "") ;;
        *) die "unknown argument: $1" ;;
    esac
    if [[ -f "$ROOT/$STAMP_NAME" ]]; then
        if grep -qxF "packages: ${PACKAGES[*]}" "$ROOT/$STAMP_NAME"; then
            log "cached: $ROOT ($(head -n1 "$ROOT/$STAMP_NAME"))"
            return
        fi
        # The package list grew since this chroot was built: install the difference in place.
        [[ "$(id -u)" == 0 ]] || die "updating the chroot needs root"
        log "package list changed: updating $ROOT in place"
        local version
        version="$(unshare -m --propagation private -- "$0" --inside-namespace "$ROOT")"
        mounted_under "$ROOT" && die "mounts left under $ROOT after the update"
        printf '%s\nupdated %s from %s\npackages: %s\n' "$version" "$(date -u +%FT%TZ)" \
            "$(debian_mirror)" "${PACKAGES[*]}" > "$ROOT/$STAMP_NAME.new"
        mv -f "$ROOT/$STAMP_NAME.new" "$ROOT/$STAMP_NAME"
        log "updated: $ROOT ($version)"
        return
    fi
    [[ "$(id -u)" == 0 ]] || die "building the chroot needs root (debootstrap, mount, chroot)"
    [[ ! -e "$ROOT" ]] || die "$ROOT exists without the stamp $STAMP_NAME: remove it with '$0 --remove'"
    mkdir -p "$(dirname "$ROOT")"
    # Leftovers of killed builds.
    local old
    for old in "$ROOT".partial-*; do
        [[ -e "$old" ]] || continue
        local pid="${old##*.partial-}"
        if kill -0 "$pid" 2>/dev/null; then die "another build (pid $pid) is running into $old"; fi
        log "removing leftover $old"
        safe_remove "$old"
    done

    local tmp="$ROOT.partial-$$" start=$SECONDS mirror
    mirror="$(debian_mirror)"
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap on the host"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
    fi
    log "debootstrap trixie from $mirror into $tmp"
    debootstrap --variant=minbase trixie "$tmp" "$mirror" >&2
    log "debootstrap done after $((SECONDS - start)) s; installing Blender and X tools"
    local version
    version="$(unshare -m --propagation private -- "$0" --inside-namespace "$tmp")"
    mounted_under "$tmp" && die "mounts left under $tmp after the build"
    printf '%s\nbuilt %s in %d s from %s\npackages: %s\n' "$version" "$(date -u +%FT%TZ)" \
        "$((SECONDS - start))" "$mirror" "${PACKAGES[*]}" > "$tmp/$STAMP_NAME"
    mv -T "$tmp" "$ROOT"
    log "done in $((SECONDS - start)) s: $ROOT ($version)"
}

main "$@"
