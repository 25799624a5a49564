"""test_image.py - deploy/Dockerfile built for real and the image run (issue 14).

No container daemon or registry here: Debian's buildah builds the Dockerfile without one
(`buildah bud --isolation chroot`), FROM a Debian 12 base made on this machine:
`debootstrap --variant=minbase bookworm` from the mirror in /etc/apt/sources.list(.d), given
the official images' minimizing config and, for -slim, their slimming (both follow
debuerreotype: scripts/debuerreotype-minimizing-config, scripts/.slimify-excludes and
.slimify-includes), copied into `buildah from scratch` and committed as
docker.io/library/debian:12 and :12-slim, the names the Dockerfile's FROM lines resolve to.

Everything lives in a private container storage, CACHE (/var/cache/sluice-test, or
$SLUICE_IMAGE_CACHE), selected with CONTAINERS_STORAGE_CONF so the build command is exactly the
one deploy/README.md gives and the machine's own buildah/podman images are not touched.
Driver: the kernel's overlay; where it cannot mount (e.g. / is itself an overlay), set
$SLUICE_IMAGE_STORAGE_DRIVER=fuse-overlayfs (or vfs: works anywhere, copies every layer whole). The base stays there between runs (a fresh machine makes it, ~1 min), and
`--layers` keeps the build's layers, so a second run rebuilds only what changed; after each
good build every untagged layer the build did not use is removed, so the cache stays one build.

Then the image is run as its config says (buildah from + buildah run --isolation chroot, the
host network, the image's USER): `sluice version`; `check-config` of the image's own
/etc/sluice/sluice.yaml with the environment deploy/README.md documents (and without it: the
error names the variable); `sluice run` with the WAL volume mounted from a host temp dir,
serving /healthz (and the image's HEALTHCHECK command) and one INSERT that reaches a
clickhouse-server 18.16 outside the container; SIGTERM drains and exits 0. Prints the image's
size and each layer's. Needs root (CI runs as root). Serialized by CACHE/lock.
"""
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SRC = harness.SRC
DEPLOY = os.path.join(SRC, "deploy")
CACHE = os.environ.get("SLUICE_IMAGE_CACHE", "/var/cache/sluice-test")
DRIVER = os.environ.get("SLUICE_IMAGE_STORAGE_DRIVER", "overlay")
STORAGE = "storage" if DRIVER == "overlay" else "storage-" + DRIVER
BASE = "docker.io/library/debian:12"
SLIM = "docker.io/library/debian:12-slim"
CTR_PREFIX = "sluice-image-test-"
# The runtime stage's apt layer (libraries + ca-certificates) is about 20 MB; a much bigger one
# means something that does not belong there (a -dev package, Recommends, apt caches).
RUNTIME_LAYER_MAX = 40 << 20


def _version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        return re.search(r"project\(sluice VERSION (\S+)", f.read()).group(1)


TAG = "sluice:%s" % _version()
# Exactly deploy/README.md's build command (test_build_command_is_documented checks it).
BUILD_ARGV = ["buildah", "bud", "--isolation", "chroot", "--pull=false", "--layers",
              "--format", "docker", "-f", "deploy/Dockerfile", "-t", TAG, "."]
DOCKER_BUILD = "docker build -f deploy/Dockerfile -t %s ." % TAG


def _env():
    env = dict(os.environ)
    env["CONTAINERS_STORAGE_CONF"] = os.path.join(CACHE, STORAGE + ".conf")
    return env


