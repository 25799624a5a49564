"""test_deploy.py - what can be checked of deploy/ without a container engine or a cluster.

- every YAML file under deploy/ parses; the Kubernetes manifests and the Helm chart's
  rendered output validate against the Kubernetes API schemas (npm kubernetes-models, in
  tests/support/k8svalidate; the chart is rendered by helmrender.mjs there, a subset
  renderer, because Debian 12 has no helm);
- the manifests keep the sidecar contract (probes, grace period vs drain timeout, WAL on
  the volume, security context, the app's ClickHouse URL on localhost);
- the Dockerfile's runtime stage: its apt packages cover every library `ldd sluice` lists,
  and the binary runs, a round trip included, in a chroot holding only that file set;
- the StarRocks DDL: Primary Key tables for exactly the tables the compose sink includes;
- the pod's termination played locally: preStop, SIGTERM, SIGKILL after the grace period,
  while writes flow; no acked row is lost.
"""
import glob
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SRC = harness.SRC
DEPLOY = os.path.join(SRC, "deploy")
K8SV = os.path.join(SRC, "tests", "support", "k8svalidate")
CHART = os.path.join(DEPLOY, "helm", "sluice")


# ---------------------------------------------------------------- node helpers

def _ensure_node_modules():
    if not os.path.isdir(os.path.join(K8SV, "node_modules", "kubernetes-models")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=K8SV, check=True, timeout=600)


def _validate(paths, parse_only=False, stdin=None):
    """Run validate.mjs; returns the list of per-document results (with parsed obj)."""
    _ensure_node_modules()
    argv = ["node", os.path.join(K8SV, "validate.mjs"), "--dump"]
    if parse_only:
        argv.append("--parse-only")
    r = subprocess.run(argv + list(paths), cwd=K8SV, input=stdin, capture_output=True,
                       timeout=300)
    docs = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    if not docs:
        raise AssertionError("validate.mjs printed nothing: %s" % r.stderr.decode())
    return docs


def _render_chart(values_yaml=None, release="tz"):
    _ensure_node_modules()
    argv = ["node", os.path.join(K8SV, "helmrender.mjs"), CHART, "--release", release]
    tmp = None
    if values_yaml:
        tmp = harness.TempDir("sluice-helm-")
        p = os.path.join(tmp.path, "values.yaml")
        with open(p, "w") as f:
            f.write(values_yaml)
        argv += ["--values", p]
    try:
        r = subprocess.run(argv, capture_output=True, timeout=120)
    finally:
        if tmp:
            tmp.close()
    assert r.returncode == 0, "helmrender failed: %s" % r.stderr.decode()
    return r.stdout


def _assert_all_ok(docs):
    bad = [d for d in docs if not d["ok"]]
    assert not bad, "invalid documents:\n" + "\n".join(
        "%s#%d %s/%s: %s" % (d["file"], d["doc"], d["kind"], d["name"], d["error"]) for d in bad)


def _by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d["obj"])
    return out


def _yaml_files():
    files = []
    for root, dirs, names in os.walk(DEPLOY):
        for n in names:
            p = os.path.join(root, n)
            # Helm templates are Go templates, not YAML: they are checked rendered.
            if n.endswith((".yaml", ".yml")) and os.sep + "templates" + os.sep not in p:
                files.append(p)
    return sorted(files)


# ---------------------------------------------------------------- YAML and schemas

def test_every_yaml_file_under_deploy_parses():
    files = _yaml_files()
    names = {os.path.relpath(f, DEPLOY) for f in files}
    for want in ("sluice.yaml", "k8s/statefulset.yaml", "helm/sluice/values.yaml",
                 "helm/sluice/Chart.yaml", "compose/compose.yaml", "compose/sluice.yaml"):
        assert want in names, "missing deploy/%s" % want
    docs = _validate(files, parse_only=True)
    _assert_all_ok(docs)
    assert {d["file"] for d in docs} == set(files)


def test_parser_rejects_broken_yaml():
    # the check above means something: a duplicate key and bad indentation are errors
    docs = _validate(["-"], parse_only=True, stdin=b"a: 1\na: 2\n")
    assert not docs[0]["ok"], docs
    docs = _validate(["-"], parse_only=True, stdin=b"a:\n  - b\n - c\n")
    assert not docs[0]["ok"], docs


