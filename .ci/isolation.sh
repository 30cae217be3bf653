#!/usr/bin/env bash
# Install and start what the isolated backends need on a fresh Debian machine:
# bubblewrap + setpriv (sandbox), docker.io + a running dockerd (docker), debootstrap (image
# build). Idempotent: safe to run again; it only installs what is missing and only starts
# dockerd when no daemon answers. Optionally builds the kernel image (CODEFLOW_BUILD_IMAGE=1).
set -euo pipefail

log() { printf 'isolation: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# setfacl grants the sandbox uid write access to a work dir it does not own.
command -v setfacl >/dev/null 2>&1 || missing+=(acl)
# iptables is what dockerd wants for its default bridge; the kernels themselves use --network none.
command -v iptables >/dev/null 2>&1 || missing+=(iptables)

if [ "${#missing[@]}" -gt 0 ]; then
    # de-duplicate
    mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Other jobs may hold the dpkg lock: wait for it instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=900)
    $SUDO apt-get "${apt_opts[@]}" update -qq
    $SUDO apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
else
    log "bubblewrap, setpriv, docker, debootstrap already installed"
fi

docker_up() { docker info >/dev/null 2>&1; }

if docker_up; then
    log "dockerd already running"
else
    log "starting dockerd"
    logfile="${CODEFLOW_DOCKERD_LOG:-/tmp/codeflow-dockerd.log}"
    # No systemd here: run the daemon in the background, detached from this shell.
    # A VM without a usable iptables still runs containers with --network none.
    if command -v iptables >/dev/null 2>&1 && iptables -L >/dev/null 2>&1; then
        extra=()
    else
        extra=(--iptables=false --bridge=none)
    fi
    $SUDO nohup setsid dockerd "${extra[@]}" >"$logfile" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        if docker_up; then
            break
        fi
        sleep 0.5
    done
    if ! docker_up; then
        log "dockerd did not come up; last lines of $logfile:"
        tail -n 20 "$logfile" >&2 || true
        exit 1
    fi
    log "dockerd is up"
fi

if [ "${CODEFLOW_BUILD_IMAGE:-0}" = "1" ]; then
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    py="${CODEFLOW_PYTHON:-$here/.venv/bin/python}"
    log "building the docker kernel image (cached when already built)"
    "$py" -m codeflow_magic.cli.sandbox build
fi

log "ready"
