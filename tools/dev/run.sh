#!/usr/bin/env bash
# `make run`: the platform on this machine. Builds, starts a private PostgreSQL cluster
# and the broker (state kept in .run/, so a re-run reuses it), the catalog service, seeds
# the catalogue, and prints how to use it. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OCOP_ROOT"

PG_PORT=${OCOP_PG_PORT:-55432}
KAFKA_PORT=${OCOP_KAFKA_PORT:-19092}
CATALOG_GRPC_PORT=${OCOP_CATALOG_GRPC_PORT:-50051}
CATALOG_HTTP_PORT=${OCOP_CATALOG_HTTP_PORT:-9101}
STATE="$OCOP_ROOT/.run"
LOGS="$STATE/logs"

ensure_system_packages
ensure_broker
log "building the services and ocopctl"
cargo build --workspace --bins --quiet

mkdir -p "$LOGS"
chmod 755 "$STATE" "$LOGS"
PIDS=()
BROKER_PID=""
cleanup() {
  set +e  # stop everything, whatever already stopped by itself
  trap - EXIT INT TERM
  log "stopping"
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ -n "$BROKER_PID" ]; then kill "$BROKER_PID" 2>/dev/null; wait "$BROKER_PID" 2>/dev/null; fi
  stop_postgres "$STATE/pg"
  log "stopped; state kept in .run/ (delete it for a clean slate)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM  # Ctrl-C is the normal way to stop: run cleanup, exit 0

start_postgres "$STATE/pg" "$PG_PORT" "$LOGS/postgres.log"
for db in catalog; do
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $db"
done
start_broker "$KAFKA_PORT" "sqlite://broker.db" "$LOGS/broker.log" "$STATE"

# A development-only token secret, made once and kept in .run/.
[ -s "$STATE/jwt-secret" ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/jwt-secret"; chmod 600 "$STATE/jwt-secret"; }
export OCOP_AUTH_JWT_SECRET=$(cat "$STATE/jwt-secret")
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" KAFKA_CREATE_TOPICS=true
export RUST_LOG=${RUST_LOG:-info}

DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/catalog" \
GRPC_ADDR="127.0.0.1:$CATALOG_GRPC_PORT" HTTP_ADDR="127.0.0.1:$CATALOG_HTTP_PORT" \
  target/debug/catalog >"$LOGS/catalog.log" 2>&1 &
PIDS+=($!)
wait_for_port "$CATALOG_GRPC_PORT" "the catalog service" 60

export OCOP_CATALOG_ADDR="http://127.0.0.1:$CATALOG_GRPC_PORT"
log "seeding the catalogue"
target/debug/ocopctl seed --file services/catalog/seed/catalog.toml

cat <<INFO

ocop-market is running (logs in .run/logs/, Ctrl-C stops everything):
  PostgreSQL   127.0.0.1:$PG_PORT  (user postgres, database catalog)
  Kafka        127.0.0.1:$KAFKA_PORT  (tansu, state in .run/broker.db)
  catalog      gRPC 127.0.0.1:$CATALOG_GRPC_PORT, metrics http://127.0.0.1:$CATALOG_HTTP_PORT/metrics

Try, in another terminal:
  target/debug/ocopctl products search "mien dong binh lieu"
  target/debug/ocopctl tail ocop.catalog.products.v1 --from-beginning --count 3 --kafka-brokers 127.0.0.1:$KAFKA_PORT
  kcat -b 127.0.0.1:$KAFKA_PORT -C -t ocop.catalog.products.v1 -o beginning -c 1 -f 'key=%k headers=%h\\n'
  export OCOP_AUTH_JWT_SECRET=\$(cat .run/jwt-secret)   # operator calls, e.g.:
  target/debug/ocopctl products get <id>
INFO

wait "${PIDS[@]}"
