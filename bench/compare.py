#!/usr/bin/env python3
"""Runs lifeboat, restic, BorgBackup and rustic on the same datasets and
writes bench/RESULTS.md with medians and ratios. Called by bench/run.sh."""

import os, shutil, shlex, statistics, subprocess, sys, time, json, platform, glob

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.environ.get("BENCH_DIR", "/var/tmp/lifeboat-bench")
RUNS = int(os.environ.get("RUNS", "3"))
LIFEBOAT = os.path.join(ROOT, "target/release/lifeboat")
LIMITS = os.path.join(ROOT, "target/release/examples/limits")
TREE_BYTES = 2_000_000_000
PW = "bench-password-not-secret"
PG_PORT = 5499


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


def build_tree(base):
    """/usr/share plus /usr/lib directories in name order up to ~2 GB."""
    if os.path.exists(base + "/.done"):
        return
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    sh(f"cp -a /usr/share {base}/share")
    total = du(base)
    os.makedirs(f"{base}/lib")
    for name in sorted(os.listdir("/usr/lib")):
        if total >= TREE_BYTES:
            break
        src = os.path.join("/usr/lib", name)
        if os.path.islink(src):
            continue
        sh(f"cp -a {src} {base}/lib/")
        total = du(base)
    open(base + "/.done", "w").close()


def change_tree(tree):
    """A small deterministic change: appends, deletions, a new directory."""
    files = []
    for d, _, fs in os.walk(tree):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    files.sort()
    for i, p in enumerate(files):
        if i % 97 == 0:
            with open(p, "ab") as fh:
                fh.write(b"changed by the benchmark\n" * 160)
        elif i % 211 == 0:
            os.remove(p)
    os.makedirs(f"{tree}/new-files", exist_ok=True)
    for i in range(50):
        with open(f"{tree}/new-files/f{i}", "wb") as fh:
            fh.write(bytes((i * 7 + j) % 251 for j in range(65536)))


PG_BIN = (sorted(glob.glob("/usr/lib/postgresql/*/bin")) or ["/usr/bin"])[-1]


def pg(cmd):
    sh(f"runuser -u postgres -- {cmd}")


def pg_start():
    pg(f"{PG_BIN}/pg_ctl -D {W}/pg/data -o '-p {PG_PORT} -k /tmp' -l {W}/pg/log -w start >/dev/null")


def pg_stop():
    pg(f"{PG_BIN}/pg_ctl -D {W}/pg/data -w stop >/dev/null")


PG_DUMP = f"runuser -u postgres -- pg_dump -h /tmp -p {PG_PORT} bench"


def build_dump(dump):
    """A private PostgreSQL cluster with pgbench data (scale 75), kept for
    the live pg_dump measurement, and its ~700 MB pg_dump as a file."""
    if not os.path.exists(f"{W}/pg/.done"):
        pgdir = f"{W}/pg"
        shutil.rmtree(pgdir, ignore_errors=True)
        os.makedirs(pgdir)
        sh(f"chown postgres {pgdir}")
        pg(f"{PG_BIN}/initdb -D {pgdir}/data -A trust >/dev/null")
        pg_start()
        try:
            pg(f"{PG_BIN}/createdb -h /tmp -p {PG_PORT} bench")
            pg(f"pgbench -h /tmp -p {PG_PORT} -i -q -s 75 bench")
        finally:
            pg_stop()
        open(f"{pgdir}/.done", "w").close()
    if not os.path.exists(dump):
        pg_start()
        try:
            sh(f"{PG_DUMP} > {dump}.part && mv {dump}.part {dump}")
        finally:
            pg_stop()


MANY_FILES = 500_000


