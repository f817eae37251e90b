#!/usr/bin/env python3
"""`lifeboat copy` to a second region against `cp -r` of the same
repository, on the bench tree (bench/compare.py's ~2 GB of /usr/share and
/usr/lib). Targets (issue 11): a copy at >= 0.8x the speed of a plain
`cp -r`, and an incremental copy after a small backup in under a second.

Both sides run warm (the source repository in the page cache) and each
into a fresh directory on the same file system; `cp -r` is timed bare and
with the `sync` that makes it as durable as lifeboat's copy (which fsyncs
every pack). Also timed: a copy into a repository that names blobs
differently (re-identified), for information. Prints medians of RUNS
(default 3) and writes the "Copy" section of bench/RESULTS.md.
Run by hand, as root: python3 bench/copy.py (after cargo build --release)."""

import os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import build_tree, change_tree, W, ROOT, LIFEBOAT, PW  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
BEGIN, END = "<!-- copy bench: begin -->", "<!-- copy bench: end -->"
D = os.path.join(W, "copy")


def run(args, **kw):
    env = dict(os.environ, LIFEBOAT_PASSWORD=PW, LIFEBOAT_TO_PASSWORD=PW)
    return subprocess.run(args, check=True, env=env, capture_output=True, text=True, **kw)


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def plan(regions):
    p = os.path.join(D, "lifeboat.toml")
    with open(p, "w") as f:
        for r in regions:
            f.write(f'[regions.{r}]\nrepository = "{D}/{r}"\npassword_env = "LIFEBOAT_PASSWORD"\n\n')
        f.write(f'[components.tree]\ntier = "low"\nsource = "files://{D}/tree"\nregion = "primary"\n'
                f'schedule = "@daily"\nreplicate_to = []\n')
    return p


def rm(p):
    shutil.rmtree(p, ignore_errors=True)