def test_k8s_manifests_validate_against_api_schemas():
    files = sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml")))
    docs = _validate(files)
    _assert_all_ok(docs)
    kinds = _by_kind(docs)
    for k in ("StatefulSet", "ConfigMap", "Secret", "Service", "ServiceMonitor"):
        assert k in kinds, "no %s in deploy/k8s" % k


def test_schema_validation_catches_a_wrong_type():
    with open(os.path.join(DEPLOY, "k8s", "statefulset.yaml"), "rb") as f:
        text = f.read().replace(b"containerPort: 8124", b'containerPort: "admin"')
    docs = _validate(["-"], stdin=text)
    assert not docs[0]["ok"] and "containerPort" in docs[0]["error"], docs[0]["error"]


def test_helm_chart_renders_and_validates():
    docs = _validate(["-"], stdin=_render_chart())
    _assert_all_ok(docs)
    kinds = _by_kind(docs)
    for k in ("StatefulSet", "ConfigMap", "Secret", "Service", "ServiceMonitor"):
        assert k in kinds, "chart rendered no %s" % k
    # the switches in values.yaml do what they say
    docs = _validate(["-"], stdin=_render_chart(
        "secret: {create: false}\nmetrics: {podAnnotations: false, serviceMonitor: "
        "{enabled: false}}\nwal: {storageClassName: fast-ssd, size: 50Gi}\n", release="x"))
    _assert_all_ok(docs)
    kinds = _by_kind(docs)
    assert "Secret" not in kinds and "ServiceMonitor" not in kinds, list(kinds)
    sts = kinds["StatefulSet"][0]
    vct = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert vct["storageClassName"] == "fast-ssd" and vct["resources"]["requests"]["storage"] == "50Gi"
    assert "annotations" not in sts["spec"]["template"]["metadata"]


def test_helm_renderer_refuses_unsupported_syntax():
    _ensure_node_modules()
    tmp = harness.TempDir("sluice-helm-")
    try:
        chart = os.path.join(tmp.path, "c")
        os.makedirs(os.path.join(chart, "templates"))
        with open(os.path.join(chart, "Chart.yaml"), "w") as f:
            f.write("apiVersion: v2\nname: c\nversion: 0.1.0\n")
        with open(os.path.join(chart, "values.yaml"), "w") as f:
            f.write("a: 1\n")
        for tpl in ('{{ include "x" . }}', "{{ range .Values.a }}x{{ end }}", "{{ .Values.typo }}"):
            with open(os.path.join(chart, "templates", "t.yaml"), "w") as f:
                f.write(tpl)
            r = subprocess.run(["node", os.path.join(K8SV, "helmrender.mjs"), chart],
                               capture_output=True, timeout=60)
            assert r.returncode != 0, "accepted %s: %s" % (tpl, r.stdout)
    finally:
        tmp.close()


# ---------------------------------------------------------------- the sidecar contract

def _yaml_inner(text):
    """Parse a YAML string held inside a manifest (the ConfigMap's sluice.yaml)."""
    docs = _validate(["-"], parse_only=True, stdin=text.encode())
    _assert_all_ok(docs)
    return docs[0]["obj"]


