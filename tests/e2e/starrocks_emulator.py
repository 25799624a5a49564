#!/usr/bin/env python3
"""starrocks_emulator.py - a StarRocks Stream Load emulator for sluice's tests (stdlib only).

Reproduces what the starrocks sink depends on (docs: PROTOCOLS.md sections B and C):
an FE port that checks Basic auth and `Expect: 100-continue` and answers 307 to the BE
port without reading the body, and a BE port that decides auth, label, database and
table BEFORE reading the body (only then `100 Continue`), loads newline-delimited JSON
(or one array with `strip_outer_array: true`) into sqlite3 with per-column type checks,
and answers StarRocks' pretty-printed JSON. Labels are remembered per database in the
sqlite file, committed in the same transaction as the rows, so a resend after a lost
reply gets `Label Already Exists` / `FINISHED` and the rows exist once.

    starrocks_emulator.py --fe-port P --be-port Q --tables tables.json --db emu.sqlite
                          --user U --password PW [--lenient-labels] [--host 127.0.0.1]
                          [--label-mode existing|used] [--json-max-bytes N]

Sources read (github:StarRocks/starrocks; facts carried over, no code):
  be/src/http/action/stream_load.cpp      reply shape, the JSON size check before the body
                                          ("The size of this batch exceed the max size [...]")
  fe/.../http/rest/LoadAction.java        FE refusals ("No backend alive.", no 100-continue)
                                          as TransactionResult {"Status":"FAILED","Message"}
  fe/.../http/rest/GetStreamLoadState.java, RestBaseAction.java, RestBaseResult.java
                                          GET /api/{db}/get_load_state?label= ->
                                          {"state","reason","status","code","msg","message"}
  fe/.../FrontendServiceImpl.java (loadTxnBeginImpl) the label check at begin: a used
                                          label is LabelAlreadyUsedException; its job state
                                          maps PREPARE/UNKNOWN -> RUNNING, COMMITTED/VISIBLE
                                          -> FINISHED (ExistingJobStatus)
  be/src/exec/json_scanner.cpp, be/src/exprs/json_parser.cpp  simdjson errors
                                          ("Failed to iterate document stream as object.
                                          error: UTF8_ERROR: The input is not valid UTF-8")
  test/sql/test_stream_load/R/*           the expected replies (replayed by
                                          test_starrocks_emulator.py)
  StarRocks issue #57982                  newer versions answer a reused label with
                                          Status "Fail" + "Label [x] has already been used."
                                          and no ExistingJobStatus (--label-mode used)
Where the emulator cannot tell what real StarRocks does, it says so next to the code.

tables.json: {"db.table": [["col", "TYPE"], ...]}. TYPE: INT BIGINT LARGEINT TINYINT
SMALLINT DOUBLE FLOAT DECIMAL(p,s) VARCHAR[(n)] CHAR[(n)] STRING DATETIME DATE JSON
BOOLEAN, optionally followed by `NULL` / `NOT NULL` (NOT NULL: a null/missing value
filters the row). Each table is the sqlite table named exactly "db.table" (quote it in
SQL), holding only the declared columns; labels live in the table _emu_labels.

Stream Load (PUT /api/{db}/{table}/_stream_load) headers honoured: Authorization, Expect,
label (missing: one is generated), format (json, or csv with column_separator (a
character or \\xHH hex) and enclose: one row per line, \\N unenclosed is NULL, a doubled
enclose character inside an enclosed field is a literal one), strip_outer_array,
max_filter_ratio (default 0), columns (a plain list of column names: only those are
loaded; expressions make the header ignored), jsonpaths (["$.a", "$.b.c"], mapped to
`columns` or to the table's columns in order). Bodies: Content-Length or chunked.
Rows: unknown keys ignored, missing columns NULL; a value failing the type check becomes
NULL in a nullable column unless `strict_mode: true` (then the row is filtered), a NOT
NULL column filters the row; non-object documents filtered; the ErrorURL of a load with
filtered rows serves the reasons (GET /api/_load_error_log?file=...). A body that is not
valid UTF-8 fails the whole load (simdjson's UTF8_ERROR). A body over --json-max-bytes
(default 100 MiB, streaming_load_max_batch_size_mb) is refused before it is read.

Labels (--label-mode): "existing" (StarRocks <= 3.2, R/test_stream_load_label_already_exist)
answers a used label with Status "Label Already Exists" + ExistingJobStatus FINISHED or
RUNNING; "used" (newer code paths, issue #57982) with Status "Fail" and the same Message,
no ExistingJobStatus. Either way GET /api/{db}/get_load_state?label=L on the FE answers
VISIBLE (committed), PREPARE (in progress), ABORTED (a failed load's label) or UNKNOWN.

Emulator-only endpoints, on both ports, all under /_emu/ (never affected by faults):
  GET    /_emu/health                  {"ok": true}
  GET    /_emu/count?table=db.t        {"count": N}
  GET    /_emu/rows?table=db.t         JSON lines, load order (JSON columns parsed,
                                       BOOLEAN as true/false); &meta=1 adds _label, _txn
  GET    /_emu/labels                  [{"db","label","table","status","rows","txn_id"}]
                                       committed (FINISHED) then in-progress (RUNNING)
  GET    /_emu/loads                   counters: attempts, committed, failed, by_status,
                                       fe {...}, recent (last 200 BE load outcomes)
  POST   /_emu/sql                     body: one SELECT/WITH statement, run read-only on
                                       the sqlite file -> JSON lines ({column: value})
  DELETE /_emu/rows?table=db.t[&where=<sqlite expr>]   {"deleted": N} (all rows w/o where)
  GET    /_emu/faults                  the fault queue
  POST   /_emu/faults                  add fault(s), see below

Faults. POST /_emu/faults with one object or a list of objects:
  {"mode": M, "count": K, "seconds": S, "port": "fe"|"be"|"both", "message": "..."}
  count: how many requests the fault applies to (default 1; -1 = until "clear").
  port: where it applies; default "both" for refuse, "be" for the others (only refuse,
  hang and 503 may name "fe"). Modes:
    refuse           accept the connection, read the request head, then reset it (RST)
                     without answering
    hang             hold the load S seconds (default 10) with its label RUNNING, then
                     carry on normally (at the FE: hold, then answer normally); a
                     "clear" ends pending hangs at once
    503              answer HTTP 503 before reading the body; nothing committed
    publish_timeout  commit, answer Status "Publish Timeout"
    fail_retryable   read the body, then Fail with a retryable message ("message"
                     overrides; default "too many versions ..."); label freed
    drop_mid_body    send 100 Continue, read about half of the body, reset the
                     connection; nothing committed, label freed
    commit_then_drop read the body, commit rows and label, close without replying
    running          answer Label Already Exists / ExistingJobStatus RUNNING (in label
                     mode used: Fail + has already been used)
    no_backend       at the FE: {"Status": "FAILED", "Message": "...No backend alive."}
                     (LoadAction.java: every BE down or restarting); port "fe" only
    poison           not queued: every BE load whose body contains "match" Fails with
                     "message" (an error text sluice has never seen) until "clear"
    clear            empty the queue and the poisons (other fields ignored)
  Faults form a FIFO queue and only its head is active: a request the head applies to
  consumes one count (the head is removed when its count reaches 0); requests it does
  not apply to are served normally and do not look further down the queue. A fault
  applies at its own point: refuse to any non-/_emu/ request on its port(s); 503,
  running and FE hangs to a request that passed auth and Expect (at the BE: auth, label
  format, database, table and load headers); the other modes only to a BE load that actually starts
  (its label is free), so a resend answered Label Already Exists does not consume them.

Every decision is logged as one line on stdout.
"""
import argparse
import base64
import collections
import http.server
import json
import re
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time
import urllib.parse
from datetime import datetime

