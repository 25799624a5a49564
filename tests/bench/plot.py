#!/usr/bin/env python3
"""plot.py CSV PNG - plot a soak run (tests/bench/soak.py) with matplotlib (Debian
python3-matplotlib): RSS, open fds, WAL size (du and live bytes) and per-sink lag against
elapsed time, with ClickHouse outages shaded and emulator faults marked."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py CSV PNG")
    rows = list(csv.DictReader(open(sys.argv[1])))
    if not rows:
        sys.exit("plot.py: no samples in " + sys.argv[1])
    t = [float(r["elapsed_s"]) / 60 for r in rows]

    def col(name, scale=1.0):
        return [float(r[name]) / scale for r in rows]

    fig, ax = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    ax[0].plot(t, col("rss_kb", 1024), color="tab:blue", label="VmRSS")
    if "rss_anon_kb" in rows[0]:
        ax[0].plot(t, col("rss_anon_kb", 1024), color="tab:cyan", label="RssAnon (heap)")
        ax[0].plot(t, col("rss_file_kb", 1024), color="tab:gray",
                   label="RssFile (libs + LMDB map)")
    ax[0].legend(loc="upper left")
    ax[0].set_ylabel("sluice RSS (MiB)")
    ax[0].set_ylim(bottom=0)
    ax[1].plot(t, col("fds"), color="tab:purple")
    ax[1].set_ylabel("open fds")
    ax[1].set_ylim(bottom=0)
    ax[2].plot(t, col("wal_du_bytes", 1 << 20), label="WAL dir (du)")
    ax[2].plot(t, col("wal_live_bytes", 1 << 20), label="sluice_wal_live_bytes")
    ax[2].set_ylabel("WAL (MiB)")
    ax[2].legend(loc="upper left")
    ax[3].plot(t, col("lag_records_ch"), label="ch lag (records)")
    ax[3].plot(t, col("lag_records_sr"), label="sr lag (records)")
    ax[3].set_ylabel("lag (records)")
    ax3b = ax[3].twinx()
    ax3b.plot(t, col("lag_seconds_ch"), ":", color="tab:blue", label="ch lag (s)")
    ax3b.plot(t, col("lag_seconds_sr"), ":", color="tab:orange", label="sr lag (s)")
    ax3b.set_ylabel("lag (s)")
    ax[3].legend(loc="upper left")
    ax3b.legend(loc="upper right")
    ax[3].set_xlabel("elapsed (min)")
    # shade ClickHouse outages, mark emulator faults
    down = None
    for x, r in zip(t, rows):
        if r["ch_up"] == "0" and down is None:
            down = x
        elif r["ch_up"] == "1" and down is not None:
            for a in ax:
                a.axvspan(down, x, color="red", alpha=0.12)
            down = None
        if r["event"].startswith("emu_"):
            for a in ax:
                a.axvline(x, color="green", alpha=0.4, lw=0.8)
            ax[0].annotate(r["event"][4:], (x, 0), fontsize=7, rotation=90,
                           va="bottom", color="green")
    if down is not None:
        for a in ax:
            a.axvspan(down, t[-1], color="red", alpha=0.12)
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle("sluice soak: red = ClickHouse killed, green = emulator fault")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=90)
    print("plot.py: wrote %s (%d samples)" % (sys.argv[2], len(rows)))


if __name__ == "__main__":
    main()
