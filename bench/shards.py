#!/usr/bin/env python3
"""Benchmark the API budget of a sharded deploy against moto (tests/moto/server.py).

`shipgate deploy` with `tenants = true` and `tenant_shards = N` for N in 1, 4 and 16: each
migration task logs 10 lines a second (MOTO_LOG_PER_SECOND) for --seconds. While the N
tenant tasks run, the emulator counts the calls by API; afterwards the bench counts the lines
the deploy printed against the lines the tasks wrote, and the time from the last task's stop
to the deploy's exit.

Targets (issue 21, section 5): DescribeTasks calls a minute independent of N; GetLogEvents
calls within the shared budget (5 a second by default); no line lost. Uses the release build;
runs itself with the test virtualenv's Python (boto3, moto), as bench/follow.py does.

usage: bench/shards.py [--seconds S] [--shards 1,4,16]
"""
import argparse, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from follow import Moto, release_binary  # noqa: E402  (re-runs this script under the emulator's virtualenv)

RATE = 10

MIGRATION = """{
  "family": "FAMILY", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
  "cpu": "256", "memory": "512",
  "containerDefinitions": [{
    "name": "migrate", "image": "example.com/app:${IMAGE_TAG}", "memory": 512, "essential": true,
    "environment": [{"name": "MOTO_RUN_SECONDS", "value": "@SECONDS@"}, {"name": "MOTO_LOG_PER_SECOND", "value": "@RATE@"}],
    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "GROUP", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "db", "mode": "blocking"}}
  }]
}"""


def measure(moto, shipgate, shards, seconds):
    name = f"shards{shards}-{int(time.time() * 1000) % 10**8}"
    cluster, family = f"bench-{name}", f"bench-{name}-migrate"
    group = "/ecs/" + family
    moto.ecs.create_cluster(clusterName=cluster)
    moto.logs.create_log_group(logGroupName=group)
    subnet = moto.ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]["SubnetId"]
    work = tempfile.mkdtemp(prefix="shipgate-shards-")
    with open(os.path.join(work, "migration.json"), "w") as f:
        f.write(MIGRATION.replace("FAMILY", family).replace("GROUP", group)
                .replace("@SECONDS@", str(seconds)).replace("@RATE@", str(RATE)))
    config = os.path.join(work, "shipgate.toml")
    with open(config, "w") as f:
        f.write(f'[env.bench]\nregion = "us-east-1"\ncluster = "{cluster}"\nsubnets = ["{subnet}"]\n'
                f'security_groups = ["sg-12345678"]\nmigration_task = {{ template = "migration.json", container = "migrate" }}\n'
                f'services = []\ntenants = true\ntenant_shards = {shards}\n')
    cmd = [shipgate, "deploy", "--env", "bench", "--config", config, "--var", "IMAGE_TAG=1", "--run-id", name]
    out_path, err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, env=moto.env(), stdout=out, stderr=err)
        # The window: from every tenant task running to a few seconds before the first stops.
        while len(tenant_tasks(moto, cluster)) < shards:
            if proc.poll() is not None:
                sys.exit(f"the deploy ended early: {open(err_path).read()}")
            time.sleep(0.2)
        started = time.time()
        before = len(moto.calls())
        time.sleep(max(seconds - 15, 5))
        window = time.time() - started
        calls = moto.calls()[before:]
        proc.wait()
        ended = time.time()
    printed = open(out_path).read().splitlines() + open(err_path).read().splitlines()
    seen = {m.group(1) + " " + m.group(2) for m in (re.search(r"line ([0-9a-f-]+) (\d{6})", l) for l in printed) if m}
    tasks = {s.split()[0] for s in seen}
    expected = (shards + 1) * RATE * seconds
    describe = calls.count("ecs:DescribeTasks") / window * 60
    reads = calls.count("logs:GetLogEvents") / window * 60
    # The last task stopped `seconds` after the last start; the deploy saw it at its next round.
    latency = ended - (last_start(moto, cluster) + seconds)
    print(f"{shards:>2} shards: DescribeTasks {describe:6.1f}/min  GetLogEvents {reads:6.1f}/min "
          f"({reads / 60:4.2f}/s)  lines {len(seen)}/{expected} from {len(tasks)} tasks, lost {expected - len(seen)}  "
          f"last stop -> exit {latency:5.1f} s  exit {proc.returncode}")
    return proc.returncode


def tenant_tasks(moto, cluster):
    """The running tasks of the tenant step (MIGRATION_TYPE=tenants in their overrides)."""
    arns = moto.ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
    tasks = moto.ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks
            if any(e["name"] == "MIGRATION_TYPE" and e["value"] == "tenants"
                   for o in t.get("overrides", {}).get("containerOverrides", []) for e in o.get("environment", []))]


def last_start(moto, cluster):
    arns = moto.ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"]
    tasks = moto.ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return max(t["createdAt"].timestamp() for t in tasks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--shards", default="1,4,16")
    args = ap.parse_args()
    shipgate = release_binary()
    moto = Moto()
    try:
        print(f"each task logs {RATE} lines/s for {args.seconds} s; calls counted while the tenant tasks run")
        for n in (int(x) for x in args.shards.split(",")):
            measure(moto, shipgate, n, args.seconds)
    finally:
        moto.close()


if __name__ == "__main__":
    main()
