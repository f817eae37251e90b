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

- MariaDB: `lifeboat backup --source mariadb://…` against `mariadb-dump
  --single-transaction … > /dev/null` (the same options lifeboat passes) on
  a database of >= 500 MB (target: within 10 %); the restore into a new
  database (load, then every table counted) against the bare `mariadb <
  dump.sql` load.

Called by bench/sources.sh. Sizes: REDIS_MB, SQLITE_MB, MARIADB_ROWS; RUNS
(default 3). A run of some sections keeps the others' last results."""

import os, shutil, signal, statistics, subprocess, sys, time, json, sqlite3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.environ.get("BENCH_DIR", "/var/tmp/lifeboat-bench") + "/sources"
RUNS = int(os.environ.get("RUNS", "3"))
REDIS_MB = int(os.environ.get("REDIS_MB", "1100"))
SQLITE_MB = int(os.environ.get("SQLITE_MB", "1100"))
LIFEBOAT = os.path.join(ROOT, "target/release/lifeboat")
BEGIN, END = "<!-- sources bench: begin -->", "<!-- sources bench: end -->"
RPORT, TPORT, MPORT = 6490, 6491, 6492
MARIADB_ROWS = int(os.environ.get("MARIADB_ROWS", "2500000"))
DUMP_OPTS = ("--single-transaction --routines --triggers --events --hex-blob "
             "--default-character-set=utf8mb4")


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


