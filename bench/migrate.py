#!/usr/bin/env python3
"""Benchmark `shipgate migrate up` as whole processes on a throwaway PostgreSQL.

(a) 200 small migrations (a table with five columns and an index each) on a fresh database;
(b) the same command again with nothing pending;
(c) a mixed, real-world-sized set: 1,000 migrations with tables, enums, PL/pgSQL functions,
    views, DO blocks and indexes, as W1 (applied on a fresh database) and W2 (nothing
    pending), and the time shipgate spends reading and parsing those files alone (from its
    debug log, so without the database);
(d) one 50 MB migration file: the time to read and parse it, and the peak RSS;
(e) the lint: `migrate lint` over the 1,000 mixed files (no database), and W1 with the lint
    off (`--no-lint`) beside W1 with it on, measured in the same loop.
Prints min/median/max wall time and peak RSS over several runs, plus `psql -c 'select 1'`
measured in the same run as a yardstick (disk latency here swings a lot between hours, so
compare figures only within one run). Uses the release build; the server keeps fsync on.

usage: bench/migrate.py [--runs N] [--migrations N] [--mixed N] [--dbmate PATH] [--sqlx PATH]

--dbmate measures dbmate (e.g. from `npm install dbmate`) in the same loop, same server.
--sqlx measures sqlx-cli (`cargo install sqlx-cli --no-default-features --features
postgres,rustls`) on the mixed set, W1 and W2, in the same loop, same server.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env, ok=(0,)):
    """Run a command; return (seconds, peak RSS in MB). `ok`: the exit codes that are not a failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in ok:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def summary(label, samples, unit="ms"):
    ms = sorted(s * 1000 for s in samples)
    if os.environ.get("BENCH_SAMPLES"):
        print("   samples:", " ".join(f"{s * 1000:.0f}" for s in samples))
    print(f"{label:<44} min {ms[0]:8.1f} {unit}   median {statistics.median(ms):8.1f} {unit}   max {ms[-1]:8.1f} {unit}")


def mixed_migration(i):
    """The i-th file of the mixed set: one of six shapes real projects have, each building on
    tables made earlier."""
    kind = i % 6
    if kind == 0:
        return (f"CREATE TABLE m{i} (\n  id bigserial PRIMARY KEY,\n  name text NOT NULL,\n"
                f"  email text,\n  created_at timestamptz NOT NULL DEFAULT now(),\n  score numeric(10, 2)\n);\n"
                f"CREATE INDEX m{i}_name ON m{i} (name);\nCREATE UNIQUE INDEX m{i}_email ON m{i} (lower(email));\n"
                f"COMMENT ON TABLE m{i} IS 'table {i}; made by the mixed benchmark';\n")
    base = i - kind
    if kind == 1:
        return (f"CREATE TYPE m{i}_status AS ENUM ('draft', 'active', 'archived');\n"
                f"ALTER TABLE m{base} ADD COLUMN status m{i}_status NOT NULL DEFAULT 'draft';\n")
    if kind == 2:
        return (f"CREATE FUNCTION m{i}_touch() RETURNS trigger AS $fn$\nBEGIN\n"
                f"  -- keep created_at; a ';' in a comment; a 'quoted; string'\n"
                f"  IF NEW.name IS DISTINCT FROM OLD.name THEN\n    NEW.score := coalesce(OLD.score, 0) + 1;\n"
                f"  END IF;\n  RETURN NEW;\nEND;\n$fn$ LANGUAGE plpgsql;\n"
                f"CREATE TRIGGER m{i}_touch BEFORE UPDATE ON m{base} FOR EACH ROW EXECUTE FUNCTION m{i}_touch();\n")
    if kind == 3:
        return (f"CREATE VIEW m{i}_active AS\n  SELECT id, name, score FROM m{base}\n"
                f"  WHERE score > 0 /* nested /* comment */ here */ ORDER BY score DESC;\n")
    if kind == 4:
        return (f"DO $$\nDECLARE n int;\nBEGIN\n  INSERT INTO m{base} (name, email, score)\n"
                f"    SELECT 'user ' || g, 'u' || g || '@example.com', g FROM generate_series(1, 20) g;\n"
                f"  SELECT count(*) INTO n FROM m{base};\n  RAISE NOTICE 'm{base} has % rows; it''s fine', n;\nEND\n$$;\n")
    return (f"ALTER TABLE m{base} ADD COLUMN note text DEFAULT E'it\\'s a note';\n"
            f"CREATE INDEX m{i}_created ON m{base} (created_at DESC) WHERE note IS NOT NULL;\n")


