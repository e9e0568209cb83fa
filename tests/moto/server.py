#!/usr/bin/env python3
"""moto in server mode, taught how ECS tasks really end.

Plain moto reports exit code 0 for every container, never sets stopCode or stoppedAt, and
advances a task's status one step per DescribeTasks. Tests need tasks that run until *they*
decide, then stop the way Fargate stops them. This launcher patches moto's ECS backend:

* A task stays RUNNING (container RUNNING, no exit code) until one of:
  - the file $SHIPGATE_MOTO_CONTROL/<task id>.json appears:
    {"exitCode": 3, "stopCode": "EssentialContainerExited", "stoppedReason": "...", "reason": "..."}
    (every key optional; exitCode null means the container never ran);
  - MOTO_RUN_SECONDS (container override or task-definition environment) have passed since
    RunTask; the exit code is then MOTO_EXIT_CODE (default 0).
  It then reports STOPPED with desiredStatus, stopCode, stoppedReason, stoppedAt and the
  container's exitCode, as ECS does.
* StopTask gives stopCode UserInitiated and exit code 143 (a container that handles SIGTERM).
* Services roll out as ECS rolls them: UpdateService with a new task definition adds a
  PRIMARY deployment (IN_PROGRESS, the full task definition ARN) and makes the old ones
  ACTIVE. At DescribeServices the new deployment settles as the file
  $SHIPGATE_MOTO_CONTROL/service-<name>.json says: {"rollout": "COMPLETED"} (the default,
  one second after the update) replaces the old deployments; {"rollout": "FAILED"} trips the
  circuit breaker (FAILED, failedTasks, a PRIMARY rollback deployment to the previous task
  definition). `forceNewDeployment` adds one with the same task definition. Plain moto keeps
  one static deployment whatever UpdateService says.
* A migration task started with MIGRATION_PHASE=pre writes the phase report shipgate's runner
  ends a pre run with to its awslogs stream, with MOTO_POST_WAITING (default 0) post
  migrations waiting, so the deploy decides on its post phase as it does on ECS.
* A task whose environment sets MOTO_LOG_PER_SECOND writes that many lines a second to its
  awslogs stream while it runs (`line <task id> <n>`, n from 0), from a thread of the server,
  whether or not anybody asks: what a chatty migration does, for benchmarks that count lines.
* Every ECS and CloudWatch Logs call is appended to $SHIPGATE_MOTO_CONTROL/calls.log (one
  action name per line), so benchmarks can count API calls; each DescribeTasks call's number
  of tasks goes to describe-tasks.log, so tests can see calls shared by several followers.

Usage: server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server). Pinned to moto 5.2.5
(tests/moto/requirements.txt): it relies on that version's model attribute names.
"""
import datetime
import json
import os
import threading
import time

from moto import server
from moto.ecs import models as ecs
from moto.logs import models as logs
from moto.moto_api import state_manager

CONTROL = os.environ.get("SHIPGATE_MOTO_CONTROL", "")
_calls_lock = threading.Lock()


def record(action):
    if not CONTROL:
        return
    with _calls_lock, open(os.path.join(CONTROL, "calls.log"), "a") as f:
        f.write(action + "\n")


def counted(cls, method, action):
    original = getattr(cls, method)

    def wrapper(self, *args, **kwargs):
        record(action)
        return original(self, *args, **kwargs)

    setattr(cls, method, wrapper)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


original_describe_task_definition = ecs.EC2ContainerServiceBackend.describe_task_definition


def env_of(task):
    """Task-definition environment of the first container, overridden by RunTask overrides."""
    env = {}
    td = original_describe_task_definition(task._backend, task.task_definition_arn)
    for pair in td.container_definitions[0].get("environment") or []:
        env[pair["name"]] = pair.get("value", "")
    for override in task.overrides.get("containerOverrides", []) or []:
        for pair in override.get("environment") or []:
            env[pair["name"]] = pair.get("value", "")
    return env


def stop(task, exit_code, stop_code, stopped_reason, container_reason=None, at=None):
    """Stop a task as ECS reports it; `at` is when it stopped (default: now)."""
    task.stopped_at = at or now()
    task.status = "STOPPED"
    flush_chatter(task)
    task.desired_status = "STOPPED"
    task.stop_code = stop_code
    task.stopped_reason = stopped_reason
    task.stopping_at = task.stopped_at = task.execution_stopped_at = at or now()
    for container in task.containers:
        container.last_status = "STOPPED"
        container.exitCode = exit_code
        if container_reason:
            container.reason = container_reason


