#!/usr/bin/env bash
# `make soak`: the saga under steady load while things fail, then the books.
#
# Starts the platform as `make run` does (release binaries, PostgreSQL with fsync on,
# free ports, a temporary folder), with SOAK_REPLICAS instances of the order and catalog
# services (they share their consumer groups, outboxes and sweepers, as pods do; the load
# generator spreads PlaceOrder over every order replica and reads the catalogue from the
# first catalog), drives the load generator at SOAK_RATE orders/s for
# SOAK_MINUTES, and meanwhile, every SOAK_FAULT_EVERY seconds or so, injects one fault
# chosen at random (SOAK_SEED makes the sequence replayable; it is printed):
#   kill     SIGKILL a service instance, start it again 1–3 s later;
#   pause    SIGSTOP the broker for 5–30 s, then SIGCONT;
#   postgres restart PostgreSQL with `pg_ctl -m immediate` (a crash, no checkpoint);
#   pool     hold a lock on one service's outbox for 5–15 s, so every transaction that
#            writes an event waits and the service's pool runs dry.
#   broker_restart  SIGKILL the broker and start it again on the same storage.
# The broker keeps its records in a PostgreSQL 17 cluster of its own (OCOP_BROKER_STORAGE
# =postgres, the default here; see lib.sh), so a restarted broker has every record and
# every committed offset, as a Kafka broker does. PostgreSQL faults crash the platform's
# cluster, not the broker's. On OCOP_BROKER_STORAGE=memory://… no restart is injected
# (the broker would lose every record, which no Kafka deployment does).
#
# Then the faults stop, the load generator waits for every order to settle (at most
# SOAK_DRAIN_TIMEOUT) and checks the books — its own orders against the events, then the
# audit of the whole platform (`ocopctl audit`), which is printed as well. Passes only with
# no lost or stuck order, no money kept without an order, no oversold unit, a balanced
# ledger, and every service and the broker alive.
#
# Settings: SOAK_MINUTES (10), SOAK_RATE (10), SOAK_REPLICAS (2), SOAK_FAULT_EVERY (15), SOAK_SEED, SOAK_FAULTS
# (the kinds to inject: kill pause postgres pool broker_restart; all by default),
# SOAK_DRAIN_TIMEOUT (5m), SOAK_BUILD (1: build the release binaries), OCOP_BROKER_STORAGE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OCOP_ROOT"

