#!/usr/bin/env bash
# Checks the public event contract (`make contract-check`):
#   1. docs/asyncapi.yaml is a valid AsyncAPI document (@asyncapi/cli `validate`);
#   2. its channels are exactly the public topics that the services' code defines;
#   3. its inline protobuf payload schemas match the messages in proto/;
#   4. `buf lint` of proto/ is clean;
#   5. `buf breaking` finds no breaking change against the last released contract,
#      the image proto/released/ocop-contract-v1.binpb (see proto/released/README.md;
#      an image in the repo, not a git tag, so that any clone can run the check).
#
# @asyncapi/cli comes from npm, pinned below and installed once into a cache folder
# (override with OCOP_CACHE_DIR), like buf in tools/dev/buf.sh. Needs node and npm on
# PATH; the npm registry is whatever npm is configured to use. The CLI's anonymous
# usage metrics and its update check are switched off, so `validate` does not touch
# the network.
set -euo pipefail

ASYNCAPI_CLI_VERSION="4.1.1"
# @asyncapi/cli pins its dependencies with ranges only. Resolving them as the registry
# stood on this date (npm's --before) keeps every install the same tree, and one that
# still runs on Node 20 (later @asyncapi/* releases require Node 24).
ASYNCAPI_DEPS_BEFORE="2026-03-01"
# The released contract, relative to proto/. Cut a new one only at a release.
BASELINE="released/ocop-contract-v1.binpb"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache_dir="${OCOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ocop-market}/npm-asyncapi"
cli_pkg_json="$cache_dir/node_modules/@asyncapi/cli/package.json"
asyncapi_bin="$cache_dir/node_modules/.bin/asyncapi"
install_marker="$cache_dir/.ocop-installed"
buf="$repo_root/tools/dev/buf.sh"
doc="docs/asyncapi.yaml"

# The CLI records usage metrics unless the file it keeps its choice in says no (it
# would create one in $HOME saying yes), and looks for a newer version on npm once a
# day unless told to skip.
export ASYNCAPI_METRICS_CONFIG_PATH="$cache_dir/analytics.json"
export ASYNCAPI_SKIP_NEW_VERSION_CHECK=true