LABEL_RE = re.compile(r"^[A-Za-z0-9_]{1,128}$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE_RE = re.compile(r"^\s*([A-Za-z]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(NOT\s+NULL|NULL)?\s*$",
                     re.I)
DATETIME_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2}):(\d{2})(\.\d{1,6})?)?$")
INT_STR_RE = re.compile(r"^[+-]?\d+$")
INT_RANGES = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64, "LARGEINT": 128}
TYPE_ALIASES = {"INTEGER": "INT", "FLOAT": "DOUBLE", "DECIMAL": "DOUBLE", "STRING": "VARCHAR",
                "CHAR": "VARCHAR", "TEXT": "VARCHAR", "BOOL": "BOOLEAN"}
KINDS = set(INT_RANGES) | {"DOUBLE", "VARCHAR", "DATETIME", "DATE", "JSON", "BOOLEAN"}
SQLITE_TYPES = {"DOUBLE": "REAL", "BOOLEAN": "INTEGER", "LARGEINT": "", "VARCHAR": "TEXT",
                "DATETIME": "TEXT", "DATE": "TEXT", "JSON": "TEXT"}
FAULT_MODES = {"refuse", "hang", "503", "publish_timeout", "fail_retryable", "drop_mid_body",
               "commit_then_drop", "running", "no_backend", "poison"}
FE_FAULT_MODES = {"refuse", "hang", "503", "no_backend"}
RETRYABLE_MSG = "too many versions. tablet_id: 10086, version_count: 1001, limit: 1000"
NO_DATA_MSG = "all partitions have no load data"
PARSE_MSG = "Failed to parse json as document stream"
# be/src/exprs/json_parser.cpp: "Failed to iterate document stream as object. error: $0" with
# simdjson::error_message(UTF8_ERROR). Whether json_scanner.cpp counts such a row as one
# filtered row or fails the load is not clear from the source (the document stream cannot
# resume after the error); issue 16 observed the whole load failing, so the emulator does.
UTF8_MSG = "Failed to iterate document stream as object. error: UTF8_ERROR: The input is not valid UTF-8"
NO_BACKEND_MSG = "class com.starrocks.common.DdlException: No backend alive."
MAX_BODY = 100 * 1024 * 1024


def log(fmt, *args):
    print(time.strftime("%H:%M:%S ") + (fmt % args if args else fmt), flush=True)


class LoadError(Exception):
    """A whole-load failure: the load Fails with this message."""


# ---------------------------------------------------------------- column types

class Column:
    def __init__(self, name, type_text):
        m = TYPE_RE.match(type_text)
        if not m:
            raise ValueError("column %s: cannot parse type %r" % (name, type_text))
        kind = m.group(1).upper()
        kind = TYPE_ALIASES.get(kind, kind)
        if kind not in KINDS:
            raise ValueError("column %s: unsupported type %r" % (name, type_text))
        self.name = name
        self.kind = kind
        self.type_text = type_text.strip()
        self.maxlen = int(m.group(2)) if kind == "VARCHAR" and m.group(2) else None
        self.nullable = not (m.group(4) and m.group(4).upper().startswith("NOT"))
        self.sqlite_type = "INTEGER" if kind in INT_RANGES and kind != "LARGEINT" \
            else SQLITE_TYPES[kind]

    def convert(self, v):
        """JSON value -> value to store; raises ValueError(reason) when the row is filtered."""
        if v is None:
            if not self.nullable:
                raise ValueError("NULL value in non-nullable column '%s'" % self.name)
            return None
        k = self.kind
        if k in INT_RANGES:
            if isinstance(v, bool):
                raise ValueError("bool")
            if isinstance(v, float):
                if not v.is_integer():
                    raise ValueError("not an integer")
                v = int(v)
            elif isinstance(v, str):
                if not INT_STR_RE.match(v.strip()):
                    raise ValueError("not an integer")
                v = int(v.strip())
            elif not isinstance(v, int):
                raise ValueError("not a scalar")
            bits = INT_RANGES[k]
            if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
                raise ValueError("out of range")
            if k == "LARGEINT" and not -(1 << 63) <= v < (1 << 63):
                return str(v)
            return v
        if k == "DOUBLE":
            if isinstance(v, bool):
                raise ValueError("bool")
            if isinstance(v, (int, float)):
                return float(v)
            if isinstance(v, str):
                try:
                    return float(v.strip())
                except ValueError:
                    raise ValueError("not a number") from None
            raise ValueError("not a scalar")
        if k == "BOOLEAN":
            if isinstance(v, bool):
                return int(v)
            if isinstance(v, (int, float)) and v in (0, 1):
                return int(v)
            if isinstance(v, str) and v.strip().lower() in ("true", "false", "0", "1"):
                return int(v.strip().lower() in ("true", "1"))
            raise ValueError("not a boolean")
        if k == "VARCHAR":
            if isinstance(v, str):
                s = v
            elif isinstance(v, bool):
                s = "true" if v else "false"
            elif isinstance(v, (int, float)):
                s = json.dumps(v)
            else:
                s = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
            if self.maxlen is not None and len(s.encode()) > self.maxlen:
                raise ValueError("string longer than %d bytes" % self.maxlen)
            return s
        if k == "JSON":
            # StarRocks prints JSON with a space after ':' and ',' ({"k": "v"}, [1, 2]), as
            # issue 16 observed; ClickHouse prints it compact. Kept in that form, so what
            # reads the text back (/_emu/sql, sluice verify) sees StarRocks' spelling.
            return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
        if k in ("DATETIME", "DATE"):
            m = DATETIME_RE.match(v.strip()) if isinstance(v, str) else None
            if not m:
                raise ValueError("not a %s" % k.lower())
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            hh, mi, ss = (int(m.group(i) or 0) for i in (4, 5, 6))
            try:
                datetime(y, mo, d, hh, mi, ss)
            except ValueError as e:
                raise ValueError(str(e)) from None
            if k == "DATE":
                return "%04d-%02d-%02d" % (y, mo, d)
            return "%04d-%02d-%02d %02d:%02d:%02d%s" % (y, mo, d, hh, mi, ss, m.group(7) or "")
        raise ValueError("unsupported type")

    def from_sqlite(self, v):
        if v is None:
            return None
        if self.kind == "BOOLEAN":
            return bool(v)
        if self.kind == "JSON":
            return json.loads(v)
        if self.kind == "LARGEINT":
            return int(v)
        return v