def settle(task):
    """Decide, at DescribeTasks time, whether a running task has stopped."""
    if task.status == "STOPPED":
        return
    control = os.path.join(CONTROL, f"{task.id}.json") if CONTROL else ""
    if control and os.path.exists(control):
        with open(control) as f:
            spec = json.load(f)
        stop(
            task,
            spec.get("exitCode", 0),
            spec.get("stopCode", "EssentialContainerExited"),
            spec.get("stoppedReason", "Essential container in task exited"),
            spec.get("reason"),
            # The task stopped when the test said so, not when someone next asked.
            datetime.datetime.fromtimestamp(os.path.getmtime(control), datetime.timezone.utc),
        )
        return
    env = env_of(task)
    seconds = env.get("MOTO_RUN_SECONDS")
    if seconds is not None and time.time() - task.shipgate_created >= float(seconds):
        at = datetime.datetime.fromtimestamp(task.shipgate_created + float(seconds), datetime.timezone.utc)
        stop(task, int(env.get("MOTO_EXIT_CODE", "0")), "EssentialContainerExited", "Essential container in task exited", at=at)


original_run_task = ecs.EC2ContainerServiceBackend.run_task


def awslogs_stream(backend, task):
    """(logs backend, group, stream) of a task's first container's awslogs stream, or None."""
    td = original_describe_task_definition(backend, task.task_definition_arn)
    container = td.container_definitions[0]
    options = (container.get("logConfiguration") or {}).get("options") or {}
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    if not group or not prefix:
        return None
    backend_logs = logs.logs_backends[backend.account_id][options.get("awslogs-region", backend.region_name)]
    return backend_logs, group, f"{prefix}/{container['name']}/{task.id}"


def ensure_stream(stream):
    backend_logs, group, name = stream
    try:
        backend_logs.create_log_stream(group, name)
    except logs.ResourceAlreadyExistsException:
        pass


def write_phase_report(task, stream):
    """The line a `--phase pre` run ends with, in the task's first awslogs stream."""
    env = env_of(task)
    if env.get("MIGRATION_PHASE") != "pre":
        return
    ensure_stream(stream)
    backend_logs, group, name = stream
    report = {"phase": "pre", "set": env.get("MIGRATION_TYPE", "master"), "applied": 0,
              "waiting": int(env.get("MOTO_POST_WAITING", "0"))}
    line = "shipgate:phase-report " + json.dumps(report, separators=(",", ":"))
    # Stamped just before the task's first line (MOTO_LOG_PER_SECOND), so the stream's events
    # are in the order they were written, as one container's are: moto sorts them by time.
    at = int(task.shipgate_created * 1000) - 1
    backend_logs.put_log_events(group, name, [{"timestamp": at, "message": line}])


_chatty = []
_chatty_lock = threading.Lock()


def write_due(entry, now):
    """Write one self-logging task's lines due by `now` (never past its stop); True when it is
    done for good."""
    task, backend_logs, group, stream, rate, seconds = entry["args"]
    end = now if seconds is None else min(now, task.shipgate_created + seconds)
    if task.status == "STOPPED":
        end = min(end, task.stopped_at.timestamp())
    # With a millisecond to spare: 3 s at 10 a second is 30 lines, even when the stop time
    # went through a datetime (microseconds) and came back as 2.9999995 s.
    due = int((end - task.shipgate_created) * rate + 1e-3)
    events = [{"timestamp": int((task.shipgate_created + n / rate) * 1000),
               "message": f"line {task.id} {n:06d}"} for n in range(entry["written"], due)]
    if events:
        backend_logs.put_log_events(group, stream, events)
        entry["written"] = due
    return task.status == "STOPPED" and entry["written"] >= due


def chatter():
    """Write the due lines of every task that logs by itself (MOTO_LOG_PER_SECOND)."""
    while True:
        time.sleep(0.1)
        with _chatty_lock:
            for entry in list(_chatty):
                if write_due(entry, time.time()):
                    _chatty.remove(entry)


def flush_chatter(task):
    """A stopping task's last lines, written before anyone sees it STOPPED: the awslogs driver
    in blocking mode has delivered a container's output by the time its task stops (a busy
    emulator must not make the fixture, rather than shipgate, lose them)."""
    with _chatty_lock:
        for entry in list(_chatty):
            if entry["args"][0] is task and write_due(entry, time.time()):
                _chatty.remove(entry)


def start_chatter(task, stream):
    env = env_of(task)
    rate = env.get("MOTO_LOG_PER_SECOND")
    if not rate or float(rate) <= 0:
        return
    ensure_stream(stream)
    backend_logs, group, name = stream
    seconds = env.get("MOTO_RUN_SECONDS")
    with _chatty_lock:
        _chatty.append({"args": (task, backend_logs, group, name, float(rate),
                                 None if seconds is None else float(seconds)), "written": 0})


threading.Thread(target=chatter, name="chatter", daemon=True).start()


