#!/usr/bin/env bash
# `make container-check`: the image, run as Kubernetes runs it, on this machine (podman;
# no Docker engine or registry needed).
#
# 1. Builds the release binaries (CONTAINER_CHECK_BUILD=0 skips it; BIN_DIR says where
#    they are) and the Dockerfile's `prebuilt` target from them: the same runtime stage
#    as the real image, without compiling inside a container (`make image` does that).
#    CONTAINER_CHECK_IMAGE=ocop-market:0.1.0 checks an image `make image` built instead.
# 2. Scans the image: its Debian packages, no compiler, no secret, nothing of ours but
#    the binaries and the seed catalogue (tools/dev/containers.sh, scan_image).
# 3. Starts PostgreSQL and the broker on the host (free ports, a temporary folder), then
#    each service's migration step (MIGRATE_ONLY=true, as the `<service>-migrate` Jobs)
#    and the four services as containers with the base manifests' settings: numeric
#    user 10001, read-only root file system with only the manifests' volumes writable
#    (/tmp, the notification spool), all capabilities dropped, no privilege escalation,
#    the base memory/CPU limits, the ConfigMaps' variables with the dev overlay's (the
#    sandbox gateway pays). What differs, because there is no cluster: host networking
#    on 127.0.0.1 and free ports, PostgreSQL with trust and no TLS, a plaintext broker
#    without SASL, the services create their topics (Strimzi's job there), no collector.
# 4. Checks what the probes check: grpc.health.v1 SERVING on every gRPC port (startup and
#    readiness) and /metrics on every HTTP port (liveness); seeds the catalogue with the
#    image's ocopctl and seed file; places one order from the host with ocopctl and
#    follows it to CONFIRMED; finds the notification in the spool.
# 5. `podman stop` (SIGTERM) each service with the manifests' grace period (45 s): each
#    must exit by itself with status 0 before it ends.
# Everything it started is removed on exit; a failure keeps the logs and names them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/containers.sh"
cd "$OCOP_ROOT"

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$OCOP_ROOT/target}/release}
IMAGE=localhost/ocop-market:container-check
GRACE=$(awk '/terminationGracePeriodSeconds:/ { print $2; exit }' deploy/k8s/base/catalog/deployment.yaml)
SERVICES=(catalog order payment notification)
SMOKE_LINE=BLI-MIEN-DONG-500G:1

STARTED=$SECONDS
step() { log "[$((SECONDS - STARTED)) s] $*"; }

ensure_system_packages
ensure_container_tools
ensure_broker
release_binaries "${CONTAINER_CHECK_BUILD:-1}" "$BIN_DIR" catalog order payment notification ocopctl
ensure_health_venv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocop-container-check.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/logs" "$WORK/env"
CONTAINERS=()
BROKER_PID=""
PREFIX="ocop-check-$$"
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  local name
  for name in ${CONTAINERS[@]+"${CONTAINERS[@]}"}; do
    [ $status -eq 0 ] || pm logs "$name" >"$WORK/logs/$name.log" 2>&1
    pm rm -f -t 0 "$name" >/dev/null 2>&1
  done
  [ -z "$BROKER_PID" ] || stop_processes "$BROKER_PID"
  stop_postgres "${PG_DATA:-$WORK/pg}"
  if [ $status -eq 0 ]; then
    rm -rf "$WORK"
  else
    log "container-check failed; logs kept in $WORK/logs"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# fail_with NAME MESSAGE: the container's last log lines, then the failure.
fail_with() {
  log "last lines of $1:"
  pm logs --tail 30 "$1" >&2 2>&1 || true
  die "$2"
}

# --- the image --------------------------------------------------------------------------
# CONTAINER_CHECK_IMAGE=ocop-market:0.1.0 checks an image `make image` built instead of
# building the prebuilt target (the host's ocopctl still places the order).
if [ -n "${CONTAINER_CHECK_IMAGE:-}" ]; then
  IMAGE=$CONTAINER_CHECK_IMAGE
  pm image exists "$IMAGE" || die "no image $IMAGE (make image builds ocop-market:<version>)"
  step "checking $IMAGE"