MINUTES=${SOAK_MINUTES:-10}
RATE=${SOAK_RATE:-10}
FAULT_EVERY=${SOAK_FAULT_EVERY:-15}
REPLICAS=${SOAK_REPLICAS:-2}
[[ "$REPLICAS" =~ ^[1-9]$ ]] || die "SOAK_REPLICAS must be 1 to 9, not '$REPLICAS'"
DRAIN_TIMEOUT=${SOAK_DRAIN_TIMEOUT:-5m}
SEED=${SOAK_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
export OCOP_BROKER_STORAGE=${OCOP_BROKER_STORAGE:-postgres}
# Deadlines short enough that orders abandoned by their shoppers expire within the run.
PAYMENT_TTL=30s
RESERVATION_TTL=45s
BIN_DIR=${CARGO_TARGET_DIR:-$OCOP_ROOT/target}/release
LOADGEN_BIN=$BIN_DIR/ocop-loadgen

STARTED=$SECONDS
step() { log "[$((SECONDS - STARTED)) s] $*"; }

ensure_system_packages
ensure_broker
release_binaries "${SOAK_BUILD:-1}" "$BIN_DIR" catalog order payment notification ocopctl ocop-loadgen

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocop-soak.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/logs"
PIDS=()
BROKER_PID=""
LOADGEN_PID=""
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  [ -z "$LOADGEN_PID" ] || stop_processes "$LOADGEN_PID"
  stop_processes ${PIDS[@]+"${PIDS[@]}"}
  [ -z "$BROKER_PID" ] || stop_processes "$BROKER_PID"
  stop_broker_postgres
  stop_postgres "${PG_DATA:-$WORK/pg}"
  if [ $status -eq 0 ]; then
    rm -rf "$WORK"
  else
    log "the soak failed (seed $SEED); logs kept in $WORK/logs"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PG_PORT=$(free_port)
KAFKA_PORT=$(free_port)
for var in CATALOG_GRPC_PORT CATALOG_HTTP_PORT ORDER_GRPC_PORT ORDER_HTTP_PORT PAYMENT_GRPC_PORT \
    PAYMENT_HTTP_PORT NOTIFICATION_GRPC_PORT NOTIFICATION_HTTP_PORT; do
  printf -v "$var" '%s' "$(free_port)"
done
PSQL=(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)

step "seed $SEED: $MINUTES min at $RATE orders/s, a fault every ~$FAULT_EVERY s; order and catalog ×$REPLICAS; broker $(platform_broker_storage)"
OCOP_PG_FSYNC=on start_postgres "$WORK/pg" "$PG_PORT" "$WORK/logs/postgres.log"
export RUST_LOG=${SOAK_RUST_LOG:-warn}
export OCOP_SANDBOX_OUTCOME=never  # the load generator pays as the shopper
ORDER_ENV=(PAYMENT_TTL="$PAYMENT_TTL")
CATALOG_ENV=(RESERVATION_TTL="$RESERVATION_TTL")
start_platform "$WORK" "$BIN_DIR" >&2
# Every instance the faults may kill: the services, then the other replicas.
INSTANCES=("${PLATFORM_SERVICES[@]}")
for ((replica = 2; replica <= REPLICAS; replica++)); do
  for name in order catalog; do
    start_replica "$name" "$name-$replica"
    INSTANCES+=("$name-$replica")
  done
done
wait_for_services 60

DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT"
# Every order replica, as a load balancer would spread the shoppers over them.
ORDER_ADDRS="http://127.0.0.1:$ORDER_GRPC_PORT"
for ((replica = 2; replica <= REPLICAS; replica++)); do
  ORDER_ADDRS+=",http://127.0.0.1:${SERVICE_GRPC_PORT[order-$replica]}"
done
step "load generator: --rate $RATE --duration ${MINUTES}m, PlaceOrder over $REPLICAS order replicas"
"$LOADGEN_BIN" --rate "$RATE" --duration "${MINUTES}m" --drain-timeout "$DRAIN_TIMEOUT" --json --quiet \
  --database-url "$DATABASE_URL" \
  --kafka-brokers "127.0.0.1:$KAFKA_PORT" \
  --catalog "http://127.0.0.1:$CATALOG_GRPC_PORT" \
  --order "$ORDER_ADDRS" \
  --payment-http "http://127.0.0.1:$PAYMENT_HTTP_PORT" \
  >"$WORK/loadgen.json" 2>"$WORK/logs/loadgen.log" &
LOADGEN_PID=$!

# --- the faults -------------------------------------------------------------------------
declare -A FAULTS=()
# between LOW HIGH: sets PICK to a number in [LOW, HIGH] from the seeded sequence (not
# in a $(…) subshell, which bash reseeds, so that a seed replays the same faults).
between() { PICK=$(( $1 + RANDOM % ($2 - $1 + 1) )); }
fault_kill() {
  local name=${INSTANCES[$((RANDOM % ${#INSTANCES[@]}))]}
  step "fault: SIGKILL $name"
  kill -KILL "${SERVICE_PID[$name]}" 2>/dev/null || true
  wait "${SERVICE_PID[$name]}" 2>/dev/null || true
  between 1 3
  sleep "$PICK"
  restart_service "$name"
  wait_for_port "${SERVICE_GRPC_PORT[$name]}" "the restarted $name service" 60
  FAULTS[kill $name]=$(( ${FAULTS[kill $name]:-0} + 1 ))
}
fault_pause() {
  between 5 30
  local seconds=$PICK
  step "fault: SIGSTOP the broker for $seconds s"
  kill -STOP "$BROKER_PID"
  sleep "$seconds"
  kill -CONT "$BROKER_PID"
  FAULTS[broker paused]=$(( ${FAULTS[broker paused]:-0} + 1 ))
}
fault_broker_restart() {
  step "fault: restart the broker"
  kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
  start_platform_broker "$WORK"
  FAULTS[broker restarted]=$(( ${FAULTS[broker restarted]:-0} + 1 ))
}
fault_postgres() {
  step "fault: PostgreSQL restarted with -m immediate"
  as_db_owner "$(pg_bin pg_ctl)" -D "$PG_DATA" -m immediate -w -t 60 restart >/dev/null \
    || die "PostgreSQL did not come back"
  FAULTS[postgres crashed]=$(( ${FAULTS[postgres crashed]:-0} + 1 ))
}
fault_pool() {
  local name=${PLATFORM_SERVICES[$((RANDOM % ${#PLATFORM_SERVICES[@]}))]}
  between 5 15
  local seconds=$PICK
  step "fault: $name's outbox locked for $seconds s"
  "${PSQL[@]}" -d "$name" -c "BEGIN; LOCK TABLE outbox IN EXCLUSIVE MODE; SELECT pg_sleep($seconds); COMMIT;" \
    >/dev/null 2>>"$WORK/logs/faults.log" || true
  FAULTS[pool exhausted $name]=$(( ${FAULTS[pool exhausted $name]:-0} + 1 ))
}
kinds=(fault_kill fault_pause fault_postgres fault_pool)
case $(platform_broker_storage) in memory:*) ;; *) kinds+=(fault_broker_restart) ;; esac
# SOAK_FAULTS narrows the kinds, e.g. "kill pause" (to chase one failure).
if [ -n "${SOAK_FAULTS:-}" ]; then
  kinds=()
  for kind in $SOAK_FAULTS; do
    declare -F "fault_$kind" >/dev/null || die "SOAK_FAULTS: no fault '$kind'"
    kinds+=("fault_$kind")
  done
fi

deadline=$((SECONDS + MINUTES * 60))
while :; do
  between $((FAULT_EVERY / 2)) $((FAULT_EVERY * 3 / 2))
  sleep "$PICK"
  [ $SECONDS -lt $((deadline - 5)) ] || break
  kill -0 "$LOADGEN_PID" 2>/dev/null || break
  "${kinds[$((RANDOM % ${#kinds[@]}))]}"
done
step "faults stopped; the load generator drains the saga and checks the books"
drain_started=$SECONDS
loadgen_status=0
wait "$LOADGEN_PID" || loadgen_status=$?
LOADGEN_PID=""
drained=$((SECONDS - drain_started))

# --- the report -------------------------------------------------------------------------
dead=()
for name in "${INSTANCES[@]}"; do
  kill -0 "${SERVICE_PID[$name]}" 2>/dev/null || dead+=("$name")
done
kill -0 "$BROKER_PID" 2>/dev/null || dead+=(broker)
audit_status=0
"$BIN_DIR/ocopctl" audit --database-url "$DATABASE_URL" >"$WORK/audit.txt" 2>&1 || audit_status=$?
[ -s "$WORK/loadgen.json" ] || { tail -n 30 "$WORK/logs/loadgen.log" >&2; die "the load generator wrote no report"; }

{
  echo "## make soak: seed $SEED, $MINUTES min at $RATE orders/s, order and catalog ×$REPLICAS, broker $(platform_broker_storage)"
  echo
  jq -r '"orders placed \(.orders_placed), confirmed \(.orders_confirmed), cancelled \(.orders_cancelled) (\(.cancelled_by_reason | to_entries | map("\(.key) \(.value)") | join(", "))), PlaceOrder failed \(.orders_failed)"' "$WORK/loadgen.json"
  printf 'faults injected: '
  if [ ${#FAULTS[@]} -eq 0 ]; then echo "none"; else
    for kind in "${!FAULTS[@]}"; do printf '%s × %s; ' "$kind" "${FAULTS[$kind]}"; done | sed 's/; $//'; echo
  fi
  echo "time to drain after the load and the faults: ${drained} s"
  echo "services and broker alive at the end: $([ ${#dead[@]} -eq 0 ] && echo all || echo "not ${dead[*]}")"
  jq -r '"the load generator'"'"'s check: \(if .check_passed then "passed" else "FAILED" end)" ,
         (.check.violations // [] | .[:20][] | "  - \(.)")' "$WORK/loadgen.json"
  echo
  echo "ocopctl audit:"
  sed 's/^/  /' "$WORK/audit.txt"
} | tee "$WORK/report.md"

[ ${#dead[@]} -eq 0 ] || die "died during the soak: ${dead[*]}"
[ "$loadgen_status" -eq 0 ] || die "the load generator's check failed (exit status $loadgen_status)"
[ "$audit_status" -eq 0 ] || die "the audit found broken invariants"
step "soak passed"