def build_many(base):
    """500 000 small files (100 B to 4 KiB, distinct contents) in 500
    directories: the tree where per-file costs, not bytes, decide."""
    if os.path.exists(base + "/.done"):
        return
    shutil.rmtree(base, ignore_errors=True)
    per_dir = 1000
    for d in range(MANY_FILES // per_dir):
        os.makedirs(f"{base}/d{d:03}")
        for f in range(per_dir):
            n = d * per_dir + f
            size = 100 + (n * 7919) % 4000
            line = f"file {n} of the many-files tree\n".encode()
            with open(f"{base}/d{d:03}/f{f:04}", "wb") as fh:
                fh.write((line * (size // len(line) + 1))[:size])
    open(base + "/.done", "w").close()


class Tool:
    def __init__(self, name, env, init, backup, stdin, restore, check, version):
        self.name, self.env, self._init, self._backup = name, env, init, backup
        self._stdin, self._restore, self._check, self.version = stdin, restore, check, version

    def run(self, cmd, stdin=None):
        """Returns (wall seconds, max RSS MiB)."""
        env = dict(os.environ, **self.env)
        sh("sync")  # earlier writes are not charged to this step
        t = time.perf_counter()
        p = subprocess.run(f"/usr/bin/time -f '%M' -o {W}/rss {cmd}", shell=True, env=env, stdin=stdin,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{self.name}: `{cmd}` failed ({p.returncode}):\n{p.stderr.decode()[-2000:]}")
        rss = int(open(f"{W}/rss").read().split()[-1]) / 1024
        return wall, rss


def tools(repo_base):
    def v(cmd):
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip().splitlines()[0]
    r = lambda name: f"{repo_base}/{name}"
    return [
        Tool("lifeboat", {"LIFEBOAT_REPOSITORY": r("lifeboat"), "LIFEBOAT_PASSWORD": PW},
             f"{LIFEBOAT} init -q", lambda t, n: f"{LIFEBOAT} backup -q {t}",
             lambda n: f"{LIFEBOAT} backup -q --stdin --stdin-name {n}.sql",
             lambda out: f"{LIFEBOAT} restore -q latest --target {out}", f"{LIFEBOAT} check -q --read-data",
             v(f"{LIFEBOAT} --version")),
        Tool("restic", {"RESTIC_REPOSITORY": r("restic"), "RESTIC_PASSWORD": PW, "RESTIC_CACHE_DIR": f"{W}/cache/restic"},
             "restic init -q", lambda t, n: f"restic backup -q {t}",
             lambda n: f"restic backup -q --stdin --stdin-filename {n}.sql",
             lambda out: f"restic restore -q latest --target {out}", "restic check -q --read-data",
             v("restic version")),
        Tool("borg", {"BORG_REPO": r("borg"), "BORG_PASSPHRASE": PW, "BORG_BASE_DIR": f"{W}/cache/borg",
                      "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"},
             "borg init -e repokey-blake2", lambda t, n: f"borg create ::{n} {t}",
             lambda n: f"borg create ::{n} -",
             lambda out: f"sh -c 'cd {out} && borg extract ::b3'", "borg check --verify-data",
             v("borg --version")),
        Tool("rustic", {"RUSTIC_REPOSITORY": r("rustic"), "RUSTIC_PASSWORD": PW, "RUSTIC_CACHE_DIR": f"{W}/cache/rustic"},
             "rustic init", lambda t, n: f"rustic backup {t}",
             lambda n: f"rustic backup - --stdin-filename {n}.sql",
             lambda out: f"rustic restore latest {out}", "rustic check --read-data",
             v("rustic --version")),
    ]


ANALYSIS = "## Where the time goes"

OPS = ["backup", "incremental", "unchanged", "restore", "restore_samefs", "restore_tmpfs", "check", "stdin",
       "stdin_live", "rss", "restore_rss", "repo"]
MANY_OPS = ["many_backup", "many_restore", "many_restore_rss"]
LABEL = {
    "backup": "initial backup of the tree (s)", "incremental": "backup after a small change (s)",
    "unchanged": "backup with no change (s)", "restore": "full restore + sync into a fresh ext4 (s)",
    "restore_samefs": "full restore + sync into the bench directory's own file system (s)",
    "restore_tmpfs": "full restore into a tmpfs (s)",
    "restore_rss": "peak RSS during the restore into ext4 (MiB)",
    "check": "check --read-data (s)", "stdin": "stdin backup of the dump file (s)",
    "stdin_live": "stdin backup from a running pg_dump (s)",
    "many_backup": "initial backup of 500 000 small files (s)",
    "many_restore": "restore of 500 000 small files into a tmpfs (s)",
    "many_restore_rss": "peak RSS during the restore of 500 000 small files (MiB)",
    "rss": "peak RSS during initial backup (MiB)", "repo": "repository after both tree backups (MiB)",
}
TARGET = {"backup": 0.5, "incremental": 0.5, "unchanged": 0.5, "restore": 0.5, "restore_samefs": 0.5,
          "restore_tmpfs": 0.5, "check": 0.7, "stdin": 0.5, "stdin_live": 0.5, "rss": 1.0, "restore_rss": 1.0,
          "repo": 1.0, "many_backup": 0.5, "many_restore": 0.5, "many_restore_rss": 1.0}


def one_run(tool, base, dump, r):
    repo_base = f"{W}/repos"
    tree = f"{W}/work/tree"
    for p in (repo_base + "/" + tool.name, f"{W}/work", f"{W}/cache"):
        shutil.rmtree(p, ignore_errors=True)
    os.makedirs(f"{W}/work")
    sh(f"cp -a {base} {tree}")
    sh(f"cat $(find {tree} -type f) > /dev/null 2>&1 || true")  # hot cache for everyone
    res = {}
    tool.run(tool._init)
    res["backup"], res["rss"] = tool.run(tool._backup(tree, "b1"))
    change_tree(tree)
    res["incremental"], _ = tool.run(tool._backup(tree, "b2"))
    res["unchanged"], _ = tool.run(tool._backup(tree, "b3"))
    res["repo"] = du(f"{repo_base}/{tool.name}") / 1048576
    # Each restore goes into a fresh ext4 file system: ext4's inode allocator
    # slows down near inodes deleted in the last 5-30 s, which would charge
    # one tool for another's `rm -rf`. The loop device uses direct I/O, so it
    # behaves like a disk: with the default, every byte is cached twice (in
    # the restored file system and in the image file) and a restore's time
    # swung 9-15 s with whatever the host had written before.
    img, mnt = f"{W}/restore.img", f"{W}/mnt"
    os.makedirs(mnt, exist_ok=True)
    sh(f"truncate -s 12G {img} && mkfs.ext4 -q -F {img}")
    dev = subprocess.run(["losetup", "-f", "--show", "--direct-io=on", img], capture_output=True,
                         text=True, check=True).stdout.strip()
    sh(f"mount {dev} {mnt}")
    try:
        out = f"{mnt}/restore"
        os.makedirs(out)
        sh("sync")
        t0 = time.perf_counter()
        _, res["restore_rss"] = tool.run(tool._restore(out))
        sh("sync")
        res["restore"] = time.perf_counter() - t0
    finally:
        sh(f"umount {mnt} && losetup -d {dev} && rm -f {img}")
    # Where users restore too: the disk they have (the bench directory's own
    # file system, with whatever it holds) and a tmpfs (no disk at all:
    # what is left is the tool's own work).
    for key, where in (("restore_samefs", f"{W}/work/restore-here"), ("restore_tmpfs", None)):
        tmp = None
        if where is None:
            tmp = f"{W}/tmpfs"
            os.makedirs(tmp, exist_ok=True)
            sh(f"mount -t tmpfs -o size=8g lifeboat-bench {tmp}")
            where = f"{tmp}/restore"
        try:
            os.makedirs(where, exist_ok=True)
            sh("sync")
            t0 = time.perf_counter()
            tool.run(tool._restore(where))
            sh("sync")
            res[key] = time.perf_counter() - t0
        finally:
            shutil.rmtree(where, ignore_errors=True)
            if tmp:
                sh(f"umount {tmp}")
    res["check"], _ = tool.run(tool._check)
    with open(dump, "rb") as fh:
        res["stdin"], _ = tool.run(tool._stdin("dump"), stdin=fh)
    # What users pipe: a live pg_dump (the cluster runs for the whole
    # bench). The time is the pipeline's: pg_dump's own pace bounds it.
    live = f"set -o pipefail; {PG_DUMP} | {tool._stdin('live')}"
    res["stdin_live"], _ = tool.run(f"bash -c {shlex.quote(live)}")
    shutil.rmtree(f"{W}/work", ignore_errors=True)
    print(f"  run {r} {tool.name}: " + ", ".join(f"{k}={v:.1f}" for k, v in res.items()), flush=True)
    return res


def many_run(tool, many):
    """Backup of the many-files tree, then its restore into a tmpfs with
    the restore's peak memory."""
    repo = f"{W}/repos/{tool.name}"
    for p in (repo, f"{W}/cache"):
        shutil.rmtree(p, ignore_errors=True)
    res = {}
    tool.run(tool._init)
    res["many_backup"], _ = tool.run(tool._backup(many, "b3"))
    tmp = f"{W}/tmpfs"
    os.makedirs(tmp, exist_ok=True)
    sh(f"mount -t tmpfs -o size=8g lifeboat-bench {tmp}")
    try:
        os.makedirs(f"{tmp}/restore")
        res["many_restore"], res["many_restore_rss"] = tool.run(tool._restore(f"{tmp}/restore"))
    finally:
        sh(f"umount {tmp}")
    shutil.rmtree(repo, ignore_errors=True)
    print(f"  many-files {tool.name}: " + ", ".join(f"{k}={v:.1f}" for k, v in res.items()), flush=True)
    return res


def pg_dump_alone():
    """The bare pace of the live pg_dump, the floor of every stdin_live."""
    t = time.perf_counter()
    sh(f"{PG_DUMP} > /dev/null")
    return time.perf_counter() - t


def machine_limits(base, dump):
    sample, changed = f"{W}/sample.bin", f"{W}/sample-changed.bin"
    sh(f"find {base} -type f -print0 | sort -z | xargs -0 cat | head -c 512000000 > {sample}")
    # The same data with 20 small insertions, for chunk-size dedup figures.
    with open(sample, "rb") as fh:
        data = bytearray(fh.read())
    for i in range(20):
        at = (len(data) // 21) * (i + 1)
        data[at:at] = b"inserted by the benchmark" * 40
    with open(changed, "wb") as fh:
        fh.write(data)
    sh(f"find {base} -type f -print0 | xargs -0 cat > /dev/null")  # make the cache hot first
    t = time.perf_counter()
    sh(f"find {base} -type f -print0 | xargs -0 cat > /dev/null")
    read = time.perf_counter() - t
    t = time.perf_counter()
    sh(f"dd if={sample} of={W}/ddtest bs=1M conv=fdatasync status=none")
    write = time.perf_counter() - t
    os.remove(f"{W}/ddtest")
    table = subprocess.run([LIMITS, sample, changed], capture_output=True, text=True, check=True).stdout
    os.remove(sample)
    os.remove(changed)
    size = du(base)
    return (f"- reading the whole tree ({size / 1e9:.2f} GB) from the page cache: {read:.2f} s "
            f"({size / 1048576 / read:.0f} MiB/s)\n"
            f"- writing 512 MB with fdatasync: {write:.2f} s ({512e6 / 1048576 / write:.0f} MiB/s)\n\n"
            "Pipeline stages on a 512 MB sample of the tree (`cargo run --release -p lifeboat-repo --example limits`):\n\n" + table)


def backup_limit(base, lifeboat_backup):
    """The issue's aim: the initial backup within 1.5x of the machine's limit.
    `limits --limit` times each stage every backup must run on all cores over
    the tree's own data; lifeboat's backup at the default zstd level 3 (the
    medians above) and at level 1 are compared with the limits of their level."""
    sums = {3: [], 1: []}
    tables = []
    for _ in range(RUNS):
        out = subprocess.run([LIMITS, "--limit", base], capture_output=True, text=True, check=True).stdout
        tables.append(out)
        for line in out.splitlines():
            if line.startswith("limit at zstd level "):
                level, secs = line[len("limit at zstd level "):].split(": ")
                sums[int(level)].append(float(secs.split()[0]))
    level1 = []
    repo = f"{W}/repos/lifeboat-level1"
    env = dict(os.environ, LIFEBOAT_REPOSITORY=repo, LIFEBOAT_PASSWORD=PW)
    for _ in range(RUNS):
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run([LIFEBOAT, "init", "--compression", "1"], env=env, check=True, capture_output=True)
        sh("sync")
        t = time.perf_counter()
        subprocess.run([LIFEBOAT, "-q", "backup", base], env=env, check=True)
        level1.append(time.perf_counter() - t)
    shutil.rmtree(repo, ignore_errors=True)
    med = {lvl: statistics.median(v) for lvl, v in sums.items()}
    rows = [(3, "3 (default)", lifeboat_backup), (1, "1", statistics.median(level1))]
    lines = ["| zstd level | machine's limit (s) | lifeboat initial backup (s) | ratio | aim |", "|---|---:|---:|---:|---:|"]
    for lvl, label, ours in rows:
        ratio = ours / med[lvl]
        ok = "met" if ratio <= 1.5 + 1e-9 else "**not met**"
        lines.append(f"| {label} | {med[lvl]:.2f} | {ours:.2f} | {ratio:.2f} | ≤ 1.5 ({ok}) |")
    return ("\n".join(lines) + f"\n\nLimits of the {RUNS} runs: "
            + "; ".join(f"level {lvl}: " + ", ".join(f"{x:.2f}" for x in v) for lvl, v in sums.items())
            + " s. lifeboat at level 1: " + ", ".join(f"{x:.2f}" for x in level1)
            + " s.\n\nStages of the last run (`target/release/examples/limits --limit TREE`):\n\n" + tables[-1])


def pack_sizes(base):
    """The pack-size choice (FORMAT.md), measured: lifeboat's initial backup of
    the tree and `check --read-data` at 4, 16 (the default) and 64 MiB packs,
    and the objects each leaves (an object store charges per request)."""
    lines = ["| pack size (MiB) | objects in data/ | initial backup (s) | check --read-data (s) |",
             "|---:|---:|---:|---:|"]
    repo = f"{W}/repos/lifeboat-packs"
    env = dict(os.environ, LIFEBOAT_REPOSITORY=repo, LIFEBOAT_PASSWORD=PW)
    for size in (4, 16, 64):
        backups, checks = [], []
        for _ in range(RUNS):
            shutil.rmtree(repo, ignore_errors=True)
            subprocess.run([LIFEBOAT, "init", "--pack-size", str(size)], env=env, check=True, capture_output=True)
            sh("sync")
            t = time.perf_counter()
            subprocess.run([LIFEBOAT, "-q", "backup", base], env=env, check=True)
            backups.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([LIFEBOAT, "-q", "check", "--read-data"], env=env, check=True)
            checks.append(time.perf_counter() - t)
        objects = sum(len(fs) for _, _, fs in os.walk(f"{repo}/data"))
        lines.append(f"| {size} | {objects} | {statistics.median(backups):.2f} | {statistics.median(checks):.2f} |")
    shutil.rmtree(repo, ignore_errors=True)
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(W, exist_ok=True)
    base, dump = f"{W}/base", f"{W}/dump.sql"
    print("preparing datasets …", flush=True)
    build_tree(base)
    build_dump(dump)
    many = f"{W}/many"
    build_many(many)
    pg_start()
    try:
        return bench(base, dump, many)
    finally:
        pg_stop()


def bench(base, dump, many):
    files = int(subprocess.run(f"find {base} | wc -l", shell=True, capture_output=True, text=True).stdout)
    ts = tools(f"{W}/repos")
    only = os.environ.get("BENCH_TOOLS")  # e.g. "lifeboat" while iterating; no RESULTS.md then
    if only:
        ts = [t for t in ts if t.name in only.split(",")]
    results = {t.name: {op: [] for op in OPS + MANY_OPS} for t in ts}
    dump_alone = []
    for r in range(1, RUNS + 1):
        dump_alone.append(pg_dump_alone())
        for t in ts:
            for k, v in one_run(t, base, dump, r).items():
                results[t.name][k].append(v)
    # Memory is what this tree measures, and it barely varies: MANY_RUNS
    # rounds (default 1) keep the bench's length in bounds.
    for _ in range(int(os.environ.get("MANY_RUNS", "1"))):
        for t in ts:
            for k, v in many_run(t, many).items():
                results[t.name][k].append(v)
    if only:
        for t in ts:
            print(t.name, {op: round(statistics.median(v), 2) for op, v in results[t.name].items()})
        return
    limits = machine_limits(base, dump)
    med = {t: {op: statistics.median(v) for op, v in ops.items()} for t, ops in results.items()}
    aim = backup_limit(base, med["lifeboat"]["backup"])
    packs = pack_sizes(base)
    peers = [t.name for t in ts if t.name != "lifeboat"]
    lines = ["# Benchmark results", "",
             f"Written by `bench/run.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             f"Medians of {RUNS} runs per tool, hot page cache, all tools at their default settings.", "",
             "## Machine and versions", "",
             f"- {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, kernel {platform.release()}",
             *[f"- {t.name}: {t.version}" for t in ts],
             f"- tree: /usr/share and part of /usr/lib, {du(base) / 1e9:.2f} GB in {files} entries; "
             f"dump: pg_dump of pgbench scale 75, {os.path.getsize(dump) / 1e6:.0f} MB; "
             f"many files: {MANY_FILES} files of 100 B–4 KiB in 500 directories", "",
             "## Results", "",
             "| measurement | " + " | ".join(t.name for t in ts) + " | lifeboat ÷ best peer | target |",
             "|---|" + "---:|" * (len(ts) + 2)]
    for op in OPS + MANY_OPS:
        best = min(med[p][op] for p in peers)
        ratio = med["lifeboat"][op] / best
        ok = "met" if ratio <= TARGET[op] + 1e-9 else "**not met**"
        lines.append(f"| {LABEL[op]} | " + " | ".join(f"{med[t.name][op]:.1f}" for t in ts)
                     + f" | {ratio:.{3 if 0.99 <= ratio < 1.01 else 2}f} | ≤ {TARGET[op]} ({ok}) |")
    lines += ["", "Min–max of the runs (the spread of a figure is its noise: where the ranges of two "
              "tools overlap, their difference is not measured):", "",
              "| measurement | " + " | ".join(t.name for t in ts) + " |", "|---|" + "---:|" * len(ts)]
    for op in OPS + MANY_OPS:
        lines.append(f"| {LABEL[op]} | " + " | ".join(
            f"{min(results[t.name][op]):.1f}–{max(results[t.name][op]):.1f}" for t in ts) + " |")
    lines += ["", f"A bare `pg_dump > /dev/null` of the same database took {statistics.median(dump_alone):.1f} s "
              f"(min–max {min(dump_alone):.1f}–{max(dump_alone):.1f}): lifeboat's backup from the live pg_dump "
              f"took {med['lifeboat']['stdin_live'] / statistics.median(dump_alone):.2f}× that."]
    lines += ["", "Raw runs (seconds / MiB):", "", "```", json.dumps(results, indent=1), "```", "",
              "## The initial backup against the machine's limit", "", aim,
              "## Pack size (lifeboat alone, medians)", "", packs,
              "## This machine's limits", "", limits]
    # Keep the hand-written analysis (from its heading on) across reruns.
    path = os.path.join(ROOT, "bench/RESULTS.md")
    analysis = ""
    if os.path.exists(path):
        old = open(path).read()
        if ANALYSIS in old:
            analysis = "\n" + old[old.index(ANALYSIS):]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n" + analysis)
    print("\n".join(lines[:40]))


if __name__ == "__main__":
    main()