def _check_sidecar_pod(kinds, where):
    sts = kinds["StatefulSet"][0]
    pod = sts["spec"]["template"]["spec"]
    sidecars = [c for c in pod.get("initContainers", []) if c["name"] == "sluice"]
    assert sidecars, "%s: no sluice container" % where
    sl = sidecars[0]
    assert sl.get("restartPolicy") == "Always", "%s: sluice is not a native sidecar" % where
    apps = pod["containers"]
    # probes on the admin port, unauthenticated paths
    ports = {p["name"]: p["containerPort"] for p in sl["ports"]}
    assert ports.get("sluice-admin") == 8124, where
    assert sl["readinessProbe"]["httpGet"]["path"] == "/readyz", where
    assert sl["livenessProbe"]["httpGet"]["path"] == "/healthz", where
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert sl[probe]["httpGet"]["port"] in ("sluice-admin", 8124), (where, probe)
    # config: WAL on the claimed volume, admin off loopback with a token, data on loopback
    cms = {c["metadata"]["name"]: c for c in kinds["ConfigMap"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in sl["volumeMounts"]}
    cfg_cm = cms[vols["sluice-config"]["configMap"]["name"]]
    cfg = _yaml_inner(cfg_cm["data"]["sluice.yaml"])
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert "wal" in claims and "wal" in mounts, where
    assert cfg["wal"]["dir"].startswith(mounts["wal"] + "/"), (where, cfg["wal"]["dir"])
    assert cfg["admin"]["listen"].startswith("0.0.0.0:8124"), where
    assert cfg["admin"]["token"].startswith("${"), "%s: admin token not from env" % where
    assert cfg["proxy"]["listen"] == "127.0.0.1:8123", where
    for s in cfg["sinks"]:
        assert not s.get("password") or s["password"].startswith("${"), \
            "%s: a literal password in the ConfigMap" % where
    # termination: grace > preStop + drain timeout
    drain = cfg.get("shutdown", {}).get("drain_timeout_s", 30)
    pre = int(sl["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > pre + drain, "%s: grace %s <= preStop %s + drain %s" % (where, grace, pre, drain)
    # security and resources, every container
    assert pod["securityContext"]["runAsNonRoot"] is True, where
    assert pod["securityContext"].get("fsGroup"), "%s: WAL volume not group-writable" % where
    for c in [sl] + apps:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
        assert sc["runAsNonRoot"] is True, (where, c["name"])
        assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], (where, c["name"])
    # the app writes through sluice on localhost
    secrets = {s["metadata"]["name"]: s for s in kinds.get("Secret", [])}
    env = {e["name"]: e for e in apps[0]["env"]}
    url_env = env["TENSORZERO_CLICKHOUSE_URL"]
    if "value" in url_env:
        url = url_env["value"]
    else:
        ref = url_env["valueFrom"]["secretKeyRef"]
        url = secrets[ref["name"]]["stringData"][ref["key"]]
    assert re.match(r"^http://[^@/]+@localhost:8123/\w+$", url), (where, url)
    # metrics: annotations and a ServiceMonitor selecting a service with the admin port
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == "8124" and ann["prometheus.io/path"] == "/metrics"
    sm = kinds["ServiceMonitor"][0]
    sel = sm["spec"]["selector"]["matchLabels"]
    svcs = [s for s in kinds["Service"]
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
    assert svcs and any(p["name"] == sm["spec"]["endpoints"][0]["port"]
                        for p in svcs[0]["spec"]["ports"]), where


def test_k8s_manifests_keep_the_sidecar_contract():
    docs = _validate(sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))))
    _check_sidecar_pod(_by_kind(docs), "deploy/k8s")


def test_helm_chart_keeps_the_sidecar_contract():
    _check_sidecar_pod(_by_kind(_validate(["-"], stdin=_render_chart())), "helm chart")