class Table:
    def __init__(self, full, cols):
        self.db, sep, self.name = full.partition(".")
        if not sep or not self.db or not self.name:
            raise ValueError("table %r: expected db.table" % full)
        self.full = full
        self.columns = [Column(c[0], c[1]) for c in cols]
        if not self.columns:
            raise ValueError("table %r has no columns" % full)
        self.by_name = {c.name: c for c in self.columns}
        self.sql_name = qi(full)


def qi(name):
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- load parsing

def _reject_constant(name):
    raise ValueError("not JSON: " + name)  # NaN/Infinity: Python accepts them, StarRocks does not


def parse_documents(text, strip_outer_array):
    """The body as a list of JSON documents (rows to be); LoadError on bad JSON."""
    dec = json.JSONDecoder(parse_constant=_reject_constant)
    docs = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        try:
            doc, i = dec.raw_decode(text, i)
        except ValueError:
            raise LoadError(PARSE_MSG) from None
        docs.append(doc)
    if strip_outer_array:
        if len(docs) == 1 and isinstance(docs[0], dict):
            raise LoadError("JSON data is an object, strip_outer_array must be set false")
        out = []
        for d in docs:
            if not isinstance(d, list):
                raise LoadError("JSON data is not an array-object, strip_outer_array must be set false")
            out.extend(d)
        return out
    if len(docs) == 1 and isinstance(docs[0], list):
        raise LoadError("JSON data is array-object, `strip_outer_array` must be TRUE.")
    return docs


def parse_separator(text):
    """column_separator as StarRocks reads it: one or more characters, or hex as \\xHH."""
    if text is None:
        return "\t"
    if text.lower().startswith("\\x"):
        try:
            return bytes.fromhex(text[2:]).decode()
        except ValueError:
            raise LoadError("Invalid column_separator: " + text) from None
    return text


def parse_csv_documents(text, sep, enclose, names):
    """A CSV load body as row documents {name: string or None}. Fields split at sep; with
    enclose set, an enclosed field may hold sep and line breaks, and a doubled enclose
    character inside it is one literal character (RFC 4180); an unenclosed \\N is NULL. A
    row with another number of fields than names is filtered (returned as an error)."""
    rows, errors = [], []
    fields, cur, i, n = [], [], 0, len(text)
    quoted = was_enclosed = False
    while i <= n:
        c = text[i] if i < n else "\n"
        if quoted:
            if c == enclose and i + 1 < n and text[i + 1] == enclose:
                cur.append(c)
                i += 2
                continue
            if c == enclose:
                quoted = False
            elif i >= n:
                raise LoadError("unterminated enclosed field")
            else:
                cur.append(c)
            i += 1
            continue
        if enclose and c == enclose and not cur:
            quoted = was_enclosed = True
            i += 1
            continue
        if text.startswith(sep, i) and i < n:
            v = "".join(cur)
            fields.append(None if v == "\\N" and not was_enclosed else v)
            cur, was_enclosed = [], False
            i += len(sep)
            continue
        if c == "\n":
            v = "".join(cur)
            if i < n or fields or cur:
                fields.append(None if v == "\\N" and not was_enclosed else v)
                if len(fields) != len(names):
                    errors.append("Value count does not match column count. Expect %d, but got "
                                  "%d. Row: %s" % (len(names), len(fields), str(fields)[:200]))
                else:
                    rows.append(dict(zip(names, fields)))
            fields, cur, was_enclosed = [], [], False
            i += 1
            continue
        cur.append(c)
        i += 1
    return rows, errors


def parse_jsonpaths(text):
    try:
        paths = json.loads(text)
    except ValueError:
        paths = None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise LoadError("Invalid jsonpaths: %s" % text)
    out = []
    for p in paths:
        if p == "$":
            out.append([])
        elif p.startswith("$."):
            out.append(p[2:].split("."))
        else:
            raise LoadError("Invalid jsonpath (emulator supports $.a.b only): %s" % p)
    return out


_MISSING = object()


