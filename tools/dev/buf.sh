#!/usr/bin/env bash
# Runs the buf CLI on the protobuf contracts in proto/, e.g.
#   tools/dev/buf.sh lint
#   tools/dev/buf.sh build
#   tools/dev/buf.sh breaking --against '../.git#branch=main,subdir=proto'
#
# buf comes from the npm package @bufbuild/buf, pinned below and installed once into
# a cache folder (override with OCOP_CACHE_DIR). Needs node and npm on PATH; the npm
# registry is whatever npm is configured to use.
set -euo pipefail

BUF_VERSION="1.75.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache_dir="${OCOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ocop-market}/npm-buf"
pkg_json="$cache_dir/node_modules/@bufbuild/buf/package.json"
buf_bin="$cache_dir/node_modules/.bin/buf"

installed_version() {
  [[ -f "$pkg_json" ]] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$pkg_json" | head -n 1
}

if [[ "$(installed_version)" != "$BUF_VERSION" || ! -x "$buf_bin" ]]; then
  command -v npm >/dev/null 2>&1 || {
    echo "buf.sh: npm is needed to install @bufbuild/buf@$BUF_VERSION" >&2
    exit 1
  }
  mkdir -p "$cache_dir"
  # npm's output is shown only when the install fails, so that a clean run of
  # `buf.sh lint` prints nothing.
  npm_log="$(mktemp)"
  trap 'rm -f "$npm_log"' EXIT
  if ! npm install --prefix "$cache_dir" --no-audit --no-fund --save-exact \
    "@bufbuild/buf@$BUF_VERSION" >"$npm_log" 2>&1; then
    cat "$npm_log" >&2
    echo "buf.sh: installing @bufbuild/buf@$BUF_VERSION failed" >&2
    exit 1
  fi
  rm -f "$npm_log"
  trap - EXIT
fi

cd "$repo_root/proto"
exec "$buf_bin" "$@"
