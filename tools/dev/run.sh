#!/usr/bin/env bash
# `make run`: the platform on this machine. Builds, starts a private PostgreSQL cluster,
# the broker and the four services (state kept in OCOP_STATE_DIR, .run/ by default, so a
# re-run reuses it; lib.sh's start_platform, which `make bench` uses too), seeds the
# catalogue, places a smoke order, and prints how long each phase took and how to use it.
# Ctrl-C stops everything.
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
STATE=${OCOP_STATE_DIR:-$OCOP_ROOT/.run}
LOGS="$STATE/logs"
BIN=${CARGO_TARGET_DIR:-target}/debug
# The state folder as the banner names it: relative to the checkout when inside it.
SHOWN_STATE=${STATE#"$OCOP_ROOT"/}

ensure_system_packages
if [ ! -x "$TANSU_BIN" ]; then
  ensure_broker
  phase_done "broker build (once)"
fi
log "building the services and ocopctl (a first build takes about 3 minutes on 2 cores; later ones only rebuild what changed)"
cargo build --workspace --bins
phase_done build

mkdir -p "$LOGS"
chmod 755 "$STATE" "$LOGS"
PIDS=()
BROKER_PID=""
cleanup() {
  set +e  # stop everything, whatever already stopped by itself
  trap - EXIT INT TERM
  log "stopping"
  stop_processes ${PIDS[@]+"${PIDS[@]}"}
  if [ -n "$BROKER_PID" ]; then kill "$BROKER_PID" 2>/dev/null; wait "$BROKER_PID" 2>/dev/null; fi
  stop_broker_postgres
  stop_postgres "${PG_DATA:-$STATE/pg}"
  log "stopped; state kept in $SHOWN_STATE/ (delete it for a clean slate)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM  # Ctrl-C is the normal way to stop: run cleanup, exit 0

start_postgres "$STATE/pg" "$PG_PORT" "$LOGS/postgres.log"
start_platform "$STATE" "$BIN"
broker_storage=$(platform_broker_storage)
case $broker_storage in
  sqlite:///*) ;;
  sqlite://*) broker_storage="$SHOWN_STATE/${broker_storage#sqlite://}" ;;
esac
startup=$(IFS=,; echo "${PHASES[*]}" | sed 's/,/, /g')

# The smoke order: one unit through the whole saga, timed from PlaceOrder to its end. With
# OCOP_SANDBOX_OUTCOME=never nobody pays it, so it is placed but not followed.
SMOKE_LINE=BLI-MIEN-DONG-500G:1
follow=(--follow)
[ "${OCOP_SANDBOX_OUTCOME:-success}" != never ] || follow=()
log "placing a smoke order ($SMOKE_LINE)"
smoke_started=${EPOCHREALTIME/[.,]/}
if smoke=$("$BIN/ocopctl" order place --line "$SMOKE_LINE" --name "Khách thử" ${follow[@]+"${follow[@]}"} 2>&1); then
  smoke_order=$(awk '/^order /{ print $2; exit }' <<<"$smoke")
  smoke_status=$(awk '/^order /{ status = $4 } END { print status }' <<<"$smoke")
  smoke="smoke order $smoke_order placed → $smoke_status in $(seconds_since "$smoke_started")"
else
  smoke_order="<order id>"
  printf '%s\n' "$smoke" >&2
  smoke="the smoke order failed (above): look in $SHOWN_STATE/logs/"
fi

# ocopctl's defaults are the default ports; other ports need its address settings.
addresses=""
if [ "$CATALOG_GRPC_PORT:$ORDER_GRPC_PORT:$PAYMENT_GRPC_PORT:$PAYMENT_HTTP_PORT" != 50051:50052:50053:9103 ]; then
  addresses="
  export OCOP_CATALOG_ADDR=http://127.0.0.1:$CATALOG_GRPC_PORT OCOP_ORDER_ADDR=http://127.0.0.1:$ORDER_GRPC_PORT \\
    OCOP_PAYMENT_ADDR=http://127.0.0.1:$PAYMENT_GRPC_PORT OCOP_PAYMENT_HTTP=http://127.0.0.1:$PAYMENT_HTTP_PORT"
fi

cat <<INFO

ocop-market is running (logs in $SHOWN_STATE/logs/, Ctrl-C stops everything):
  PostgreSQL   127.0.0.1:$PG_PORT  (user postgres; databases catalog, order, payment, notification)
  Kafka        127.0.0.1:$KAFKA_PORT  (tansu, state in $broker_storage)
  catalog      gRPC 127.0.0.1:$CATALOG_GRPC_PORT, metrics http://127.0.0.1:$CATALOG_HTTP_PORT/metrics
  order        gRPC 127.0.0.1:$ORDER_GRPC_PORT, metrics http://127.0.0.1:$ORDER_HTTP_PORT/metrics
  payment      gRPC 127.0.0.1:$PAYMENT_GRPC_PORT, HTTP (callbacks, sandbox pages) http://127.0.0.1:$PAYMENT_HTTP_PORT
  notification gRPC 127.0.0.1:$NOTIFICATION_GRPC_PORT, messages in $SHOWN_STATE/notifications/
Started in $startup; $smoke.

Try, in another terminal:$addresses
  $BIN/ocopctl order place --line BLI-MIEN-DONG-500G:2 --follow
  $BIN/ocopctl products search "mien dong binh lieu"
  # Pay in a browser: each method opens its provider's (sandbox) page, where you pick
  # "Thanh toán" (pay) or "Từ chối" (decline); OCOP_SANDBOX_OUTCOME=never keeps the
  # sandbox from paying by itself after OCOP_SANDBOX_DELAY.
  $BIN/ocopctl order place --line BCH-TRA-HOA-VANG-100G:1 --payment vnpay     # or vietqr, momo, zalopay
  $BIN/ocopctl tail ocop.orders.v1 --from-beginning --kafka-brokers 127.0.0.1:$KAFKA_PORT
  export OCOP_AUTH_JWT_SECRET=\$(cat $SHOWN_STATE/jwt-secret)   # operator calls, e.g.:
  $BIN/ocopctl payment get $smoke_order
  $BIN/ocopctl payment refund $smoke_order --amount 20000 --reason "thiếu hàng"
  $BIN/ocopctl products adjust-stock BLI-MIEN-DONG-500G 10 --reason "nhập kho"
INFO

wait "${PIDS[@]}"
