#!/usr/bin/env bash
# Build the project's container image with podman and run `make demo` inside it.
#
#   bash scripts/check-image.sh            # as root on Debian/Ubuntu (installs podman if missing)
#
# Steps, each timed, with one line per step and a JSON summary at the end
# (benchmarks/results/image_check_<date>.json):
#   1. podman (and debootstrap) from the distribution's packages, when missing;
#   2. the base image: BASE (default python:3.11-slim) pulled from its registry; when that
#      registry cannot be reached, a Debian bookworm base built locally with debootstrap
#      from the Debian mirror (python3.11, venv, pip, make, git) and `podman import`ed as
#      localhost/gliomics-base:bookworm. The local base trusts the certificate authorities
#      this machine trusts (/usr/local/share/ca-certificates), so a build behind a
#      TLS-inspecting proxy reaches PyPI the way the host does;
#   3. a probe container; when podman's defaults cannot start one (seen in a Firecracker VM:
#      crun refuses the host's hybrid cgroup v1/v2 layout, and the default ulimits exceed the
#      hard limits a process without CAP_SYS_RESOURCE may set), runc with explicit ulimits
#      within the host's limits, and the reason is recorded;
#   4. `podman build --build-arg BASE=...` of the Dockerfile (what `make setup` installs);
#   5. `podman run` of the image's default command, `make demo` (dvc repro on the embedded
#      synthetic cohort), which must end with the pipeline summary.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/gliomics:check}
BASE=${BASE:-python:3.11-slim}
LOCAL_BASE=localhost/gliomics-base:bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
RESULT=${RESULT:-benchmarks/results/image_check_$(date +%F).json}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

say() { echo "[check-image $(date +%T)] $*"; }
seconds_since() { echo $(( $(date +%s) - $1 )); }

# Debian packages, when missing (root on Debian/Ubuntu only; elsewhere say what to install).
install_packages() {
    local missing=()
    for package in "$@"; do command -v "$package" >/dev/null || missing+=("$package"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "missing: ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and re-run"
        exit 2
    fi
    say "installing ${missing[*]} from the Debian packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# 1. podman
started=$(date +%s)
install_packages podman
install_s=$(seconds_since "$started")
say "$(podman --version)"

# 2. base image
started=$(date +%s)
base_source="registry"
if podman pull -q "$BASE" >"$WORK/pull.log" 2>&1; then
    base_image=$BASE
    say "base $BASE pulled"
else
    pull_error=$(grep -m1 -i 'error' "$WORK/pull.log" || tail -1 "$WORK/pull.log" || true)
    say "cannot pull $BASE: $pull_error"
    base_source="debootstrap"
    base_image=$LOCAL_BASE
    if podman image exists "$LOCAL_BASE"; then
        say "using the local base built earlier: $LOCAL_BASE"
    else
        install_packages debootstrap
        say "building $LOCAL_BASE with debootstrap (Debian bookworm, $MIRROR)"
        rootfs="$WORK/rootfs"
        debootstrap --variant=minbase \
            --include=python3.11,python3.11-venv,python3-pip,ca-certificates,make,git \
            bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -5 "$WORK/debootstrap.log"; say "debootstrap failed"; exit 1; }
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
            chroot "$rootfs" update-ca-certificates >/dev/null
        fi
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        # Debian's apt sources inside the base, so the Dockerfile's apt-get works as on python:3.11-slim.
        echo "deb $MIRROR bookworm main" >"$rootfs/etc/apt/sources.list"
        tar -C "$rootfs" -c . | podman import \
            --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
    fi
fi
base_s=$(seconds_since "$started")
say "base image ready in ${base_s} s: $base_image"

# 3. container runtime
PODMAN=(podman)
LIMITS=()
runtime_note="podman defaults"
if ! podman run --rm "$base_image" true >"$WORK/probe.log" 2>&1; then
    runtime_note="podman defaults fail here: $({ grep -m1 -i 'error' "$WORK/probe.log" || tail -1 "$WORK/probe.log"; } \
        | tr -d '"' || true)"
    say "$runtime_note"
    install_packages runc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
    PODMAN=(podman --runtime runc)
    LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
    if ! "${PODMAN[@]}" run --rm "${LIMITS[@]}" "$base_image" true >"$WORK/probe.log" 2>&1; then
        cat "$WORK/probe.log"
        say "no container starts on this host, with podman's defaults or with runc and explicit ulimits"
        exit 1
    fi
    runtime_note="$runtime_note; runc with --ulimit nofile=$nofile --ulimit nproc=$nproc works"
    say "using runc with ulimits nofile=$nofile nproc=$nproc"
fi

# 4. build
started=$(date +%s)
say "podman build (log: $WORK/build.log while it runs)"
if ! "${PODMAN[@]}" build "${LIMITS[@]}" --build-arg "BASE=$base_image" -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
    tail -20 "$WORK/build.log"
    say "image build failed"
    exit 1
fi
build_s=$(seconds_since "$started")
size_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE in ${build_s} s, $((size_bytes / 1000000)) MB"

# 5. run the demo
started=$(date +%s)
if ! "${PODMAN[@]}" run --rm "${LIMITS[@]}" "$IMAGE" >"$WORK/run.log" 2>&1; then
    tail -20 "$WORK/run.log"
    say "make demo inside the image failed"
    exit 1
fi
run_s=$(seconds_since "$started")
tail -5 "$WORK/run.log"
grep -q "Running stage 'report'" "$WORK/run.log" || { say "the demo did not run the report stage"; exit 1; }
say "make demo inside the image: ${run_s} s"

mkdir -p "$(dirname "$RESULT")"
# JSON written by Python, so that error texts with quotes or backslashes stay valid JSON.
DATE=$(date +%F) PODMAN=$(podman --version | awk '{print $3}') BASE_IMAGE=$base_image BASE_SOURCE=$base_source \
PULL_ERROR=${pull_error:-} RUNTIME=$runtime_note INSTALL_S=$install_s BASE_S=$base_s BUILD_S=$build_s \
IMAGE_BYTES=$size_bytes DEMO_S=$run_s CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) \
CORES=$(nproc) python3 - >"$RESULT.tmp" <<'PY'
import json, os
e = os.environ
print(json.dumps({"date": e["DATE"], "podman": e["PODMAN"], "base": e["BASE_IMAGE"], "base_source": e["BASE_SOURCE"],
                  "pull_error": e["PULL_ERROR"], "runtime": e["RUNTIME"], "install_seconds": int(e["INSTALL_S"]),
                  "base_seconds": int(e["BASE_S"]), "build_seconds": int(e["BUILD_S"]),
                  "image_bytes": int(e["IMAGE_BYTES"]), "demo_seconds": int(e["DEMO_S"]), "cpu": e["CPU"],
                  "cores": int(e["CORES"])}, indent=2))
PY
mv "$RESULT.tmp" "$RESULT"
say "summary: $RESULT"
