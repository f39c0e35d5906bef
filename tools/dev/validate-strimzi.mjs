#!/usr/bin/env node
// Validates the Strimzi resources (apiVersion kafka.strimzi.io/*) in multi-document YAML,
// such as `kubectl kustomize` output, with the typed models of the npm package
// @kubernetes-models/strimzi-kafka-operator, which are generated from Strimzi's CRDs.
//
//   node tools/dev/validate-strimzi.mjs [--quiet] [--label NAME] [FILE|-]...
//
// Reads each FILE (standard input when none is given, or for `-`). Prints `OK Kind/name`
// for each valid resource and `FAIL Kind/name: path: message` for each problem, then one
// summary line; --quiet leaves out the OK lines. Resources are prefixed with NAME (or with
// the file's path when reading files). Other documents are skipped. Exit status: 0 when
// every Strimzi resource is valid, 1 when one is not or the YAML does not parse, 2 on a
// usage error or when the packages are not installed.
//
// Beyond the model's validate() (types, enums, required fields, ranges and patterns):
//   - unknown fields are errors, as with `kubectl apply` (strict field validation). The
//     package's schemas do not forbid them, so the declared fields of each object are
//     taken from the model's own validator: it reads every property its schema declares
//     (a map's keys are enumerated instead, a free-form object such as a topic's `config`
//     is not looked into), and a key it never read is not in the schema;
//   - null values under spec are errors: the models accept null for any optional field,
//     and the API server would silently drop such a field;
//   - metadata.name must be set.
//
// The packages are installed by tools/dev/deploy-check.sh into
// ${OCOP_CACHE_DIR:-~/.cache/ocop-market}/npm-strimzi (override with OCOP_STRIMZI_DIR).
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const GROUP = "kafka.strimzi.io";
const MODELS_PACKAGE = "@kubernetes-models/strimzi-kafka-operator";

function fatal(message) {
  console.error(`validate-strimzi: ${message}`);
  process.exit(2);
}

function usage(message) {
  if (message) console.error(`validate-strimzi: ${message}`);
  console.error("usage: node tools/dev/validate-strimzi.mjs [--quiet] [--label NAME] [FILE|-]...");
  process.exit(2);
}

// ---- arguments ---------------------------------------------------------------------------
let quiet = false;
let label = null;
const inputs = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === "--quiet" || arg === "-q") quiet = true;
  else if (arg === "--label") {
    if (i + 1 >= argv.length) usage("--label needs a value");
    label = argv[++i];
  } else if (arg === "--help" || arg === "-h") usage();
  else if (arg.startsWith("-") && arg !== "-") usage(`unknown option ${arg}`);
  else inputs.push(arg);
}
if (inputs.length === 0) inputs.push("-");

// ---- the packages ------------------------------------------------------------------------
const cacheDir = process.env.OCOP_CACHE_DIR
  || join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "ocop-market");
const nodeDir = process.env.OCOP_STRIMZI_DIR || join(cacheDir, "npm-strimzi");
const modulesDir = join(nodeDir, "node_modules");
const modelsDir = join(modulesDir, ...MODELS_PACKAGE.split("/"));
if (!existsSync(join(modelsDir, "package.json")) || !existsSync(join(modulesDir, "yaml"))) {
  fatal(`${MODELS_PACKAGE} and yaml are not installed in ${nodeDir}; `
    + "run `bash tools/dev/deploy-check.sh` once, which installs them");
}
const require = createRequire(join(nodeDir, "package.json"));
const YAML = require("yaml");
const modelsVersion = JSON.parse(readFileSync(join(modelsDir, "package.json"), "utf8")).version;
// The package exports only an ES module entry point, so it is imported by its file path.
const group = await import(pathToFileURL(join(modelsDir, "kafka.strimzi.io", "index.js")).href);

