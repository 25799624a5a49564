// validate.mjs - parse YAML files and validate the Kubernetes objects in them against the
// Kubernetes API schemas (npm kubernetes-models, plus the Prometheus Operator CRDs).
//   node validate.mjs [--parse-only] [--dump] FILE...    (FILE "-" reads stdin)
// Prints one JSON object per YAML document: {file, doc, kind, name, ok, error}, plus the
// parsed document as "obj" with --dump.
// Exit status 0 when every document is ok, 1 otherwise. Used by tests/e2e/test_deploy.py.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const GROUPS = [
  (v) => `kubernetes-models/${v}`,
  (v) => `@kubernetes-models/prometheus-operator/${v}`,
];

async function modelFor(apiVersion, kind) {
  for (const g of GROUPS) {
    try {
      const mod = await import(g(apiVersion));
      if (mod[kind]) return mod[kind];
    } catch (e) {
      if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED" && e.code !== "ERR_MODULE_NOT_FOUND") throw e;
    }
  }
  return null;
}

async function checkDoc(obj, parseOnly) {
  if (parseOnly) return null;
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return "not a mapping";
  if (!obj.apiVersion || !obj.kind) return "no apiVersion/kind";
  if (!obj.metadata || !obj.metadata.name) return "no metadata.name";
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) return `unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`;
  try {
    new Model(obj).validate();
  } catch (e) {
    return e.message;
  }
  return null;
}

const args = process.argv.slice(2);
const parseOnly = args.includes("--parse-only");
const dump = args.includes("--dump");
const files = args.filter((a) => a !== "--parse-only" && a !== "--dump");
let bad = 0;
for (const file of files) {
  const text = readFileSync(file === "-" ? 0 : file, "utf8");
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  let i = 0;
  for (const d of list) {
    const out = { file, doc: i++, kind: null, name: null, ok: true, error: null };
    if (d.errors && d.errors.length) {
      out.ok = false;
      out.error = d.errors.map((e) => e.message).join("; ");
    } else {
      const obj = d.toJS();
      if (dump) out.obj = obj;
      if (obj === null && !parseOnly) { i--; continue; }  // empty document (e.g. a false `if`)
      if (obj && typeof obj === "object") {
        out.kind = obj.kind || null;
        out.name = (obj.metadata && obj.metadata.name) || null;
      }
      const err = await checkDoc(obj, parseOnly);
      if (err) { out.ok = false; out.error = err; }
    }
    if (!out.ok) bad++;
    console.log(JSON.stringify(out));
  }
}
process.exit(bad ? 1 : 0);
