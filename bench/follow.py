#!/usr/bin/env python3
"""Benchmark `shipgate task run` following a task, against moto (tests/moto/server.py).

(a) detection latency: from the moment the task is STOPPED (the test makes it stop at a random
    phase of the poll cycle) to the CLI's exit, log drain included, with the default 3 s tick;
(b) API calls per minute (ECS + CloudWatch Logs, counted by the emulator) while following one
    task that logs 10 lines a second for --follow-seconds;
(c) 100,000 log lines (half while running, half after the stop): every line printed exactly
    once and in order, and the CLI's peak RSS.

Targets (issue 3): (a) under 6 s; (b) at most 60 calls/min; (c) none lost or duplicated, under
50 MB. Uses the release build. Runs itself with the test virtualenv's Python (boto3, moto),
installing it as scripts/test does when missing.

usage: bench/follow.py [--runs N] [--follow-seconds S] [--lines N]
"""
import argparse, hashlib, json, os, random, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "tests/moto/requirements.txt")


def ensure_venv():
    """Re-run under the pinned emulator's virtualenv (never a moto that happens to be installed)."""
    digest = hashlib.sha256(open(REQUIREMENTS, "rb").read()).hexdigest()[:12]
    venv = os.path.expanduser(f"~/.cache/shipgate-moto-{digest}")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(os.path.join(venv, "bin/python")):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin/pip"), "install", "--quiet", "--no-deps", "-r", REQUIREMENTS], check=True)
    os.execv(os.path.join(venv, "bin/python"), [os.path.join(venv, "bin/python")] + sys.argv)


ensure_venv()
import boto3  # noqa: E402