def run_task(self, *args, **kwargs):
    record("ecs:RunTask")
    tasks = original_run_task(self, *args, **kwargs)
    for task in tasks:
        task.shipgate_created = time.time()
        task.created_at = task.started_at = now()
        for container in task.containers:
            container.last_status = "RUNNING"
            container.exitCode = None
        stream = awslogs_stream(self, task)
        if stream:
            write_phase_report(task, stream)
            start_chatter(task, stream)
    return tasks


original_describe_tasks = ecs.EC2ContainerServiceBackend.describe_tasks


def describe_tasks(self, cluster_str, tasks):
    record("ecs:DescribeTasks")
    if CONTROL:
        with _calls_lock, open(os.path.join(CONTROL, "describe-tasks.log"), "a") as f:
            f.write(f"{len(tasks)}\n")
    found = original_describe_tasks(self, cluster_str, tasks)
    for task in found:
        settle(task)
    return found


original_stop_task = ecs.EC2ContainerServiceBackend.stop_task


def stop_task(self, cluster_str, task_str, reason):
    record("ecs:StopTask")
    task = original_stop_task(self, cluster_str, task_str, reason)
    stop(task, 143, "UserInitiated", reason)
    return task


original_update_service = ecs.EC2ContainerServiceBackend.update_service


def new_deployment(service, task_definition_arn, state="IN_PROGRESS", suffix=""):
    deployment_id = f"ecs-svc/{int(time.time() * 1e6)}{suffix}"
    return {
        "createdAt": now(),
        "updatedAt": now(),
        "desiredCount": service.desired_count,
        "failedTasks": 0,
        "id": deployment_id,
        "launchType": service.launch_type,
        "pendingCount": service.desired_count,
        "rolloutState": state,
        "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        "runningCount": 0,
        "platformFamily": "FARGATE",
        "status": "PRIMARY",
        "taskDefinition": task_definition_arn,
        "shipgate_started": time.time(),
    }


def update_service(self, service_properties):
    record("ecs:UpdateService")
    task_definition_str = service_properties.get("task_definition")
    service = original_update_service(self, service_properties)
    if task_definition_str:
        arn = original_describe_task_definition(self, task_definition_str).arn
        service.task_definition = arn
        primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
        forced = service_properties.get("force_new_deployment") in (True, "true")
        if primary is None or primary["taskDefinition"] != arn or forced:
            for d in service.deployments:
                d["status"] = "ACTIVE"
            service.deployments.insert(0, new_deployment(service, arn))
    return service


def settle_service(service):
    """Decide, at DescribeServices time, how an in-progress rollout went."""
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None or primary.get("rolloutState") != "IN_PROGRESS" or "shipgate_started" not in primary:
        return
    control = os.path.join(CONTROL, f"service-{service.name}.json") if CONTROL else ""
    spec = {}
    if control and os.path.exists(control):
        with open(control) as f:
            spec = json.load(f)
    elif time.time() - primary["shipgate_started"] < 1:
        return
    if spec.get("rollout") == "FAILED" and not primary["id"].endswith("r"):
        previous = next((d for d in service.deployments if d["status"] == "ACTIVE"), None)
        primary.update(status="ACTIVE", rolloutState="FAILED", failedTasks=spec.get("failedTasks", 3),
                       rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.")
        service.deployments = [primary]
        if previous is not None:
            service.task_definition = previous["taskDefinition"]
            service.deployments.insert(0, new_deployment(service, previous["taskDefinition"], suffix="r"))
        return
    primary.update(rolloutState="COMPLETED", runningCount=service.desired_count, pendingCount=0,
                   rolloutStateReason=f"ECS deployment {primary['id']} completed.")
    service.deployments = [primary]
    service.running_count = service.desired_count
    service.events.insert(0, {"id": f"ev-{int(time.time() * 1e6)}", "createdAt": now(),
                              "message": f"(service {service.name}) has reached a steady state."})


original_describe_services = ecs.EC2ContainerServiceBackend.describe_services


def describe_services(self, cluster_str, service_names_or_arns):
    record("ecs:DescribeServices")
    found, failures = original_describe_services(self, cluster_str, service_names_or_arns)
    for service in found:
        settle_service(service)
    return found, failures


ecs.EC2ContainerServiceBackend.update_service = update_service
ecs.EC2ContainerServiceBackend.describe_services = describe_services
ecs.EC2ContainerServiceBackend.run_task = run_task
ecs.EC2ContainerServiceBackend.describe_tasks = describe_tasks
ecs.EC2ContainerServiceBackend.stop_task = stop_task
for method, action in [
    ("list_tasks", "ecs:ListTasks"),
    ("describe_task_definition", "ecs:DescribeTaskDefinition"),
    ("register_task_definition", "ecs:RegisterTaskDefinition"),
]:
    counted(ecs.EC2ContainerServiceBackend, method, action)
counted(logs.LogsBackend, "get_log_events", "logs:GetLogEvents")

# Status changes come only from the patches above, never from moto's per-describe stepping.
state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})

if __name__ == "__main__":
    server.main()