now() { date +%s%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", (b - a) / 1e9 }'; }
die() {
  echo "contract-check: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || die "node is needed (for @asyncapi/cli and the checks)"
cd "$repo_root"
started="$(now)"

# --- @asyncapi/cli, installed once ---------------------------------------------------
installed_version() {
  [[ -f "$cli_pkg_json" ]] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$cli_pkg_json" | head -n 1
}
wanted="$ASYNCAPI_CLI_VERSION before $ASYNCAPI_DEPS_BEFORE"
if [[ "$(installed_version)" != "$ASYNCAPI_CLI_VERSION" || ! -x "$asyncapi_bin" ||
  "$(cat "$install_marker" 2>/dev/null)" != "$wanted" ]]; then
  command -v npm >/dev/null 2>&1 || die "npm is needed to install @asyncapi/cli@$ASYNCAPI_CLI_VERSION"
  echo "==> installing @asyncapi/cli@$ASYNCAPI_CLI_VERSION into $cache_dir (once per machine, about a minute; reused afterwards)"
  step_start="$(now)"
  rm -rf "$cache_dir"
  mkdir -p "$cache_dir"
  npm_log="$(mktemp)"
  # SCARF_ANALYTICS: a dependency's install script would report the download.
  if ! SCARF_ANALYTICS=false npm install --prefix "$cache_dir" --no-audit --no-fund \
    --save-exact --before="$ASYNCAPI_DEPS_BEFORE" \
    "@asyncapi/cli@$ASYNCAPI_CLI_VERSION" >"$npm_log" 2>&1; then
    cat "$npm_log" >&2
    rm -f "$npm_log"
    die "installing @asyncapi/cli@$ASYNCAPI_CLI_VERSION failed"
  fi
  rm -f "$npm_log"
  echo "$wanted" >"$install_marker"
  echo "    installed ($(elapsed "$step_start"))"
fi
printf '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"ocop-contract-check"}\n' \
  >"$ASYNCAPI_METRICS_CONFIG_PATH"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The checks that need a YAML parser and the buf images run on node, with the YAML
# library that @asyncapi/cli brings along.
cat >"$work/check.js" <<'EOF'
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');
const [mode, cliPackageJson, docPath, ...rest] = process.argv.slice(2);
const yaml = createRequire(cliPackageJson)('js-yaml');
const doc = yaml.load(fs.readFileSync(docPath, 'utf8'));
const fail = (lines) => {
  for (const line of lines) console.error(`    ${line}`);
  process.exit(1);
};

if (mode === 'topics') {
  // rest: the public topic names found in the code.
  const expected = [...new Set(rest)].sort();
  const problems = [];
  const addresses = [];
  for (const [id, channel] of Object.entries(doc.channels || {})) {
    addresses.push(channel.address);
    const topic = channel.bindings?.kafka?.topic;
    if (topic !== channel.address) {
      problems.push(`channel ${id}: bindings.kafka.topic is ${topic}, address is ${channel.address}`);
    }
  }
  for (const name of expected) {
    if (!addresses.includes(name)) problems.push(`public topic ${name} (in the code) has no channel in ${docPath}`);
  }
  for (const name of addresses) {
    if (!expected.includes(name)) problems.push(`channel ${name} in ${docPath} is not a public topic in the code`);
  }
  if (problems.length) fail(problems);
  console.log(`    channels = public topics in the code: ${expected.join(', ')}`);
} else if (mode === 'extract') {
  // Writes each message's inline protobuf schema to rest[0]/<message>.proto and prints
  // "<message> <ce_type>" lines.
  const [outDir] = rest;
  const problems = [];
  for (const [id, message] of Object.entries(doc.components?.messages || {})) {
    const payload = message.payload || {};
    if (!String(payload.schemaFormat || '').startsWith('application/vnd.google.protobuf')) {
      problems.push(`message ${id}: payload is not an inline protobuf schema`);
      continue;
    }
    const headers = message.headers?.allOf?.[1]?.properties || {};
    const ceType = headers.ce_type?.const;
    if (!ceType) {
      problems.push(`message ${id}: headers give no ce_type const`);
      continue;
    }
    for (const example of message.examples || []) {
      if (example.headers?.ce_type !== ceType) {
        problems.push(`message ${id}: example ${example.name} has ce_type ${example.headers?.ce_type}, not ${ceType}`);
      }
      if (example.headers?.ce_source !== headers.ce_source?.const) {
        problems.push(`message ${id}: example ${example.name} has ce_source ${example.headers?.ce_source}, not ${headers.ce_source?.const}`);
      }
    }
    fs.writeFileSync(path.join(outDir, `${id}.proto`), payload.schema);
    console.log(`${id} ${ceType}`);
  }
  if (problems.length) fail(problems);
} else if (mode === 'compare') {
  // rest: real image (JSON), inline image (JSON), then "<message> <ce_type>" pairs.
  const [realImage, inlineImage, ...pairs] = rest;
  const index = (file) => {
    const types = new Map();
    const add = (prefix, messages, enums, fileName) => {
      for (const e of enums || []) {
        types.set(`${prefix}${e.name}`, {
          file: fileName,
          kind: 'enum',
          shape: (e.value || []).map((v) => `${v.name} = ${v.number || 0}`),
        });
      }
      for (const m of messages || []) {
        const name = `${prefix}${m.name}`;
        const oneofs = (m.oneofDecl || []).map((o) => o.name);
        types.set(name, {
          file: fileName,
          kind: 'message',
          refs: (m.field || []).filter((f) => f.typeName).map((f) => f.typeName.replace(/^\./, '')),
          shape: (m.field || [])
            .map((f) => [
              f.number,
              `${f.label || 'LABEL_OPTIONAL'} ${f.type}${f.typeName ? ` ${f.typeName}` : ''}`,
              f.name,
              f.oneofIndex === undefined ? '' : `oneof ${oneofs[f.oneofIndex]}`,
              f.proto3Optional ? 'optional' : '',
            ])
            .sort((a, b) => a[0] - b[0])
            .map(([number, type, name, ...more]) => `${name} = ${number}: ${[type, ...more].filter(Boolean).join(' ')}`),
        });
        add(`${name}.`, m.nestedType, m.enumType, fileName);
      }
    };
    for (const f of JSON.parse(fs.readFileSync(file, 'utf8')).file) {
      add(f.package ? `${f.package}.` : '', f.messageType, f.enumType, f.name);
    }
    return types;
  };
  const real = index(realImage);
  const inline = index(inlineImage);
  // Every type reachable from the root, well-known types aside (they are the same
  // everywhere).
  const reach = (types, root) => {
    const seen = new Set();
    const todo = [root];
    while (todo.length) {
      const name = todo.pop();
      if (seen.has(name) || name.startsWith('google.protobuf.')) continue;
      seen.add(name);
      for (const ref of types.get(name)?.refs || []) todo.push(ref);
    }
    return seen;
  };
  const problems = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const [id, ceType] = [pairs[i], pairs[i + 1]];
    if (!real.has(ceType)) {
      problems.push(`message ${id}: ce_type ${ceType} is no message in proto/`);
      continue;
    }
    if (!inline.has(ceType)) {
      problems.push(`message ${id}: the inline schema does not define ${ceType}`);
      continue;
    }
    const fromReal = reach(real, ceType);
    const fromInline = reach(inline, ceType);
    const before = problems.length;
    for (const name of fromReal) {
      const want = real.get(name);
      const have = inline.get(name);
      if (!have) {
        problems.push(`message ${id}: ${name} (${want.file}) is missing from the inline schema`);
        continue;
      }
      const wantShape = want.shape.join('\n');
      const haveShape = have.shape.join('\n');
      if (want.kind !== have.kind || wantShape !== haveShape) {
        const missing = want.shape.filter((s) => !have.shape.includes(s));
        const extra = have.shape.filter((s) => !want.shape.includes(s));
        problems.push(`message ${id}: ${name} differs from ${want.file}`);
        for (const s of missing) problems.push(`  proto/ has    ${s}`);
        for (const s of extra) problems.push(`  inline has    ${s}`);
      }
    }
    for (const name of fromInline) {
      if (!fromReal.has(name)) problems.push(`message ${id}: the inline schema has ${name}, which ${ceType} does not use in proto/`);
    }
    if (problems.length === before) {
      console.log(`    ${id}: inline schema = ${ceType} in ${real.get(ceType).file} (${fromReal.size} types)`);
    }
  }
  if (problems.length) fail(problems);
} else {
  fail([`unknown mode ${mode}`]);
}
EOF

# --- the checks ------------------------------------------------------------------------
failures=()
run_step() {
  local title="$1"
  shift
  local step_start
  step_start="$(now)"
  echo "==> $title"
  # One stream, so that a step's messages stay in order with its verdict.
  if "$@" 2>&1; then
    echo "    ok ($(elapsed "$step_start"))"
  else
    echo "    FAILED ($(elapsed "$step_start"))"
    failures+=("$title")
  fi
}

validate_asyncapi() {
  local flags=(--fail-severity error --suppressWarnings asyncapi-latest-version)
  local shown
  # `validate` exits non-zero on an error.
  if shown="$("$asyncapi_bin" validate "$doc" "${flags[@]}" 2>&1)"; then
    sed '/^[[:space:]]*$/d; s/^/    /' <<<"$shown"
    return 0
  fi
  sed '/^[[:space:]]*$/d; s/^/    /' <<<"$shown"
  # The default format leaves the message of some errors out (an exception in a schema
  # parser, for example); the JSON diagnostics have it.
  # shellcheck disable=SC2016 # the ${…} below are JavaScript template literals
  "$asyncapi_bin" validate "$doc" "${flags[@]}" --diagnostics-format json 2>/dev/null |
    SHOWN="$shown" node -e '
      let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
        const start = text.indexOf("["), end = text.lastIndexOf("]");
        if (start < 0) return;
        for (const d of JSON.parse(text.slice(start, end + 1)).filter((d) => d.severity === 0)) {
          const message = d.message.split(", stack:")[0];
          if (!process.env.SHOWN.includes(message))
            console.log(`    error ${d.code} at ${(d.path || []).join(".") || "(document)"}: ${message}`);
        }
      });' || true
  return 1
}