def release_binary():
    """Build the release binary (into CARGO_TARGET_DIR, default ~/.cache/shipgate-target); its path."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/shipgate-target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": target})
    return os.path.join(target, "release", "shipgate")


class Moto:
    def __init__(self):
        self.control = tempfile.mkdtemp(prefix="shipgate-moto-")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests/moto/server.py"), "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "SHIPGATE_MOTO_CONTROL": self.control},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kw = dict(endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        for _ in range(100):
            try:
                boto3.client("ecs", **kw).list_clusters()
                break
            except Exception:
                time.sleep(0.1)
        self.ecs = boto3.client("ecs", **kw)
        self.logs = boto3.client("logs", **kw)
        self.ec2 = boto3.client("ec2", **kw)

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        return env

    def stop(self, task_arn, exit_code=0):
        task_id = task_arn.rsplit("/", 1)[1]
        tmp = os.path.join(self.control, task_id + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"exitCode": exit_code}, f)
        os.rename(tmp, os.path.join(self.control, task_id + ".json"))

    def calls(self):
        try:
            return open(os.path.join(self.control, "calls.log")).read().split()
        except FileNotFoundError:
            return []

    def close(self):
        self.proc.terminate()
        self.proc.wait()


class Setup:
    def __init__(self, moto, name):
        self.moto = moto
        self.cluster = f"bench-{name}-{random.randrange(1 << 32):08x}"
        self.family = self.cluster + "-migrate"
        self.group = "/ecs/" + self.family
        moto.ecs.create_cluster(clusterName=self.cluster)
        moto.logs.create_log_group(logGroupName=self.group)
        subnets = moto.ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        self.subnet = subnets[0]["SubnetId"]
        self.template = os.path.join(moto.control, self.family + ".json")
        with open(self.template, "w") as f:
            json.dump({
                "family": self.family, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
                "cpu": "256", "memory": "512",
                "containerDefinitions": [{
                    "name": "migrate", "image": "example.com/app:1", "memory": 512, "essential": True,
                    "logConfiguration": {"logDriver": "awslogs", "options": {
                        "awslogs-group": self.group, "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "db", "mode": "blocking"}}}]}, f)

    def start(self, shipgate):
        cmd = [shipgate, "task", "run", "--template", self.template, "--cluster", self.cluster,
               "--subnets", self.subnet, "--security-groups", "sg-12345678"]
        proc = subprocess.Popen(cmd, env=self.moto.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = {}
        readers = [threading.Thread(target=lambda k=k, p=p: out.__setitem__(k, p.read()), daemon=True)
                   for k, p in (("stdout", proc.stdout), ("stderr", proc.stderr))]
        for r in readers:
            r.start()
        for _ in range(600):
            arns = [a for a in self.moto.ecs.list_tasks(cluster=self.cluster)["taskArns"] if f"/{self.cluster}/" in a]
            if arns:
                return proc, readers, out, arns[0]
            time.sleep(0.02)
        sys.exit("the task never started:\n" + proc.stderr.read().decode())

    def stream(self, task_arn):
        return "db/migrate/" + task_arn.rsplit("/", 1)[1]

    def put(self, task_arn, lines, t0):
        stream = self.stream(task_arn)
        try:
            self.moto.logs.create_log_stream(logGroupName=self.group, logStreamName=stream)
        except self.moto.logs.exceptions.ResourceAlreadyExistsException:
            pass
        lines = list(lines)
        for i in range(0, len(lines), 10000):
            batch = [{"timestamp": t0 + n, "message": f"line {n:06d}"} for n in lines[i:i + 10000]]
            self.moto.logs.put_log_events(logGroupName=self.group, logStreamName=stream, logEvents=batch)


def finish(proc, readers):
    """Wait for the CLI; return its exit code and peak RSS in MB.

    The peak comes from VmHWM in /proc, sampled until exit: getrusage's ru_maxrss for a child
    includes the forked Python's memory from before exec, which would swamp the figure.
    """
    peak = 0
    path = f"/proc/{proc.pid}/status"
    while proc.poll() is None:
        try:
            for line in open(path):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.02)
    for r in readers:
        r.join()
    return proc.returncode, peak / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--follow-seconds", type=int, default=60)
    ap.add_argument("--lines", type=int, default=100_000)
    args = ap.parse_args()

    shipgate = release_binary()
    moto = Moto()
    try:
        # (a) detection latency, stopping at a random phase of the 3 s tick.
        latencies = []
        for _ in range(args.runs):
            s = Setup(moto, "detect")
            proc, readers, out, task = s.start(shipgate)
            time.sleep(3 + random.uniform(0, 3))
            stopped = time.perf_counter()
            moto.stop(task)
            code, _ = finish(proc, readers)
            latencies.append(time.perf_counter() - stopped)
            if code != 0:
                sys.exit(f"run failed ({code}): {out['stderr'].decode()}")
        ms = sorted(x * 1000 for x in latencies)
        print(f"(a) STOPPED -> exit (drain included), {args.runs} runs:  min {ms[0]:.0f} ms  "
              f"median {statistics.median(ms):.0f} ms  max {ms[-1]:.0f} ms   (target < 6000 ms)")

        # (b) API calls per minute while following one chatty task.
        s = Setup(moto, "rate")
        before = len(moto.calls())
        proc, readers, out, task = s.start(shipgate)
        t0 = int(time.time() * 1000) - 3_600_000
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < args.follow_seconds:
            s.put(task, range(n, n + 10), t0)
            n += 10
            time.sleep(1)
        window = time.perf_counter() - started
        calls = moto.calls()[before:]
        moto.stop(task)
        code, _ = finish(proc, readers)
        following = [c for c in calls if c in ("ecs:DescribeTasks", "logs:GetLogEvents")]
        per_min = len(following) / window * 60
        lines = out["stdout"].decode().splitlines()
        print(f"(b) calls while following for {window:.0f} s: {len(following)} "
              f"(DescribeTasks {following.count('ecs:DescribeTasks')}, GetLogEvents {following.count('logs:GetLogEvents')}) "
              f"= {per_min:.1f}/min   (target <= 60/min); {len(lines)}/{n} lines, exit {code}")

        # (c) many lines, half after the stop.
        s = Setup(moto, "lines")
        proc, readers, out, task = s.start(shipgate)
        t0 = int(time.time() * 1000) - 3_600_000
        half = args.lines // 2
        s.put(task, range(0, half), t0)
        time.sleep(2)
        moto.stop(task)
        s.put(task, range(half, args.lines), t0)
        code, rss = finish(proc, readers)
        printed = out["stdout"].decode().splitlines()
        expected = [f"line {i:06d}" for i in range(args.lines)]
        missing = len(set(expected) - set(printed))
        duplicated = len(printed) - len(set(printed))
        in_order = printed == expected
        print(f"(c) {args.lines} lines: printed {len(printed)}, missing {missing}, duplicated {duplicated}, "
              f"in order {in_order}, exit {code}, peak RSS {rss:.1f} MB   (target: exact, < 50 MB)")
    finally:
        moto.close()


if __name__ == "__main__":
    main()
