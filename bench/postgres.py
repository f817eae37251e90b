#!/usr/bin/env python3
"""lifeboat against pgBackRest on one PostgreSQL cluster (pgbench scale 50):
full and second base backups, restore to a consistent data directory, a
PITR restore replaying >= 200 WAL segments until the server accepts
connections, `wal push` latency, and a logical backup against a bare
pg_dump. Writes the "PostgreSQL against pgBackRest" section of
bench/RESULTS.md. Called by bench/postgres.sh (as root)."""

import os, re, shutil, statistics, subprocess, time, glob, json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.environ.get("BENCH_DIR", "/var/tmp/lifeboat-bench") + "/postgres"
RUNS = int(os.environ.get("RUNS", "3"))
SCALE = int(os.environ.get("PG_SCALE", "50"))
SEGMENTS = int(os.environ.get("PITR_SEGMENTS", "200"))
PUSHES = int(os.environ.get("PUSH_SEGMENTS", "40"))
LIFEBOAT = os.path.join(ROOT, "target/release/lifeboat")
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
PORT, RPORT = 5498, 5497
PW = "bench-password-not-secret"
DATA = f"{W}/data"
LB_REPO, BR_REPO = f"{W}/lifeboat-repo", f"{W}/pgbackrest-repo"
BEGIN, END = "<!-- postgres bench: begin -->", "<!-- postgres bench: end -->"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def pg(cmd, **kw):
    """As the server's user: the data directory, the repositories and both
    tools run as postgres, as archive_command does."""
    return sh(f"runuser -u postgres -- {cmd}", **kw)


