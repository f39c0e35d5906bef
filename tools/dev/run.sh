#!/usr/bin/env bash
# `make run`: the platform on this machine. Builds, starts a private PostgreSQL cluster,
# the broker and the four services (state kept in .run/, so a re-run reuses it; lib.sh's
# start_platform, which `make bench` uses too), seeds the catalogue, and prints how to use
# it. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OCOP_ROOT"

PG_PORT=${OCOP_PG_PORT:-55432}
KAFKA_PORT=${OCOP_KAFKA_PORT:-19092}
CATALOG_GRPC_PORT=${OCOP_CATALOG_GRPC_PORT:-50051}
CATALOG_HTTP_PORT=${OCOP_CATALOG_HTTP_PORT:-9101}
ORDER_GRPC_PORT=${OCOP_ORDER_GRPC_PORT:-50052}
ORDER_HTTP_PORT=${OCOP_ORDER_HTTP_PORT:-9102}
PAYMENT_GRPC_PORT=${OCOP_PAYMENT_GRPC_PORT:-50053}
PAYMENT_HTTP_PORT=${OCOP_PAYMENT_HTTP_PORT:-9103}
NOTIFICATION_GRPC_PORT=${OCOP_NOTIFICATION_GRPC_PORT:-50054}
NOTIFICATION_HTTP_PORT=${OCOP_NOTIFICATION_HTTP_PORT:-9104}
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
start_platform "$STATE" target/debug
broker_storage=$(platform_broker_storage)
case $broker_storage in
  sqlite:///*) ;;
  sqlite://*) broker_storage=".run/${broker_storage#sqlite://}" ;;
esac

cat <<INFO

ocop-market is running (logs in .run/logs/, Ctrl-C stops everything):
  PostgreSQL   127.0.0.1:$PG_PORT  (user postgres; databases catalog, order, payment, notification)
  Kafka        127.0.0.1:$KAFKA_PORT  (tansu, state in $broker_storage)
  catalog      gRPC 127.0.0.1:$CATALOG_GRPC_PORT, metrics http://127.0.0.1:$CATALOG_HTTP_PORT/metrics
  order        gRPC 127.0.0.1:$ORDER_GRPC_PORT, metrics http://127.0.0.1:$ORDER_HTTP_PORT/metrics
  payment      gRPC 127.0.0.1:$PAYMENT_GRPC_PORT, HTTP (callbacks, sandbox pages) http://127.0.0.1:$PAYMENT_HTTP_PORT
  notification gRPC 127.0.0.1:$NOTIFICATION_GRPC_PORT, messages in .run/notifications/

Try, in another terminal:
  target/debug/ocopctl products search "mien dong binh lieu"
  target/debug/ocopctl order place --line <product id>:2 --follow
  # Pay in a browser: each method opens its provider's (sandbox) page, where you pick
  # "Thanh toán" (pay) or "Từ chối" (decline); OCOP_SANDBOX_OUTCOME=never keeps the
  # sandbox from paying by itself after OCOP_SANDBOX_DELAY.
  target/debug/ocopctl order place --line <product id>:1 --payment vnpay     # or vietqr, momo, zalopay
  target/debug/ocopctl payment get <order id>        # the pay page: http://127.0.0.1:$PAYMENT_HTTP_PORT/pay/<payment id>
  target/debug/ocopctl payment refund <order id> --amount 50000 --reason "thiếu hàng"
  target/debug/ocopctl tail ocop.orders.v1 --from-beginning --kafka-brokers 127.0.0.1:$KAFKA_PORT
  export OCOP_AUTH_JWT_SECRET=\$(cat .run/jwt-secret)   # operator calls, e.g.:
  target/debug/ocopctl products get <id>
INFO

wait "${PIDS[@]}"