def main():
    os.makedirs(D, exist_ok=True)
    tree = os.path.join(W, "tree")
    build_tree(tree)
    rm(f"{D}/tree")
    subprocess.run(["cp", "-a", tree, f"{D}/tree"], check=True)
    for r in ["primary", "dr", "plain"]:
        rm(f"{D}/{r}")
    cfg = plan(["primary", "dr"])
    L = [LIFEBOAT, "-c", cfg]
    run(L + ["init", "--plan"])
    run(L + ["run", "tree"])
    repo_bytes = int(subprocess.run(["du", "-sb", f"{D}/primary"], capture_output=True, text=True).stdout.split()[0])
    def warm():
        # Both sides read the source from the page cache, into a file
        # system with nothing left to write back.
        subprocess.run(f"cat $(find {D}/primary -type f) > /dev/null; sync", shell=True, check=True)

    cp, cp_sync, lb, plain = [], [], [], []
    for i in range(RUNS):
        rm(f"{D}/cp"); warm()
        t, _ = timed(lambda: subprocess.run(["cp", "-r", f"{D}/primary", f"{D}/cp"], check=True))
        cp.append(t)
        rm(f"{D}/cp"); warm()
        t, _ = timed(lambda: subprocess.run(f"cp -r {D}/primary {D}/cp && sync", shell=True, check=True))
        cp_sync.append(t)
        rm(f"{D}/cp")
        rm(f"{D}/dr")
        run(L + ["init", "--plan"])
        warm()
        t, out = timed(lambda: run(L + ["--json", "copy", "--to", "dr", "tree"]))
        lb.append(t)
        rm(f"{D}/plain")
        run([LIFEBOAT, "-r", f"{D}/plain", "init"])
        warm()
        t, _ = timed(lambda: run([LIFEBOAT, "-r", f"{D}/primary", "copy", "--to-repo", f"{D}/plain"]))
        plain.append(t)
        print(f"run {i + 1}: cp -r {cp[-1]:.2f} s, cp -r + sync {cp_sync[-1]:.2f} s, "
              f"lifeboat copy {lb[-1]:.2f} s, re-identified {plain[-1]:.2f} s", flush=True)

    # Incremental: a small change, a backup, then the copy of that backup.
    change_tree(f"{D}/tree")
    inc, inc_plain = [], []
    for i in range(RUNS):
        if i:
            with open(f"{D}/tree/new-files/run{i}", "wb") as f:
                f.write(os.urandom(1 << 20))
        run(L + ["run", "tree"])
        t, out = timed(lambda: run(L + ["--json", "copy", "--to", "dr", "tree"]))
        inc.append(t)
        t, _ = timed(lambda: run([LIFEBOAT, "-r", f"{D}/primary", "copy", "--to-repo", f"{D}/plain"]))
        inc_plain.append(t)
        print(f"incremental {i + 1}: {inc[-1]:.2f} s, re-identified {inc_plain[-1]:.2f} s", flush=True)

    m = statistics.median
    # The target is judged against the faster cp: on this VM a bare
    # `cp -r` is often slower than one followed by `sync` (the page cache's
    # writeback, not the copy, sets its pace), and a copy that is as
    # durable as lifeboat's (which fsyncs every pack) is the fair peer.
    speed = min(m(cp), m(cp_sync)) / m(lb)
    speed_sync = m(cp_sync) / m(lb)
    version = run([LIFEBOAT, "version"]).stdout.split("\n")[0]
    lines = [
        BEGIN,
        "## Copy to a second region",
        "",
        f"`bench/copy.py`, {time.strftime('%Y-%m-%d')}, {version}; {os.cpu_count()} cores; "
        f"the repository of one backup of the bench tree ({repo_bytes / 2**20:.0f} MiB), "
        f"warm in the page cache, copied into a fresh directory on the same file system; "
        f"medians of {RUNS} runs.",
        "",
        "| measurement | seconds | lifeboat's speed ÷ cp's | target |",
        "|---|---:|---:|---:|",
        f"| `cp -r` of the repository (runs: {min(cp):.2f}–{max(cp):.2f}) | {m(cp):.2f} | | |",
        f"| `cp -r` of the repository, then `sync` | {m(cp_sync):.2f} | | |",
        f"| `lifeboat copy --to dr` (regions from `init --plan`: blob for blob) | {m(lb):.2f} | "
        f"{m(cp) / m(lb):.2f} against `cp -r`, {speed_sync:.2f} against `cp -r` + `sync` | ≥ 0.8 against the faster ({'met' if speed >= 0.8 else '**not met**'}) |",
        f"| `lifeboat copy --to-repo` into a repository that names blobs differently (re-identified) | {m(plain):.2f} | {m(cp) / m(plain):.2f} | |",
        f"| incremental copy after a small change and its backup | {m(inc):.2f} | | < 1 s ({'met' if m(inc) < 1 else '**not met**'}) |",
        f"| the same, re-identified | {m(inc_plain):.2f} | | |",
        "",
        "Runs: cp -r " + ", ".join(f"{x:.2f}" for x in cp)
        + "; cp -r + sync " + ", ".join(f"{x:.2f}" for x in cp_sync)
        + "; copy " + ", ".join(f"{x:.2f}" for x in lb)
        + "; re-identified " + ", ".join(f"{x:.2f}" for x in plain)
        + "; incremental " + ", ".join(f"{x:.2f}" for x in inc) + ".",
        "",
        "The copy is bound by the CPU: every blob is decrypted and sealed again for the "
        "destination's key (2 GB through XChaCha20-Poly1305 for 1 GB copied, on two cores; "
        "perf puts chacha20 and poly1305 first), where `cp` only moves bytes.",
        END,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    path = os.path.join(ROOT, "bench/RESULTS.md")
    text = open(path).read()
    if BEGIN in text:
        a, rest = text.split(BEGIN, 1)
        _, b = rest.split(END, 1)
        text = a + section.rstrip("\n") + b
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(path, "w").write(text)


if __name__ == "__main__":
    main()