public_topics_match() {
  # The public topics, by the naming rule of DESIGN.md §4: the catalog's compacted
  # product topic and every `ocop.partner.*` topic. Taken from the contract's topic
  # list, so a topic added, renamed or removed there fails here until
  # docs/asyncapi.yaml follows.
  local topics_rs="proto/src/contract/topics.rs" products partner
  products="$(awk '/^pub const PRODUCTS: Topic/ { found = 1 }
    found && match($0, /"ocop\.[^"]*"/) { print substr($0, RSTART + 1, RLENGTH - 2); exit }' \
    "$topics_rs")"
  [[ -n "$products" ]] || {
    echo "    PRODUCTS not found in $topics_rs" >&2
    return 1
  }
  partner="$(grep -hoE '"ocop\.partner\.[A-Za-z0-9_.-]+"' "$topics_rs" | tr -d '"' | sort -u)"
  [[ -n "$partner" ]] || {
    echo "    no ocop.partner.* topic found in $topics_rs" >&2
    return 1
  }
  # shellcheck disable=SC2086 # one name per word
  node "$work/check.js" topics "$cli_pkg_json" "$doc" "$products" $partner
}

payloads_match_proto() {
  mkdir -p "$work/inline"
  local pairs
  pairs="$(node "$work/check.js" extract "$cli_pkg_json" "$doc" "$work/inline")" || return 1
  "$buf" build -o "$work/real.json" || return 1
  "$buf" build "$work/inline" -o "$work/inline.json" 2>&1 | sed "s|^$work/inline/|    $doc inline schema |" || {
    echo "    the inline protobuf schemas of $doc do not compile" >&2
    return 1
  }
  # shellcheck disable=SC2086 # "<message> <ce_type>" words
  node "$work/check.js" compare "$cli_pkg_json" "$doc" "$work/real.json" "$work/inline.json" $pairs
}