def walk(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return _MISSING
        doc = doc[key]
    return doc


def convert_rows(table, docs, targets, jsonpaths, strict=False):
    """Returns (rows as tuples in table column order, list of filter reasons). Without strict
    mode a value that does not convert is NULL in a nullable column (StarRocks' default:
    the load says Success and the value is gone); with it, or in a NOT NULL column, the row
    is filtered."""
    rows, errors = [], []
    for doc in docs:
        if not isinstance(doc, dict):
            errors.append("The value should be object type in json document stream. Row: %s"
                          % json.dumps(doc)[:200])
            continue
        if jsonpaths is not None:
            names = targets or [c.name for c in table.columns]
            src = {}
            for name, path in zip(names, jsonpaths):
                v = walk(doc, path)
                if v is not _MISSING:
                    src[name] = v
        elif targets is not None:
            src = {k: doc[k] for k in targets if k in doc}
        else:
            src = doc
        out, bad = [], None
        for c in table.columns:
            try:
                out.append(c.convert(src.get(c.name)))
            except ValueError as e:
                if not strict and c.nullable and src.get(c.name) is not None:
                    out.append(None)
                    continue
                bad = "Value %s is invalid for column '%s' of type %s (%s). Row: %s" % (
                    json.dumps(src.get(c.name))[:100], c.name, c.type_text, e,
                    json.dumps(doc)[:200])
                break
        if bad:
            errors.append(bad)
        else:
            rows.append(tuple(out))
    return rows, errors


# ---------------------------------------------------------------- shared state

class Emulator:
    """Everything both ports share. `lock` protects the sqlite connection, `running`,
    the fault queue, counters and error logs."""

    def __init__(self, args, tables):
        self.args = args
        self.tables = {(t.db, t.name): t for t in tables}
        self.dbs = {t.db for t in tables}
        self.lock = threading.RLock()
        self.fault_cv = threading.Condition(self.lock)
        self.clear_gen = 0
        self.faults = []
        self.running = {}  # (db, label) -> txn_id of the load in progress
        self.aborted = {}  # (db, label) -> txn_id of the last failed load with that label
        self.poisons = []  # [{"match": bytes, "message": str}]
        self.fake_running = set()  # labels a "running" fault answered for
        self.error_logs = collections.OrderedDict()
        self.recent = collections.deque(maxlen=200)
        self.counters = {"attempts": 0, "committed": 0, "failed": 0, "by_status": {},
                         "fe": {"requests": 0, "redirects": 0, "refused": 0}}
        self.conn = sqlite3.connect(args.db, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS _emu_labels (db TEXT, label TEXT, tbl TEXT,"
                          " txn_id INTEGER, status TEXT, rows INTEGER, first_rowid INTEGER,"
                          " last_rowid INTEGER, committed_at REAL, PRIMARY KEY (db, label))")
        for t in tables:
            cols = ", ".join("%s %s" % (qi(c.name), c.sqlite_type) for c in t.columns)
            self.conn.execute("CREATE TABLE IF NOT EXISTS %s (%s)" % (t.sql_name, cols))
        top = self.conn.execute("SELECT max(txn_id) FROM _emu_labels").fetchone()[0]
        self.next_txn = max(1000, (top or 0) + 1)

    # -- faults
    def add_faults(self, specs):
        added = []
        for s in specs:
            if not isinstance(s, dict) or s.get("mode") not in FAULT_MODES | {"clear"}:
                raise ValueError("fault needs a mode in %s or clear: %r"
                                 % (sorted(FAULT_MODES), s))
            mode = s["mode"]
            if mode == "poison":
                if not s.get("match"):
                    raise ValueError("poison needs a non-empty match: %r" % s)
                p = {"mode": "poison", "match": str(s["match"]),
                     "message": str(s.get("message") or "emulated: an error text nobody knows")}
                with self.lock:
                    self.poisons.append(p)
                added.append(dict(p))
                continue
            if mode == "clear":
                with self.lock:
                    self.faults.clear()
                    self.poisons.clear()
                    self.clear_gen += 1
                    self.fault_cv.notify_all()
                added.append({"mode": "clear"})
                continue
            count = s.get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or (count < 1 and count != -1):
                raise ValueError("count must be a positive integer or -1: %r" % s)
            port = s.get("port", "both" if mode == "refuse" else "be")
            if port not in ("fe", "be", "both"):
                raise ValueError("port must be fe, be or both: %r" % s)
            if mode == "no_backend":
                port = s.get("port", "fe")
                if port != "fe":
                    raise ValueError("no_backend applies to the FE only: %r" % s)
            if port != "be" and mode not in FE_FAULT_MODES:
                raise ValueError("mode %s applies to BE loads only: %r" % (mode, s))
            seconds = s.get("seconds", 10 if mode == "hang" else 0)
            if not isinstance(seconds, (int, float)) or seconds < 0:
                raise ValueError("seconds must be a number >= 0: %r" % s)
            f = {"mode": mode, "count": count, "port": port, "seconds": seconds,
                 "message": str(s.get("message") or RETRYABLE_MSG)}
            with self.lock:
                self.faults.append(f)
            added.append(dict(f))
        return added

    def take_fault(self, port, modes):
        """Consume one count of the head fault if it applies here; returns it or None."""
        with self.lock:
            if not self.faults:
                return None
            f = self.faults[0]
            if f["mode"] not in modes or f["port"] not in (port, "both"):
                return None
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    self.faults.pop(0)
            log("fault %s taken on %s (remaining count %d)", f["mode"], port, f["count"])
            return dict(f)

    def hang(self, seconds):
        with self.lock:
            gen = self.clear_gen
            deadline = time.time() + seconds
            while self.clear_gen == gen and time.time() < deadline:
                self.fault_cv.wait(deadline - time.time())

    # -- labels and commits
    def claim_label(self, db, label):
        """('FINISHED'|'RUNNING', txn_id) if the label is taken, else (None, new txn_id)
        and the label is RUNNING until release_label()."""
        with self.lock:
            row = self.conn.execute("SELECT txn_id FROM _emu_labels WHERE db=? AND label=?",
                                    (db, label)).fetchone()
            if row:
                return "FINISHED", row[0]
            if (db, label) in self.running:
                return "RUNNING", self.running[(db, label)]
            txn = self.next_txn
            self.next_txn += 1
            self.running[(db, label)] = txn
            return None, txn

    def release_label(self, db, label):
        """The load ended; a label that did not commit is free again (and ABORTED)."""
        with self.lock:
            txn = self.running.pop((db, label), None)
            row = self.conn.execute("SELECT 1 FROM _emu_labels WHERE db=? AND label=?",
                                    (db, label)).fetchone()
            if txn is not None and not row:
                self.aborted[(db, label)] = txn

    def label_state(self, db, label):
        """get_load_state's TransactionStatus name for a label."""
        with self.lock:
            if self.conn.execute("SELECT 1 FROM _emu_labels WHERE db=? AND label=?",
                                 (db, label)).fetchone():
                return "VISIBLE"
            if (db, label) in self.running:
                return "PREPARE"
            if (db, label) in self.fake_running:
                self.fake_running.discard((db, label))
                return "PREPARE"
            if (db, label) in self.aborted:
                return "ABORTED"
            return "UNKNOWN"

    def commit(self, table, label, txn, rows):
        """Rows and label in one sqlite transaction: both are there, or neither."""
        cols = ", ".join(qi(c.name) for c in table.columns)
        marks = ", ".join("?" for _ in table.columns)
        with self.lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                first = last = None
                for r in rows:
                    last = c.execute("INSERT INTO %s (%s) VALUES (%s)" % (table.sql_name, cols, marks),
                                     r).lastrowid
                    if first is None:
                        first = last
                c.execute("INSERT INTO _emu_labels VALUES (?,?,?,?,?,?,?,?,?)",
                          (table.db, label, table.name, txn, "FINISHED", len(rows), first, last,
                           time.time()))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    # -- bookkeeping
    def record(self, status, db, table, label, txn, message="", loaded=0, filtered=0):
        with self.lock:
            c = self.counters
            c["by_status"][status] = c["by_status"].get(status, 0) + 1
            if status in ("Success", "Publish Timeout", "committed, reply dropped"):
                c["committed"] += 1
            elif not status.startswith("Label Already Exists"):
                c["failed"] += 1
            self.recent.append({"db": db, "table": table, "label": label, "txn_id": txn,
                                "status": status, "message": message, "loaded": loaded,
                                "filtered": filtered, "time": time.time()})
        log("BE load %s.%s label=%s txn=%s -> %s %s (loaded %d, filtered %d)",
            db, table, label, txn, status, message, loaded, filtered)

    def save_error_log(self, txn, errors):
        name = "error_log_%d_emu" % txn
        with self.lock:
            self.error_logs[name] = "".join("Error: %s\n" % e for e in errors)
            while len(self.error_logs) > 1000:
                self.error_logs.popitem(last=False)
        return "http://%s:%d/api/_load_error_log?file=%s" % (self.args.host, self.args.be_port, name)


# ---------------------------------------------------------------- HTTP

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, emu, port_name):
        self.emu = emu
        self.port_name = port_name
        self.closing = {}  # fileno -> "reset" | "drain"; guarded by closing_lock
        self.closing_lock = threading.Lock()
        super().__init__(addr, handler)

    def mark_close(self, sock, how):
        with self.closing_lock:
            self.closing[sock.fileno()] = how

    def shutdown_request(self, request):
        with self.closing_lock:
            how = self.closing.pop(request.fileno(), None)
        try:
            if how == "reset":
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                request.close()
                return
            if how == "drain":
                # Answered without reading the body: closing with unread bytes would send an
                # RST that can destroy our reply in the client's buffer, so half-close and
                # discard what the client still sends, for a bounded time.
                request.shutdown(socket.SHUT_WR)
                deadline = time.time() + 3.0
                while time.time() < deadline:
                    request.settimeout(max(0.05, deadline - time.time()))
                    if not request.recv(65536):
                        break
        except OSError:
            pass
        super().shutdown_request(request)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StarRocksEmulator/1.0"
    timeout = 300

    # http.server would send 100 Continue itself; we decide when (never for refusals).
    def handle_expect_100(self):
        return True

    def log_message(self, fmt, *args):
        log("%s %s %s", self.server.port_name.upper(), self.address_string(), fmt % args)

    def parse_request(self):
        if not super().parse_request():
            return False
        self.body_pending = self._has_body()
        self.continue_sent = False
        if not self.path.startswith("/_emu/") and \
                self.server.emu.take_fault(self.server.port_name, {"refuse"}):
            if self.server.port_name == "fe":
                with self.server.emu.lock:
                    self.server.emu.counters["fe"]["refused"] += 1
            log("%s refuse fault: resetting connection for %s %s",
                self.server.port_name.upper(), self.command, self.path)
            self.reset_connection()
            return False
        return True

    def _has_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        try:
            return int(self.headers.get("Content-Length", "0")) > 0
        except ValueError:
            return False

    def reset_connection(self):
        self.close_connection = True
        self.server.mark_close(self.connection, "reset")

    # -- replies
    def send_json(self, code, obj, reason=None, headers=(), pretty=True):
        body = obj if isinstance(obj, bytes) else \
            (json.dumps(obj, indent=4 if pretty else None) + "\n").encode()
        self.send_raw(code, body, reason, headers, "application/json; charset=utf-8")

    def send_raw(self, code, body, reason=None, headers=(), ctype="text/plain; charset=utf-8"):
        self.send_response(code, reason)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.body_pending:
            self.send_header("Connection", "close")
            self.close_connection = True
            self.server.mark_close(self.connection, "drain")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_continue(self):
        if not self.continue_sent and self.headers.get("Expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
            self.continue_sent = True

    def read_body(self, limit=MAX_BODY, stop_after=None):
        """The request body (Content-Length or chunked); ConnectionError when the client
        goes away, LoadError when it is too large. stop_after: return after that many bytes."""
        if not self.body_pending:
            return b""
        self.send_continue()
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ConnectionError("truncated chunk header")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ConnectionError("bad chunk header %r" % line) from None
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                if len(out) + size > limit:
                    raise LoadError("The size of this batch exceed the max size [%d] of json type "
                                    "data data [%d]" % (limit, len(out) + size))
                want = size if stop_after is None else min(size, max(1, stop_after - len(out)))
                chunk = self.rfile.read(want)
                if len(chunk) != want:
                    raise ConnectionError("truncated chunk")
                out += chunk
                if stop_after is not None and len(out) >= stop_after:
                    return bytes(out)
                self.rfile.readline(16)
            self.body_pending = False
            return bytes(out)
        n = int(self.headers.get("Content-Length", "0"))
        if n > limit:
            raise LoadError("The size of this batch exceed the max size [%d] of json type data "
                            "data [%d]" % (limit, n))
        want = n if stop_after is None else min(n, stop_after)
        data = self.rfile.read(want)
        if len(data) != want:
            raise ConnectionError("client sent %d of %d body bytes" % (len(data), want))
        if want == n:
            self.body_pending = False
        return data

    # -- routing
    def route(self):
        path, _, query = self.path.partition("?")
        self.query = urllib.parse.parse_qs(query)
        try:
            if path.startswith("/_emu/"):
                return self.emu_endpoint(path)
            if path == "/api/_load_error_log":
                name = self.query.get("file", [""])[0]
                text = self.server.emu.error_logs.get(name)
                if text is None:
                    return self.send_raw(404, b"no such error log\n")
                return self.send_raw(200, text.encode())
            m = re.match(r"^/api/([^/]+)/get_load_state$", path)
            if m and self.server.port_name == "fe" and self.command == "GET":
                return self.fe_load_state(urllib.parse.unquote(m.group(1)))
            m = re.match(r"^/api/([^/]+)/([^/]+)/_stream_load$", path)
            if not m:
                return self.send_json(404, {"status": "FAILED", "msg": "no handler for " + path})
            if self.command != "PUT":
                return self.send_json(405, {"status": "FAILED",
                                            "msg": "Stream Load needs PUT, got " + self.command})
            db, table = (urllib.parse.unquote(x) for x in m.groups())
            if self.server.port_name == "fe":
                return self.fe_stream_load(db, table)
            return self.be_stream_load(db, table)
        except (ConnectionError, socket.timeout, BrokenPipeError) as e:
            log("%s connection lost: %s", self.server.port_name.upper(), e)
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = route

    def auth_user(self):
        """(ok, user) from the Basic Authorization header."""
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return False, ""
        try:
            user, _, pw = base64.b64decode(h[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, ""
        a = self.server.emu.args
        return (user == a.user and pw == a.password), user

    # -- FE
    def fe_load_state(self, db):
        """GET /api/{db}/get_load_state?label= (GetStreamLoadState.java): a RestBaseResult
        with the label's TransactionStatus; refusals (DdlException) as status FAILED, 200."""
        emu = self.server.emu
        ok, user = self.auth_user()
        if not ok:
            return self.send_json(401, {"status": "FAILED", "code": "1",
                                        "msg": "Access denied for %s@%s" % (user or "root",
                                                                            self.client_address[0])},
                                  headers=[("WWW-Authenticate", 'Basic realm=""')], pretty=False)
        label = self.query.get("label", [""])[0]
        fail = None
        if not label:
            fail = "No label selected."
        elif db not in emu.dbs:
            fail = "unknown database, database=" + db
        if fail:
            return self.send_json(200, {"status": "FAILED", "code": "1", "msg": fail,
                                        "message": fail}, pretty=False)
        state = emu.label_state(db, label)
        log("FE get_load_state %s label=%s -> %s", db, label, state)
        # gson writes the subclass's fields first, then RestBaseResult's
        self.send_json(200, {"state": state, "reason": "", "status": "OK", "code": "0",
                             "msg": "Success", "message": "OK"}, pretty=False)

    def fe_stream_load(self, db, table):
        emu = self.server.emu
        with emu.lock:
            emu.counters["fe"]["requests"] += 1
        ok, user = self.auth_user()
        ip = self.client_address[0]
        if not ok:
            log("FE %s.%s: 401 access denied for %r", db, table, user)
            return self.send_json(401, {"status": "FAILED", "code": "1",
                                        "msg": "Access denied for %s@%s" % (user or "root", ip)},
                                  headers=[("WWW-Authenticate", 'Basic realm=""')], pretty=False)
        if self.headers.get("Expect", "").lower() != "100-continue":
            log("FE %s.%s: FAILED, no Expect: 100-continue", db, table)
            return self.send_json(200, {"Status": "FAILED", "Message":
                                        "class com.starrocks.common.DdlException: "
                                        "There is no 100-continue header"})
        f = emu.take_fault("fe", {"hang", "503", "no_backend"})
        if f and f["mode"] == "hang":
            emu.hang(f["seconds"])
        elif f and f["mode"] == "no_backend":
            log("FE %s.%s: FAILED, no backend alive (fault)", db, table)
            return self.send_json(200, {"Status": "FAILED", "Message": NO_BACKEND_MSG})
        elif f:
            return self.send_json(503, {"status": "FAILED", "msg": "service unavailable (emulated)"},
                                  reason="Service Unavailable")
        query = self.path.partition("?")[2]
        loc = "http://%s:%d/api/%s/%s/_stream_load?%s" % (
            emu.args.host, emu.args.be_port, urllib.parse.quote(db), urllib.parse.quote(table), query)
        with emu.lock:
            emu.counters["fe"]["redirects"] += 1
        log("FE %s.%s label=%s: 307 -> %s", db, table, self.headers.get("label"), loc)
        self.send_raw(307, b"", "Temporary Redirect", [("Location", loc)])

    # -- BE
    def be_stream_load(self, db, table):
        emu = self.server.emu
        t0 = time.time()
        with emu.lock:
            emu.counters["attempts"] += 1
        label = self.headers.get("label") or "emu_auto_%d_%d" % (int(t0 * 1000), threading.get_ident())
        ok, user = self.auth_user()
        if not ok:
            return self.be_reply(db, table, label, -1, "Fail", "Access denied for %s@%s"
                                 % (user or "root", self.client_address[0]), t0)
        if not emu.args.lenient_labels and not LABEL_RE.match(label):
            return self.be_reply(db, table, label, -1, "Fail",
                                 "Label format error. regex: ^[A-Za-z0-9_]{1,128}$, label: " + label, t0)
        if db not in emu.dbs:
            return self.be_reply(db, table, label, -1, "Fail", "unknown database, database=" + db, t0)
        tbl = emu.tables.get((db, table))
        if tbl is None:
            return self.be_reply(db, table, label, -1, "Fail", 'unknown table "%s.%s"' % (db, table), t0)
        try:
            opts = self.load_options(tbl)
        except LoadError as e:
            return self.be_reply(db, table, label, -1, "Fail", str(e), t0)
        f = emu.take_fault("be", {"503", "running"})
        if f and f["mode"] == "503":
            log("BE %s.%s label=%s: 503 fault", db, table, label)
            emu.record("HTTP 503", db, table, label, -1)
            return self.send_json(503, {"status": "FAILED", "msg": "service unavailable (emulated)"},
                                  reason="Service Unavailable")
        if f:
            with emu.lock:
                emu.fake_running.add((db, label))  # get_load_state says PREPARE once
            return self.label_used_reply(db, table, label, "RUNNING", t0)
        # be/src/http/action/stream_load.cpp checks Content-Length against
        # streaming_load_max_batch_size_mb for JSON before the body is read.
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n > emu.args.json_max_bytes:
            return self.be_reply(db, table, label, -1, "Fail",
                                 "The size of this batch exceed the max size [%d]  of json type data "
                                 " data [ %d ]. Set ignore_json_size to skip the check, although it "
                                 "may lead huge memory consuming." % (emu.args.json_max_bytes, n), t0)
        state, txn = emu.claim_label(db, label)
        if state:
            return self.label_used_reply(db, table, label, state, t0)
        try:
            self.run_load(tbl, label, txn, opts, t0)
        finally:
            emu.release_label(db, label)

    def label_used_reply(self, db, table, label, state, t0):
        """A used label. R/test_stream_load_label_already_exist: TxnId -1, Status "Label
        Already Exists", ExistingJobStatus, Message "Label [x] has already been used.". In
        label mode used (issue #57982): Status "Fail", same Message, no ExistingJobStatus."""
        if self.server.emu.args.label_mode == "used":
            return self.be_reply(db, table, label, -1, "Fail",
                                 "Label [%s] has already been used." % label, t0)
        return self.be_reply(db, table, label, -1, "Label Already Exists", "", t0, existing=state)

    def load_options(self, tbl):
        fmt = (self.headers.get("format") or "").strip().lower()
        if fmt not in ("json", "csv"):
            raise LoadError("the emulator loads format: json or csv (got format: %s)" % fmt)
        try:
            ratio = float(self.headers.get("max_filter_ratio", "0"))
        except ValueError:
            raise LoadError("Invalid max_filter_ratio: " + self.headers.get("max_filter_ratio")) from None
        strip = self.headers.get("strip_outer_array", "false").strip().lower() == "true"
        targets = None
        cols = self.headers.get("columns")
        if cols is not None:
            names = [c.strip().strip("`") for c in cols.split(",")]
            if all(IDENT_RE.match(n) for n in names):
                targets = names
            else:
                log("BE columns header with expressions is not emulated, ignored: %s", cols)
        jp = self.headers.get("jsonpaths")
        jsonpaths = parse_jsonpaths(jp) if jp else None
        strict = self.headers.get("strict_mode", "false").strip().lower() == "true"
        return {"ratio": ratio, "strip": strip, "targets": targets, "jsonpaths": jsonpaths,
                "strict": strict, "format": fmt,
                "sep": parse_separator(self.headers.get("column_separator")),
                "enclose": self.headers.get("enclose") or ""}

    def run_load(self, tbl, label, txn, opts, t0):
        emu = self.server.emu
        db, table = tbl.db, tbl.name
        f = emu.take_fault("be", {"hang", "publish_timeout", "fail_retryable", "drop_mid_body",
                                  "commit_then_drop"})
        mode = f["mode"] if f else None
        if mode == "drop_mid_body":
            n = int(self.headers.get("Content-Length", "0") or 0)
            try:
                got = self.read_body(stop_after=max(1, n // 2))
            except (LoadError, ConnectionError):
                got = b""
            emu.record("dropped mid body", db, table, label, txn, "read %d bytes" % len(got))
            return self.reset_connection()
        try:
            body = self.read_body()
        except LoadError as e:
            return self.be_reply(db, table, label, txn, "Fail", str(e), t0)
        except (ConnectionError, socket.timeout, OSError) as e:
            emu.record("client gone", db, table, label, txn, str(e))
            self.close_connection = True
            return
        if mode == "hang":
            log("BE %s.%s label=%s: hang fault, holding %.1fs", db, table, label, f["seconds"])
            emu.hang(f["seconds"])
        if mode == "fail_retryable":
            return self.be_reply(db, table, label, txn, "Fail", f["message"], t0, nbytes=len(body))
        with emu.lock:
            poison = next((p for p in emu.poisons if p["match"].encode() in body), None)
        if poison:
            return self.be_reply(db, table, label, txn, "Fail", poison["message"], t0,
                                 nbytes=len(body))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self.be_reply(db, table, label, txn, "Fail", UTF8_MSG, t0, nbytes=len(body))
        csv_errors = []
        try:
            if opts["format"] == "csv":
                names = opts["targets"] or [c.name for c in tbl.columns]
                docs, csv_errors = parse_csv_documents(text, opts["sep"], opts["enclose"], names)
            else:
                docs = parse_documents(text, opts["strip"])
        except LoadError as e:
            return self.be_reply(db, table, label, txn, "Fail", str(e), t0, nbytes=len(body))
        rows, errors = convert_rows(tbl, docs, None if opts["format"] == "csv" else opts["targets"],
                                    opts["jsonpaths"], opts["strict"])
        errors = csv_errors + errors
        docs = docs + [None] * len(csv_errors)  # filtered CSV rows count in the total
        counts = {"total": len(docs), "loaded": len(rows), "filtered": len(errors)}
        error_url = emu.save_error_log(txn, errors) if errors else None
        if not docs:
            return self.be_reply(db, table, label, txn, "Fail", NO_DATA_MSG, t0, len(body), counts)
        if len(errors) / len(docs) > opts["ratio"]:
            return self.be_reply(db, table, label, txn, "Fail", "too many filtered rows", t0,
                                 len(body), counts, error_url)
        if not rows:
            return self.be_reply(db, table, label, txn, "Fail", NO_DATA_MSG, t0, len(body), counts,
                                 error_url)
        emu.commit(tbl, label, txn, rows)
        if mode == "commit_then_drop":
            emu.record("committed, reply dropped", db, table, label, txn, "", len(rows), len(errors))
            self.close_connection = True
            return
        if mode == "publish_timeout":
            return self.be_reply(db, table, label, txn, "Publish Timeout",
                                 "transaction commit successfully, BUT data will be visible later",
                                 t0, len(body), counts, error_url)
        self.be_reply(db, table, label, txn, "Success", "OK", t0, len(body), counts, error_url)

    def be_reply(self, db, table, label, txn, status, message, t0, nbytes=0, counts=None,
                 error_url=None, existing=None):
        counts = counts or {}
        loaded = counts.get("loaded", 0)  # StarRocks reports it for Fail too: see Status
        if existing:
            message = "Label [%s] has already been used." % label
        r = {"TxnId": txn, "Label": label, "Status": status}
        if existing:
            r["ExistingJobStatus"] = existing
        r.update({"Message": message,
                  "NumberTotalRows": counts.get("total", 0),
                  "NumberLoadedRows": loaded,
                  "NumberFilteredRows": counts.get("filtered", 0),
                  "NumberUnselectedRows": 0,
                  "LoadBytes": nbytes,
                  "LoadTimeMs": int((time.time() - t0) * 1000),
                  "BeginTxnTimeMs": 0, "StreamLoadPlanTimeMs": 0, "ReadDataTimeMs": 0,
                  "WriteDataTimeMs": 0, "CommitAndPublishTimeMs": 0})
        if error_url:
            r["ErrorURL"] = error_url
        committed = loaded if status in ("Success", "Publish Timeout") else 0
        self.server.emu.record(status + ("/" + existing if existing else ""), db, table, label,
                               txn, message, committed, counts.get("filtered", 0))
        self.send_json(200, r)

    # -- /_emu/
    def emu_endpoint(self, path):
        emu = self.server.emu
        cmd = self.command
        try:
            body = self.read_body(limit=16 * 1024 * 1024) if cmd in ("POST", "DELETE", "PUT") else b""
            if path == "/_emu/health":
                return self.send_json(200, {"ok": True}, pretty=False)
            if path == "/_emu/faults" and cmd == "GET":
                with emu.lock:
                    return self.send_json(200, list(emu.faults), pretty=False)
            if path == "/_emu/faults" and cmd == "POST":
                spec = json.loads(body or b"{}")
                added = emu.add_faults(spec if isinstance(spec, list) else [spec])
                with emu.lock:
                    queue = [dict(f) for f in emu.faults]
                log("faults added %s; queue now %s", added, queue)
                return self.send_json(200, {"ok": True, "added": added, "queue": queue}, pretty=False)
            if path == "/_emu/count":
                t = self.emu_table()
                with emu.lock:
                    n = emu.conn.execute("SELECT count(*) FROM " + t.sql_name).fetchone()[0]
                return self.send_json(200, {"count": n}, pretty=False)
            if path == "/_emu/rows" and cmd == "GET":
                return self.emu_rows(self.emu_table())
            if path == "/_emu/rows" and cmd == "DELETE":
                t = self.emu_table()
                where = self.query.get("where", ["1"])[0]
                with emu.lock:
                    n = emu.conn.execute("DELETE FROM %s WHERE %s" % (t.sql_name, where)).rowcount
                log("deleted %d rows from %s where %s", n, t.full, where)
                return self.send_json(200, {"deleted": n}, pretty=False)
            if path == "/_emu/labels":
                with emu.lock:
                    rows = emu.conn.execute("SELECT db, label, tbl, status, rows, txn_id FROM "
                                            "_emu_labels ORDER BY txn_id").fetchall()
                    running = sorted(emu.running.items(), key=lambda kv: kv[1])
                out = [{"db": r[0], "label": r[1], "table": r[2], "status": r[3], "rows": r[4],
                        "txn_id": r[5]} for r in rows]
                out += [{"db": k[0], "label": k[1], "table": None, "status": "RUNNING", "rows": 0,
                         "txn_id": v} for k, v in running]
                return self.send_json(200, out, pretty=False)
            if path == "/_emu/loads":
                with emu.lock:
                    out = json.loads(json.dumps(emu.counters))
                    out["recent"] = list(emu.recent)
                return self.send_json(200, out, pretty=False)
            if path == "/_emu/sql" and cmd == "POST":
                return self.emu_sql(body.decode())
            return self.send_json(404, {"error": "no emulator endpoint %s %s" % (cmd, path)}, pretty=False)
        except (ValueError, LookupError, LoadError, sqlite3.Error) as e:
            return self.send_json(400, {"error": str(e)}, pretty=False)

    def emu_table(self):
        name = self.query.get("table", [""])[0]
        db, _, tbl = name.partition(".")
        t = self.server.emu.tables.get((db, tbl))
        if t is None:
            raise LookupError("unknown table %r (declared: %s)" % (
                name, sorted(x.full for x in self.server.emu.tables.values())))
        return t

    def emu_rows(self, t):
        meta = self.query.get("meta", ["0"])[0] not in ("0", "")
        emu = self.server.emu
        cols = ", ".join(qi(c.name) for c in t.columns)
        with emu.lock:
            data = emu.conn.execute("SELECT rowid, %s FROM %s ORDER BY rowid" % (cols, t.sql_name)).fetchall()
            labels = emu.conn.execute("SELECT label, txn_id, first_rowid, last_rowid FROM _emu_labels"
                                      " WHERE db=? AND tbl=? AND rows > 0", (t.db, t.name)).fetchall() \
                if meta else []
        out = []
        for r in data:
            d = {c.name: c.from_sqlite(v) for c, v in zip(t.columns, r[1:])}
            if meta:
                for lab, txn, lo, hi in labels:
                    if lo <= r[0] <= hi:
                        d["_label"], d["_txn"] = lab, txn
            out.append(json.dumps(d, ensure_ascii=False))
        self.send_raw(200, ("".join(s + "\n" for s in out)).encode(), ctype="application/x-ndjson")

    def emu_sql(self, sql):
        if not re.match(r"^\s*(SELECT|WITH|VALUES)\b", sql, re.I):
            raise ValueError("only SELECT/WITH/VALUES statements are allowed")
        emu = self.server.emu
        with emu.lock:
            emu.conn.execute("PRAGMA query_only = 1")
            try:
                cur = emu.conn.execute(sql)
                names = [d[0] for d in cur.description or []]
                rows = cur.fetchall()
            finally:
                emu.conn.execute("PRAGMA query_only = 0")
        out = "".join(json.dumps(dict(zip(names, r)), ensure_ascii=False) + "\n" for r in rows)
        self.send_raw(200, out.encode(), ctype="application/x-ndjson")


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fe-port", type=int, required=True)
    ap.add_argument("--be-port", type=int, required=True)
    ap.add_argument("--tables", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="")
    ap.add_argument("--lenient-labels", action="store_true")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--label-mode", choices=("existing", "used"), default="existing")
    ap.add_argument("--json-max-bytes", type=int, default=MAX_BODY)
    args = ap.parse_args(argv)
    with open(args.tables) as f:
        spec = json.load(f)
    try:
        tables = [Table(name, cols) for name, cols in spec.items()]
    except (ValueError, TypeError, IndexError) as e:
        sys.exit("starrocks_emulator: bad --tables: %s" % e)
    emu = Emulator(args, tables)
    servers = [Server((args.host, args.fe_port), Handler, emu, "fe"),
               Server((args.host, args.be_port), Handler, emu, "be")]
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    log("starrocks emulator: FE %s:%d BE %s:%d tables %s db %s strict_labels=%s",
        args.host, args.fe_port, args.host, args.be_port, sorted(spec), args.db,
        not args.lenient_labels)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    log("starrocks emulator: stopping")
    for s in servers:
        s.shutdown()
        s.server_close()
    with emu.lock:
        emu.conn.close()


if __name__ == "__main__":
    main()
