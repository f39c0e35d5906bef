# shellcheck shell=bash
# Shared shell functions for building and running the image with podman, on a machine
# without a Docker engine or a reachable container registry. Sourced after lib.sh by
# image.sh and container-check.sh.
#
# - ensure_container_tools: podman, runc and debootstrap from Debian (apt-get, once).
# - pm ARGS…: podman with the project's settings (deploy/podman/containers.conf: runc,
#   cgroupfs, lower ulimits) — never the system's containers.conf, which stays untouched.
# - ensure_base_image: `debian:bookworm-slim` made here with debootstrap (no registry to
#   pull it from), its root file system cached as a tarball in $OCOP_CACHE_DIR/images.
# - ensure_builder_image: `rust:1.95-slim-bookworm` made from that base and this machine's
#   Rust toolchain (for `make image`, whose builder stages need it).
# - ensure_health_venv / grpc_health: a grpc.health.v1 client (grpcio) in a venv.
# - scan_image IMAGE: what the image ships; fails on compilers, secrets or test data.
# The Dockerfile names the same images a Docker user pulls, so it is built unchanged.

# podman reads this file on top of its defaults; exported so every podman call sees it.
export CONTAINERS_CONF="$OCOP_ROOT/deploy/podman/containers.conf"
DEBIAN_RELEASE=bookworm
BASE_IMAGE="debian:$DEBIAN_RELEASE-slim"
RUST_VERSION=$(awk -F'"' '/^rust-version *=/ { print $2; exit }' "$OCOP_ROOT/Cargo.toml")
BUILDER_IMAGE="rust:$RUST_VERSION-slim-$DEBIAN_RELEASE"
IMAGE_CACHE="$OCOP_CACHE_DIR/images"
# Bump when the recipe of the base root file system changes: the cached tarball is redone.
BASE_RECIPE=2

# podman with the project's flags. The runtime and cgroup manager are also in
# containers.conf; repeating them keeps a podman that ignores the file from picking crun.
pm() { podman --runtime runc --cgroup-manager cgroupfs "$@"; }

ensure_container_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # The health client's venv.
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "apt-get could not install ${missing[*]}"
  fi
  [ "$(id -u)" -eq 0 ] || die "podman runs rootful here (root, or sudo): rootless podman needs subordinate ids and user namespaces this setup does not configure"
}

# The Debian mirror this machine's apt uses (debootstrap fetches from it; the image's own
# apt sources point there too). Empty: debootstrap's default.
debian_mirror() {
  local sources
  for sources in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$sources" ] || continue
    awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }
         /^deb / && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$sources"
    return 0
  done
}