def _buildah(*args, check=True, timeout=600, **kw):
    r = subprocess.run(["buildah"] + list(args), capture_output=True, timeout=timeout,
                       env=_env(), **kw)
    if check and r.returncode != 0:
        raise AssertionError("buildah %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                          r.stderr.decode()[-3000:]))
    return r


def _storage_conf():
    """CACHE/storage.conf: overlay (kernel) by default; fuse-overlayfs or vfs by
    $SLUICE_IMAGE_STORAGE_DRIVER, each in its own root (a root keeps the driver it was made
    with). vfs copies every layer whole: it works anywhere but takes several GB here."""
    assert DRIVER in ("overlay", "fuse-overlayfs", "vfs"), DRIVER
    os.makedirs(CACHE, exist_ok=True)
    conf = ('[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "/run/sluice-test/%s"\n'
            % ("vfs" if DRIVER == "vfs" else "overlay", os.path.join(CACHE, STORAGE), STORAGE))
    if DRIVER == "fuse-overlayfs":
        conf += '[storage.options.overlay]\nmount_program = "%s"\n' % (
            shutil.which("fuse-overlayfs") or "/usr/bin/fuse-overlayfs")
    path = _env()["CONTAINERS_STORAGE_CONF"]
    old = open(path).read() if os.path.exists(path) else None
    if old != conf:
        with open(path, "w") as f:
            f.write(conf)


def _images():
    out = _buildah("images", "--all", "--json").stdout.decode()
    return json.loads(out) if out.strip() else []


def _tagged(name):
    return any(name in (im.get("names") or []) for im in _images())


# ---------------------------------------------------------------- the Debian 12 base

def _apt_sources():
    """(uri, suites) of every `deb` source of this machine, one-line and deb822 forms."""
    out = []
    d = "/etc/apt/sources.list.d"
    files = ["/etc/apt/sources.list"] + sorted(
        os.path.join(d, n) for n in (os.listdir(d) if os.path.isdir(d) else [])
        if n.endswith((".list", ".sources")))
    for path in files:
        if not os.path.isfile(path):
            continue
        text = open(path).read()
        if path.endswith(".sources"):
            for block in re.split(r"\n\s*\n", text):
                f = {}
                for line in block.splitlines():
                    m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                    if m:
                        f[m.group(1).lower()] = m.group(2).split()
                if "deb" in f.get("types", []) and f.get("enabled", ["yes"]) != ["no"]:
                    out += [(u, f.get("suites", [])) for u in f.get("uris", [])]
        else:
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    out.append((m.group(1), [m.group(2)]))
    return out


def _mirrors():
    """The Debian mirror this machine installs from (bookworm), and its -updates and
    -security sources if it has them (the official image has all three)."""
    src = _apt_sources()
    main = next((u for u, s in src if "bookworm" in s), None)
    assert main, "no bookworm source in /etc/apt/sources.list(.d): %r" % src
    updates = any(u == main and "bookworm-updates" in s for u, s in src)
    security = next((u for u, s in src if "bookworm-security" in s), None)
    return main.rstrip("/"), updates, security and security.rstrip("/")


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _minimize(root, mirror, updates, security):
    """What the official images configure (debuerreotype-minimizing-config): no service starts,
    no apt caches or translations in layers, compressed lists; their deb822 sources."""
    _write(root + "/usr/sbin/policy-rc.d", "#!/bin/sh\n# no services start in image builds\nexit 101\n",
           0o755)
    _write(root + "/etc/dpkg/dpkg.cfg.d/docker-apt-speedup", "force-unsafe-io\n")
    conf = root + "/etc/apt/apt.conf.d/"
    clean = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb ' \
            '/var/cache/apt/*.bin || true";'
    _write(conf + "docker-clean", "DPkg::Post-Invoke { %s };\nAPT::Update::Post-Invoke { %s };\n"
           'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' % (clean, clean))
    _write(conf + "docker-autoremove-suggests", 'Apt::AutoRemove::SuggestsImportant "false";\n')
    _write(conf + "docker-gzip-indexes", 'Acquire::GzipIndexes "true";\n')
    _write(conf + "docker-no-languages", 'Acquire::Languages "none";\n')
    key = "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    text = "Types: deb\nURIs: %s\nSuites: bookworm%s\nComponents: main\n%s" % (
        mirror, " bookworm-updates" if updates else "", key)
    if security:
        text += "\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n%s" % (
            security, key)
    _write(root + "/etc/apt/sources.list.d/debian.sources", text)
    if os.path.exists(root + "/etc/apt/sources.list"):
        os.unlink(root + "/etc/apt/sources.list")
    # what debootstrap leaves that an image does not carry: downloaded .debs, package lists,
    # logs, the build host's resolv.conf and hostname (buildah mounts its own at run time)
    for pattern_dir, keep in (("/var/cache/apt/archives", {"partial", "lock"}),
                              ("/var/lib/apt/lists", {"partial", "lock"}),
                              ("/var/log", set()), ("/tmp", set())):
        d = root + pattern_dir
        for n in os.listdir(d) if os.path.isdir(d) else []:
            p = os.path.join(d, n)
            if n in keep:
                continue
            if os.path.isdir(p) and not os.path.islink(p):
                if pattern_dir == "/var/log":  # keep the directories (apt/), drop their files
                    for dp, _, fs in os.walk(p):
                        for n2 in fs:
                            os.unlink(os.path.join(dp, n2))
                    continue
                shutil.rmtree(p)
            else:
                os.unlink(p)
    # /dev: the runtime mounts its own (device nodes in a layer also trip fuse-overlayfs)
    for n in os.listdir(root + "/dev"):
        p = os.path.join(root + "/dev", n)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    for p in ("/var/cache/apt/pkgcache.bin", "/var/cache/apt/srcpkgcache.bin",
              "/etc/apt/apt.conf.d/01autoremove-kernels"):
        if os.path.exists(root + p):
            os.unlink(root + p)
    for p in ("/etc/resolv.conf", "/etc/hostname"):
        if os.path.lexists(root + p):
            os.unlink(root + p)
        _write(root + p, "")


SLIM_EXCLUDES = ["/usr/share/doc/*", "/usr/share/groff/*", "/usr/share/info/*",
                 "/usr/share/linda/*", "/usr/share/lintian/overrides/*", "/usr/share/locale/*",
                 "/usr/share/man/*"]
SLIM_INCLUDES = ["/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias",
                 "/usr/share/locale/all_languages", "/usr/share/locale/languages",
                 "/usr/share/locale/currency/*", "/usr/share/locale/l10n/*"]


def _slimify(root):
    """-slim: dpkg leaves out docs, man pages and translations from now on (the packages the
    runtime stage installs included), and they are removed from the base itself."""
    import fnmatch
    _write(root + "/etc/dpkg/dpkg.cfg.d/docker",
           "".join("path-exclude %s\n" % p for p in SLIM_EXCLUDES) +
           "".join("path-include %s\n" % p for p in SLIM_INCLUDES))
    for top in {p.split("*")[0].rstrip("/") for p in SLIM_EXCLUDES}:
        for dirpath, dirs, files in os.walk(root + top):
            for n in files:
                path = os.path.join(dirpath, n)[len(root):]
                if any(fnmatch.fnmatch(path, p) for p in SLIM_EXCLUDES) and \
                        not any(fnmatch.fnmatch(path, p) for p in SLIM_INCLUDES):
                    os.unlink(root + path)


def _commit_tree(root, name):
    """buildah from scratch, the tree copied in (owners, modes, links kept), committed."""
    ctr = _buildah("from", "--name", CTR_PREFIX + "base-%d" % os.getpid(), "scratch"
                   ).stdout.decode().strip()
    try:
        mnt = _buildah("mount", ctr).stdout.decode().strip()
        subprocess.run(["cp", "-a", root + "/.", mnt + "/"], check=True, timeout=600)
        _buildah("umount", ctr)
        _buildah("config", "--cmd", '["bash"]',
                 "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--created-by", "debootstrap --variant=minbase bookworm (tests/e2e/test_image.py)",
                 ctr)
        _buildah("commit", "--rm", "--format", "docker", ctr, name)
    except BaseException:
        _buildah("rm", ctr, check=False)
        raise


def _ensure_base():
    """The Debian 12 base in CACHE's storage: there already (cached), or made now."""
    if _tagged(BASE) and _tagged(SLIM):
        return "cached"
    mirror, updates, security = _mirrors()
    work = os.path.join(CACHE, "base-%d" % os.getpid())
    shutil.rmtree(work, ignore_errors=True)
    root = os.path.join(work, "root")
    os.makedirs(work)
    try:
        log = os.path.join(work, "debootstrap.log")
        with open(log, "wb") as f:
            r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, mirror],
                               stdout=f, stderr=subprocess.STDOUT, timeout=900)
        assert r.returncode == 0, "debootstrap from %s failed:\n%s" % (
            mirror, open(log, errors="replace").read()[-3000:])
        _minimize(root, mirror, updates, security)
        _commit_tree(root, BASE)
        _slimify(root)
        _commit_tree(root, SLIM)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return "made from %s" % mirror


# ---------------------------------------------------------------- build

def _build():
    """The README's build command; returns (seconds, log). Fails with the log's tail."""
    t0 = time.time()
    before = _containers()
    try:
        r = subprocess.run(BUILD_ARGV, cwd=SRC, capture_output=True, timeout=1200, env=_env())
    finally:
        _remove_containers(_containers() - before)
    log = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, "image build failed (exit %d): %s\n...\n%s" % (
        r.returncode, " ".join(BUILD_ARGV), log[-4000:])
    return time.time() - t0, log


def _prune(log):
    """Remove every untagged image (layer) this build did not produce or reuse, and an earlier
    version's sluice image: the cache then holds the base and one build, however often the
    sources change."""
    used = re.findall(r"^--> (?:Using cache )?([0-9a-f]{11,64})\s*$", log, re.M)
    def old_tags(names):  # only an earlier version's sluice:TAG
        return all(n.startswith("localhost/sluice:") and n != "localhost/" + TAG for n in names)

    stale = [im["id"] for im in _images()
             if (not im.get("names") or old_tags(im["names"]))
             and not any(im["id"].startswith(u) for u in used)]
    if stale:
        _buildah("rmi", *stale, check=False)
    return len(stale)


def _inspect(name):
    return json.loads(_buildah("inspect", "--type", "image", name).stdout.decode())


def _layers(info):
    """[(size, created_by)] of an image's layers, from its manifest and history."""
    sizes = [l["size"] for l in json.loads(info["Manifest"])["layers"]]
    hist = [h.get("created_by", "") for h in info.get("History") or [] if not h.get("empty_layer")]
    assert len(hist) == len(sizes), (len(hist), len(sizes))
    return list(zip(sizes, hist))


def _mb(n):
    return "%.1f MB" % (n / 1e6)


def _report_sizes():
    img, slim = _layers(_inspect(TAG)), _layers(_inspect(SLIM))
    assert [s for s, _ in img[:len(slim)]] == [s for s, _ in slim], \
        "the image does not start with debian:12-slim's layers"
    added = img[len(slim):]
    total = sum(s for s, _ in img)
    print("image %s: %s = debian:12-slim %s + runtime stage %s" % (
        TAG, _mb(total), _mb(sum(s for s, _ in slim)), _mb(sum(s for s, _ in added))))
    apt = None
    for size, by in added:
        what = re.sub(r"^/bin/sh -c (#\(nop\) )?", "", by)
        print("  layer %9s  %s" % (_mb(size), what[:90]))
        if "apt-get install" in by:
            apt = size
    assert apt is not None, "no apt-get layer in the runtime stage: %r" % added
    print("runtime layer (apt-get install of the runtime packages): %s" % _mb(apt))
    assert apt < RUNTIME_LAYER_MAX, "runtime layer %s is over %s" % (_mb(apt),
                                                                    _mb(RUNTIME_LAYER_MAX))


# ---------------------------------------------------------------- running it

def _children(pid):
    """Every descendant of pid (from /proc, by ppid)."""
    kids = {}
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                with open("/proc/%s/stat" % n) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(n))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def _uid(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def _run(ctr, argv, env=(), volumes=(), timeout=60):
    args = ["run", "--isolation", "chroot"]
    for k, v in env:
        args += ["-e", "%s=%s" % (k, v)]
    for v in volumes:
        args += ["-v", v]
    return _buildah(*(args + [ctr, "--"] + list(argv)), check=False, timeout=timeout)


def _containers():
    out = _buildah("containers", "--format", "{{.ContainerID}}").stdout.decode()
    return set(out.split())


def _remove_containers(ids):
    """By id: what a failed build leaves (its working containers, still mounted), or what a
    killed earlier run of this test left. CACHE's storage is this test's alone and we hold
    its lock, so none of them is in use."""
    for cid in sorted(ids):
        _buildah("rm", cid, check=False)


def _exercise(cfg, tmp):
    """Run the built image: version, check-config, run + healthz + INSERT, drain."""
    user, ep, cmd = cfg["User"], cfg["Entrypoint"], cfg["Cmd"]
    volume = next(iter(cfg.get("Volumes") or {}), None)
    assert user and not user.startswith(("0", "root")), "image runs as %r" % user
    assert volume == "/var/lib/sluice", cfg.get("Volumes")
    cfg_path = cmd[cmd.index("--config") + 1]
    ctr = _buildah("from", "--pull=false", "--name", CTR_PREFIX + str(os.getpid()), TAG
                   ).stdout.decode().strip()
    proc = None
    try:
        r = _run(ctr, ["id", "-u"])
        assert r.returncode == 0 and r.stdout.decode().strip() == user.split(":")[0], \
            (r.returncode, r.stdout, r.stderr)
        r = _run(ctr, ep + ["version"])
        assert r.returncode == 0 and _version() in r.stdout.decode(), (r.stdout, r.stderr)
        print("sluice version in the image: %s" % r.stdout.decode().strip())

        ch = harness.ClickHouse18(os.path.join(tmp, "ch"))
        ch.query("CREATE TABLE default.image_rows (id UInt64, s String) "
                 "ENGINE = MergeTree ORDER BY id")
        # deploy/README.md's `docker run` environment; the listeners on free loopback ports
        # through the documented SLUICE_LISTEN / SLUICE_ADMIN_LISTEN (the host network here).
        data_port, admin_port = harness.free_port(), harness.free_port()
        env = [("SLUICE_CLICKHOUSE_URL", "http://default@127.0.0.1:%d/default" % ch.http_port),
               ("SLUICE_ADMIN_TOKEN", "image-test-token")]
        r = _run(ctr, ep + ["check-config", "--config", cfg_path], env=env[:1])
        assert r.returncode == 3 and b"SLUICE_ADMIN_TOKEN" in r.stderr + r.stdout, \
            "check-config without SLUICE_ADMIN_TOKEN: %d %r" % (r.returncode, r.stderr)
        r = _run(ctr, ep + ["check-config", "--config", cfg_path], env=env)
        out = (r.stdout + r.stderr).decode()
        assert r.returncode == 0, "check-config of the image's config: %s" % out
        assert "127.0.0.1:%d" % ch.http_port in out and "/var/lib/sluice/wal" in out, out

        wal = os.path.join(tmp, "volume")
        os.makedirs(wal)
        uid, gid = (int(x) for x in (user.split(":") + [user])[:2])
        os.chown(wal, uid, gid)
        env += [("SLUICE_LISTEN", "127.0.0.1:%d" % data_port),
                ("SLUICE_ADMIN_LISTEN", "127.0.0.1:%d" % admin_port)]
        argv = ["buildah", "run", "--isolation", "chroot", "-v", "%s:%s" % (wal, volume)]
        for k, v in env:
            argv += ["-e", "%s=%s" % (k, v)]
        proc = harness.Proc(argv + [ctr, "--"] + ep + cmd, os.path.join(tmp, "run.log"),
                            env=_env())
        admin = "http://127.0.0.1:%d" % admin_port
        harness.wait_until(lambda: harness.http_request(admin + "/healthz", timeout=2)[0] == 200,
                           timeout=60, what="/healthz of sluice in the image")
        pid = harness.wait_until(
            lambda: next((p for p in _children(proc.pid) if _comm(p) == "sluice"), None),
            timeout=10, what="the sluice process")
        assert _uid(pid) == uid, "sluice runs as uid %d" % _uid(pid)

        # the image's HEALTHCHECK, run in the container (on the port this test gave admin)
        hc = cfg["Healthcheck"]["Test"]
        assert hc[0] == "CMD", hc
        hc_argv = [a.replace("/8124", "/%d" % admin_port) for a in hc[1:]]
        r = _run(ctr, hc_argv)
        assert r.returncode == 0, "HEALTHCHECK failed: %r" % r.stderr

        q = urllib.parse.urlencode({"query": "INSERT INTO default.image_rows FORMAT JSONEachRow"})
        st, _, body = harness.http_request("http://127.0.0.1:%d/?%s" % (data_port, q), "POST",
                                           b'{"id": 1, "s": "from the image"}\n')
        assert st == 200, (st, body)
        harness.wait_until(
            lambda: ch.query("SELECT s FROM default.image_rows WHERE id = 1") == "from the image\n",
            timeout=60, what="the row in ClickHouse")
        data = os.path.join(wal, "wal", "data.mdb")
        assert os.path.exists(data) and os.stat(data).st_uid == uid, \
            "no WAL owned by %d on the volume: %s" % (uid, os.listdir(wal))

        os.kill(pid, signal.SIGTERM)  # what `docker stop` sends (STOPSIGNAL) to the entrypoint
        proc.p.wait(60)
        rc = proc.stop()
        assert rc == 0, "sluice exited %r after SIGTERM:\n%s" % (rc, proc.output()[-2000:])
        proc = None
        r = _run(ctr, hc_argv)
        assert r.returncode != 0, "HEALTHCHECK passes with sluice stopped"
        ch.stop()
    finally:
        if proc:
            proc.stop()
        _buildah("rm", ctr, check=False)


# ---------------------------------------------------------------- tests

def _source_dirs():
    """The folders the binary is built from: every sluice_module() and every other folder
    CMakeLists.txt globs sources from (cli/), tests/ aside."""
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        text = f.read()
    dirs = re.findall(r"^sluice_module\((\w+)", text, re.M)
    dirs += re.findall(r"\$\{CMAKE_SOURCE_DIR\}/(\w+)/", text)
    return sorted(set(dirs) - {"tests"})


def test_build_context_has_every_module():
    """Every source folder CMakeLists.txt builds the binary from is let through
    Dockerfile.dockerignore and copied by the build stage (the image build is what fails
    otherwise; this names what is missing)."""
    mods = _source_dirs()
    with open(os.path.join(DEPLOY, "Dockerfile.dockerignore")) as f:
        allowed = set(l.strip() for l in f if l.startswith("!"))
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        docker = f.read()
    assert mods, "no sluice_module() in CMakeLists.txt"
    for m in mods:
        assert "!%s/" % m in allowed, "Dockerfile.dockerignore leaves out %s/" % m
        assert re.search(r"^COPY %s/ %s/$" % (m, m), docker, re.M), "Dockerfile copies no %s/" % m
    extra = sorted(a for a in allowed if a.endswith("/") and a[1:-1] not in mods)
    assert not extra, "Dockerfile.dockerignore lets through what nothing builds: %s" % extra
    assert "!CMakeLists.txt" in allowed and "!deploy/sluice.yaml" in allowed


def test_build_command_is_documented_and_deploy_names_the_tag():
    """deploy/README.md gives exactly the commands this test runs, and deploy/k8s and the
    Helm chart run the tag they build."""
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    lines = [l.strip() for l in readme.splitlines()]
    assert " ".join(BUILD_ARGV) in lines, "deploy/README.md lacks the line: %s" % " ".join(BUILD_ARGV)
    assert DOCKER_BUILD in lines, "deploy/README.md lacks the line: %s" % DOCKER_BUILD
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        header = [l.lstrip("#").strip() for l in f if l.startswith("#")]
    for cmd in (" ".join(BUILD_ARGV), DOCKER_BUILD):
        assert cmd in header, "deploy/Dockerfile's header lacks the line: %s" % cmd
    with open(os.path.join(DEPLOY, "k8s", "statefulset.yaml")) as f:
        k8s = re.findall(r"^\s*image:\s*(\S+)", f.read(), re.M)
    assert TAG in k8s, "deploy/k8s/statefulset.yaml runs %s, the build makes %s" % (k8s, TAG)
    with open(os.path.join(DEPLOY, "helm", "sluice", "values.yaml")) as f:
        values = f.read()
    m = re.search(r"^sluice:\s*\n(?:[ \t]+.*\n|\s*\n)*?[ \t]+image:\s*(\S+)", values, re.M)
    assert m and m.group(1) == TAG, "helm values sluice.image is %r, the build makes %s" % (
        m and m.group(1), TAG)
    with open(os.path.join(DEPLOY, "helm", "sluice", "Chart.yaml")) as f:
        assert re.search(r'^appVersion:\s*"?%s"?\s*$' % re.escape(_version()), f.read(), re.M)


def test_image_builds_and_runs():
    assert os.geteuid() == 0, "builds the image as root (CI runs as root)"
    for tool in ("buildah", "debootstrap"):
        assert shutil.which(tool), "%s not installed (scripts/install-deps.sh)" % tool
    _storage_conf()
    tmp = harness.TempDir("sluice-image-")
    with open(os.path.join(CACHE, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _remove_containers(_containers())
            t0 = time.time()
            how = _ensure_base()
            t1 = time.time()
            print("base debian:12 / debian:12-slim: %s (%.0fs); storage %s (%s; "
                  "CONTAINERS_STORAGE_CONF=%s buildah images)" % (
                      how, t1 - t0, os.path.join(CACHE, STORAGE), DRIVER,
                      _env()["CONTAINERS_STORAGE_CONF"]))
            secs, log = _build()
            cached = len(re.findall(r"^--> Using cache ", log, re.M))
            print("build: %s (%.0fs, %d steps from cache)" % (" ".join(BUILD_ARGV), secs, cached))
            print("pruned %d unused layers" % _prune(log))
            _report_sizes()
            cfg = _inspect(TAG)["Docker"]["config"]
            t2 = time.time()
            _exercise(cfg, tmp.path)
            print("run checks: %.0fs; total %.0fs" % (time.time() - t2, time.time() - t0))
        finally:
            tmp.close()


if __name__ == "__main__":
    harness.run_tests(globals())