else
  ensure_base_image
  step "building $IMAGE (Dockerfile target prebuilt, binaries from $BIN_DIR)"
  CONTEXT="$WORK/context"
  mkdir -p "$CONTEXT/prebuilt" "$CONTEXT/services/catalog/seed"
  for bin in catalog order payment notification ocopctl; do
    cp "$BIN_DIR/$bin" "$CONTEXT/prebuilt/"
  done
  cp services/catalog/seed/catalog.toml "$CONTEXT/services/catalog/seed/"
  old_image=$(pm image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  # --network host: the runtime stage's apt-get reaches the Debian mirror (cached after the
  # first build, as long as the base image and that RUN line stay the same).
  pm build --network host --target prebuilt -f deploy/docker/Dockerfile -t "$IMAGE" "$CONTEXT" \
    >"$WORK/logs/build.log" 2>&1 || { tail -n 30 "$WORK/logs/build.log" >&2; die "podman build failed (log above)"; }
  rm -rf "$CONTEXT"
  new_image=$(pm image inspect --format '{{.Id}}' "$IMAGE")
  # The previous run's image, now untagged: its binaries' layer only takes room.
  if [ -n "$old_image" ] && [ "$old_image" != "$new_image" ]; then pm rmi "$old_image" >/dev/null 2>&1 || true; fi
fi
step "image $(pm image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'); scanning what it ships"
scan_image "$IMAGE" "$WORK/scan"

# --- PostgreSQL and the broker on the host ----------------------------------------------
PG_PORT=$(free_port)
KAFKA_PORT=$(free_port)
declare -A GRPC_PORT=() HTTP_PORT=()
for name in "${SERVICES[@]}"; do
  GRPC_PORT[$name]=$(free_port)
  HTTP_PORT[$name]=$(free_port)
done
step "PostgreSQL on 127.0.0.1:$PG_PORT, the broker on 127.0.0.1:$KAFKA_PORT"
start_postgres "$WORK/pg" "$PG_PORT" "$WORK/logs/postgres.log"
for db in "${SERVICES[@]}"; do
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
done
start_broker "$KAFKA_PORT" "memory://tansu/" "$WORK/logs/broker.log"

# --- each container's settings: the manifests', then what this machine changes ---------
JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
SANDBOX_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# manifest_env SERVICE: the variables of the ConfigMaps ocop-common and SERVICE-config as
# the dev overlay renders them (base env files, then the overlay's literals merged in).
manifest_env() {
  grep -hE '^[A-Z_][A-Z0-9_]*=' deploy/k8s/base/common/common.env "deploy/k8s/base/$1/config.env"
  awk -v common=ocop-common -v own="$1-config" '
    /^configMapGenerator:/ { generator = 1; next }
    /^[a-z]/ { generator = 0 }
    generator && /^  - name:/ { name = $3 }
    generator && /^      - [A-Z_][A-Z0-9_]*=/ && (name == common || name == own) { print $2 }
  ' deploy/k8s/overlays/dev/kustomization.yaml
}

# Settings that name the cluster's TLS/SASL brokers, its CA volume and its collector:
# dropped here (the broker is plaintext on loopback, no collector runs).
LOCAL_DROP='^(KAFKA_SASL_MECHANISM|KAFKA_SASL_USERNAME|KAFKA_SSL_CA_LOCATION|OTEL_EXPORTER_OTLP_ENDPOINT)='

# write_env SERVICE FILE [VAR=value…]: the manifest's variables, the local addresses and
# secrets, then the extra ones; the last value of a variable wins.
write_env() {
  local service=$1 file=$2
  shift 2
  {
    manifest_env "$service" | grep -vE "$LOCAL_DROP"
    printf '%s\n' \
      "GRPC_ADDR=127.0.0.1:${GRPC_PORT[$service]}" "HTTP_ADDR=127.0.0.1:${HTTP_PORT[$service]}" \
      "DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$service" \
      "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT" KAFKA_SECURITY_PROTOCOL=plaintext KAFKA_CREATE_TOPICS=true \
      "OCOP_AUTH_JWT_SECRET=$JWT_SECRET" "$@"
  } | awk -F= '{ if (!($1 in value)) order[++n] = $1; value[$1] = $0 }
               END { for (i = 1; i <= n; i++) print value[order[i]] }' >"$file"
  chmod 600 "$file"
}

# Per service, beyond the common local settings: the order service reaches the catalog,
# the payment service has its sandbox secret and its public address.
service_extra() {
  case $1 in
    order) echo "CATALOG_URL=http://127.0.0.1:${GRPC_PORT[catalog]}" ;;
    payment) echo "SANDBOX_SECRET=$SANDBOX_SECRET"; echo "PUBLIC_URL=http://127.0.0.1:${HTTP_PORT[payment]}" ;;
  esac
}

