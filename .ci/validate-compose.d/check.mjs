// The checks of .ci/validate-compose that need a YAML parser and a JSON Schema validator (Node, ajv, yaml); the
// Prometheus side (promtool) runs from the shell script on the rules file this writes.
//   node check.mjs REPO_ROOT RULES_OUT [SCRAPE_FILE]
// Exits 1 with one line per problem.
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// The packages live in the install cache (NODE_PATH is not read by ES modules): resolve them from there.
const require = createRequire(join(process.env.VALIDATE_COMPOSE_MODULES ?? here, "package.json"));
const Ajv2020 = require("ajv/dist/2020").default;
const YAML = require("yaml");

const [root, rulesOut, scrapeFile] = process.argv.slice(2);
const composeDir = join(root, "deploy/compose");
const problems = [];
const fail = (msg) => problems.push(msg);

// --- Compose files against the Compose Specification's schema (vendored: .ci/schemas/README.md says why) ---
const schema = JSON.parse(readFileSync(join(root, ".ci/schemas/compose-spec.json"), "utf8"));
// strict: false: the schema is the Compose project's, with keywords (e.g. "deprecated") that strict mode refuses.
const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

function loadYaml(file) {
  const doc = YAML.parseDocument(readFileSync(file, "utf8"), { merge: true, uniqueKeys: true });
  for (const e of doc.errors) fail(`${file}: YAML: ${e.message}`);
  for (const w of doc.warnings) fail(`${file}: YAML: ${w.message}`);
  return doc.toJS();
}