/** The model class for apiVersion and kind, or undefined. */
function modelFor(apiVersion, kind) {
  const version = apiVersion.slice(GROUP.length + 1);
  const model = Object.hasOwn(group, version) ? group[version][kind] : undefined;
  return typeof model === "function" && model.apiVersion === apiVersion && model.kind === kind
    ? model : undefined;
}

function modelsInPackage() {
  return Object.keys(group).sort().map((version) => `${GROUP}/${version}: `
    + Object.keys(group[version]).filter((k) => typeof group[version][k] === "function").sort()
      .join(", ")).join("; ");
}

// ---- paths and values --------------------------------------------------------------------
/** ["spec", "acls", 0, "operations"] → spec.acls[0].operations; odd keys are quoted. */
function showPath(path) {
  if (path.length === 0) return "(top level)";
  return path.map((key, i) => {
    if (typeof key === "number") return `[${key}]`;
    const plain = /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key);
    if (!plain) return `[${JSON.stringify(key)}]`;
    return i === 0 ? key : `.${key}`;
  }).join("");
}

/** An ajv instancePath (JSON pointer) → path array, with array indexes as numbers. */
function pointerPath(doc, pointer) {
  const path = [];
  let node = doc;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    const step = Array.isArray(node) && /^\d+$/.test(key) ? Number(key) : key;
    path.push(step);
    node = node != null && typeof node === "object" ? node[step] : undefined;
  }
  return { path, value: node };
}

function showValue(value) {
  if (value === undefined || (value !== null && typeof value === "object")) return "";
  let text = JSON.stringify(value);
  if (text.length > 60) text = `${text.slice(0, 57)}...`;
  return ` (got ${text})`;
}

// ---- the checks --------------------------------------------------------------------------
/**
 * Wraps `value` so that every property the validator reads, and every object whose keys it
 * enumerates, is recorded in `access` (path string → {read: Set, enumerated: bool}).
 */