def mariadb_server(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sh(f"mariadb-install-db --no-defaults --datadir={d}/data --user=root "
       f"--auth-root-authentication-method=normal --skip-test-db > {d}/install.log 2>&1")
    p = subprocess.Popen(["mariadbd", "--no-defaults", "--user=root", f"--datadir={d}/data",
                          f"--socket={d}/sock", f"--port={MPORT}", "--bind-address=127.0.0.1",
                          f"--log-bin={d}/binlog", "--server-id=1", "--innodb-buffer-pool-size=1G",
                          f"--log-error={d}/log"])
    deadline = time.monotonic() + 60
    while subprocess.run(["mariadb", "-h127.0.0.1", f"-P{MPORT}", "-uroot", "-e", "SELECT 1"],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit("mariadbd did not start")
        time.sleep(0.2)
    return p


def mariadb_bench(res):
    d = f"{W}/mariadb"
    srv = mariadb_server(d)
    client = f"mariadb -h127.0.0.1 -P{MPORT} -uroot"
    try:
        sh(f"{client} -e \"CREATE DATABASE bench; USE bench; CREATE TABLE bench.orders (id BIGINT PRIMARY KEY, "
           f"customer CHAR(32), note TEXT, qty INT) ENGINE=InnoDB; "
           f"INSERT INTO bench.orders SELECT seq, MD5(seq), REPEAT(SHA2(seq * 7, 256), 3), seq % 1000 "
           f"FROM seq_1_to_{MARIADB_ROWS}\"")
        dump = f"{W}/bench.sql"
        sh(f"mariadb-dump -h127.0.0.1 -P{MPORT} -uroot {DUMP_OPTS} bench > {dump}")
        res["mariadb_dump_bytes"] = os.path.getsize(dump)
        res["mariadb_rows"] = MARIADB_ROWS
        r = res["mariadb"] = {"mariadb-dump": [], "mariadb-dump | cat": [], "lifeboat": [],
                              "lifeboat second": [], "restore": [], "mariadb load": []}
        url = f"mariadb://root@127.0.0.1:{MPORT}"
        for _ in range(RUNS):
            r["mariadb-dump"].append(timed(f"mariadb-dump -h127.0.0.1 -P{MPORT} -uroot {DUMP_OPTS} bench > /dev/null"))
            r["mariadb-dump | cat"].append(
                timed(f"mariadb-dump -h127.0.0.1 -P{MPORT} -uroot {DUMP_OPTS} bench | cat > /dev/null"))
            lb = repo("mariadb-repo")
            r["lifeboat"].append(timed(f"{lb} backup --source {url}/bench"))
            r["lifeboat second"].append(timed(f"{lb} backup --source {url}/bench"))
            sh(f"{client} -e 'DROP DATABASE IF EXISTS restored; DROP DATABASE IF EXISTS loaded; CREATE DATABASE loaded'")
            r["restore"].append(timed(f"{lb} restore latest --target {url}/restored"))
            r["mariadb load"].append(timed(f"{client} loaded < {dump}"))
        os.remove(dump)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait()


def report(res):
    m = lambda v: statistics.median(v)
    lbv = subprocess.run([LIFEBOAT, "--version"], capture_output=True, text=True).stdout.strip()
    rv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    lines = [BEGIN, "## Database sources", "",
             f"Written by `bench/sources.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"{lbv}, Redis {rv.removeprefix('v=')}, SQLite {sqlite3.sqlite_version} (the writer's); "
             f"{os.cpu_count()} cores; medians of {RUNS} runs; repositories on the local disk. Sections "
             "measured on: " + ", ".join(f"{k.removesuffix('_measured')} {v}" for k, v in sorted(res.items())
                                         if k.endswith("_measured")) + ".", ""]
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
    if "mariadb" in res:
        r = res["mariadb"]
        ratio = m(r["lifeboat"]) / m(r["mariadb-dump"])
        lines += [f"MariaDB {res.get('mariadb_version', '')}: one InnoDB table of {res['mariadb_rows']:,} rows, a "
                  f"{res['mariadb_dump_bytes'] / 2**20:.0f} MiB dump (binary log on, so both dumps also record "
                  "the binlog position).", "",
                  "| measurement | seconds | ÷ bare | target |", "|---|---:|---:|---:|",
                  f"| `mariadb-dump {DUMP_OPTS} > /dev/null` | {m(r['mariadb-dump']):.1f} | 1.00 | |",
                  f"| the same `\\| cat > /dev/null` (any reader through a default 64 KiB pipe) | "
                  f"{m(r['mariadb-dump | cat']):.1f} | {m(r['mariadb-dump | cat']) / m(r['mariadb-dump']):.2f} | |",
                  f"| `lifeboat backup --source mariadb://…` (first, into an empty repository) | "
                  f"{m(r['lifeboat']):.1f} | {ratio:.2f} | ≤ 1.1 ({'met' if ratio <= 1.1 else '**not met**'}) |",
                  f"| second backup (deduplicated) | {m(r['lifeboat second']):.1f} | "
                  f"{m(r['lifeboat second']) / m(r['mariadb-dump']):.2f} | |",
                  f"| `mariadb NEWDB < dump.sql` (bare load) | {m(r['mariadb load']):.1f} | 1.00 | |",
                  f"| `lifeboat restore … --target mariadb://…/NEWDB` (load, then every table counted) | "
                  f"{m(r['restore']):.1f} | {m(r['restore']) / m(r['mariadb load']):.2f} | reported |", ""]
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


def previous():
    """The raw results of the last run, from bench/RESULTS.md."""
    try:
        old = open(os.path.join(ROOT, "bench/RESULTS.md")).read()
        block = old[old.index(BEGIN):old.index(END)]
        raw = json.loads(block[block.index("```\n{") + 4:block.rindex("\n```")])
        # Results from before sections were dated carry the block's date.
        written = block.split("` on ", 1)[1][:10]
        for section in ("redis", "sqlite", "mariadb"):
            if section in raw:
                raw.setdefault(f"{section}_measured", written)
        return raw
    except (ValueError, OSError):
        return {}


def main():
    which = sys.argv[1:] or ["redis", "sqlite", "mariadb"]
    os.makedirs(W, exist_ok=True)
    with open(f"{W}/password", "w") as f:
        f.write("bench-password-not-secret\n")
    res = previous()
    when = time.strftime('%Y-%m-%d', time.gmtime())
    for w in which:
        res[f"{w}_measured"] = when
    if "redis" in which:
        redis_bench(res)
    if "sqlite" in which:
        sqlite_bench(res)
    if "mariadb" in which:
        res["mariadb_version"] = subprocess.run(["mariadbd", "--version"], capture_output=True,
                                                text=True).stdout.split()[2]
        mariadb_bench(res)
    report(res)


if __name__ == "__main__":
    main()
