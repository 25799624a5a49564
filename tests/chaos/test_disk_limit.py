#!/usr/bin/env python3
"""test_disk_limit.py - regression test: a WAL write past RLIMIT_FSIZE (ulimit -f, systemd
LimitFSIZE) is an error answer, not a crash. Before the fix sluice died of SIGXFSZ (signal
25) on the first write past the limit. sluice runs here with the default SIGXFSZ
disposition (nothing ignored on its behalf), its limit is lowered with prlimit while the
sink is paused so the log must grow; the insert must get an error and sluice must live on,
then recover once the limit is lifted, and deliver exactly what it acked.

  SLUICE_BIN=build/sluice python3 tests/chaos/test_disk_limit.py
"""
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness as H  # noqa: E402

TABLES = {"d.e": [["id", "BIGINT"], ["p", "VARCHAR(2000)"]]}
CONFIG = """wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
  passthrough_url: http://127.0.0.1:9
admin:
  listen: {admin}
log:
  level: warn
sinks:
  - name: sr
    type: starrocks
    url: %s
    password: pw
    batch:
      max_wait_ms: 20
"""


def test_write_past_file_size_limit_is_an_error_not_a_crash():
    tmp = H.TempDir(prefix="sluice-fsize-")
    try:
        sr = H.StarRocksEmulator(tmp.sub("sr"), TABLES, password="pw")
        s = H.Sluice(tmp.sub("s"), CONFIG % sr.url)  # no preexec: default SIGXFSZ action
        acked = 0
        st, _, body = s.insert("e", [{"id": 0, "p": "x"}], database="d")
        assert st == 200, (st, body)
        acked += 1
        st, _, body = H.http_request(s.admin_url + "/v1/sinks/sr/pause", "POST")
        assert st == 200, (st, body)
        size = os.path.getsize(os.path.join(s.wal_dir, "data.mdb"))
        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
        refused = None
        next_id = 1
        for _ in range(50):
            rows = [{"id": next_id + i, "p": "y" * 1500} for i in range(100)]
            try:
                st, _, body = s.insert("e", rows, database="d")
            except OSError as e:  # the process died mid-request
                st, body = -1, repr(e).encode()
            if st == 200:
                acked += len(rows)
                next_id += len(rows)
                continue
            refused = (st, body)
            next_id += len(rows)
            break
        time.sleep(0.3)
        assert s.proc.alive(), "sluice died (exit %s) on a write past RLIMIT_FSIZE; answer %r" % (
            s.proc.p.returncode, refused)
        assert refused and refused[0] >= 500, refused
        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        H.http_request(s.admin_url + "/v1/sinks/sr/resume", "POST")
        st, _, body = s.insert("e", [{"id": next_id, "p": "z"}], database="d")
        assert st == 200, ("no recovery after the limit was lifted", st, body)
        acked += 1
        H.wait_until(lambda: sr.count("d.e") >= acked, timeout=60, what="%d rows" % acked)
        time.sleep(0.3)
        assert sr.count("d.e") == acked, (sr.count("d.e"), acked)
        assert s.stop() == 0
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
