#!/usr/bin/env python3
"""Benchmark `shipgate tenants up` as whole processes on a throwaway PostgreSQL.

N tenant schemas (default 1,000) x M small migrations (default 10: a table with five columns
and an index each), all measured in the same run, each on a fresh database:
  (a) `shipgate tenants up` at the default concurrency (8);
  (b) `shipgate tenants up --concurrency 1`;
  (c) the seed's way: one Node.js process looping over the tenants one at a time with Knex's
      migrator (`knex.migrate.latest({ schemaName })`), as seed 000's entrypoint does. Knex and
      pg are installed from npm (pinned) under ~/.cache the first time; --no-knex skips it.
Then `shipgate tenants status` over the migrated fleet, and `tenants up` again with nothing
pending. Prints wall time and peak RSS. Uses the release build; the server keeps fsync on.

usage: bench/tenants.py [--tenants N] [--migrations M] [--runs R] [--no-knex]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KNEX = {"knex": "3.3.0", "pg": "8.23.1"}

KNEX_LOOP = r"""
const knex = require('knex');
const [url, dir] = process.argv.slice(2);
(async () => {
  const db = knex({ client: 'pg', connection: url, pool: { min: 1, max: 1 } });
  const { rows } = await db.raw('SELECT schema_name FROM tenants ORDER BY schema_name');
  for (const { schema_name } of rows) {
    // schemaName moves only Knex's own tables; the migrations follow the search_path of the
    // pool's one connection, as in seed 000's loop.
    await db.raw('SET search_path TO ??', [schema_name]);
    await db.migrate.latest({ directory: dir, schemaName: schema_name, loadExtensions: ['.js'] });
  }
  await db.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def timed(cmd, env, cwd):
    """Run a command in `cwd` (away from the repository's shipgate.toml); return (seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def knex_install():
    home = os.path.expanduser("~/.cache/shipgate-bench-knex-" + "-".join(f"{k}{v}" for k, v in KNEX.items()))
    if not os.path.isdir(os.path.join(home, "node_modules", "knex")):
        os.makedirs(home, exist_ok=True)
        print(f"installing {', '.join(f'{k}@{v}' for k, v in KNEX.items())} into {home}", file=sys.stderr)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", home]
                       + [f"{k}@{v}" for k, v in KNEX.items()], check=True)
    return home


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--migrations", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-knex", action="store_true")
    args = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/shipgate-target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": target})
    shipgate = os.path.join(target, "release", "shipgate")
    knex_home = None if args.no_knex or not shutil.which("node") else knex_install()

    work = tempfile.mkdtemp(prefix="shipgate-bench-")
    os.chmod(work, 0o755)
    pg = os.path.join(work, "pg")
    url = subprocess.run([os.path.join(ROOT, "scripts/throwaway-pg"), "start", pg], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        src = os.path.join(work, "migrations")
        os.makedirs(os.path.join(src, "master"))
        os.makedirs(os.path.join(src, "tenant"))
        knex_dir = os.path.join(work, "knex")
        os.mkdir(knex_dir)
        with open(os.path.join(src, "master", "0001_tenants.sql"), "w") as f:
            f.write("CREATE TABLE tenants (schema_name text PRIMARY KEY);\n")
        for i in range(1, args.migrations + 1):
            sql = (f"CREATE TABLE t{i} (id bigserial PRIMARY KEY, a int NOT NULL, b text,\n"
                   f"  c timestamptz NOT NULL DEFAULT now(), d boolean);\n"
                   f"CREATE INDEX t{i}_a ON t{i} (a);\n")
            with open(os.path.join(src, "tenant", f"{i:04d}_table_{i}.sql"), "w") as f:
                f.write(sql)
            with open(os.path.join(knex_dir, f"{i:04d}_table_{i}.js"), "w") as f:
                f.write(f"exports.up = (knex) => knex.raw({sql!r});\nexports.down = () => {{}};\n")
        loop = os.path.join(work, "knex-loop.js")
        with open(loop, "w") as f:
            f.write(KNEX_LOOP)

        n = 0

        def fresh_fleet():
            nonlocal n
            n += 1
            db = f"bench_{n}"
            subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {db}"], check=True)
            dburl = url.rsplit("/", 1)[0] + "/" + db
            subprocess.run(["psql", dburl, "-qc", "CREATE TABLE tenants (schema_name text PRIMARY KEY);"
                            f"INSERT INTO tenants SELECT format('tenant_%s', g) FROM generate_series(1, {args.tenants}) g;"
                            "DO $$ DECLARE t text; BEGIN FOR t IN SELECT schema_name FROM tenants LOOP "
                            "EXECUTE format('CREATE SCHEMA %I', t); END LOOP; END $$;"], check=True)
            return {"PATH": os.environ["PATH"], "DATABASE_URL": dburl, "SHIPGATE_SOURCE": src,
                    "HOME": os.environ.get("HOME", "/")}

        results = {k: [] for k in ("default", "c1", "knex", "status", "noop")}
        rss = []
        for _ in range(args.runs):
            env = fresh_fleet()
            t, m = timed([shipgate, "tenants", "up", "--quiet"], env, work); results["default"].append(t); rss.append(m)
            t, m = timed([shipgate, "tenants", "status", "--quiet"], env, work); results["status"].append(t); rss.append(m)
            t, m = timed([shipgate, "tenants", "up", "--quiet"], env, work); results["noop"].append(t); rss.append(m)
            env = fresh_fleet()
            t, m = timed([shipgate, "tenants", "up", "--quiet", "--concurrency", "1"], env, work)
            results["c1"].append(t); rss.append(m)
            if knex_home:
                env = fresh_fleet()
                kenv = {**env, "NODE_PATH": os.path.join(knex_home, "node_modules")}
                t, _ = timed(["node", loop, env["DATABASE_URL"], knex_dir], kenv, work); results["knex"].append(t)

        fleet = f"{args.tenants} tenants x {args.migrations} migrations"
        print(f"shipgate tenants, {fleet}, {args.runs} run(s), PostgreSQL from scripts/throwaway-pg (fsync on), {os.cpu_count()} cores")
        med = {k: statistics.median(v) for k, v in results.items() if v}
        print(f"{'(a) tenants up (default concurrency 8)':<48} {med['default']:8.2f} s")
        print(f"{'(b) tenants up --concurrency 1':<48} {med['c1']:8.2f} s   (a) is {med['c1'] / med['default']:.2f}x faster")
        if "knex" in med:
            print(f"{'(c) the seed way: Knex, one tenant at a time':<48} {med['knex']:8.2f} s   (a) is {med['knex'] / med['default']:.2f}x faster")
        print(f"{'tenants status over the migrated fleet':<48} {med['status']:8.2f} s")
        print(f"{'tenants up again, nothing pending':<48} {med['noop']:8.2f} s")
        print(f"{'peak RSS of any shipgate run':<48} {max(rss):8.1f} MB")
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/throwaway-pg"), "stop", pg])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