function tracked(value, path, access) {
  if (value === null || typeof value !== "object") return value;
  const where = JSON.stringify(path);
  const record = { read: new Set(), enumerated: false };
  access.set(where, record);
  const children = new Map();
  const note = (target, key) => {
    // Own data (what the schema declares and the document has) or absent (what the
    // schema declares and the document leaves out); not the model's own methods.
    if (typeof key === "string" && (Object.hasOwn(target, key) || !(key in target))) {
      record.read.add(key);
    }
  };
  return new Proxy(value, {
    get(target, key, receiver) {
      note(target, key);
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.hasOwn(target, key)
          || child === null || typeof child !== "object") return child;
      if (!children.has(key)) {
        const step = Array.isArray(target) && /^\d+$/.test(key) ? Number(key) : key;
        children.set(key, tracked(child, [...path, step], access));
      }
      return children.get(key);
    },
    has(target, key) {
      note(target, key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/** Keys the schema does not declare, found from what the validator read. */
function unknownFields(node, path, access, problems) {
  if (Array.isArray(node)) {
    node.forEach((item, i) => unknownFields(item, [...path, i], access, problems));
    return;
  }
  if (node === null || typeof node !== "object") return;
  const record = access.get(JSON.stringify(path));
  // Not looked into (inside a free-form or unknown field), a map, or a free-form object.
  if (!record || record.enumerated || record.read.size === 0) return;
  const known = [...record.read];
  for (const key of Object.keys(node)) {
    if (record.read.has(key)) {
      unknownFields(node[key], [...path, key], access, problems);
    } else {
      problems.push({ path: [...path, key], message: `unknown field "${key}" (the schema has `
        + `${known.map((k) => JSON.stringify(k)).join(", ")} here)` });
    }
  }
}

function nulls(node, path, problems) {
  if (node === null) {
    problems.push({ path, message: "is null (empty); the API server would drop the field: "
      + "give it a value or remove it" });
  } else if (Array.isArray(node)) {
    node.forEach((item, i) => nulls(item, [...path, i], problems));
  } else if (typeof node === "object") {
    for (const [key, value] of Object.entries(node)) nulls(value, [...path, key], problems);
  }
}

/** Problems ({path, message}) of one kafka.strimzi.io resource. */
function check(doc) {
  const Model = modelFor(doc.apiVersion, doc.kind);
  if (!Model) {
    return [{ path: ["apiVersion"], message: `${MODELS_PACKAGE} ${modelsVersion} has no model `
      + `for ${doc.apiVersion} ${doc.kind} (it has ${modelsInPackage()})` }];
  }
  const problems = [];
  if (doc.spec !== undefined) nulls(doc.spec, ["spec"], problems);
  if (typeof doc.metadata?.name !== "string" || doc.metadata.name === "") {
    problems.push({ path: ["metadata", "name"], message: "must be set" });
  }
  const model = new Model(doc);
  const access = new Map();
  try {
    tracked(model, [], access).validate();
  } catch (error) {
    if (!Array.isArray(error?.errors)) throw error;
    for (const e of error.errors) {
      const { path, value } = pointerPath(doc, e.instancePath);
      let message = e.message;
      if (e.keyword === "enum") message += `: ${e.params.allowedValues.join(", ")}`;
      problems.push({ path, message: message + showValue(value) });
    }
  }
  unknownFields(doc, [], access, problems);
  return problems;
}

// ---- input -------------------------------------------------------------------------------
let checked = 0;
let failed = 0;
let unparsable = 0;
const kinds = new Map();

function report(prefix, kind, ident, problems) {
  checked++;
  kinds.set(kind, (kinds.get(kind) || 0) + 1);
  if (problems.length === 0) {
    if (!quiet) console.log(`OK ${prefix}${ident}`);
    return;
  }
  failed++;
  const seen = new Set();
  for (const { path, message } of problems) {
    const line = `FAIL ${prefix}${ident}: ${showPath(path)}: ${message}`;
    if (!seen.has(line)) console.log(line);
    seen.add(line);
  }
}

function resources(doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return [];
  if (typeof doc.kind === "string" && doc.kind.endsWith("List") && Array.isArray(doc.items)) {
    return doc.items.flatMap(resources);
  }
  return [doc];
}

for (const input of inputs) {
  const prefix = label !== null ? `${label}: ` : input === "-" ? "" : `${input}: `;
  let text;
  try {
    text = readFileSync(input === "-" ? 0 : input, "utf8");
  } catch (error) {
    fatal(`cannot read ${input === "-" ? "standard input" : input}: ${error.message}`);
  }
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
  (Array.isArray(docs) ? docs : []).forEach((parsed, index) => {
    if (parsed.errors.length > 0) {
      unparsable++;
      for (const error of parsed.errors) {
        const message = error.message.split("\n")[0].replace(/:$/, "");
        console.log(`FAIL ${prefix}document ${index + 1}: YAML: ${message}`);
      }
      return;
    }
    for (const doc of resources(parsed.toJS())) {
      const apiVersion = typeof doc.apiVersion === "string" ? doc.apiVersion : "";
      if (!apiVersion.startsWith(`${GROUP}/`)) continue;
      const ident = `${doc.kind}/${doc.metadata?.name ?? `(document ${index + 1}, no name)`}`;
      let problems;
      try {
        problems = check(doc);
      } catch (error) {
        problems = [{ path: [], message: `the validator failed: ${error?.stack || error}` }];
      }
      report(prefix, doc.kind, ident, problems);
    }
  });
}

const counts = [...kinds].sort().map(([kind, n]) => `${n} ${kind}`).join(", ");
const where = label !== null ? `${label}: ` : "";
const broken = unparsable ? `, ${unparsable} YAML document(s) that do not parse` : "";
console.log(`${failed || unparsable ? "FAIL" : "OK"} ${where}${checked} ${GROUP} resource(s)`
  + `${counts ? ` (${counts})` : ""}, ${failed} invalid${broken}; ${MODELS_PACKAGE} ${modelsVersion}`);
process.exit(failed || unparsable ? 1 : 0);