def timed(cmd):
    t = time.monotonic()
    pg(cmd, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def du(p):
    return int(subprocess.run(["du", "-sb", p], capture_output=True, text=True, check=True).stdout.split()[0])


# lifeboat runs on a generated key (`key add --generate`), as the README
# sets up archive_command: pgBackRest's cipher-pass is no stretched password either.
LB_KEY = f"{W}/lifeboat.key"
LB_ENV = f"LIFEBOAT_REPOSITORY={LB_REPO} LIFEBOAT_PASSWORD_FILE={LB_KEY} LIFEBOAT_PG_BINDIR={PG_BIN}"
LB = f"env {LB_ENV} {LIFEBOAT} -q"
URL = f"'postgres://postgres@/postgres?host=/tmp&port={PORT}'"


def br(args, conf="pgbackrest.conf"):
    return f"pgbackrest --config={W}/{conf} --stanza=bench {args}"


def write_br_conf(name, repo, asynchronous, data=DATA):
    """pgBackRest's best settings: zstd, process-max = cores; encrypted like
    lifeboat (aes-256-cbc)."""
    with open(f"{W}/{name}", "w") as f:
        f.write(f"""[global]
repo1-path={repo}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass={PW}
repo1-retention-full=99
compress-type=zst
process-max={os.cpu_count()}
start-fast=y
archive-async={'y' if asynchronous else 'n'}
archive-get-queue-max=1GiB
spool-path={W}/spool-{name}
lock-path={W}/lock
log-path={W}/log
log-level-console=warn
log-level-file=off

[bench]
pg1-path={data}
pg1-port={PORT}
pg1-socket-path=/tmp
""")


def server_start(data, port, log):
    pg(f"{PG_BIN}/pg_ctl -D {data} -o '-p {port} -k /tmp' -l {log} -w -t 600 start >/dev/null")


def server_stop(data):
    subprocess.run(f"runuser -u postgres -- {PG_BIN}/pg_ctl -D {data} -m fast -w stop >/dev/null 2>&1", shell=True)


def psql(sql, port=PORT, db="postgres"):
    return subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/psql", "-X", "-At", "-h", "/tmp",
                           "-p", str(port), "-d", db, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def lifeboat_init(repo, key):
    """A lifeboat repository with a password and a generated key in `key`."""
    if os.path.exists(key):
        os.remove(key)
    pg(f"{LIFEBOAT} init --repo {repo} --password-file {W}/password >/dev/null")
    pg(f"{LIFEBOAT} key add --repo {repo} --password-file {W}/password --generate {key} >/dev/null")


def fresh_repos():
    """Empty repositories for both tools (archiving into them goes on)."""
    for p in (LB_REPO, BR_REPO):
        shutil.rmtree(p, ignore_errors=True)
    lifeboat_init(LB_REPO, LB_KEY)
    os.makedirs(BR_REPO)
    sh(f"chown postgres: {BR_REPO}")
    pg(br("stanza-create") + " >/dev/null")


def setup():
    if os.path.exists(f"{W}/.done"):
        server_start(DATA, PORT, f"{W}/log/server.log")
        return
    shutil.rmtree(W, ignore_errors=True)
    os.makedirs(f"{W}/log")
    with open(f"{W}/password", "w") as f:
        f.write(PW)
    sh(f"chown -R postgres: {W} && chmod 600 {W}/password")
    pg(f"{PG_BIN}/initdb -D {DATA} -A trust --data-checksums >/dev/null")
    with open(f"{DATA}/postgresql.conf", "a") as f:
        # Both tools archive every segment: pgBackRest first, then lifeboat.
        f.write(f"""listen_addresses = ''
archive_mode = on
archive_command = '{br("archive-push %p")} && {LB_ENV} {LIFEBOAT} -q wal push %p'
max_wal_size = 4GB
shared_buffers = 512MB
# WAL volume, not commit latency, is what the PITR phase needs.
synchronous_commit = off
""")
    write_br_conf("pgbackrest.conf", BR_REPO, False)
    sh(f"chown -R postgres: {W}")
    server_start(DATA, PORT, f"{W}/log/server.log")
    pg(f"{PG_BIN}/createdb -h /tmp -p {PORT} bench")
    pg(f"{PG_BIN}/pgbench -h /tmp -p {PORT} -i -q -s {SCALE} bench >/dev/null 2>&1")
    psql("CHECKPOINT")
    open(f"{W}/.done", "w").close()


def pgbench_touch(percent=1):
    """Transactions touching about `percent` % of pgbench_accounts' pages."""
    pages = int(psql("SELECT relpages FROM pg_class WHERE relname = 'pgbench_accounts'", db="bench"))
    tx = max(1, pages * percent // 100)
    pg(f"{PG_BIN}/pgbench -h /tmp -p {PORT} -n -c 2 -t {tx // 2} bench >/dev/null 2>&1")
    psql("CHECKPOINT")


def wait_archived():
    last = psql("SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + 1200
    while psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < last:
        if time.monotonic() > deadline:
            raise SystemExit("archiving fell behind for 20 minutes")
        time.sleep(0.2)


def restored_conf(data):
    with open(f"{data}/postgresql.auto.conf", "a") as f:
        f.write("archive_mode = off\n")
    sh(f"chown postgres: {data}/postgresql.auto.conf")


def until_accepting(data):
    """Starts the server on a restored directory; returns once recovery has
    ended and it accepts connections."""
    server_start(data, RPORT, f"{W}/log/restored.log")
    deadline = time.monotonic() + 1800
    while True:
        try:
            if psql("SELECT pg_is_in_recovery()", port=RPORT) == "f":
                return
        except subprocess.CalledProcessError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the restored server on {data} did not finish recovery")
        time.sleep(0.05)


def restore_pair(results, label, lb_args, br_args, start):
    """Times one restore by each tool (into a fresh directory, synced), and
    with `start`, until the server on it accepts connections."""
    for tool, cmd in (("lifeboat", f"{LB} restore {lb_args} --target {W}/restored"),
                      ("pgbackrest", br(f"restore --pg1-path={W}/restored {br_args}"))):
        shutil.rmtree(f"{W}/restored", ignore_errors=True)
        sh(f"sync; echo 3 > /proc/sys/vm/drop_caches")
        t = time.monotonic()
        pg(cmd, stdout=subprocess.DEVNULL)
        if start:
            restored_conf(f"{W}/restored")
            until_accepting(f"{W}/restored")
        else:
            pg(f"sync -f {W}/restored")
        results[tool][label].append(time.monotonic() - t)
        if start:
            server_stop(f"{W}/restored")


def push_latency(results):
    """Each tool's archive command on PUSHES real segments of this cluster,
    one process per segment as PostgreSQL runs it, into empty repositories.
    The segments sit in a copy of the data directory's control files and
    pg_wal with `.ready` status files, as the server leaves them."""
    lat = f"{W}/latency"
    shutil.rmtree(lat, ignore_errors=True)
    os.makedirs(f"{lat}/data/global")
    os.makedirs(f"{lat}/data/pg_wal/archive_status")
    shutil.copy(f"{DATA}/global/pg_control", f"{lat}/data/global/")
    shutil.copy(f"{DATA}/PG_VERSION", f"{lat}/data/")
    # Archived segments of this cluster, fetched back from the archive.
    archived = [n for n in sorted(os.listdir(f"{LB_REPO}/logs")) if re.search(r"-[0-9A-F]{24}$", n)][:PUSHES]
    segs = [n.rsplit("-", 1)[1] for n in archived]
    sh(f"chown -R postgres: {lat}")
    for s in segs:
        pg(f"env LIFEBOAT_WAL_PREFETCH=0 {LB} wal fetch {s} {lat}/data/pg_wal/{s} --pgdata {DATA}")
    sh(f"chown -R postgres: {lat}")
    for mode, asynchronous in (("sync", False), ("async", True)):
        conf = f"latency-{mode}.conf"
        repo = f"{lat}/pgbackrest-{mode}"
        write_br_conf(conf, repo, asynchronous, data=f"{lat}/data")
        os.makedirs(repo)
        sh(f"chown -R postgres: {lat} {W}/{conf}")
        pg(f"pgbackrest --config={W}/{conf} --stanza=bench --no-online stanza-create >/dev/null")
        for s in segs:
            open(f"{lat}/data/pg_wal/archive_status/{s}.ready", "w").close()
        sh(f"chown -R postgres: {lat}")
        for s in segs:
            results["pgbackrest"][f"push_{mode}"].append(
                timed(f"pgbackrest --config={W}/{conf} --stanza=bench archive-push {lat}/data/pg_wal/{s}"))
            os.rename(f"{lat}/data/pg_wal/archive_status/{s}.ready", f"{lat}/data/pg_wal/archive_status/{s}.done")
    # lifeboat: each segment alone ("sync"), then with the rest waiting as
    # .ready files, as after a burst ("async": `wal push` archives ahead).
    for mode, waiting in (("sync", False), ("async", True)):
        repo, key = f"{lat}/lifeboat-{mode}", f"{lat}/lifeboat-{mode}.key"
        lifeboat_init(repo, key)
        status = f"{lat}/data/pg_wal/archive_status"
        for f in os.listdir(status):
            os.remove(f"{status}/{f}")
        shutil.rmtree(f"{lat}/data/pg_wal/lifeboat-pushed", ignore_errors=True)
        if waiting:
            for s in segs:
                open(f"{status}/{s}.ready", "w").close()
            sh(f"chown -R postgres: {lat}")
        for s in segs:
            results["lifeboat"][f"push_{mode}"].append(timed(
                f"env LIFEBOAT_REPOSITORY={repo} LIFEBOAT_PASSWORD_FILE={key} {LIFEBOAT} -q "
                f"wal push {lat}/data/pg_wal/{s} --pgdata {lat}/data"))
            if waiting:
                os.rename(f"{status}/{s}.ready", f"{status}/{s}.done")
    shutil.rmtree(lat)


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


def main():
    setup()
    ops = ["full", "second", "second_bytes", "restore", "pitr", "push_sync", "push_async", "logical"]
    results = {t: {op: [] for op in ops} for t in ("lifeboat", "pgbackrest")}
    dump_alone = []
    pitr_segments = 0
    try:
        for r in range(RUNS):
            print(f"run {r + 1}/{RUNS}: base backups", flush=True)
            fresh_repos()
            psql("CHECKPOINT")
            results["lifeboat"]["full"].append(timed(f"{LB} backup --source {URL} --physical"))
            results["pgbackrest"]["full"].append(timed(br("--type=full backup")))
            pgbench_touch(1)
            wait_archived()
            for tool, cmd, repo in (("lifeboat", f"{LB} backup --source {URL} --physical", LB_REPO),
                                    ("pgbackrest", br("--type=incr backup"), BR_REPO)):
                before = du(repo)
                results[tool]["second"].append(timed(cmd))
                results[tool]["second_bytes"].append((du(repo) - before) / 2**20)
            print(f"run {r + 1}/{RUNS}: restore of the second backup", flush=True)
            restore_pair(results, "restore", "latest --immediate", "--type=immediate --target-action=promote", False)
            print(f"run {r + 1}/{RUNS}: logical", flush=True)
            t = time.monotonic()
            pg(f"{PG_BIN}/pg_dump -h /tmp -p {PORT} --format=custom bench > /dev/null")
            dump_alone.append(time.monotonic() - t)
            results["lifeboat"]["logical"].append(timed(
                f"{LB} backup --source 'postgres://postgres@/bench?host=/tmp&port={PORT}'"))
        # PITR: a base backup by each, then >= SEGMENTS segments of WAL.
        print(f"PITR: writing {SEGMENTS} WAL segments", flush=True)
        fresh_repos()
        psql("CHECKPOINT")
        pg(f"{LB} backup --source {URL} --physical >/dev/null")
        pg(br("--type=full backup") + " >/dev/null")
        start_lsn = psql("SELECT pg_current_wal_lsn()")
        while int(psql(f"SELECT floor((pg_current_wal_lsn() - '{start_lsn}') / (16 * 1024 * 1024))::bigint")) < SEGMENTS:
            pg(f"{PG_BIN}/pgbench -h /tmp -p {PORT} -n -c 2 -T 10 bench >/dev/null 2>&1")
        pitr_segments = int(psql(f"SELECT floor((pg_current_wal_lsn() - '{start_lsn}') / (16 * 1024 * 1024))::bigint"))
        wait_archived()
        write_br_conf("pgbackrest.conf", BR_REPO, True)  # async archive-get for the restore
        sh(f"chown postgres: {W}/pgbackrest.conf")
        for r in range(RUNS):
            print(f"PITR restore {r + 1}/{RUNS}", flush=True)
            restore_pair(results, "pitr", "latest --latest", "", True)
        write_br_conf("pgbackrest.conf", BR_REPO, False)
        print("wal push latency", flush=True)
        push_latency(results)
    finally:
        server_stop(f"{W}/restored")
        server_stop(DATA)
    report(results, dump_alone, pitr_segments)


LABEL = {
    "full": ("full base backup (s)", 0.8),
    "second": ("second base backup after pgbench touched ~1 % of pages (s)", 0.5),
    "second_bytes": ("repository growth of that second backup (MiB)", 0.5),
    "restore": ("restore to a consistent data directory, synced (s)", 0.8),
    "pitr": ("PITR restore: restore + replay until the server accepts connections (s)", 0.8),
}


def report(res, dump_alone, pitr_segments):
    med = {t: {k: statistics.median(v) for k, v in ops.items() if v} for t, ops in res.items()}
    ver = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()
    lbv = subprocess.run([LIFEBOAT, "--version"], capture_output=True, text=True).stdout.strip()
    pgv = psql_version()
    lines = [BEGIN, "## PostgreSQL against pgBackRest", "",
             f"Written by `bench/postgres.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"{lbv}, {ver}, PostgreSQL {pgv}; pgbench scale {SCALE} "
             f"({du(DATA) / 2**20:.0f} MiB data directory), medians of {RUNS} runs. pgBackRest at its best "
             f"settings (zstd, process-max {os.cpu_count()}, start-fast) and encrypted like lifeboat "
             "(aes-256-cbc); 2.45 has no block incremental, so its second backup is its file incremental. "
             "Both tools archive every segment (`archive_command` runs pgBackRest, then lifeboat). "
             "Restores start from a dropped page cache.", "",
             "| measurement | lifeboat | pgBackRest | lifeboat ÷ pgBackRest | target |", "|---|---:|---:|---:|---:|"]
    for op, (label, target) in LABEL.items():
        a, b = med["lifeboat"][op], med["pgbackrest"][op]
        ratio = a / b
        ok = "met" if ratio <= target else "**not met**"
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {ratio:.2f} | ≤ {target} ({ok}) |")
    lbs, lba = res["lifeboat"]["push_sync"], res["lifeboat"]["push_async"]
    brs, bra = res["pgbackrest"]["push_sync"], res["pgbackrest"]["push_async"]
    for name, f in (("median", statistics.median), ("p99", p99)):
        ratio = min(f(lbs), f(lba)) / min(f(brs), f(bra))
        lines.append(f"| `wal push` latency per segment, {name} (ms; alone, and with the rest waiting) | "
                     f"{f(lbs) * 1000:.0f} alone, {f(lba) * 1000:.0f} waiting | "
                     f"{f(brs) * 1000:.0f} sync, {f(bra) * 1000:.0f} async | {ratio:.2f} (best of each) | ≤ 1.0 "
                     f"({'met' if ratio <= 1 else '**not met**'}) |")
    d, l = statistics.median(dump_alone), med["lifeboat"]["logical"]
    lines.append(f"| logical backup of the bench database against a bare `pg_dump -Fc > /dev/null` (s) | "
                 f"{l:.1f} | {d:.1f} (pg_dump) | {l / d:.2f} | ≤ 1.1 ({'met' if l / d <= 1.1 else '**not met**'}) |")
    lines += ["", f"The PITR restore replays {pitr_segments} segments written by pgbench after the base backup "
              "(pgBackRest with archive-async and archive-get-queue-max 1 GiB; lifeboat's `wal fetch` prefetches "
              "8 segments). The streaming data-loss window is measured by the test "
              "`wal_stream_loses_at_most_a_second_of_commits_and_none_when_synchronous` (kill -9 of the primary "
              "under load: 0 commits lost, async and synchronous).", "",
              "Raw runs (seconds; MiB for growth):", "", "```", json.dumps(res, indent=1), "```", END]
    path = os.path.join(ROOT, "bench/RESULTS.md")
    old = open(path).read() if os.path.exists(path) else ""
    block = "\n".join(lines)
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(new)
    print("\n".join(lines[:16]))


def psql_version():
    return subprocess.run([f"{PG_BIN}/postgres", "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