# The base image, as the official `debian:bookworm-slim` is made: a minbase debootstrap
# without documentation, manual pages and locales, apt's lists emptied. About two minutes
# the first time on a machine; then the cached tarball is imported in seconds.
ensure_base_image() {
  if pm image exists "$BASE_IMAGE"; then return 0; fi
  local tarball="$IMAGE_CACHE/debian-$DEBIAN_RELEASE-slim-r$BASE_RECIPE.tar"
  if [ ! -s "$tarball" ]; then
    local root="$IMAGE_CACHE/rootfs-$DEBIAN_RELEASE.tmp" mirror
    mirror=$(debian_mirror)
    log "making the base image $BASE_IMAGE with debootstrap (about 2 minutes, once per machine; cached in $IMAGE_CACHE)"
    rm -rf "$root"
    mkdir -p "$root"
    # shellcheck disable=SC2086  # $mirror: none or one word
    debootstrap --variant=minbase "$DEBIAN_RELEASE" "$root" $mirror >"$IMAGE_CACHE/debootstrap.log" 2>&1 \
      || { tail -n 20 "$IMAGE_CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $IMAGE_CACHE/debootstrap.log)"; }
    # Same apt sources as this machine's Debian (release, updates, security), when it
    # uses the deb822 file the official image ships too.
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
      rm -f "$root/etc/apt/sources.list"
    fi
    # What makes the official image "slim": dpkg leaves out documentation, manual pages
    # and translations of every package installed later too.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    # … and, as there too, apt keeps no downloaded package or cache after an install.
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* "$root"/usr/share/lintian/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
      "$root"/var/log/* "$root"/tmp/*
    # The container engine provides /dev, /proc and /sys, and the resolver files.
    : >"$root/etc/resolv.conf"
    tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
      -C "$root" -cf "$tarball.tmp" . || die "could not pack the base root file system"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "importing $BASE_IMAGE from $tarball"
  pm import --change 'CMD ["bash"]' "$tarball" "$BASE_IMAGE" >"$IMAGE_CACHE/import.log" 2>&1 \
    || { cat "$IMAGE_CACHE/import.log" >&2; die "podman import of $tarball failed"; }
}

# The Rust builder image the Dockerfile's `chef` stage starts from, as the official
# `rust:<version>-slim-bookworm` is laid out (toolchain in /usr/local/cargo and
# /usr/local/rustup, gcc and libc6-dev for linking, ca-certificates for crates.io), from
# the toolchain this machine's rustup installed (no registry holds the image for us).
ensure_builder_image() {
  if pm image exists "$BUILDER_IMAGE"; then return 0; fi
  ensure_base_image
  local toolchain
  toolchain=$(rustup which --toolchain "$RUST_VERSION" rustc 2>/dev/null) \
    || toolchain=$(rustup which rustc 2>/dev/null) \
    || die "no Rust toolchain $RUST_VERSION here (rustup toolchain install $RUST_VERSION)"
  toolchain=$(dirname "$(dirname "$(readlink -f "$toolchain")")")
  "$toolchain/bin/rustc" --version | grep -q "^rustc $RUST_VERSION" \
    || die "$toolchain is not Rust $RUST_VERSION ($("$toolchain/bin/rustc" --version))"
  log "making $BUILDER_IMAGE from $BASE_IMAGE and the toolchain in $toolchain (once per machine)"
  local context
  context=$(mktemp -d "${TMPDIR:-/tmp}/ocop-builder.XXXXXX")
  # A machine behind a TLS-inspecting proxy trusts its CA through Debian's local CA folder;
  # the builder (which downloads crates) trusts the same ones. Certificates are public;
  # only this stand-in builder image gets them, never the runtime image.
  mkdir -p "$context/local-ca"
  cp /usr/local/share/ca-certificates/*.crt "$context/local-ca/" 2>/dev/null || true
  cat >"$context/Containerfile" <<EOF
FROM $BASE_IMAGE
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$RUST_VERSION
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
    && rm -rf /var/lib/apt/lists/*
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
# The toolchain without its documentation; rustc and cargo on PATH as rustup's proxies
# would put them.
RUN mkdir -p /usr/local/rustup/toolchains /usr/local/cargo/bin \\
    && cp -a /toolchain /usr/local/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu \\
    && rm -rf /usr/local/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu/share/doc \\
    && for tool in /usr/local/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu/bin/*; do \\
         ln -s "\$tool" /usr/local/cargo/bin/; done \\
    && rustc --version && cargo --version
EOF
  pm build --network host --volume "$toolchain:/toolchain:ro" -t "$BUILDER_IMAGE" "$context" >"$context/build.log" 2>&1 \
    || { tail -n 30 "$context/build.log" >&2; die "could not make $BUILDER_IMAGE"; }
  rm -rf "$context"
}

# --- gRPC health (grpc.health.v1), as the manifests' probes ask it ------------------------
HEALTH_VENV="$OCOP_CACHE_DIR/venv-health"
# The same pins as the bench's clients.
HEALTH_REQUIREMENTS="
grpcio==1.85.1
grpcio-health-checking==1.85.1
protobuf==7.36.2
typing_extensions==4.16.0
"

ensure_health_venv() { ensure_python_venv "$HEALTH_VENV" "a gRPC health client (grpcio)" "$HEALTH_REQUIREMENTS"; }

# grpc_health NAME=PORT…: prints "NAME STATUS" per service (SERVING, NOT_SERVING, or the
# gRPC error code when it does not answer, e.g. UNAVAILABLE); overall health (""), as the
# kubelet's gRPC probe asks. Exit 0 only when every one is SERVING.
grpc_health() {
  "$HEALTH_VENV/bin/python" - "$@" <<'PY'
import sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
ok = True
for arg in sys.argv[1:]:
    name, port = arg.split("=")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as error:
        status = error.code().name
    ok = ok and status == "SERVING"
    print(name, status)
sys.exit(0 if ok else 1)
PY
}

# --- what the image ships -------------------------------------------------------------
# The project's secret settings (deploy/README.md, "Secrets to create"): none may have a
# value in the image's configuration or in a file it ships.
SECRET_ENV_NAMES=(OCOP_AUTH_JWT_SECRET SANDBOX_SECRET KAFKA_SASL_PASSWORD DATABASE_URL
  SMTP_PASSWORD SMS_API_TOKEN ZALO_ACCESS_TOKEN VIETQR_WEBHOOK_SECRET VNPAY_HASH_SECRET
  MOMO_SECRET_KEY ZALOPAY_KEY1 ZALOPAY_KEY2)

# scan_image IMAGE REPORT_DIR: lists the image's Debian packages (REPORT_DIR/packages.txt,
# "name version" lines) and every file no package owns (REPORT_DIR/extra-files.txt), and
# fails on a compiler, a private key or secret, or a file of ours beyond the binaries and
# the seed catalogue.
scan_image() {
  local image=$1 out=$2 problems=() name
  mkdir -p "$out"
  # Root inside a throwaway container, no network: to read every file (e.g. /etc/shadow).
  # shellcheck disable=SC2016  # expanded by the container's shell
  pm run --rm --network none --user 0:0 --entrypoint /bin/sh "$image" -c '
    set -e
    dpkg-query -W -f "\${Package} \${Version}\n" > /tmp/packages
    # Every file a package installed, then every file present; the difference is what
    # the Dockerfile and the base image added.
    # dpkg lists /bin/…, /lib/… where merged /usr has them under /usr.
    cat /var/lib/dpkg/info/*.list | sed -E "s#^/(bin|sbin|lib|lib64)(/|\$)#/usr/\1\2#" | sort -u > /tmp/owned
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp \) -prune -o \( -type f -o -type l \) -print | sort > /tmp/all
    comm -23 /tmp/all /tmp/owned > /tmp/extra
    echo "== packages"; cat /tmp/packages
    echo "== extra"; cat /tmp/extra
    echo "== compilers"
    for tool in gcc cc c++ g++ cpp clang rustc cargo rustup ld as make; do
      command -v "$tool" || true
    done
    echo "== private keys"
    # Text files only (-I): the binaries hold PEM markers as parser constants.
    grep -rIl -e "-----BEGIN [A-Z ]*PRIVATE KEY-----" /etc /usr /var /root /home /opt /srv 2>/dev/null || true
  ' >"$out/scan.txt" 2>"$out/scan.err" || { cat "$out/scan.err" >&2; die "could not scan $image"; }
  awk '/^== /{ section = $2; next } section == "packages"' "$out/scan.txt" >"$out/packages.txt"
  awk '/^== /{ section = $2; next } section == "extra"' "$out/scan.txt" >"$out/extra-files.txt"
  local compilers keys
  compilers=$(awk '/^== /{ section = $2; next } section == "compilers"' "$out/scan.txt")
  keys=$(awk '/^== /{ section = $2" "$3; next } section == "private keys"' "$out/scan.txt")
  [ -z "$compilers" ] || problems+=("compilers or build tools: $(echo "$compilers" | tr '\n' ' ')")
  [ -z "$keys" ] || problems+=("private keys: $(echo "$keys" | tr '\n' ' ')")
  # Packages that only a build needs: compilers, headers, binutils.
  local dev_packages
  dev_packages=$(awk '$1 ~ /^(gcc(-[0-9]+)?|g\+\+(-[0-9]+)?|cpp(-[0-9]+)?|clang.*|binutils.*|rustc|cargo|make|.*-dev(:.*)?)$/ { print $1 }' "$out/packages.txt")
  [ -z "$dev_packages" ] || problems+=("build packages: $(echo "$dev_packages" | tr '\n' ' ')")
  # Files no package owns: ours (the five binaries, the seed catalogue) and what Debian's
  # maintainer scripts, adding a user and podman generate; nothing else (test data, a
  # copied config, a build leftover, apt's downloaded packages).
  local ours='^/usr/local/bin/(catalog|order|payment|notification|ocopctl)$|^/usr/share/ocop-market/seed/catalog\.toml$'
  local generated='^/(bin|sbin|lib|lib64)$'
  generated+='|^/etc/(\.pwd\.lock|ca-certificates\.conf|dpkg/origins/default|environment|motd|nsswitch\.conf|profile|fstab|hostname|hosts|resolv\.conf|ld\.so\.cache|localtime|timezone|mtab|shells|subuid|subgid|machine-id)$'
  generated+='|^/etc/(passwd|group|shadow|gshadow)-?$'
  generated+='|^/etc/(pam\.d/common-[a-z-]+|security/opasswd|rc[0-6S]\.d/[^/]+|systemd/system/[^/]+\.wants/[^/]+|alternatives/[^/]+|ssl/certs/[^/]+)$'
  generated+='|^/etc/(apt/sources\.list\.d/debian\.sources|apt/apt\.conf\.d/docker-[a-z-]+|dpkg/dpkg\.cfg\.d/docker)$'
  generated+='|^/root/\.(bashrc|profile)$|^/run/\.containerenv$|^/usr/(bin/(awk|nawk|pager|which)|sbin/rmt|local/man)$'
  generated+='|^/var/(lib/(dpkg|apt|pam|systemd)/.+|lib/shells\.state|cache/(debconf|ldconfig)/.+|cache/apt/archives/lock|log/.+|spool/mail)$'
  local unexpected
  unexpected=$(grep -v -E "$ours|$generated" "$out/extra-files.txt" || true)
  [ -z "$unexpected" ] || problems+=("files no package owns and the image should not ship: $(echo "$unexpected" | tr '\n' ' ')")
  # Secret settings with a value in the image's configuration (ENV).
  local env
  env=$(pm image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image")
  for name in "${SECRET_ENV_NAMES[@]}"; do
    if grep -q "^$name=." <<<"$env"; then problems+=("ENV $name has a value"); fi
  done
  # … or in a text file of ours (e.g. an .env file or a config copied in).
  local key_files
  key_files=$(grep -E '(^|/)\.env$|\.(pem|key|p12|pfx|jks)$|/id_(rsa|ecdsa|ed25519)' "$out/extra-files.txt" \
    | grep -v '^/etc/ssl/certs/' || true)  # the public CA bundle, from ca-certificates
  [ -z "$key_files" ] || problems+=("key or .env files: $(echo "$key_files" | tr '\n' ' ')")
  local user
  user=$(pm image inspect --format '{{.Config.User}}' "$image")
  [[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || problems+=("USER is '$user', not a numeric non-root uid (runAsNonRoot cannot verify it)")
  if [ ${#problems[@]} -gt 0 ]; then
    for name in "${problems[@]}"; do log "image scan: $name"; done
    die "the image $image ships what it must not (full listing: $out/scan.txt)"
  fi
  log "image scan: $(wc -l <"$out/packages.txt") Debian packages, no compiler, no private key, no secret value;" \
    "files of its own: $(grep -c -E '^/usr/(local/bin|share/ocop-market)/' "$out/extra-files.txt") (five binaries, the seed catalogue); user $user"
}
