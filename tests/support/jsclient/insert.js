#!/usr/bin/env node
// insert.js: the official ClickHouse JS client (npm @clickhouse/client, pinned in
// package-lock.json) as a real producer for sluice's format tests. For each format asked
// for, one client.insert() of rows id = base + 100*i + k (k < n) into table, then one line of
// JSON per insert on stdout: {"format", "ok", "error"?, "query_id"?}. The rows are the ones
// rows() makes; tests/e2e/test_formats.py compares what arrives with the same inserts made
// straight to the engine.
//   node insert.js --url http://127.0.0.1:P --table db.t --base 0 --n 20 --formats default,CSV,...
// "default" is insert() without a format: the client's default, JSONCompactEachRow.
'use strict';
const path = require('path');
const { Readable } = require('stream');
const { createClient } = require(path.join(__dirname, 'node_modules', '@clickhouse', 'client'));

function args(argv) {
  const a = { n: 20, base: 0 };
  for (let i = 2; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  a.n = parseInt(a.n, 10);
  a.base = parseInt(a.base, 10);
  a.formats = a.formats.split(',');
  return a;
}

// id UInt32, name String, v Nullable(Float64): names with the characters formats escape.
function rows(base, n) {
  const out = [];
  const extra = [',"q', 'tab\there', 'back\\slash', "it's", ''];
  for (let k = 0; k < n; k++) {
    out.push({ id: base + k, name: 'n' + (base + k) + extra[k % extra.length],
               v: k % 4 === 0 ? null : (base + k) / 8 });
  }
  return out;
}

function csvField(s) { return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
function tsvField(s) {
  return s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
}

function valuesFor(format, rs) {
  const names = ['id', 'name', 'v'], types = ['UInt32', 'String', 'Nullable(Float64)'];
  const arr = rs.map(r => [r.id, r.name, r.v]);
  // Strings formats carry every value as a JSON string: no nulls there.
  const strs = rs.map(r => [String(r.id), r.name, String(r.v === null ? 0 : r.v)]);
  switch (format) {
    case 'default': case 'JSONCompactEachRow': return arr;
    case 'JSONEachRow': return rs;
    case 'JSONStringsEachRow': return strs.map(([id, name, v]) => ({ id, name, v }));
    case 'JSONCompactStringsEachRow': return strs;
    case 'JSONCompactEachRowWithNames': return [names, ...arr];
    case 'JSONCompactEachRowWithNamesAndTypes': return [names, types, ...arr];
    case 'JSONCompactStringsEachRowWithNames': return [names, ...strs];
    case 'JSONCompactStringsEachRowWithNamesAndTypes': return [names, types, ...strs];
    case 'JSONObjectEachRow': {
      const o = {};
      rs.forEach((r, i) => { o['row_' + i] = r; });
      return o;
    }
  }
  // Raw formats: the client streams text as it is.
  const nul = (f) => (v) => v === null ? '\\N' : f(String(v));
  let lines;
  if (format.startsWith('CSV')) {
    lines = rs.map(r => [String(r.id), csvField(r.name), nul(x => x)(r.v)].join(','));
    if (format !== 'CSV') lines.unshift(names.join(','));
    if (format === 'CSVWithNamesAndTypes') lines.splice(1, 0, types.map(csvField).join(','));
  } else {
    const esc = format === 'TabSeparatedRaw' ? (x => x.replace(/[\t\\]/g, ' ')) : tsvField;
    lines = rs.map(r => [String(r.id), esc(r.name), nul(x => x)(r.v)].join('\t'));
    if (format.includes('WithNames')) lines.unshift(names.join('\t'));
    if (format.endsWith('AndTypes')) lines.splice(1, 0, types.join('\t'));
  }
  return Readable.from([Buffer.from(lines.join('\n') + '\n')], { objectMode: false });
}

async function main() {
  const a = args(process.argv);
  const client = createClient({ url: a.url, request_timeout: 60000,
                                compression: { request: false, response: false } });
  let i = 0;
  for (const format of a.formats) {
    const rs = rows(a.base + 100 * i++, a.n);
    const p = { table: a.table, values: valuesFor(format, rs) };
    if (format !== 'default') p.format = format;
    try {
      const r = await client.insert(p);
      console.log(JSON.stringify({ format, ok: true, query_id: r.query_id }));
    } catch (e) {
      console.log(JSON.stringify({ format, ok: false, error: String(e.message || e).slice(0, 500) }));
    }
  }
  await client.close();
}

main().catch(e => { console.error(e); process.exit(1); });