def _sluice_configs():
    """Every sluice.yaml shipped in deploy/ (files, and those inside manifests)."""
    out = {"deploy/sluice.yaml": open(os.path.join(DEPLOY, "sluice.yaml")).read(),
           "deploy/compose/sluice.yaml": open(os.path.join(DEPLOY, "compose", "sluice.yaml")).read()}
    for d in _validate(sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml")))):
        if d["kind"] == "ConfigMap" and "sluice.yaml" in d["obj"]["data"]:
            out["deploy/k8s " + d["name"]] = d["obj"]["data"]["sluice.yaml"]
    for d in _validate(["-"], stdin=_render_chart()):
        if d["kind"] == "ConfigMap" and "sluice.yaml" in d["obj"]["data"]:
            out["helm " + d["name"]] = d["obj"]["data"]["sluice.yaml"]
    return out


def test_shipped_sluice_configs_pass_check_config():
    assert os.path.exists(harness.SLUICE_BIN), "no sluice binary at %s" % harness.SLUICE_BIN
    env = dict(os.environ, CLICKHOUSE_USER="tensorzero", CLICKHOUSE_PASSWORD="pw",
               SLUICE_ADMIN_TOKEN="tok", STARROCKS_PASSWORD="")
    for k in ("SLUICE_LISTEN", "SLUICE_ADMIN_LISTEN", "SLUICE_WAL_DIR", "SLUICE_CLICKHOUSE_URL"):
        env.pop(k, None)
    tmp = harness.TempDir("sluice-cfg-")
    try:
        for name, text in _sluice_configs().items():
            p = os.path.join(tmp.path, "sluice.yaml")
            with open(p, "w") as f:
                f.write(text)
            r = subprocess.run([harness.SLUICE_BIN, "check-config", "--config", p], env=env,
                               capture_output=True, timeout=60)
            assert r.returncode == 0, "%s: check-config -> %d\n%s%s" % (
                name, r.returncode, r.stdout.decode(), r.stderr.decode())
            out = r.stdout.decode()
            assert "pw" not in re.findall(r"password:\s*(\S+)", out), "%s: password printed" % name
            # What TensorZero needs (docs/tensorzero.md): read-your-writes on, and a full log
            # holds its writes for long instead of answering 503 (it drops the rows on non-200).
            eff = dict(re.findall(r"^  (when_full|block_timeout_ms|read_barrier_ms): (\S+)$", out,
                                  re.M))
            assert eff.get("when_full") == "block", (name, eff)
            assert int(eff["block_timeout_ms"]) >= 60000, (name, eff)
            assert int(eff["read_barrier_ms"]) > 0, (name, eff)
    finally:
        tmp.close()


# ---------------------------------------------------------------- the image's file set

def _dockerfile_stages():
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    stages, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            cur = {"base": m.group(1), "name": m.group(2), "lines": []}
            stages.append(cur)
        elif cur is not None:
            cur["lines"].append(line.strip())
    return stages


def _apt_install_list(stage):
    pkgs = []
    for line in stage["lines"]:
        if not line.startswith("RUN"):
            continue
        for seg in line.split("&&"):
            m = re.search(r"apt-get\s+install\s+(.*)$", seg)
            if m:
                pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def _ldd(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, timeout=60, check=True)
    libs = {}
    for line in r.stdout.decode().splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            path = m.group(m.lastindex)
            libs[os.path.basename(path)] = path
        elif "not found" in line:
            raise AssertionError("ldd: " + line)
    return libs


def _owners(paths):
    """Debian package owning each library path (one dpkg-query call; merged-/usr aware)."""
    cands = {}
    for path in paths:
        real = os.path.realpath(path)
        for c in (path, real, real.replace("/usr/lib/", "/lib/", 1),
                  path.replace("/lib/", "/usr/lib/", 1)):
            cands.setdefault(c, path)
    r = subprocess.run(["dpkg-query", "-S"] + list(cands), capture_output=True, timeout=120)
    out = {}
    for line in r.stdout.decode().splitlines():
        pkg, _, f = line.partition(": ")
        if f.strip() in cands:
            out.setdefault(cands[f.strip()], pkg.split(":")[0].strip())
    missing = [p for p in paths if p not in out]
    assert not missing, "no Debian package owns %s" % missing
    return out


def _dep_closure(pkgs):
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + pkgs,
                       capture_output=True, timeout=120, check=True)
    names = set(pkgs)
    for line in r.stdout.decode().splitlines():
        m = re.match(r"^\s*(?:\|?(?:Pre)?Depends:\s*)?<?([a-z0-9][a-z0-9.+-]*)(?::\w+)?>?\s*$", line)
        if m:
            names.add(m.group(1))
    return names


def test_dockerfile_stages_are_as_documented():
    stages = _dockerfile_stages()
    assert len(stages) == 2, [s["base"] for s in stages]
    build, run = stages
    assert build["base"] == "debian:12" and run["base"] == "debian:12-slim"
    body = "\n".join(run["lines"])
    for want in ("USER 10001", "VOLUME /var/lib/sluice", "EXPOSE 8123 8124", "STOPSIGNAL SIGTERM",
                 "HEALTHCHECK", "/healthz"):
        assert want in body, "runtime stage lacks %s" % want
    assert not any(p.endswith("-dev") or p in ("build-essential", "cmake") for p in _apt_install_list(run))
    # the build stage installs the same -dev packages as scripts/install-deps.sh
    with open(os.path.join(SRC, "scripts", "install-deps.sh")) as f:
        deps = f.read()
    for p in _apt_install_list(build):
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(p), deps), \
            "Dockerfile builds with %s, install-deps.sh does not install it" % p


def test_dockerfile_runtime_packages_cover_ldd():
    assert os.path.exists(harness.SLUICE_BIN), "no sluice binary at %s" % harness.SLUICE_BIN
    runtime = _apt_install_list(_dockerfile_stages()[1])
    assert runtime, "no apt-get install in the runtime stage"
    closure = _dep_closure(runtime)
    owners = _owners(list(_ldd(harness.SLUICE_BIN).values()))
    missing = {p: pkg for p, pkg in owners.items() if pkg not in closure}
    assert not missing, "libraries the runtime stage would lack: %s" % missing
    # and every listed package is used (by ldd, or is ca-certificates for https sinks)
    used = set(owners.values())
    extra = [p for p in runtime if p not in used and p != "ca-certificates"]
    assert not extra, "runtime packages nothing links: %s" % extra