const composeFiles = ["compose.yaml", "compose.gpu.yaml"];
const composes = {};
for (const name of composeFiles) {
  const file = join(composeDir, name);
  const doc = loadYaml(file);
  composes[name] = doc;
  if (!validate(doc)) {
    for (const e of validate.errors) fail(`${file}: schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  }
}

// --- What the schema cannot know: the rules this deployment relies on ---
const toSeconds = (d) => {
  // Compose durations: 1m30s, 35s, 500ms, 1h; a bare number is seconds.
  if (typeof d === "number") return d;
  const m = String(d).match(/^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/);
  if (!m || !String(d)) return NaN;
  return (+(m[1] ?? 0)) * 3600 + (+(m[2] ?? 0)) * 60 + (+(m[3] ?? 0)) + (+(m[4] ?? 0)) / 1000;
};
// ${VAR:-default} / ${VAR-default} -> default, the value a plain "up" gets.
const withDefaults = (s) => String(s).replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}/g, "$1");

const base = composes["compose.yaml"];
const svc = base?.services?.genservice;
if (!svc) fail("compose.yaml: no service 'genservice'");
else {
  const env = svc.environment ?? {};
  const delay = Number(env.GenService__Shutdown__ReadinessDelaySeconds ?? 0);
  const drain = Number(env.GenService__Shutdown__DrainTimeoutSeconds ?? 25);
  const grace = toSeconds(svc.stop_grace_period ?? "10s");
  if (!(grace > delay + drain))
    fail(`compose.yaml: genservice stop_grace_period ${svc.stop_grace_period} must exceed ReadinessDelaySeconds + DrainTimeoutSeconds (${delay} + ${drain})`);
  const test = [].concat(svc.healthcheck?.test ?? []).join(" ");
  if (!test.includes("/v2/health/ready")) fail("compose.yaml: genservice healthcheck must ask /v2/health/ready");
  if (svc.read_only !== true) fail("compose.yaml: genservice must run with read_only: true");
  const mountsModels = (svc.volumes ?? []).some((v) => (typeof v === "string" ? v.split(":")[1] : v.target) === "/app/models");
  if (!mountsModels) fail("compose.yaml: genservice must mount a models folder at /app/models");
}
const gpu = composes["compose.gpu.yaml"]?.services?.genservice;
const devices = gpu?.deploy?.resources?.reservations?.devices ?? [];
if (!gpu?.gpus && !devices.some((d) => [].concat(d.capabilities ?? []).includes("gpu")))
  fail("compose.gpu.yaml: genservice must reserve a GPU (gpus, or deploy.resources.reservations.devices with capabilities [gpu])");

// Every bind mount or env file that comes from the repository must exist (a renamed folder would mount as empty).
for (const [name, doc] of Object.entries(composes)) {
  for (const [sname, s] of Object.entries(doc?.services ?? {})) {
    for (const v of s.volumes ?? []) {
      const source = typeof v === "string" ? v.split(":")[0] : v.type === "bind" ? v.source : null;
      if (!source || !/^[./]/.test(withDefaults(source))) continue; // a named volume
      const path = resolve(composeDir, withDefaults(source));
      if (!existsSync(path)) fail(`${name}: ${sname} mounts ${source}, but ${path} does not exist`);
    }
    for (const f of [].concat(s.env_file ?? [])) {
      const { path, required = true } = typeof f === "string" ? { path: f } : f;
      if (required && !existsSync(resolve(composeDir, path))) fail(`${name}: ${sname} requires env_file ${path}, which is not in the repository`);
    }
  }
}

// --- The dashboard: JSON, and only metrics the service exports ---
const listFile = join(here, "metrics.txt");
const allowed = new Set(readFileSync(listFile, "utf8").split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean));
const dashFile = join(composeDir, "grafana/dashboards/genservice.json");
let dash;
try {
  dash = JSON.parse(readFileSync(dashFile, "utf8"));
} catch (e) {
  fail(`${dashFile}: not JSON: ${e.message}`);
}

const exprs = []; // [where, PromQL]
const walkPanels = (panels) => {
  for (const p of panels ?? []) {
    for (const t of p.targets ?? []) if (t.expr) exprs.push([`panel "${p.title}" ${t.refId}`, t.expr]);
    walkPanels(p.panels);
  }
};
if (dash) {
  if (!dash.uid || !dash.title) fail(`${dashFile}: needs a uid and a title`);
  walkPanels(dash.panels);
  if (exprs.length === 0) fail(`${dashFile}: no queries found`);
  for (const v of dash.templating?.list ?? []) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (v.type !== "query" || !q) continue;
    // label_values(metric, label) is Grafana's, not PromQL: check the metric inside it.
    const m = q.match(/^label_values\(\s*(.*?)\s*,\s*\w+\s*\)$/);
    exprs.push([`variable "${v.name}"`, m ? m[1] : q]);
  }
}

// Grafana's variables -> values promtool accepts, so that the syntax check sees real PromQL.
const concrete = (e) =>
  e.replace(/\$__(rate_)?interval|\$__range/g, "1m").replace(/\$\{?[A-Za-z_]\w*(?::\w+)?\}?/g, ".*");

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
  "unless", "inf", "nan", "atan2"]);
function metricNames(e) {
  let s = concrete(e)
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings (label values, regexes)
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // range selectors
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " "); // grouping label lists
  const names = new Set();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after)) continue; // a function
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    if (/^\d/.test(m[0])) continue;
    names.add(m[0]);
  }
  return names;
}

const used = new Set();
for (const [where, e] of exprs) {
  for (const n of metricNames(e)) {
    used.add(n);
    if (!allowed.has(n)) fail(`${dashFile}: ${where} queries ${n}, which is not in ${listFile}`);
  }
}

// PromQL syntax: one recording rule per query for "promtool check rules" (run by the shell script).
const rules = { groups: [{ name: "dashboard", rules: exprs.map(([where, e], i) => ({ record: `dashboard:query_${i}`, expr: concrete(e) })) }] };
writeFileSync(rulesOut, YAML.stringify(rules));

// Optional: the list against a real scrape (curl -s host:port/metrics > FILE).
if (scrapeFile) {
  const scraped = new Set(readFileSync(scrapeFile, "utf8").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/[{\s]/)[0]));
  for (const n of allowed) if (!scraped.has(n)) fail(`${listFile}: ${n} is not in the scrape ${scrapeFile}`);
  console.log(`scrape ${scrapeFile}: ${[...allowed].filter((n) => scraped.has(n)).length} of ${allowed.size} listed metrics present`);
}

console.log(`compose: ${composeFiles.length} files against the Compose schema; dashboard: ${exprs.length} queries, ${used.size} metrics: ${[...used].sort().join(" ")}`);
if (problems.length) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
