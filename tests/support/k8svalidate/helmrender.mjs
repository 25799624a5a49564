// helmrender.mjs - render a Helm chart without helm, for tests only.
//   node helmrender.mjs CHART_DIR [--values FILE]... [--release NAME] [--namespace NS]
// Prints the rendered manifests (one "---" separated stream) on stdout.
//
// This is NOT Helm. It implements only the subset of Go-template syntax that
// deploy/helm/sluice uses, and refuses anything else loudly (so the chart cannot drift
// into syntax this renderer silently mis-renders):
//   {{ .Values.a.b }}  {{ .Release.Name }}  {{ .Release.Namespace }}  {{ .Chart.Name }}
//   {{ . }} (inside with)  "string" and integer literals
//   {{- if PIPELINE }} / {{- else }} / {{- with PIPELINE }} / {{- end }}
//   functions: toYaml X, quote X, nindent N X, indent N X, not X, default D X
//   pipelines: X | f args   (X becomes f's last argument, as in Go templates)
//   {{- and -}} whitespace trimming, {{/* comments */}}
// Truthiness follows Go templates: false, 0, "", null, empty list/map are false.
// A .Values path that does not exist is an error, except as the test of if/with/default.
import { readFileSync, readdirSync } from "node:fs";
import { join, basename } from "node:path";
import { parse, stringify } from "yaml";

function fail(msg) { throw new Error(msg); }

function deepMerge(a, b) {
  if (b && typeof b === "object" && !Array.isArray(b) && a && typeof a === "object" && !Array.isArray(a)) {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in a ? deepMerge(a[k], v) : v;
    return out;
  }
  return b;
}

// Split a template into text and action tokens, applying trim markers.
function lex(src, file) {
  const toks = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) { toks.push({ t: "text", v: src.slice(i) }); break; }
    let text = src.slice(i, open);
    let j = open + 2;
    if (src[j] === "-" && /\s/.test(src[j + 1])) { text = text.replace(/\s+$/, ""); j += 1; }
    toks.push({ t: "text", v: text });
    const close = src.indexOf("}}", j);
    if (close < 0) fail(`${file}: unclosed {{`);
    let body = src.slice(j, close);
    let next = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      const m = /^\s*/.exec(src.slice(next));
      next += m[0].length;
    }
    body = body.trim();
    if (!(body.startsWith("/*") && body.endsWith("*/"))) toks.push({ t: "act", v: body, file });
    i = next;
  }
  return toks;
}

// Parse tokens into a tree of text / output / if / with nodes.
function parseTree(toks) {
  let pos = 0;
  function block(stopAt) {
    const nodes = [];
    while (pos < toks.length) {
      const tk = toks[pos++];
      if (tk.t === "text") { nodes.push(tk); continue; }
      const m = /^(\w+)\b\s*(.*)$/.exec(tk.v);
      const kw = m && ["if", "with", "else", "end", "range", "define", "template", "include", "block"].includes(m[1]) ? m[1] : null;
      if (kw === "if" || kw === "with") {
        const node = { t: kw, cond: m[2], file: tk.file, then: null, else: [] };
        const r = block(["else", "end"]);
        node.then = r.nodes;
        if (r.stop === "else") node.else = block(["end"]).nodes;
        nodes.push(node);
      } else if (kw === "else" || kw === "end") {
        if (!stopAt || !stopAt.includes(kw)) fail(`${tk.file}: unexpected {{ ${kw} }}`);
        if (m[2]) fail(`${tk.file}: "{{ ${tk.v} }}" (else if/else with) is not supported`);
        return { nodes, stop: kw };
      } else if (kw) {
        fail(`${tk.file}: "{{ ${tk.v} }}" is not supported by this renderer`);
      } else {
        nodes.push({ t: "out", expr: tk.v, file: tk.file });
      }
    }
    if (stopAt) fail("missing {{ end }}");
    return { nodes, stop: null };
  }
  return block(null).nodes;
}

function words(expr, file) {
  const out = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|\||[^\s|]+)/g;
  let m;
  while ((m = re.exec(expr))) if (m[1]) out.push(m[1]);
  for (const w of out) if (w.startsWith("(")) fail(`${file}: parentheses are not supported: ${expr}`);
  return out;
}

const MISSING = Symbol("missing");

function lookup(path, ctx, file) {
  if (path === ".") return ctx.dot;
  const parts = path.split(".").slice(1);
  let v;
  if (["Values", "Release", "Chart"].includes(parts[0])) {
    v = ctx.root;
  } else {
    v = ctx.dot;  // .field inside with
  }
  for (const p of parts) {
    if (v === null || typeof v !== "object" || !(p in v)) return MISSING;
    v = v[p];
  }
  return v;
}

