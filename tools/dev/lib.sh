# Shared shell functions for the local stack (sourced by test.sh and run.sh).
# Starts a private PostgreSQL cluster and the Kafka-protocol broker, on loopback only.

OCOP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OCOP_CACHE_DIR=${OCOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ocop-market}
TANSU_VERSION=0.6.0
TANSU_BIN="$OCOP_CACHE_DIR/tansu-$TANSU_VERSION/bin/tansu"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs the Debian packages the build and the stack need, when one is missing.
ensure_system_packages() {
  local missing=()
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
  pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
  command -v make >/dev/null || missing+=(make)
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

# Path of a PostgreSQL server program (initdb, pg_ctl, postgres).
pg_bin() {
  local found
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
  log "building the Kafka-protocol broker (tansu $TANSU_VERSION) into $OCOP_CACHE_DIR; once per machine, about 10 minutes"
  mkdir -p "$OCOP_CACHE_DIR"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
    --root "$OCOP_CACHE_DIR/tansu-$TANSU_VERSION" \
    --target-dir "$OCOP_CACHE_DIR/tansu-build" >&2 \
    || die "could not build tansu"
  rm -rf "$OCOP_CACHE_DIR/tansu-build"
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

# start_postgres DATA_DIR PORT LOGFILE: initdb on first use, then start on loopback.
start_postgres() {
  local data=$1 port=$2 logfile=$3
  mkdir -p "$data"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    chown postgres "$data" "$(dirname "$logfile")"
  fi
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $data"
    as_db_owner "$(pg_bin initdb)" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null \
      || die "initdb failed"
  fi
  as_db_owner "$(pg_bin pg_ctl)" -D "$data" -l "$logfile" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c max_connections=300 -c fsync=off" start >/dev/null \
    || { cat "$logfile" >&2; die "PostgreSQL did not start"; }
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
