#!/usr/bin/env python3
"""Benchmark `shipgate migrate up` as whole processes on a throwaway PostgreSQL.

(a) 200 small migrations (a table with five columns and an index each) on a fresh database;
(b) the same command again with nothing pending.
Prints min/median/max wall time and peak RSS over several runs, plus `psql -c 'select 1'`
measured in the same run as a yardstick (disk latency here swings a lot between hours, so
compare figures only within one run). Uses the release build; the server keeps fsync on.

usage: bench/migrate.py [--runs N] [--migrations N] [--dbmate PATH]

--dbmate measures dbmate (e.g. from `npm install dbmate`) in the same loop, same server.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env):
    """Run a command; return (seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def summary(label, samples, unit="ms"):
    ms = sorted(s * 1000 for s in samples)
    if os.environ.get("BENCH_SAMPLES"):
        print("   samples:", " ".join(f"{s * 1000:.0f}" for s in samples))
    print(f"{label:<44} min {ms[0]:8.1f} {unit}   median {statistics.median(ms):8.1f} {unit}   max {ms[-1]:8.1f} {unit}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1,
                    help="uncounted runs first: a fresh cluster is slow until its WAL segments exist")
    ap.add_argument("--migrations", type=int, default=200)
    ap.add_argument("--dbmate", help="path to a dbmate binary to measure in the same run")
    args = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/shipgate-target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": target})
    shipgate = os.path.join(target, "release", "shipgate")

    work = tempfile.mkdtemp(prefix="shipgate-bench-")
    os.chmod(work, 0o755)
    pg = os.path.join(work, "pg")
    url = subprocess.run([os.path.join(ROOT, "scripts/throwaway-pg"), "start", pg], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        src = os.path.join(work, "migrations")
        os.mkdir(src)
        for i in range(1, args.migrations + 1):
            with open(os.path.join(src, f"{i:04d}_table_{i}.sql"), "w") as f:
                f.write(f"CREATE TABLE t{i} (id bigserial PRIMARY KEY, a int NOT NULL, b text,\n"
                        f"  c timestamptz NOT NULL DEFAULT now(), d boolean);\n"
                        f"CREATE INDEX t{i}_a ON t{i} (a);\n")
        dbmate_src = os.path.join(work, "dbmate")
        if args.dbmate:
            os.mkdir(dbmate_src)
            for i in range(1, args.migrations + 1):
                with open(os.path.join(src, f"{i:04d}_table_{i}.sql")) as f, \
                        open(os.path.join(dbmate_src, f"{i:04d}_table_{i}.sql"), "w") as out:
                    out.write("-- migrate:up\n" + f.read() + "\n-- migrate:down\n")
        psql = ["psql", url, "-qAtc", "select 1"]
        apply, noop, yardstick, rss = [], [], [], []
        other_apply, other_noop = [], []
        for run in range(-args.warmup, args.runs):
            db = f"bench_{run + args.warmup}"
            subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {db}"], check=True)
            env = {"PATH": os.environ["PATH"], "DATABASE_URL": url.rsplit("/", 1)[0] + "/" + db,
                   "SHIPGATE_SOURCE": src, "HOME": os.environ.get("HOME", "/")}
            t, m = timed([shipgate, "migrate", "up", "--quiet"], env); apply.append(t); rss.append(m)
            t, m = timed([shipgate, "migrate", "up", "--quiet"], env); noop.append(t); rss.append(m)
            t, _ = timed(psql, env); yardstick.append(t)
            if args.dbmate:
                other = f"bench_dbmate_{run + args.warmup}"
                subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {other}"], check=True)
                denv = {**env, "DATABASE_URL": url.rsplit("/", 1)[0] + "/" + other + "?sslmode=disable"}
                cmd = [args.dbmate, "--no-dump-schema", "--migrations-dir", dbmate_src, "up"]
                t, _ = timed(cmd, denv); other_apply.append(t)
                t, _ = timed(cmd, denv); other_noop.append(t)
        for series in (apply, noop, yardstick, other_apply, other_noop):
            del series[:args.warmup if series else 0]
        print(f"shipgate migrate up, {args.runs} runs after {args.warmup} warm-up, PostgreSQL from scripts/throwaway-pg (fsync on)")
        summary(f"(a) {args.migrations} migrations on a fresh database", apply)
        summary("(b) again, nothing pending", noop)
        if args.dbmate:
            summary(f"dbmate (a) {args.migrations} migrations", other_apply)
            summary("dbmate (b) nothing pending", other_noop)
        summary("yardstick: psql -c 'select 1'", yardstick)
        print(f"{'peak RSS of any shipgate run':<44} {max(rss):.1f} MB")
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/throwaway-pg"), "stop", pg])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