function truthy(v) {
  if (v === MISSING || v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

function toYaml(v) {
  if (v === MISSING) fail("toYaml of a missing value");
  return stringify(v, { lineWidth: 0 }).replace(/\n$/, "");
}

const FUNCS = {
  toYaml: [1, (x) => toYaml(x)],
  quote: [1, (x) => JSON.stringify(x === MISSING || x === null ? "" : String(x))],
  nindent: [2, (n, x) => "\n" + String(x).split("\n").map((l) => " ".repeat(n) + l).join("\n")],
  indent: [2, (n, x) => String(x).split("\n").map((l) => " ".repeat(n) + l).join("\n")],
  not: [1, (x) => !truthy(x)],
  default: [2, (d, x) => (truthy(x) ? x : d)],
};

function evalPipeline(expr, ctx, file, lenient) {
  const ws = words(expr, file);
  const cmds = [[]];
  for (const w of ws) (w === "|" ? cmds.push([]) : cmds[cmds.length - 1].push(w));
  let val;
  cmds.forEach((cmd, idx) => {
    if (!cmd.length) fail(`${file}: empty command in ${expr}`);
    const operand = (w) => {
      if (w.startsWith('"')) return JSON.parse(w);
      if (/^-?\d+$/.test(w)) return parseInt(w, 10);
      if (w === "true" || w === "false") return w === "true";
      if (w.startsWith(".")) {
        const v = lookup(w, ctx, file);
        if (v === MISSING && !lenient && !(cmd[0] === "default")) fail(`${file}: ${w} is not set`);
        return v;
      }
      fail(`${file}: unsupported term "${w}" in ${expr}`);
    };
    if (FUNCS[cmd[0]]) {
      const [arity, fn] = FUNCS[cmd[0]];
      const args = cmd.slice(1).map(operand);
      if (idx > 0) args.push(val);
      if (args.length !== arity) fail(`${file}: ${cmd[0]} takes ${arity} arguments in ${expr}`);
      val = fn(...args);
    } else {
      if (idx > 0 || cmd.length !== 1) fail(`${file}: unsupported command "${cmd.join(" ")}"`);
      val = operand(cmd[0]);
    }
  });
  return val;
}

function renderNodes(nodes, ctx) {
  let out = "";
  for (const n of nodes) {
    if (n.t === "text") out += n.v;
    else if (n.t === "out") {
      const v = evalPipeline(n.expr, ctx, n.file, false);
      if (v !== null && typeof v === "object") fail(`${n.file}: {{ ${n.expr} }} prints a map/list: use toYaml`);
      out += v === null ? "" : String(v);
    } else if (n.t === "if") {
      out += renderNodes(truthy(evalPipeline(n.cond, ctx, n.file, true)) ? n.then : n.else, ctx);
    } else if (n.t === "with") {
      const v = evalPipeline(n.cond, ctx, n.file, true);
      out += truthy(v) ? renderNodes(n.then, { ...ctx, dot: v }) : renderNodes(n.else, ctx);
    }
  }
  return out;
}

export function renderChart(chartDir, valueFiles = [], release = "release", namespace = "default") {
  const chart = parse(readFileSync(join(chartDir, "Chart.yaml"), "utf8"));
  let values = parse(readFileSync(join(chartDir, "values.yaml"), "utf8")) || {};
  for (const f of valueFiles) values = deepMerge(values, parse(readFileSync(f, "utf8")) || {});
  const root = {
    Values: values,
    Release: { Name: release, Namespace: namespace, Service: "Helm" },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const tdir = join(chartDir, "templates");
  const docs = [];
  for (const f of readdirSync(tdir).sort()) {
    if (!/\.ya?ml$/.test(f) || f.startsWith("_")) continue;
    const file = join(tdir, f);
    const text = renderNodes(parseTree(lex(readFileSync(file, "utf8"), file)), { root, dot: root });
    docs.push(`# Source: ${basename(chartDir)}/templates/${f}\n${text.replace(/^\n+/, "")}`);
  }
  return docs.join("\n---\n") + "\n";
}

if (process.argv[1] && process.argv[1].endsWith("helmrender.mjs")) {
  const args = process.argv.slice(2);
  const valueFiles = [];
  let chartDir = null, release = "release", ns = "default";
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--values" || args[i] === "-f") valueFiles.push(args[++i]);
    else if (args[i] === "--release") release = args[++i];
    else if (args[i] === "--namespace") ns = args[++i];
    else chartDir = args[i];
  }
  if (!chartDir) { console.error("usage: node helmrender.mjs CHART_DIR [--values FILE]..."); process.exit(2); }
  try {
    process.stdout.write(renderChart(chartDir, valueFiles, release, ns));
  } catch (e) {
    console.error("helmrender: " + e.message);
    process.exit(1);
  }
}
