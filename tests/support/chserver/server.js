#!/usr/bin/env node
// chserver: ClickHouse's HTTP interface over an in-process chDB session (npm `chdb`,
// the ClickHouse 26.x engine as a library). A test fixture for sluice, not part of the
// product. Usage:
//   node server.js --port P --data DIR [--users user:pass,user2:pass2] [--host 127.0.0.1]
// See README.md in this folder for what is implemented and what is not.
'use strict';

const http = require('http');
const path = require('path');
const zlib = require('zlib');
const crypto = require('crypto');
const fs = require('fs');
const chdb = require('chdb');

// The addon itself (same instance chdb's index.js loaded). Used for three things the public
// API does not give: rowsWritten of an INSERT whose data is passed as a separate buffer
// (InsertRawAsyncConnection), server-side parameters passed verbatim in ClickHouse's
// escaped text form (QueryAsyncConnection with a bound map), and async queries returning
// the raw result bytes.
const native = require(path.join(path.dirname(require.resolve('chdb')), 'dist', 'loader.js')).loadNative();

// ---------------------------------------------------------------------------------------
// command line
function parseArgs(argv) {
  const a = { port: 8123, host: '127.0.0.1', data: null, users: 'default:' };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--port') { a.port = parseInt(v, 10); i++; }
    else if (k === '--host') { a.host = v; i++; }
    else if (k === '--data') { a.data = v; i++; }
    else if (k === '--users') { a.users = v; i++; }
    else { console.error('unknown argument ' + k); process.exit(2); }
  }
  if (!a.data || !a.port) {
    console.error('usage: node server.js --port P --data DIR [--users user:pass,...] [--host H]');
    process.exit(2);
  }
  const users = new Map();
  for (const item of a.users.split(',')) {
    if (!item) continue;
    const c = item.indexOf(':');
    if (c < 0) users.set(item, '');
    else users.set(item.slice(0, c), item.slice(c + 1));
  }
  a.users = users;
  return a;
}

// ---------------------------------------------------------------------------------------
// ClickHouse error codes and the HTTP status its server picks for them.
// Mapping copied from ClickHouse's src/Server/HTTP/exceptionCodeToHTTPStatus.cpp
// (function exceptionCodeToHTTPStatus, called by src/Server/HTTPHandler.cpp; read from
// github.com/ClickHouse/ClickHouse). Numeric codes checked against this engine with
// errorCodeToName(). Anything not listed is 500.
const STATUS_BY_CODE = new Map();
function mapCodes(status, codes) { for (const c of codes) STATUS_BY_CODE.set(c, status); }
mapCodes(401, [194]);                                 // REQUIRED_PASSWORD
mapCodes(403, [192, 193, 516, 512, 497]);             // UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED
mapCodes(400, [36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8,
  167, 168, 223, 62, 117, 53, 321]);                  // BAD_ARGUMENTS, CANNOT_PARSE_*, SYNTAX_ERROR, INCORRECT_DATA, TYPE_MISMATCH, ...
mapCodes(404, [60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511]); // UNKNOWN_TABLE/FUNCTION/IDENTIFIER/TYPE/STORAGE/DATABASE/SETTING/...
mapCodes(413, [229]);                                 // QUERY_IS_TOO_LARGE
mapCodes(501, [48]);                                  // NOT_IMPLEMENTED
mapCodes(503, [209, 76]);                             // SOCKET_TIMEOUT CANNOT_OPEN_FILE
mapCodes(411, [381]);                                 // HTTP_LENGTH_REQUIRED
mapCodes(408, [159]);                                 // TIMEOUT_EXCEEDED
mapCodes(503, [439]);                                 // CANNOT_SCHEDULE_TASK
mapCodes(415, [779]);                                 // UNSUPPORTED_MEDIA_TYPE
function httpStatusForCode(code) { return STATUS_BY_CODE.get(code) || 500; }

const ERROR_NAMES = { 36: 'BAD_ARGUMENTS', 62: 'SYNTAX_ERROR', 48: 'NOT_IMPLEMENTED', 516: 'AUTHENTICATION_FAILED', 1001: 'STD_EXCEPTION' };

let engineVersion = '26';
let engineTimezone = 'UTC';