def _make_rootfs(root):
    """The image's file set: /usr/local/bin/sluice and what ldd lists, nothing else
    (plus /dev/null, /dev/urandom and /tmp, which every container has)."""
    libs = _ldd(harness.SLUICE_BIN)
    os.makedirs(os.path.join(root, "usr/local/bin"))
    shutil.copy2(harness.SLUICE_BIN, os.path.join(root, "usr/local/bin/sluice"))
    for path in libs.values():
        dst = root + path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.realpath(path), dst)
    # Debian's merged /usr: /lib64 -> usr/lib64, /lib -> usr/lib
    for d in ("lib", "lib64"):
        if os.path.islink("/" + d) and not os.path.exists(os.path.join(root, d)):
            if os.path.isdir(os.path.join(root, "usr", d)):
                os.symlink("usr/" + d, os.path.join(root, d))
    os.makedirs(os.path.join(root, "dev"))
    os.makedirs(os.path.join(root, "tmp"))
    for name, (maj, mnr) in (("null", (1, 3)), ("urandom", (1, 9))):
        try:
            os.mknod(os.path.join(root, "dev", name), 0o666 | stat.S_IFCHR, os.makedev(maj, mnr))
        except OSError:
            pass
    return libs


def _chroot_preexec(root):
    def f():
        os.chroot(root)
        os.chdir("/")
    return f


def _can_chroot():
    return os.geteuid() == 0 and hasattr(os, "chroot")


def test_runtime_file_set_runs_sluice():
    """`sluice version` and an insert that reaches ClickHouse, from a root holding only the
    binary and the libraries ldd lists (chroot as root; else LD_LIBRARY_PATH)."""
    assert os.path.exists(harness.SLUICE_BIN), "no sluice binary at %s" % harness.SLUICE_BIN
    tmp = harness.TempDir("sluice-rootfs-")
    old_bin = harness.SLUICE_BIN
    try:
        root = os.path.join(tmp.path, "root")
        libs = _make_rootfs(root)
        chroot = _can_chroot()
        if chroot:
            r = subprocess.run(["/usr/local/bin/sluice", "version"], capture_output=True,
                               timeout=30, env={}, preexec_fn=_chroot_preexec(root))
        else:
            libdir = os.path.join(tmp.path, "lib")
            os.makedirs(libdir)
            for name, path in libs.items():
                shutil.copy2(os.path.realpath(path), os.path.join(libdir, name))
            r = subprocess.run([os.path.join(root, "usr/local/bin/sluice"), "version"],
                               capture_output=True, timeout=30,
                               env={"LD_LIBRARY_PATH": libdir})
        assert r.returncode == 0, r.stderr.decode()
        assert re.search(r"\d+\.\d+\.\d+", r.stdout.decode() + r.stderr.decode()), r.stdout

        # round trip: the work dir lives inside the root, at the same absolute path as
        # outside (a symlink inside the root maps it), so harness.Sluice works unchanged.
        ch = harness.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE TABLE default.rt (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
        work = os.path.join(root, "work")
        os.makedirs(work)
        if chroot:
            inner = root + work
            os.makedirs(os.path.dirname(inner), exist_ok=True)
            os.symlink("/work", inner)
            harness.SLUICE_BIN = "/usr/local/bin/sluice"
            pre = _chroot_preexec(root)
            env = {}
        else:
            harness.SLUICE_BIN = os.path.join(root, "usr/local/bin/sluice")
            pre = None
            env = {"LD_LIBRARY_PATH": os.path.join(tmp.path, "lib")}
        s = harness.Sluice(work, _config(ch.url, drain=5), env=None, start=False, preexec=pre)
        s.env = env  # only what a container would get
        s.start()
        st, _, body = s.insert("rt", [{"id": i, "s": "x%d" % i} for i in range(100)],
                               database="default")
        assert st == 200, body
        harness.wait_until(lambda: ch.query("SELECT count() FROM default.rt").strip() == "100",
                           timeout=30, what="100 rows in ClickHouse through the chrooted sluice")
        assert s.stop() == 0
    finally:
        harness.SLUICE_BIN = old_bin
        tmp.close()


# ---------------------------------------------------------------- StarRocks DDL

def _ddl_tables():
    with open(os.path.join(DEPLOY, "starrocks", "tensorzero.sql")) as f:
        text = re.sub(r"--[^\n]*", "", f.read())
    tables = {}
    for m in re.finditer(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\) PRIMARY KEY \(([^)]*)\)",
                         text, re.S):
        cols = {}
        for line in m.group(2).strip().splitlines():
            line = line.strip().rstrip(",")
            cm = re.match(r"`?(\w+)`?\s+(\w+(?:\(\d+\))?)\s*(.*)$", line)
            assert cm, "unparsed column line in %s: %r" % (m.group(1), line)
            cols[cm.group(1)] = (cm.group(2), cm.group(3))
        tables[m.group(1)] = (cols, [k.strip() for k in m.group(3).split(",")])
    return text, tables


