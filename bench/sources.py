#!/usr/bin/env python3
"""lifeboat's database sources against the tools users would otherwise run,
on the same data in one run, and the "Database sources" section of
bench/RESULTS.md:

- Redis: `lifeboat backup --source redis://…` against `redis-cli --rdb
  /dev/null` on a dataset of >= 1 GiB of incompressible values (target:
  within 10 %); a second backup (deduplicated) and a restore into an empty
  server reported.
- SQLite: a writer commits small transactions as fast as it can into a
  >= 1 GiB database in WAL mode; its throughput while `lifeboat backup
  --source sqlite://…` runs against its throughput alone (target: a drop
  under 20 %), once at normal priority and once with the backup under
  `nice -n 19` as a cron job would run it.

Called by bench/sources.sh. Sizes: REDIS_MB, SQLITE_MB; RUNS (default 3)."""

import os, shutil, signal, statistics, subprocess, sys, time, json, sqlite3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.environ.get("BENCH_DIR", "/var/tmp/lifeboat-bench") + "/sources"
RUNS = int(os.environ.get("RUNS", "3"))
REDIS_MB = int(os.environ.get("REDIS_MB", "1100"))
SQLITE_MB = int(os.environ.get("SQLITE_MB", "1100"))
LIFEBOAT = os.path.join(ROOT, "target/release/lifeboat")
BEGIN, END = "<!-- sources bench: begin -->", "<!-- sources bench: end -->"
RPORT, TPORT = 6490, 6491


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(cmd):
    t = time.monotonic()
    sh(cmd, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def repo(name):
    """A fresh repository opened by a generated key (no KDF per command)."""
    path = f"{W}/{name}"
    shutil.rmtree(path, ignore_errors=True)
    key = f"{path}.key"
    if os.path.exists(key):
        os.remove(key)
    sh(f"{LIFEBOAT} -q init --repo {path} --password-file {W}/password")
    sh(f"{LIFEBOAT} -q key add --repo {path} --password-file {W}/password --generate {key}")
    return f"{LIFEBOAT} -q --repo {path} --password-file {key}"


def rdb_to_null(port):
    """`redis-cli --rdb /dev/null`, timed: it exits 1 after a whole
    transfer (it cannot ftruncate or fsync /dev/null), so success is what
    it says."""
    t = time.monotonic()
    p = subprocess.run(["redis-cli", "-p", str(port), "--rdb", "/dev/null"], capture_output=True, text=True)
    secs = time.monotonic() - t
    if "Transfer finished with success" not in p.stderr:
        raise SystemExit(f"redis-cli --rdb failed: {p.stderr}")
    return secs


def redis_server(port, d):
    os.makedirs(d, exist_ok=True)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                          "--save", "", "--appendonly", "no", "--logfile", f"{d}/log"])
    deadline = time.monotonic() + 60
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        if time.monotonic() > deadline:
            raise SystemExit(f"redis on {port} did not start")
        time.sleep(0.1)
    return p


def redis_fill(port, mb):
    """`mb` MiB of 1 KiB random values, through redis-cli --pipe."""
    gen = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    batch = []
    for i in range(mb * 1024):
        v = os.urandom(1024)
        k = b"bench:%d" % i
        batch.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1024\r\n%s\r\n" % (len(k), k, v))
        if len(batch) == 4096:
            gen.stdin.write(b"".join(batch))
            batch = []
    gen.stdin.write(b"".join(batch))
    gen.stdin.close()
    gen.wait()


def redis_bench(res):
    src = redis_server(RPORT, f"{W}/redis-src")
    tgt = redis_server(TPORT, f"{W}/redis-target")
    try:
        redis_fill(RPORT, REDIS_MB)
        used = subprocess.run(["redis-cli", "-p", str(RPORT), "info", "memory"], capture_output=True,
                              text=True).stdout
        res["redis_used_memory"] = next(l.split(":")[1].strip() for l in used.splitlines()
                                        if l.startswith("used_memory_human"))
        r = res.setdefault("redis", {"redis-cli --rdb": [], "lifeboat": [], "lifeboat second": [], "restore": []})
        for _ in range(RUNS):
            r["redis-cli --rdb"].append(rdb_to_null(RPORT))
            lb = repo("redis-repo")
            r["lifeboat"].append(timed(f"{lb} backup --source redis://127.0.0.1:{RPORT}"))
            r["lifeboat second"].append(timed(f"{lb} backup --source redis://127.0.0.1:{RPORT}"))
            r["restore"].append(timed(f"{lb} restore latest --target redis://127.0.0.1:{TPORT} --overwrite"))
    finally:
        for p in (src, tgt):
            p.send_signal(signal.SIGTERM)
            p.wait()


WRITER = r"""
import sqlite3, sys, time, os
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA busy_timeout = 60000")
db.execute("PRAGMA synchronous = NORMAL")
stop = sys.argv[2]
stamps = []
while len(stamps) % 256 or not os.path.exists(stop):
    db.execute("INSERT INTO events (payload) VALUES (?)", (os.urandom(200),))
    stamps.append(time.monotonic())
print(" ".join(f"{t:.4f}" for t in stamps))
"""


