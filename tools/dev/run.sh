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
for db in catalog order payment notification; do
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE \"$db\""
done
start_broker "$KAFKA_PORT" "sqlite://broker.db" "$LOGS/broker.log" "$STATE"

# A development-only token secret, made once and kept in .run/.
[ -s "$STATE/jwt-secret" ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/jwt-secret"; chmod 600 "$STATE/jwt-secret"; }
export OCOP_AUTH_JWT_SECRET=$(cat "$STATE/jwt-secret")
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" KAFKA_CREATE_TOPICS=true
export RUST_LOG=${RUST_LOG:-info}

[ -s "$STATE/sandbox-secret" ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/sandbox-secret"; chmod 600 "$STATE/sandbox-secret"; }
# Development credentials for the four real providers, made once and kept in .run/: their
# endpoints are left unset, so the payment service's sandbox gateway plays each provider
# with these keys (VietQR, VNPay, MoMo and ZaloPay schemes, signed for real).
dev_secret() {
  [ -s "$STATE/$1" ] || { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/$1"; chmod 600 "$STATE/$1"; }
  cat "$STATE/$1"
}
PROVIDER_ENV=(
  VIETQR_BANK_BIN=970436 VIETQR_ACCOUNT_NUMBER=0011001234567 VIETQR_ACCOUNT_NAME="HTX OCOP DEV"
  VIETQR_WEBHOOK_SECRET="$(dev_secret vietqr-webhook-secret)"
  VNPAY_TMN_CODE=OCOPDEV1 VNPAY_HASH_SECRET="$(dev_secret vnpay-hash-secret)"
  MOMO_PARTNER_CODE=MOMOOCOPDEV MOMO_ACCESS_KEY=OCOPDEVACCESS MOMO_SECRET_KEY="$(dev_secret momo-secret-key)"
  ZALOPAY_APP_ID=2553 ZALOPAY_KEY1="$(dev_secret zalopay-key1)" ZALOPAY_KEY2="$(dev_secret zalopay-key2)"
)

# start_service NAME GRPC_PORT HTTP_PORT [VAR=value …]: one service, its own database.
start_service() {
  local name=$1 grpc=$2 http=$3
  shift 3
  env DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$name" \
    GRPC_ADDR="127.0.0.1:$grpc" HTTP_ADDR="127.0.0.1:$http" "$@" \
    "target/debug/$name" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
}
start_service catalog "$CATALOG_GRPC_PORT" "$CATALOG_HTTP_PORT"
start_service order "$ORDER_GRPC_PORT" "$ORDER_HTTP_PORT" CATALOG_URL="http://127.0.0.1:$CATALOG_GRPC_PORT"
start_service payment "$PAYMENT_GRPC_PORT" "$PAYMENT_HTTP_PORT" \
  SANDBOX_SECRET="$(cat "$STATE/sandbox-secret")" PUBLIC_URL="http://127.0.0.1:$PAYMENT_HTTP_PORT" \
  SANDBOX_DELAY="${OCOP_SANDBOX_DELAY:-2s}" SANDBOX_OUTCOME="${OCOP_SANDBOX_OUTCOME:-success}" \
  "${PROVIDER_ENV[@]}"
start_service notification "$NOTIFICATION_GRPC_PORT" "$NOTIFICATION_HTTP_PORT" \
  NOTIFICATION_SPOOL_DIR="$STATE/notifications"
for port in "$CATALOG_GRPC_PORT" "$ORDER_GRPC_PORT" "$PAYMENT_GRPC_PORT" "$NOTIFICATION_GRPC_PORT"; do
  wait_for_port "$port" "the service on port $port" 60
done

export OCOP_CATALOG_ADDR="http://127.0.0.1:$CATALOG_GRPC_PORT" OCOP_ORDER_ADDR="http://127.0.0.1:$ORDER_GRPC_PORT"
log "seeding the catalogue"
target/debug/ocopctl seed --file services/catalog/seed/catalog.toml

cat <<INFO

ocop-market is running (logs in .run/logs/, Ctrl-C stops everything):
  PostgreSQL   127.0.0.1:$PG_PORT  (user postgres; databases catalog, order, payment, notification)
  Kafka        127.0.0.1:$KAFKA_PORT  (tansu, state in .run/broker.db)
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