class CHError extends Error {
  constructor(code, text) { super(text); this.chCode = code; }
}
// An error raised by this server, spelled as the engine spells its own.
function ownError(code, message) {
  return new CHError(code, `Code: ${code}. DB::Exception: ${message}. (${ERROR_NAMES[code] || 'UNKNOWN_EXCEPTION'})`);
}
// An error from the engine: keep its message, recover the code.
function engineError(e) {
  if (e instanceof CHError) return e;
  const msg = (e && e.message != null) ? String(e.message) : String(e);
  let code = e && typeof e.clickhouseCode === 'number' ? e.clickhouseCode : undefined;
  const m = /^Code: (\d+)[.,]/.exec(msg);
  if (code === undefined && m) code = parseInt(m[1], 10);
  if (!m) return new CHError(code || 1001, `Code: ${code || 1001}. DB::Exception: ${msg}. (${ERROR_NAMES[code || 1001] || 'UNKNOWN_EXCEPTION'})`);
  return new CHError(code, msg);
}

// ---------------------------------------------------------------------------------------
// A tiny SQL lexer: enough to find where an INSERT's inline data starts and which output
// format a statement names, skipping strings, quoted identifiers and comments.
function* tokens(s, from = 0) {
  let i = from;
  const n = s.length;
  while (i < n) {
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') { i++; continue; }
    if ((c === '-' && s[i + 1] === '-') || c === '#') {
      while (i < n && s[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && s[i + 1] === '*') {
      const e = s.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"' || c === '`') {
      i++;
      while (i < n) {
        if (s[i] === '\\') { i += 2; continue; }
        if (s[i] === c) {
          if (s[i + 1] === c) { i += 2; continue; }
          i++;
          break;
        }
        i++;
      }
      yield { t: c === "'" ? 'str' : 'qid', v: s.slice(start, i), start, end: i };
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$]/.test(s[i])) i++;
      yield { t: 'word', v: s.slice(start, i), start, end: i };
      continue;
    }
    if (/[0-9]/.test(c)) {
      while (i < n && /[A-Za-z0-9_.]/.test(s[i])) i++;
      yield { t: 'num', v: s.slice(start, i), start, end: i };
      continue;
    }
    i++;
    yield { t: 'punct', v: c, start, end: i };
  }
}

