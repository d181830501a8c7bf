// Validates Kubernetes manifests offline: node validate.mjs <file.yaml>...
// - Kubernetes kinds: the OpenAPI schemas that the npm package kubernetes-models bundles (types, required
//   fields, enums, formats). It does not flag unknown fields, so a misspelt optional field would pass; the parts
//   of a pod template where most fields live (containers, volumes, tolerations, affinity) are therefore also
//   checked strictly against the core schemas that KServe's ServingRuntime CRD embeds (strictPod below). The
//   rest of a Deployment, Service, HPA or PDB gets no unknown-field check.
// - KServe kinds: schemas/<Kind>.json, extracted from KServe's CRDs (extract-kserve-schemas.mjs), strict.
// Prints one line per object and exits 1 if any object fails.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";
import Ajv from "ajv";

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const crds = {};
for (const f of fs.readdirSync(path.join(here, "schemas"))) {
  const s = JSON.parse(fs.readFileSync(path.join(here, "schemas", f), "utf8"));
  crds[`${s["x-apiVersion"]}/${s["x-kind"]}`] = ajv.compile(s);
}

// The ServingRuntime CRD embeds Kubernetes' own Container, Volume, Toleration and Affinity schemas (as of the
// Kubernetes version KServe builds against), made strict by extract-kserve-schemas.mjs.
const sr = JSON.parse(fs.readFileSync(path.join(here, "schemas", "ServingRuntime.json"), "utf8")).properties.spec.properties;
const strictPod = {
  containers: ajv.compile(sr.containers),
  volumes: ajv.compile(sr.volumes),
  tolerations: ajv.compile(sr.tolerations),
  affinity: ajv.compile(sr.affinity),
};

function k8sModel(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try {
    return require(mod)[kind];
  } catch {
    return null;
  }
}

// Graceful termination: the pod's grace period must outlast the service's own shutdown sequence.
function checkGrace(file, objs) {
  const cm = objs.find((o) => o?.kind === "ConfigMap" && o.data?.GenService__Shutdown__DrainTimeoutSeconds);
  const dep = objs.find((o) => o?.kind === "Deployment");
  if (!cm || !dep) return 0;
  const sum = Number(cm.data.GenService__Shutdown__ReadinessDelaySeconds ?? 0) +
    Number(cm.data.GenService__Shutdown__DrainTimeoutSeconds);
  const grace = dep.spec.template.spec.terminationGracePeriodSeconds ?? 30;
  const ok = grace > sum;
  console.log(`${ok ? "ok  " : "FAIL"} ${file}: terminationGracePeriodSeconds ${grace} ${ok ? ">" : "<="} ` +
    `readiness delay + drain ${sum}`);
  return ok ? 0 : 1;
}

let failed = 0;
let count = 0;
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  failed += checkGrace(file, docs.map((d) => (d.errors.length ? null : d.toJS())));
  for (const doc of docs) {
    if (doc.errors.length) {
      console.log(`FAIL ${file}: YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj == null) continue;
    count++;
    const id = `${file}: ${obj.apiVersion}/${obj.kind} ${obj.metadata?.name}`;
    const errors = [];
    const crd = crds[`${obj.apiVersion}/${obj.kind}`];
    const Model = crd ? null : k8sModel(obj.apiVersion, obj.kind);
    if (crd) {
      if (!crd(obj)) errors.push(...crd.errors.map((e) => `${e.instancePath || "/"} ${e.message}` +
        (e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : "")));
    } else if (Model) {
      try {
        new Model(obj).validate();
      } catch (e) {
        errors.push(e.message);
      }
      const pod = obj.spec?.template?.spec ?? (obj.kind === "Pod" ? obj.spec : null);
      for (const [field, check] of Object.entries(pod ? strictPod : {})) {
        if (pod[field] !== undefined && !check(pod[field])) {
          errors.push(...check.errors.map((e) => `pod ${field}${e.instancePath} ${e.message}` +
            (e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : "")));
        }
      }
    } else {
      errors.push("no schema for this apiVersion/kind");
    }
    if (errors.length) {
      failed++;
      console.log(`FAIL ${id}\n  ${errors.join("\n  ")}`);
    } else {
      console.log(`ok   ${id}`);
    }
  }
}
console.log(`${count} objects, ${failed} failed`);
process.exit(failed ? 1 : 0);
