#!/usr/bin/env python3
"""`lifeboat status` and `serve`'s /metrics on a large plan: 100 components
and a ledger holding a year of hourly runs of each (876,000 runs) plus a
weekly verification; the target is an answer in under 50 ms. Prints the
median of 11 calls of each and writes the "Plan" section of
bench/RESULTS.md. Run by hand: python3 bench/plan.py (after cargo build
--release)."""

import os, socket, sqlite3, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIFEBOAT = os.path.join(ROOT, "target/release/lifeboat")
BEGIN, END = "<!-- plan bench: begin -->", "<!-- plan bench: end -->"
COMPONENTS, HOURS = 100, 365 * 24


def main():
    d = tempfile.mkdtemp(prefix="lifeboat-plan-bench-")
    plan = os.path.join(d, "lifeboat.toml")
    with open(plan, "w") as f:
        f.write(f'[regions.primary]\nrepository = "{d}/repo"\npassword_env = "LIFEBOAT_PASSWORD"\n\n')
        for i in range(COMPONENTS):
            tier = ["critical", "high", "medium", "low"][i % 4]
            f.write(f'[components.c{i:03}]\ntier = "{tier}"\nsource = "files:///srv/c{i}"\n'
                    f'schedule = "{["@hourly", "*/15 * * * *", "0 */6 * * *", "30 2 * * 1-5"][i % 4]}"\n'
                    f'verify = {{ schedule = "@weekly", target = "{d}/scratch" }}\n\n')
    # The ledger: created by lifeboat (its schema), filled here.
    subprocess.run([LIFEBOAT, "-c", plan, "-q", "status"], capture_output=True)
    db = sqlite3.connect(os.path.join(d, "lifeboat-ledger.db"))
    now = time.time()
    rows = ((f"c{i:03}", "backup", "primary", now - h * 3600, now - h * 3600 + 30, 1, 10 << 20, "ab" * 32, None)
            for i in range(COMPONENTS) for h in range(HOURS))
    db.executemany("INSERT INTO runs (component, kind, region, started, ended, ok, bytes, snapshot, error) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO verifications (component, at, result, restore_seconds, snapshot, report) "
                   "VALUES (?, ?, 'passed', 12.5, NULL, '[]')",
                   ((f"c{i:03}", now - w * 7 * 86400) for i in range(COMPONENTS) for w in range(52)))
    db.commit()
    db.close()

    def timed(f):
        t = time.monotonic()
        f()
        return (time.monotonic() - t) * 1000

    status = [timed(lambda: subprocess.run([LIFEBOAT, "-c", plan, "--json", "status"], capture_output=True))
              for _ in range(11)]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    # A tick far away: the daemon only serves while measured.
    srv = subprocess.Popen([LIFEBOAT, "-c", plan, "serve", "--listen", f"127.0.0.1:{port}", "--tick", "1d"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "LIFEBOAT_PASSWORD": "x"})
    def get():
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while c.recv(1 << 16):
            pass
        c.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            get()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("serve did not answer")
            time.sleep(0.1)
    metrics = [timed(get) for _ in range(11)]
    srv.terminate()
    srv.wait()
    lbv = subprocess.run([LIFEBOAT, "--version"], capture_output=True, text=True).stdout.strip()
    block = "\n".join([
        BEGIN, "## Plan: status and /metrics on a large ledger", "",
        f"Written by `bench/plan.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {lbv}, "
        f"{os.cpu_count()} cores; {COMPONENTS} components, {COMPONENTS * HOURS:,} recorded runs "
        f"(a year of hourly runs each) and {COMPONENTS * 52:,} verifications; medians of 11.", "",
        "| call | median ms | target |", "|---|---:|---:|",
        f"| `lifeboat status --json` (a whole process: start, plan, ledger) | {statistics.median(status):.0f} | < 50 "
        f"({'met' if statistics.median(status) < 50 else '**not met**'}) |",
        f"| `GET /metrics` from `lifeboat serve` | {statistics.median(metrics):.0f} | < 50 "
        f"({'met' if statistics.median(metrics) < 50 else '**not met**'}) |",
        "", f"Raw: status {[round(x, 1) for x in status]}, metrics {[round(x, 1) for x in metrics]}", END])
    path = os.path.join(ROOT, "bench/RESULTS.md")
    old = open(path).read()
    new = (old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]) if BEGIN in old \
        else old.rstrip("\n") + "\n\n" + block + "\n"
    open(path, "w").write(new)
    print(block)


if __name__ == "__main__":
    main()