def test_starrocks_ddl_primary_key_tables_for_the_dual_written_tables():
    text, tables = _ddl_tables()
    assert text.count("CREATE TABLE") == len(tables), "a CREATE TABLE without a PRIMARY KEY"
    want = {"ChatInference", "JsonInference", "ModelInference", "ModelInferenceCache",
            "BooleanMetricFeedback", "FloatMetricFeedback", "CommentFeedback",
            "DemonstrationFeedback", "StaticEvaluationHumanFeedback"}
    assert set(tables) == want, set(tables) ^ want
    allowed = re.compile(r"^(VARCHAR\(\d+\)|JSON|BIGINT|LARGEINT|INT|FLOAT|DOUBLE|BOOLEAN|DATETIME)$")
    for name, (cols, key) in tables.items():
        # Primary Key tables: key columns first, in order, NOT NULL
        assert list(cols)[:len(key)] == key, (name, key, list(cols)[:3])
        for k in key:
            assert "NOT NULL" in cols[k][1], (name, k)
        for c, (typ, _) in cols.items():
            assert allowed.match(typ), (name, c, typ)
        for c in ("id", "target_id", "inference_id", "episode_id", "feedback_id", "datapoint_id"):
            if c in cols:
                assert cols[c][0] == "VARCHAR(36)", (name, c, "UUID -> VARCHAR(36)")
        if "tags" in cols:
            assert cols["tags"][0] == "JSON", (name, "Map(String,String) -> JSON")
    # the compose stack's starrocks sink includes exactly these tables
    cfg = _yaml_inner(open(os.path.join(DEPLOY, "compose", "sluice.yaml")).read())
    sr = [s for s in cfg["sinks"] if s["type"] == "starrocks"][0]
    assert set(sr["include"]) == want, set(sr["include"]) ^ want


# ---------------------------------------------------------------- the pod, played locally

def _config(ch_url, drain=5):
    return ("wal:\n  dir: {wal_dir}\n  sync: always\n"
            "proxy:\n  listen: {listen}\n"
            "sinks:\n  - name: clickhouse\n    type: clickhouse\n    url: %s\n"
            "    database: default\n"
            "admin:\n  listen: {admin}\n"
            "shutdown:\n  drain_timeout_s: %d\n") % (ch_url, drain)


class _App:
    """The application container: POSTs batches of rows to sluice in a loop and remembers
    which ids were acked (HTTP 200). Errors after SIGTERM are expected and not acks."""

    def __init__(self, sluice, table, batch=20):
        self.s, self.table, self.batch = sluice, table, batch
        self.acked, self.failed, self.next_id = set(), 0, 0
        self.stop_flag = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        deadline = time.time() + 120
        while not self.stop_flag.is_set() and time.time() < deadline:
            ids = list(range(self.next_id, self.next_id + self.batch))
            self.next_id += self.batch
            try:
                st, _, _ = self.s.insert(self.table, [{"id": i, "s": "row-%d" % i} for i in ids],
                                         database="default")
            except OSError:
                st = None
            if st == 200:
                self.acked.update(ids)
            else:
                self.failed += 1
                time.sleep(0.02)

    def stop(self):
        self.stop_flag.set()
        self.t.join(30)