buf_lint() {
  "$buf" lint 2>&1 | sed 's/^/    /'
}

buf_breaking() {
  [[ -f "proto/$BASELINE" ]] || {
    echo "    the released contract proto/$BASELINE is missing (see proto/released/README.md)" >&2
    return 1
  }
  # The rule set is buf.yaml's `breaking.use`, and it must stay FILE, the strictest:
  # partners generate code from these files, and `ce_type` is the protobuf full name,
  # so renaming or moving a message, field or enum value, or changing a package or
  # file, breaks them even where the bytes on the wire would still decode. WIRE and
  # WIRE_JSON would allow exactly those changes; PACKAGE would allow moving types
  # between files, which breaks generated imports (Go, Java, Python).
  local rules
  rules="$(awk '/^breaking:/ { b = 1; next } /^[^ ]/ { b = 0 } b && /^ *- / { print $2 }' proto/buf.yaml)"
  [[ "$rules" == "FILE" ]] || {
    echo "    proto/buf.yaml breaking.use is '${rules//$'\n'/ }', expected FILE (see the comment in $0)" >&2
    return 1
  }
  "$buf" breaking --against "$BASELINE" 2>&1 | sed 's/^/    /'
}

echo "contract-check: @asyncapi/cli $(installed_version), $("$buf" --version 2>/dev/null | sed 's/^/buf /')"
run_step "[1/5] asyncapi validate $doc" validate_asyncapi
run_step "[2/5] $doc names exactly the public topics of the code" public_topics_match
run_step "[3/5] $doc payload schemas match proto/" payloads_match_proto
run_step "[4/5] buf lint proto/" buf_lint
run_step "[5/5] buf breaking proto/ against proto/$BASELINE" buf_breaking

if ((${#failures[@]})); then
  echo "contract-check: FAILED ($(elapsed "$started")):" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "contract-check: ok ($(elapsed "$started"))"
