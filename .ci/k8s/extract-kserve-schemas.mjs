// Writes schemas/<kind>.json from KServe's CRDs (config/crd/full/serving.kserve.io_{servingruntimes,
// inferenceservices}.yaml of github.com/kserve/kserve), for validate.mjs. Run by hand when KServe moves:
//   node .ci/k8s/extract-kserve-schemas.mjs <kserve checkout> <commit>
// CI cannot reach GitHub, so the output is committed. What it changes from the CRD's openAPIV3Schema:
// - descriptions dropped (size);
// - InferenceService: the parts no manifest here uses (canary, explainer, transformer, the predictor's
//   workerSpec and its per-framework shorthands such as predictor.onnx) kept as plain "type: object", which
//   takes the InferenceService schema from 636 KB to a size worth committing;
// - strict: every object that lists properties and neither sets additionalProperties nor
//   x-kubernetes-preserve-unknown-fields gets additionalProperties: false, i.e. unknown fields are errors,
//   as kubectl's --validate=strict reports them (the API server would silently prune them).
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const [checkout, commit] = process.argv.slice(2);
if (!checkout || !commit) {
  console.error("usage: node extract-kserve-schemas.mjs <kserve checkout> <commit>");
  process.exit(2);
}
const here = path.dirname(new URL(import.meta.url).pathname);

function transform(s) {
  if (Array.isArray(s)) return s.map(transform);
  if (!s || typeof s !== "object") return s;
  const o = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === "description") continue;
    o[k] = k === "properties" ? Object.fromEntries(Object.entries(v).map(([p, ps]) => [p, transform(ps)])) : transform(v);
  }
  if (o.properties && o.additionalProperties === undefined && !o["x-kubernetes-preserve-unknown-fields"]) {
    o.additionalProperties = false;
  }
  return o;
}

const pruned = { type: "object", "x-kubernetes-preserve-unknown-fields": true };
const prune = {
  InferenceService(schema) {
    const spec = schema.properties.spec.properties;
    for (const part of ["canary", "explainer", "transformer"]) if (spec[part]) spec[part] = pruned;
    const predictor = spec.predictor.properties;
    const frameworks = ["huggingface", "lightgbm", "onnx", "paddle", "pmml", "pytorch", "sklearn", "tensorflow",
      "triton", "xgboost", "workerSpec"];
    for (const f of frameworks) if (predictor[f]) predictor[f] = pruned;
  },
  ServingRuntime() {},
};

for (const [file, kind] of [["serving.kserve.io_servingruntimes.yaml", "ServingRuntime"],
                            ["serving.kserve.io_inferenceservices.yaml", "InferenceService"]]) {
  const crd = YAML.parse(fs.readFileSync(path.join(checkout, "config/crd/full", file), "utf8"));
  const version = crd.spec.versions.find((v) => v.storage);
  const schema = transform(version.schema.openAPIV3Schema);
  prune[kind](schema);
  const out = {
    $comment: `KServe ${crd.spec.group}/${version.name} ${kind}, from config/crd/full/${file} of kserve/kserve at ` +
      `${commit} (Apache-2.0); transformed by .ci/k8s/extract-kserve-schemas.mjs`,
    "x-apiVersion": `${crd.spec.group}/${version.name}`,
    "x-kind": kind,
    ...schema,
  };
  const target = path.join(here, "schemas", `${kind}.json`);
  fs.writeFileSync(target, JSON.stringify(out) + "\n");
  console.log(`${target}: ${fs.statSync(target).size} bytes`);
}