# The pod's security context and the container's, in podman's words. --read-only-tmpfs=false:
# podman would otherwise make /run, /tmp and /var/tmp writable; Kubernetes mounts only the
# volumes the manifest names.
SECURITY=(--user 10001:10001 --read-only --read-only-tmpfs=false --cap-drop ALL
  --security-opt no-new-privileges --network host)
# The base Deployments' limits (cpu 1, memory 256Mi) and their emptyDir volumes. An
# emptyDir is a fresh host folder, mode 0777, group fsGroup (10001) with setgid; podman's
# --tmpfs is not the same (a tmpfs over a folder of the image takes that folder's owner
# and mode, root 0755 here), so each is a folder of $WORK mounted read-write.
LIMITS=(--memory 256m --cpus 1)
volumes_of() { # CONTAINER SERVICE
  local mount dir
  for mount in /tmp $([ "$2" != notification ] || echo /var/lib/ocop/notifications); do
    dir="$WORK/volumes/$1${mount//\//-}"
    install -d -m 2777 -g 10001 "$dir"
    echo "--volume=$dir:$mount:rw"
  done
}

# --- the migration Jobs, then the Deployments -------------------------------------------
for service in "${SERVICES[@]}"; do
  name="$PREFIX-$service-migrate"
  extra=()
  mapfile -t extra < <(service_extra "$service")
  write_env "$service" "$WORK/env/$service-migrate.env" ${extra[@]+"${extra[@]}"} MIGRATE_ONLY=true "OCOP_INSTANCE_ID=$name"
  mapfile -t volumes < <(volumes_of "$name" migrate)
  CONTAINERS+=("$name")
  step "migrating $service (its migration Job: MIGRATE_ONLY=true)"
  if ! pm run --name "$name" "${SECURITY[@]}" "${LIMITS[@]}" "${volumes[@]}" \
      --env-file "$WORK/env/$service-migrate.env" --entrypoint "/usr/local/bin/$service" "$IMAGE" \
      >"$WORK/logs/$service-migrate.log" 2>&1; then
    fail_with "$name" "the $service migration step failed"
  fi
  pm rm "$name" >/dev/null
done

for service in "${SERVICES[@]}"; do
  name="$PREFIX-$service"
  extra=()
  mapfile -t extra < <(service_extra "$service")
  write_env "$service" "$WORK/env/$service.env" ${extra[@]+"${extra[@]}"} "OCOP_INSTANCE_ID=$name"
  # The overlay is read with awk, not kustomize: make sure its literals arrived.
  if [ "$service" = payment ] && ! grep -qx 'SANDBOX_GATEWAY=true' "$WORK/env/payment.env"; then
    die "SANDBOX_GATEWAY=true of the dev overlay's payment-config did not reach the payment settings (deploy/k8s/overlays/dev/kustomization.yaml changed shape?)"
  fi
  mapfile -t volumes < <(volumes_of "$name" "$service")
  CONTAINERS+=("$name")
  pm run -d --name "$name" "${SECURITY[@]}" "${LIMITS[@]}" "${volumes[@]}" \
    --env-file "$WORK/env/$service.env" --entrypoint "/usr/local/bin/$service" "$IMAGE" >/dev/null \
    || die "podman could not start the $service container"
done
step "started ${SERVICES[*]}; waiting for grpc.health.v1 SERVING (the startup probe allows 120 s)"

