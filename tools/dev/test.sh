#!/usr/bin/env bash
# `make test`: the contract and deploy checks and the container check (the image run as
# the manifests run it), then builds the tests, starts PostgreSQL and the broker on
# ephemeral ports in a temporary folder, runs every test against them, and tears
# everything down (also on failure); then runs the README's worked example against `make
# run`. Exit status: the tests'.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OCOP_ROOT"

ensure_system_packages

# The contracts outside the code first (seconds once their tools are cached): the partner
# contract (AsyncAPI, buf lint + breaking) and the deploy manifests (rendered, validated).
log "checking the partner contract"
bash tools/dev/contract-check.sh
log "checking the deploy manifests"
bash tools/dev/deploy-check.sh
# The image run as the Kubernetes manifests run it, one order through it (podman; about
# 30 s once the base image is cached and the release binaries are built; `make
# bench-short` builds those first in CI).
log "running the image as the Kubernetes manifests do (podman)"
bash tools/dev/container-check.sh

ensure_broker

# Library, binary and integration tests (the crates have no doc tests).
TEST_TARGETS=(--workspace --lib --bins --tests)
log "building the services and the tests"
# As the container build does: no query needs a live database or a `.sqlx` cache.
export SQLX_OFFLINE=true
cargo build --workspace --bins --quiet
cargo test "${TEST_TARGETS[@]}" --no-run --quiet

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocop-test.XXXXXX")
chmod 755 "$WORK"
BROKER_PID=""
cleanup() {
  local status=$?
  set +e  # tear everything down, whatever already stopped by itself
  if [ -n "$BROKER_PID" ]; then kill "$BROKER_PID" 2>/dev/null; wait "$BROKER_PID" 2>/dev/null; fi
  stop_postgres "${PG_DATA:-$WORK/pg}"
  if [ $status -ne 0 ]; then
    log "logs kept for the failed run:"; tail -n 30 "$WORK"/*.log >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT INT TERM

PG_PORT=$(free_port)
start_postgres "$WORK/pg" "$PG_PORT" "$WORK/postgres.log"
KAFKA_PORT=$(free_port)
start_broker "$KAFKA_PORT" "memory://tansu/" "$WORK/broker.log"
log "PostgreSQL on 127.0.0.1:$PG_PORT, broker on 127.0.0.1:$KAFKA_PORT"

export OCOP_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export OCOP_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export OCOP_TEST_BROKER_BIN="$TANSU_BIN"
# The broker storage `make run` uses, for the test of a burst on that stack.
export OCOP_TEST_RUN_BROKER_STORAGE="$(platform_broker_storage)"
export OCOP_TEST_BIN_DIR="${CARGO_TARGET_DIR:-$OCOP_ROOT/target}/debug"
export RUST_LOG=${RUST_LOG:-warn}
# Every test binary runs even after one fails, so one run reports every failure. A test
# that hangs fails the run after OCOP_TEST_TIMEOUT instead of holding it forever; libtest
# names every test that has run for over a minute, and those lines are repeated here.
TEST_TIMEOUT=${OCOP_TEST_TIMEOUT:-40m}
status=0
timeout "$TEST_TIMEOUT" cargo test "${TEST_TARGETS[@]}" --no-fail-fast "$@" 2>&1 | tee "$WORK/cargo-test.log" || status=$?
if [ "$status" -eq 124 ]; then
  log "the tests did not finish within $TEST_TIMEOUT (OCOP_TEST_TIMEOUT); still running:"
  grep 'has been running for over' "$WORK/cargo-test.log" >&2 || true
fi
# The README's worked example, pasted line by line against a `make run` stack started
# from behind a closed folder (tools/dev/readme_test.py); about half a minute.
log "the README's worked example against make run"
readme_status=0
python3 tools/dev/readme_test.py || readme_status=$?
[ "$readme_status" -eq 0 ] || status=$readme_status
# One closing line for the whole run (cargo prints one per test binary).
awk -v readme="$([ "$readme_status" -eq 0 ] && echo ok || echo FAILED)" \
  '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
   END { printf "tests: %d passed, %d failed, %d skipped; README worked example: %s\n", passed, failed, ignored, readme }' \
  "$WORK/cargo-test.log"
exit $status
