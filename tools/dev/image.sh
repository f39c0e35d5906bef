#!/usr/bin/env bash
# `make image`: builds deploy/docker/Dockerfile with podman, as a Docker user builds it
# (every stage: cargo-chef's dependency layer, the release build, the runtime), into
# ocop-market:<version> (the workspace version, also tagged with `git describe`), scans
# what it ships, and prints its size and how long the build took.
#
# No registry is reachable here, so the two images the Dockerfile starts from are made
# locally once per machine under the names it uses (tools/dev/containers.sh):
# debian:bookworm-slim (debootstrap) and rust:<rust-version>-slim-bookworm (that base and
# this machine's toolchain). A first build compiles every dependency inside the
# container: 15 minutes or more on 2 cores; a rebuild after a change to our code reuses
# the cooked dependency layer. IMAGE_NAME (ocop-market) and IMAGE_VERSION override the tag.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/containers.sh"
cd "$OCOP_ROOT"

NAME=${IMAGE_NAME:-ocop-market}
VERSION=${IMAGE_VERSION:-$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version *=/ { print $2; exit }' Cargo.toml)}
[ -n "$VERSION" ] || die "no version in Cargo.toml's [workspace.package]"
DESCRIBE=$(git describe --tags --always --dirty 2>/dev/null || true)

ensure_container_tools
ensure_base_image
ensure_builder_image

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocop-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
began=$SECONDS
log "building $NAME:$VERSION from deploy/docker/Dockerfile (podman build; the build log: $WORK/build.log while it runs)"
# --network host: apt-get and cargo reach the Debian mirror and crates.io from inside the
# build. podman keeps every layer (--layers), so a rebuild starts from the first change.
tags=(-t "$NAME:$VERSION")
[ -z "$DESCRIBE" ] || tags+=(-t "$NAME:$DESCRIBE")
if ! pm build --network host --layers -f deploy/docker/Dockerfile "${tags[@]}" . >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2
  cp "$WORK/build.log" "${TMPDIR:-/tmp}/ocop-image-build.log"
  die "podman build failed (whole log: ${TMPDIR:-/tmp}/ocop-image-build.log)"
fi
elapsed=$((SECONDS - began))
scan_image "$NAME:$VERSION" "$WORK/scan"
size=$(pm image inspect --format '{{.Size}}' "$NAME:$VERSION" | awk '{ printf "%.0f MB", $1 / 1e6 }')
log "built $NAME:$VERSION${DESCRIBE:+ (also $NAME:$DESCRIBE)}: $size, in $((elapsed / 60)) min $((elapsed % 60)) s"
log "run a service: podman run --rm --network host --env-file <settings> --entrypoint /usr/local/bin/catalog $NAME:$VERSION" \
  "(CONTAINERS_CONF=deploy/podman/containers.conf on a machine like this one; see deploy/README.md)"
