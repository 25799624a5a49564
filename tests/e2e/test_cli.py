#!/usr/bin/env python3
"""test_cli.py - the command line (cli/, issue 17): every command's own usage from
`help COMMAND` and `COMMAND --help`, "unknown option" for an unknown flag, options read only
where they stand as options, and the log's single-writer lock (a second writer exits 4).
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_cli.py"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402



def sluice(*args):
    r = subprocess.run([H.SLUICE_BIN] + list(args), capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_help_command_prints_that_commands_usage():
    for cmd, words in [("wal", ["--dir DIR", "--from SEQ", "--limit N"]),
                       ("dlq", ["--sink NAME", "--all", "--dir DIR"]),
                       ("run", ["--config FILE"]),
                       ("check-config", ["--online"]),
                       ("backfill", ["--source", "--table"]),
                       ("verify", ["--a", "--b"])]:
        for argv in (["help", cmd], [cmd, "--help"]):
            rc, out, err = sluice(*argv)
            assert rc == 0, (argv, rc, err)
            assert out.startswith("usage: sluice %s" % cmd), (argv, out)
            for w in words:
                assert w in out, (argv, w, out)
            assert "commands:" not in out, (argv, out)  # not the global help


def test_unknown_flag_says_unknown_option():
    tmp = H.TempDir()
    try:
        cfg = os.path.join(tmp.path, "c.yaml")
        with open(cfg, "w") as f:
            f.write("wal: {dir: %s}\n" % os.path.join(tmp.path, "wal"))
        for argv in (["run", "--config", cfg, "--bogus"],
                     ["check-config", "--config", cfg, "--bogus"],
                     ["wal", "stats", "--dir", tmp.path, "--bogus"],
                     ["dlq", "list", "--config", cfg, "--bogus"],
                     ["version", "--bogus"],
                     ["backfill", "--bogus", "--config", cfg],
                     ["verify", "--bogus"]):
            rc, out, err = sluice(*argv)
            assert rc == 2, (argv, rc, err)
            assert "unknown option --bogus" in err, (argv, err)
        rc, _, err = sluice("run", "--config")
        assert rc == 2 and "--config needs a value" in err, (rc, err)
        rc, _, err = sluice("help", "nosuch")
        assert rc == 2 and "unknown command 'nosuch'" in err, (rc, err)
    finally:
        tmp.close()


def test_option_value_is_not_read_as_an_option():
    """`--sink --config` names a sink called "--config"; the config is the next --config."""
    tmp = H.TempDir()
    try:
        cfg = os.path.join(tmp.path, "c.yaml")
        wal = os.path.join(tmp.path, "wal")
        with open(cfg, "w") as f:
            f.write("wal: {dir: %s}\nsinks:\n  - {name: ch, type: clickhouse, url: "
                    "\"http://127.0.0.1:1\"}\n" % wal)
        rc, out, err = sluice("wal", "stats", "--dir", wal)  # creates nothing: no log yet
        assert rc != 0, (rc, out)
        # dlq drop opens the log for writing (creating it), then lists nothing for that sink
        rc, out, err = sluice("dlq", "drop", "--sink", "--config", "--config", cfg)
        assert rc == 0, (rc, err)
        assert out.strip() == "dropped", out
        rc, out, err = sluice("dlq", "list", "--sink", "--config", "--config", cfg)
        assert rc == 0, (rc, err)
        assert out.strip().endswith("0 entries"), out
    finally:
        tmp.close()


def test_second_writer_on_one_log_is_refused():
    tmp = H.TempDir()
    try:
        s = H.Sluice(tmp.sub("a"), H.CH_SINK_CONFIG % ("http://127.0.0.1:%d" % H.free_port()))
        rc, _, err = s.cli("dlq", "replay", "--config", s.config_path, check=False)
        assert rc == 4 and "in use" in err, (rc, err)
        # a second `run` on the same wal.dir: refused by the log, exit 4 (README: WAL refused)
        r = subprocess.run([H.SLUICE_BIN, "run", "--config", s.config_path],
                           capture_output=True, timeout=60)
        assert r.returncode == 4, (r.returncode, r.stderr)
        assert b"in use" in r.stderr, r.stderr
        # reads still work while it runs
        rc, out, err = s.cli("wal", "stats", "--dir", s.wal_dir, check=False)
        assert rc == 0 and "records:" in out, (rc, err)
        s.stop()
        rc, out, err = s.cli("dlq", "replay", "--config", s.config_path, check=False)
        assert rc == 0, (rc, err)
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