def _kubelet_terminate(s, pre_stop_s, grace_s):
    """What the kubelet does: run preStop (a sleep), then SIGTERM, then SIGKILL when the
    grace period (counted from the start of preStop) is over. Returns (rc, killed)."""
    t0 = time.time()
    time.sleep(pre_stop_s)
    s.proc.signal(signal.SIGTERM)
    left = grace_s - (time.time() - t0)
    try:
        s.proc.p.wait(max(left, 0.1))
        killed = False
    except subprocess.TimeoutExpired:
        s.proc.kill9()
        killed = True
    rc = s.proc.p.returncode
    s.stop()
    return rc, killed


def _ch_ids(ch, table):
    return {int(x) for x in ch.query("SELECT id FROM default.%s" % table).split()}


def test_pod_termination_loses_no_acked_row():
    """Writes flow; preStop 1 s; SIGTERM; grace 15 s with drain_timeout_s 5. sluice must
    turn unready, exit 0 before the grace period, and every acked row must be in ClickHouse."""
    assert os.path.exists(harness.SLUICE_BIN), "no sluice binary at %s" % harness.SLUICE_BIN
    tmp = harness.TempDir()
    try:
        ch = harness.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE TABLE default.pod (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
        s = harness.Sluice(tmp.sub("sluice"), _config(ch.url, drain=5))
        assert harness.http_request(s.admin_url + "/readyz")[0] == 200
        app = _App(s, "pod")
        harness.wait_until(lambda: len(app.acked) >= 500, timeout=60, what="500 acked rows")

        unready = {}

        def watch_readyz():
            deadline = time.time() + 20
            while time.time() < deadline and "t" not in unready:
                try:
                    st = harness.http_request(s.admin_url + "/readyz", timeout=1)[0]
                except OSError:
                    st = None
                if st != 200 and "term" in unready:
                    unready["t"] = time.time() - unready["term"]
                time.sleep(0.05)

        w = threading.Thread(target=watch_readyz, daemon=True)
        w.start()
        t0 = time.time()
        time.sleep(1.0)                       # preStop
        unready["term"] = time.time()
        s.proc.signal(signal.SIGTERM)
        try:
            s.proc.p.wait(14.0)
            killed = False
        except subprocess.TimeoutExpired:
            s.proc.kill9()
            killed = True
        rc = s.proc.p.returncode
        s.stop()
        app.stop()
        w.join(25)
        assert not killed, "sluice needed SIGKILL after %.1fs:\n%s" % (time.time() - t0,
                                                                      s.proc.output()[-3000:])
        assert rc == 0, "exit code %s" % rc
        assert "t" in unready and unready["t"] < 2.0, "readyz stayed 200 after SIGTERM: %r" % unready
        assert len(app.acked) >= 500
        got = _ch_ids(ch, "pod")
        lost = app.acked - got
        assert not lost, "%d acked rows not in ClickHouse after a clean drain (e.g. %s)" % (
            len(lost), sorted(lost)[:5])
    finally:
        tmp.close()


def test_pod_termination_during_backend_outage_keeps_rows_for_restart():
    """ClickHouse is down while the pod terminates: the drain cannot deliver, sluice still
    exits within the grace period (SIGKILL if not), and the acked rows are delivered by the
    next sluice on the same WAL volume, once ClickHouse is back."""
    assert os.path.exists(harness.SLUICE_BIN), "no sluice binary at %s" % harness.SLUICE_BIN
    tmp = harness.TempDir()
    try:
        ch = harness.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE TABLE default.pod (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
        s = harness.Sluice(tmp.sub("sluice"), _config(ch.url, drain=3))
        app = _App(s, "pod")
        harness.wait_until(lambda: len(app.acked) >= 200, timeout=60, what="200 acked rows")
        ch.kill()
        n_before = len(app.acked)
        harness.wait_until(lambda: len(app.acked) >= n_before + 200, timeout=60,
                           what="acks while ClickHouse is down")
        rc, killed = _kubelet_terminate(s, pre_stop_s=1.0, grace_s=10.0)
        app.stop()
        assert not killed, "sluice did not exit within the grace period:\n" + s.proc.output()[-3000:]
        assert rc == 0, "exit code %s" % rc
        # the pod comes back on the same volume
        ch.start()
        s.start()
        harness.wait_until(lambda: app.acked <= _ch_ids(ch, "pod"), timeout=60,
                           what="every acked row delivered after restart")
        assert s.stop() == 0
    finally:
        tmp.close()


harness.run_tests(globals())