def parse_ms(stderr):
    """The read-and-parse time from shipgate's debug log, in seconds."""
    found = re.search(r"read and parsed \d+ \.sql files \(\d+ bytes; \d+ up scripts needed the parser\) in ([0-9.]+) ms", stderr)
    if not found:
        sys.exit(f"no parse time in shipgate's log:\n{stderr}")
    return float(found.group(1)) / 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1,
                    help="uncounted runs first: a fresh cluster is slow until its WAL segments exist")
    ap.add_argument("--migrations", type=int, default=200)
    ap.add_argument("--mixed", type=int, default=1000, help="migrations in the mixed set (c)")
    ap.add_argument("--dbmate", help="path to a dbmate binary to measure in the same run")
    ap.add_argument("--sqlx", help="path to a sqlx-cli binary to measure on the mixed set in the same run")
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
        mixed = os.path.join(work, "mixed")
        os.mkdir(mixed)
        for i in range(args.mixed):
            with open(os.path.join(mixed, f"{i + 1:05d}_mixed_{i}.sql"), "w") as f:
                f.write(mixed_migration(i))
        big = os.path.join(work, "big")
        os.mkdir(big)
        with open(os.path.join(big, "1_big.sql"), "w") as f:
            f.write("CREATE TABLE big (id int, payload text);\n")
            row = "INSERT INTO big VALUES ({n}, 'a row of the fifty megabyte file; with a semicolon and ''quotes''');\n"
            size, n = 0, 0
            while size < 50 * 1024 * 1024:
                line = row.format(n=n)
                f.write(line)
                size += len(line)
                n += 1
        psql = ["psql", url, "-qAtc", "select 1"]
        apply, noop, yardstick, rss = [], [], [], []
        other_apply, other_noop = [], []
        w1, w2, parse, sqlx_w1, sqlx_w2, big_parse, big_rss = [], [], [], [], [], [], []
        w1_no_lint, lint_all = [], []
        for run in range(-args.warmup, args.runs):
            db = f"bench_{run + args.warmup}"
            subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {db}"], check=True)
            env = {"PATH": os.environ["PATH"], "DATABASE_URL": url.rsplit("/", 1)[0] + "/" + db,
                   "SHIPGATE_SOURCE": src, "HOME": os.environ.get("HOME", "/")}
            t, m = timed([shipgate, "migrate", "up", "--quiet"], env); apply.append(t); rss.append(m)
            t, m = timed([shipgate, "migrate", "up", "--quiet"], env); noop.append(t); rss.append(m)
            t, _ = timed(psql, env); yardstick.append(t)
            mixed_db = f"bench_mixed_{run + args.warmup}"
            subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {mixed_db}"], check=True)
            menv = {**env, "DATABASE_URL": url.rsplit("/", 1)[0] + "/" + mixed_db, "SHIPGATE_SOURCE": mixed}
            t, m = timed([shipgate, "migrate", "up", "--quiet"], menv); w1.append(t); rss.append(m)
            t, m = timed([shipgate, "migrate", "up", "--quiet"], menv); w2.append(t); rss.append(m)
            off_db = f"bench_nolint_{run + args.warmup}"
            subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {off_db}"], check=True)
            oenv = {**menv, "DATABASE_URL": url.rsplit("/", 1)[0] + "/" + off_db}
            t, _ = timed([shipgate, "migrate", "up", "--quiet", "--no-lint"], oenv); w1_no_lint.append(t)
            # Without a database each file is its own run, so the mixed set has findings: exit 1.
            t, _ = timed([shipgate, "migrate", "lint", "--quiet"], {**menv, "DATABASE_URL": ""}, ok=(0, 1))
            lint_all.append(t)
            parse.append(parse_ms(subprocess.run([shipgate, "-v", "migrate", "status"], env=menv, check=True,
                                                 capture_output=True, text=True).stderr))
            proc = subprocess.Popen([shipgate, "-v", "migrate", "status"], env={**env, "SHIPGATE_SOURCE": big},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            err = proc.stderr.read()
            _, _, usage = os.wait4(proc.pid, 0)
            big_parse.append(parse_ms(err)); big_rss.append(usage.ru_maxrss / 1024)
            if args.sqlx:
                sqlx_db = f"bench_sqlx_{run + args.warmup}"
                subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {sqlx_db}"], check=True)
                cmd = [args.sqlx, "migrate", "run", "--source", mixed, "--database-url",
                       url.rsplit("/", 1)[0] + "/" + sqlx_db]
                t, _ = timed(cmd, env); sqlx_w1.append(t)
                t, _ = timed(cmd, env); sqlx_w2.append(t)
            if args.dbmate:
                other = f"bench_dbmate_{run + args.warmup}"
                subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {other}"], check=True)
                denv = {**env, "DATABASE_URL": url.rsplit("/", 1)[0] + "/" + other + "?sslmode=disable"}
                cmd = [args.dbmate, "--no-dump-schema", "--migrations-dir", dbmate_src, "up"]
                t, _ = timed(cmd, denv); other_apply.append(t)
                t, _ = timed(cmd, denv); other_noop.append(t)
        for series in (apply, noop, yardstick, other_apply, other_noop, w1, w2, parse, sqlx_w1, sqlx_w2,
                       big_parse, big_rss, w1_no_lint, lint_all):
            del series[:args.warmup if series else 0]
        print(f"shipgate migrate up, {args.runs} runs after {args.warmup} warm-up, PostgreSQL from scripts/throwaway-pg (fsync on)")
        summary(f"(a) {args.migrations} migrations on a fresh database", apply)
        summary("(b) again, nothing pending", noop)
        if args.dbmate:
            summary(f"dbmate (a) {args.migrations} migrations", other_apply)
            summary("dbmate (b) nothing pending", other_noop)
        summary(f"(c) W1: {args.mixed} mixed migrations, fresh database", w1)
        summary("(c) W2: again, nothing pending", w2)
        summary("(e) W1 with --no-lint", w1_no_lint)
        print(f"{'(e) W1 lint cost (median on - median off)':<44} "
              f"{(statistics.median(w1) - statistics.median(w1_no_lint)) * 1000:+8.1f} ms "
              f"({(statistics.median(w1) / statistics.median(w1_no_lint) - 1) * 100:+.1f} %)")
        summary(f"(e) migrate lint, the {args.mixed} mixed files", lint_all)
        if args.sqlx:
            summary(f"sqlx-cli W1: {args.mixed} mixed migrations", sqlx_w1)
            summary("sqlx-cli W2: nothing pending", sqlx_w2)
        summary(f"(c) reading + parsing the {args.mixed} files alone", parse)
        summary("(d) reading + parsing one 50 MB file", big_parse)
        print(f"{'(d) peak RSS reading the 50 MB file':<44} {max(big_rss):.1f} MB")
        summary("yardstick: psql -c 'select 1'", yardstick)
        print(f"{'peak RSS of any shipgate run':<44} {max(rss):.1f} MB")
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/throwaway-pg"), "stop", pg])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