def sqlite_make(path, mb):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, payload BLOB)")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload BLOB)")
    rows = mb * 1024
    for start in range(0, rows, 10000):
        db.executemany("INSERT INTO blobs (payload) VALUES (?)",
                       ((os.urandom(1000),) for _ in range(min(10000, rows - start))))
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def writer_rate(path, backup_cmd):
    """Commits per second of the writer while `backup_cmd` runs, or over
    5 s alone. The database starts from the same copy each time, and the
    writer stops when the measurement does."""
    shutil.copyfile(f"{W}/pristine.db", path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(f"{W}/writer.py", "w") as f:
        f.write(WRITER)
    stop = f"{W}/writer.stop"
    if os.path.exists(stop):
        os.remove(stop)
    w = subprocess.Popen([sys.executable, f"{W}/writer.py", path, stop], stdout=subprocess.PIPE, text=True)
    time.sleep(2)  # the writer at full speed
    t0 = time.monotonic()
    if backup_cmd:
        sh(backup_cmd, stdout=subprocess.DEVNULL)
    else:
        time.sleep(5)
    t1 = time.monotonic()
    open(stop, "w").close()
    out, _ = w.communicate()
    # Writer stamps are its own monotonic clock, the same clock as ours.
    stamps = [float(s) for s in out.split()]
    inside = [s for s in stamps if t0 <= s <= t1]
    return len(inside) / (t1 - t0), t1 - t0


def sqlite_bench(res):
    path = f"{W}/app.db"
    sqlite_make(f"{W}/pristine.db", SQLITE_MB)
    res["sqlite_bytes"] = os.path.getsize(f"{W}/pristine.db")
    s = res.setdefault("sqlite", {"alone": [], "during": [], "during_niced": [], "backup_s": [], "backup_niced_s": []})
    for _ in range(RUNS):
        s["alone"].append(writer_rate(path, None)[0])
        lb = repo("sqlite-repo")
        rate, secs = writer_rate(path, f"{lb} backup --source sqlite://{path}")
        s["during"].append(rate)
        s["backup_s"].append(secs)
        lb = repo("sqlite-repo")
        rate, secs = writer_rate(path, f"nice -n 19 {lb} backup --source sqlite://{path}")
        s["during_niced"].append(rate)
        s["backup_niced_s"].append(secs)


def report(res):
    m = lambda v: statistics.median(v)
    lbv = subprocess.run([LIFEBOAT, "--version"], capture_output=True, text=True).stdout.strip()
    rv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    lines = [BEGIN, "## Database sources", "",
             f"Written by `bench/sources.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"{lbv}, Redis {rv.removeprefix('v=')}, SQLite {sqlite3.sqlite_version} (the writer's); "
             f"{os.cpu_count()} cores; medians of {RUNS} runs; repositories on the local disk.", ""]
    if "redis" in res:
        r = res["redis"]
        ratio = m(r["lifeboat"]) / m(r["redis-cli --rdb"])
        lines += [f"Redis: {REDIS_MB} MiB of 1 KiB random values ({res['redis_used_memory']} used memory).", "",
                  "| measurement | seconds | ÷ `redis-cli --rdb /dev/null` | target |", "|---|---:|---:|---:|",
                  f"| `redis-cli --rdb /dev/null` | {m(r['redis-cli --rdb']):.1f} | 1.00 | |",
                  f"| `lifeboat backup --source redis://…` (first, into an empty repository) | {m(r['lifeboat']):.1f} "
                  f"| {ratio:.2f} | ≤ 1.1 ({'met' if ratio <= 1.1 else '**not met**'}) |",
                  f"| second backup (deduplicated) | {m(r['lifeboat second']):.1f} | "
                  f"{m(r['lifeboat second']) / m(r['redis-cli --rdb']):.2f} | |",
                  f"| restore into an empty server (`RESTORE` per key), counts compared | {m(r['restore']):.1f} | | |", ""]
    if "sqlite" in res:
        s = res["sqlite"]
        alone = m(s["alone"])
        drop = 1 - m(s["during"]) / alone
        dropn = 1 - m(s["during_niced"]) / alone
        lines += [f"SQLite: a {res['sqlite_bytes'] / 2**30:.2f} GiB database in WAL mode; a Python writer commits "
                  "one 200-byte row per transaction (synchronous=NORMAL) as fast as it can, on one of the cores.", "",
                  "| measurement | writer commits/s | drop | backup (s) | target |", "|---|---:|---:|---:|---:|",
                  f"| writer alone | {alone:.0f} | | | |",
                  f"| during `lifeboat backup --source sqlite://…` | {m(s['during']):.0f} | {drop * 100:.0f} % | "
                  f"{m(s['backup_s']):.1f} | < 20 % ({'met' if drop < 0.2 else '**not met**'}) |",
                  f"| during the same under `nice -n 19` | {m(s['during_niced']):.0f} | {dropn * 100:.0f} % | "
                  f"{m(s['backup_niced_s']):.1f} | < 20 % ({'met' if dropn < 0.2 else '**not met**'}) |", ""]
    lines += ["Raw runs:", "", "```", json.dumps(res, indent=1), "```", END]
    path = os.path.join(ROOT, "bench/RESULTS.md")
    old = open(path).read()
    block = "\n".join(lines)
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(new)
    print(block)


def main():
    which = sys.argv[1:] or ["redis", "sqlite"]
    os.makedirs(W, exist_ok=True)
    with open(f"{W}/password", "w") as f:
        f.write("bench-password-not-secret\n")
    res = {}
    if "redis" in which:
        redis_bench(res)
    if "sqlite" in which:
        sqlite_bench(res)
    report(res)


if __name__ == "__main__":
    main()