HEALTH_ARGS=()
for service in "${SERVICES[@]}"; do HEALTH_ARGS+=("$service=${GRPC_PORT[$service]}"); done
deadline=$((SECONDS + 120))
until health=$(grpc_health "${HEALTH_ARGS[@]}"); do
  for service in "${SERVICES[@]}"; do
    state=$(pm inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$PREFIX-$service")
    [[ $state == running* ]] || fail_with "$PREFIX-$service" "the $service container stopped at start-up ($state)"
  done
  [ $SECONDS -lt $deadline ] || { echo "$health" >&2; die "not every service answered SERVING within 120 s"; }
  sleep 1
done
list=$(paste -sd, - <<<"$health")
step "health: ${list//,/, }"

# Liveness: GET /metrics on each HTTP port.
for service in "${SERVICES[@]}"; do
  "$HEALTH_VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3).read()' \
    "http://127.0.0.1:${HTTP_PORT[$service]}/metrics" 2>/dev/null \
    || fail_with "$PREFIX-$service" "GET /metrics on the $service HTTP port (the liveness probe) failed"
done
# The root file system really is read-only for the service's user.
if pm exec "$PREFIX-catalog" /bin/sh -c ': > /var/lib/ocop/probe' 2>/dev/null; then
  die "the catalog container could write to its root file system (--read-only not in effect)"
fi

# --- the catalogue, with the image's own ocopctl and seed file, then one order ----------
step "seeding the catalogue (ocopctl seed --file /usr/share/ocop-market/seed/catalog.toml in a container)"
printf '%s\n' "OCOP_CATALOG_ADDR=http://127.0.0.1:${GRPC_PORT[catalog]}" "OCOP_AUTH_JWT_SECRET=$JWT_SECRET" >"$WORK/env/seed.env"
CONTAINERS+=("$PREFIX-seed")
pm run --name "$PREFIX-seed" "${SECURITY[@]}" --env-file "$WORK/env/seed.env" "$IMAGE" \
  ocopctl seed --file /usr/share/ocop-market/seed/catalog.toml >"$WORK/logs/seed.log" 2>&1 \
  || fail_with "$PREFIX-seed" "seeding the catalogue from the image failed"
pm rm "$PREFIX-seed" >/dev/null

step "placing an order ($SMOKE_LINE, paid by the sandbox gateway) with $BIN_DIR/ocopctl and following it"
export OCOP_CATALOG_ADDR="http://127.0.0.1:${GRPC_PORT[catalog]}" OCOP_ORDER_ADDR="http://127.0.0.1:${GRPC_PORT[order]}" \
  OCOP_PAYMENT_ADDR="http://127.0.0.1:${GRPC_PORT[payment]}" OCOP_PAYMENT_HTTP="http://127.0.0.1:${HTTP_PORT[payment]}"
if ! timeout 120 "$BIN_DIR/ocopctl" order place --line "$SMOKE_LINE" --follow >"$WORK/logs/order.txt" 2>&1; then
  cat "$WORK/logs/order.txt" >&2
  for service in "${SERVICES[@]}"; do log "last lines of $service:"; pm logs --tail 8 "$PREFIX-$service" >&2 2>&1; done
  die "the order did not settle"
fi
order_id=$(awk '/^order /{ print $2; exit }' "$WORK/logs/order.txt")
status=$(awk '/^order /{ status = $4 } END { print status }' "$WORK/logs/order.txt")
[ "$status" = CONFIRMED ] || { cat "$WORK/logs/order.txt" >&2; die "the order ended $status, not CONFIRMED"; }
step "order $order_id CONFIRMED"

# The notification service wrote its message into the spool (its emptyDir volume).
deadline=$((SECONDS + 30))
until pm exec "$PREFIX-notification" grep -q "$order_id" /var/lib/ocop/notifications/notifications.jsonl 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail_with "$PREFIX-notification" "no notification about order $order_id in the spool within 30 s"
  sleep 0.5
done
health=$(grpc_health "${HEALTH_ARGS[@]}") || { echo "$health" >&2; die "a service is no longer SERVING after the order"; }

# --- SIGTERM: each drains and exits 0 within the grace period ---------------------------
step "podman stop (SIGTERM, SIGKILL after the manifests' ${GRACE} s) on the four services at once"
stoppers=()
for service in "${SERVICES[@]}"; do
  (
    began=${EPOCHREALTIME/[.,]/}
    pm stop --time "$GRACE" "$PREFIX-$service" >/dev/null 2>&1
    echo $(( (${EPOCHREALTIME/[.,]/} - began) / 1000 )) >"$WORK/$service.stop-ms"
  ) &
  stoppers+=($!)
done
# These alone: a bare `wait` would also wait for the broker, which runs until cleanup.
wait "${stoppers[@]}"
stopped=()
for service in "${SERVICES[@]}"; do
  exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$PREFIX-$service")
  ms=$(cat "$WORK/$service.stop-ms")
  [ "$exit_code" = 0 ] || fail_with "$PREFIX-$service" "$service exited with status $exit_code after SIGTERM (137: killed at the end of the grace period)"
  [ "$ms" -lt $((GRACE * 1000)) ] || fail_with "$PREFIX-$service" "$service took $ms ms to stop, not under the ${GRACE} s grace period"
  if pm logs "$PREFIX-$service" 2>&1 | grep -q 'panicked at'; then
    fail_with "$PREFIX-$service" "$service panicked"
  fi
  stopped+=("$service $((ms / 100 / 10)).$((ms / 100 % 10)) s")
done
list=$(IFS=,; echo "${stopped[*]}")
step "drained and exited 0: ${list//,/, }"
step "container-check passed in $((SECONDS - STARTED)) s"