// Classify a statement. Returns
//   {kind: 'insert-data', dataStart, format}  INSERT ... FORMAT f <data> / INSERT ... VALUES <data>
//   {kind: 'other', firstWord, outFormat}     anything else (outFormat: a top-level FORMAT clause)
function classify(text) {
  const it = tokens(text);
  const first = it.next().value;
  const firstWord = first && first.t === 'word' ? first.v.toUpperCase() : '';
  let depth = 0;
  let outFormat = null;
  const isInsert = firstWord === 'INSERT';
  let prev = null;
  for (const tok of it) {
    if (tok.t === 'punct') {
      if (tok.v === '(') depth++;
      else if (tok.v === ')') depth--;
      else if (tok.v === ';' && depth === 0) break;
      prev = tok;
      continue;
    }
    if (depth === 0 && tok.t === 'word') {
      const w = tok.v.toUpperCase();
      if (isInsert && (w === 'SELECT' || w === 'WITH') && !(prev && prev.t === 'word' && prev.v.toUpperCase() === 'FORMAT')) {
        return { kind: 'other', firstWord, outFormat: null };
      }
      if (isInsert && w === 'VALUES') {
        return { kind: 'insert-data', dataStart: tok.end, format: 'Values' };
      }
      if (w === 'FORMAT') {
        const f = it.next().value;
        if (!f) break;
        if (isInsert) {
          let i = f.end;
          while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
          if (text[i] === '\n') i++;
          return { kind: 'insert-data', dataStart: i, format: f.v.replace(/^[`"]|[`"]$/g, '') };
        }
        outFormat = f.v.replace(/^[`"]|[`"]$/g, '');
        prev = f;
        continue;
      }
    }
    prev = tok;
  }
  return { kind: 'other', firstWord, outFormat };
}

// ---------------------------------------------------------------------------------------
// The chDB session and the queue that serializes every use of it (chDB runs in-process;
// one session is one engine context: current database and SET settings are shared state).
let session = null;
let conn = null;
let queueTail = Promise.resolve();
function enqueue(fn) {
  const p = queueTail.then(fn);
  queueTail = p.then(() => {}, () => {});
  return p;
}

async function q(sql, format = 'TabSeparated', params = undefined) {
  try {
    return params ? await native.QueryAsyncConnection(conn, sql, format, params)
      : await native.QueryAsyncConnection(conn, sql, format);
  } catch (e) {
    throw engineError(e);
  }
}

// What the session currently has: database and the settings this server SET on it.
// Each request's URL settings are applied as the difference to that state, so a request
// never sees another request's settings, and identical requests cost no extra statement.
let currentDb = null;
const currentSettings = new Map();

function quoteString(v) {
  return "'" + String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}
function quoteIdent(v) {
  return '`' + String(v).replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

async function resetSettings(keys) {
  if (!keys.length) return;
  try {
    await q('SET ' + keys.map((k) => `${k} = DEFAULT`).join(', '));
  } catch (_) {
    for (const k of keys) { try { await q(`SET ${k} = DEFAULT`); } catch (_) { /* not a setting */ } }
  }
  for (const k of keys) currentSettings.delete(k);
}

async function applyState(db, settings) {
  if (db !== currentDb) {
    await q('USE ' + quoteIdent(db));
    currentDb = db;
  }
  const drop = [...currentSettings.keys()].filter((k) => !settings.has(k));
  await resetSettings(drop);
  const change = [...settings.entries()].filter(([k, v]) => currentSettings.get(k) !== v);
  if (!change.length) return;
  for (const [k] of change) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new CHError(115, `Code: 115. DB::Exception: Unknown setting '${k}'. (UNKNOWN_SETTING)`);
    }
  }
  try {
    await q('SET ' + change.map(([k, v]) => `${k} = ${quoteString(v)}`).join(', '));
  } catch (e) {
    await resetSettings(change.map(([k]) => k)); // partially applied: put them all back
    throw e;
  }
  for (const [k, v] of change) currentSettings.set(k, v);
}

// ---------------------------------------------------------------------------------------
// HTTP

// URL params that are not settings (ClickHouse's reserved_param_names in HTTPHandler.cpp,
// plus query and param_*).
const NON_SETTINGS = new Set(['query', 'compress', 'decompress', 'user', 'password', 'quota_key',
  'query_id', 'stacktrace', 'role', 'buffer_size', 'wait_end_of_query', 'session_id',
  'session_timeout', 'session_check', 'client_protocol_version', 'close_session', 'database',
  'default_format']);
// `readonly` cannot be reset once set on a session; a test server ignores it.
const IGNORED_SETTINGS = new Set(['readonly']);

function authenticate(req, params, users) {
  const hUser = req.headers['x-clickhouse-user'] || '';
  const hKey = req.headers['x-clickhouse-key'] || '';
  const hasHeaders = hUser !== '' || hKey !== '';
  const authz = req.headers.authorization;
  const hasParams = params.has('user') || params.has('password');
  let user;
  let password;
  // Same precedence and the same refusals as ClickHouse's
  // src/Server/HTTP/authenticateUserByHTTP.cpp.
  if (hasHeaders) {
    if (!hUser) throw ownError(516, 'Got an empty user name from X-ClickHouse HTTP headers');
    if (authz) throw ownError(516, 'Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and Authorization HTTP header simultaneously');
    if (hasParams) throw ownError(516, 'Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and authentication via parameters simultaneously');
    user = hUser;
    password = hKey;
  } else if (authz) {
    if (hasParams) throw ownError(516, 'Invalid authentication: it is not allowed to use Authorization HTTP header and authentication via parameters simultaneously');
    const sp = authz.indexOf(' ');
    const scheme = sp < 0 ? authz : authz.slice(0, sp);
    if (scheme.toLowerCase() !== 'basic') {
      throw ownError(516, `Invalid authentication: '${scheme}' HTTP Authorization scheme is not supported`);
    }
    const dec = Buffer.from(authz.slice(sp + 1).trim(), 'base64').toString('utf8');
    const c = dec.indexOf(':');
    user = c < 0 ? dec : dec.slice(0, c);
    password = c < 0 ? '' : dec.slice(c + 1);
    if (!user) throw ownError(516, 'Got an empty user name from Authorization HTTP header');
  } else {
    user = params.has('user') ? params.get('user') : 'default';
    password = params.get('password') || '';
    if (!user) throw ownError(516, 'Got an empty user name from authentication via parameters');
  }
  if (!users.has(user) || users.get(user) !== password) {
    throw ownError(516, `${user}: Authentication failed: password is incorrect, or there is no user with such name`);
  }
  return user;
}

function decodeBody(buf, encoding) {
  const enc = (encoding || '').trim().toLowerCase();
  if (!enc || enc === 'identity' || buf.length === 0) return buf;
  try {
    if (enc === 'gzip' || enc === 'x-gzip') return zlib.gunzipSync(buf);
    if (enc === 'deflate') {
      try { return zlib.inflateSync(buf); } catch (_) { return zlib.inflateRawSync(buf); }
    }
    if (enc === 'br') return zlib.brotliDecompressSync(buf);
  } catch (e) {
    throw ownError(36, `Cannot decompress request body (Content-Encoding: ${enc}): ${e.message}`);
  }
  // zstd, xz, lz4, bz2, snappy: ClickHouse has them, Node 20's zlib does not.
  throw ownError(48, `Content-Encoding ${enc} is not supported by this test server (gzip, deflate, br are)`);
}

// The Content-Type the engine itself gives each output format: its own system.formats
// (column content_type, FormatFactory's getContentType), read at start. A name the engine
// does not know gets text/plain, as before this table existed.
const contentTypes = new Map();
function contentTypeFor(format) {
  return contentTypes.get((format || '').toLowerCase()) || 'text/plain; charset=UTF-8';
}

function countResultRows(format, bytes) {
  const f = (format || '').toLowerCase();
  if (!bytes.length) return 0;
  let lines = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 10) lines++;
  if (f === 'tabseparated' || f === 'tsv' || f === 'jsoneachrow' || f === 'jsoncompacteachrow' ||
      f === 'csv' || f === 'tabseparatedraw' || f === 'tsvraw' || f === 'jsonlines' || f === 'ndjson') return lines;
  if (f === 'tabseparatedwithnames' || f === 'tsvwithnames' || f === 'csvwithnames') return Math.max(0, lines - 1);
  if (f === 'tabseparatedwithnamesandtypes' || f === 'tsvwithnamesandtypes') return Math.max(0, lines - 2);
  return 0;
}

function summaryHeader(s) {
  const o = {};
  for (const k of ['read_rows', 'read_bytes', 'written_rows', 'written_bytes', 'total_rows_to_read',
    'result_rows', 'result_bytes', 'elapsed_ns']) o[k] = String(Math.max(0, Math.round(s[k] || 0)));
  return JSON.stringify(o);
}

function send(res, status, headers, body) {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, headers);
  res.end(body);
}

function sendError(res, err, baseHeaders, summary) {
  const e = engineError(err);
  let text = e.message;
  if (!/\(version [^)]*/.test(text)) text += ` (version ${engineVersion} (official build))`;
  if (!text.endsWith('\n')) text += '\n';
  const headers = Object.assign({}, baseHeaders, {
    'Content-Type': 'text/plain; charset=UTF-8',
    'X-ClickHouse-Exception-Code': String(e.chCode),
    'X-ClickHouse-Summary': summaryHeader(summary || {}),
  });
  send(res, httpStatusForCode(e.chCode), headers, text);
}

async function handleQuery(req, res, url, body, users) {
  const params = url.searchParams;
  const queryId = params.get('query_id') || crypto.randomUUID();
  const baseHeaders = {
    'X-ClickHouse-Server-Display-Name': 'chserver',
    'X-ClickHouse-Query-Id': queryId,
    'X-ClickHouse-Timezone': engineTimezone,
  };
  const t0 = process.hrtime.bigint();
  try {
    authenticate(req, params, users);
    if ((req.headers['content-type'] || '').toLowerCase().startsWith('multipart/form-data')) {
      throw ownError(48, 'External data (multipart/form-data) is not implemented by this test server');
    }
    if (params.get('decompress') === '1' || params.get('decompress') === 'true') {
      throw ownError(48, 'decompress=1 (ClickHouse-native compressed request bodies) is not implemented by this test server');
    }
    body = decodeBody(body, req.headers['content-encoding']);
    const db = params.get('database') || req.headers['x-clickhouse-database'] || 'default';
    const defaultFormat = params.get('default_format') || req.headers['x-clickhouse-format'] || 'TabSeparated';
    const settings = new Map();
    const bound = {};
    let nbound = 0;
    for (const [k, v] of params) {
      if (k.startsWith('param_')) { bound[k.slice(6)] = v; nbound++; continue; }
      if (!k || NON_SETTINGS.has(k) || IGNORED_SETTINGS.has(k)) continue;
      settings.set(k, v);
    }
    const qp = params.get('query') || '';
    const full = qp ? Buffer.concat([Buffer.from(qp + '\n', 'utf8'), body]) : body;
    if (full.length === 0) throw ownError(62, 'Empty query');
    const head = full.subarray(0, Math.min(full.length, 1 << 20)).toString('utf8');
    const cls = classify(head);
    const result = await enqueue(async () => {
      await applyState(db, settings);
      if (cls.kind === 'insert-data' && nbound === 0) {
        const off = Buffer.byteLength(head.slice(0, cls.dataStart), 'utf8');
        const prefix = head.slice(0, cls.dataStart).replace(/\s+$/, '');
        let data = full.subarray(off);
        if (data.length === 0) data = Buffer.from('\n');
        let r;
        try {
          r = await native.InsertRawAsyncConnection(conn, prefix, data, true);
        } catch (e) { throw engineError(e); }
        return { kind: 'insert', r, format: defaultFormat };
      }
      const text = full.toString('utf8');
      const r = await q(text, defaultFormat, nbound ? bound : undefined);
      if (cls.firstWord === 'USE') currentDb = null; // the client moved the session; re-USE next time
      if (cls.firstWord === 'SET') {
        // ClickHouse's HTTP SET lasts one request; undo it on the shared session.
        const keys = [];
        for (const m of text.slice(3).matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*=/g)) keys.push(m[1]);
        await resetSettings(keys);
      }
      return { kind: 'query', r, format: cls.outFormat || defaultFormat };
    });
    const elapsedNs = Number(process.hrtime.bigint() - t0);
    const headers = Object.assign({}, baseHeaders, { 'X-ClickHouse-Format': result.format });
    if (result.kind === 'insert') {
      const r = result.r;
      headers['X-ClickHouse-Summary'] = summaryHeader({ written_rows: r.rowsWritten, written_bytes: r.bytesWritten, elapsed_ns: elapsedNs });
      headers['Content-Type'] = contentTypeFor(result.format);
      send(res, 200, headers, '');
    } else {
      const r = result.r;
      const bytes = Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
      headers['X-ClickHouse-Summary'] = summaryHeader({
        read_rows: r.rowsRead, read_bytes: r.bytesRead, total_rows_to_read: r.rowsRead,
        result_rows: countResultRows(result.format, bytes), result_bytes: bytes.length, elapsed_ns: elapsedNs,
      });
      headers['Content-Type'] = contentTypeFor(result.format);
      send(res, 200, headers, bytes);
    }
  } catch (e) {
    sendError(res, e, baseHeaders, { elapsed_ns: Number(process.hrtime.bigint() - t0) });
  }
}

function main() {
  const args = parseArgs(process.argv);
  fs.mkdirSync(args.data, { recursive: true });
  session = new chdb.Session(path.resolve(args.data));
  conn = session.connection;
  enqueue(async () => {
    const r = await q('SELECT version(), timezone()');
    const [v, tz] = Buffer.from(r.bytes).toString('utf8').trim().split('\t');
    engineVersion = v;
    engineTimezone = tz;
    const f = await q('SELECT name, content_type FROM system.formats WHERE is_output');
    for (const line of Buffer.from(f.bytes).toString('utf8').split('\n')) {
      const [name, ct] = line.split('\t');
      if (name && ct) contentTypes.set(name.toLowerCase(), ct);
    }
    currentDb = null;
  }).then(() => {
    const server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('error', () => res.destroy());
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        let url;
        try { url = new URL(req.url, 'http://localhost'); } catch (_) { url = new URL('http://localhost/'); }
        if (url.pathname === '/ping' && (req.method === 'GET' || req.method === 'HEAD')) {
          send(res, 200, { 'Content-Type': 'text/html; charset=UTF-8' }, 'Ok.\n');
          return;
        }
        if (url.pathname !== '/') {
          send(res, 404, { 'Content-Type': 'text/plain; charset=UTF-8' },
            `There is no handle ${url.pathname}\n\nUse / or /ping for health checks.\n`);
          return;
        }
        if (req.method === 'GET' && !url.searchParams.has('query') && body.length === 0) {
          send(res, 200, { 'Content-Type': 'text/html; charset=UTF-8' }, 'Ok.\n');
          return;
        }
        if (req.method !== 'GET' && req.method !== 'POST') {
          send(res, 405, { 'Content-Type': 'text/plain; charset=UTF-8' }, 'Method not allowed\n');
          return;
        }
        handleQuery(req, res, url, body, args.users).catch((e) => sendError(res, e, {}, {}));
      });
    });
    server.keepAliveTimeout = 10000;
    server.requestTimeout = 0;
    server.listen(args.port, args.host, () => {
      console.log(`chserver: ClickHouse ${engineVersion} (chDB ${chdb.version().chdb}) on http://${args.host}:${args.port}, data ${args.data}`);
    });
    const shutdown = () => {
      server.close();
      queueTail.then(() => { try { session.close(); } catch (_) { /* exiting */ } process.exit(0); });
      setTimeout(() => process.exit(0), 5000).unref();
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
  }).catch((e) => {
    console.error('chserver: cannot start the engine: ' + (e && e.message));
    process.exit(1);
  });
}

main();
