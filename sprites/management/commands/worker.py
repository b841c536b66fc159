"""Run the task worker: django-tasks-db's `db_worker` loop with leases, N worker processes."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Command as DBWorkerCommand

from sprites import worker as task_worker


class Command(DBWorkerCommand):
    help = (
        "Run background tasks (sprite set-ups, pool refills, the console's bulk actions) from the "
        "database queue: --processes worker processes (default TASK_WORKER_PROCESSES), each "
        "claiming one task at a time with FOR UPDATE SKIP LOCKED, restarted if one dies. Run it on "
        "any number of hosts against one PostgreSQL. A task whose worker dies (SIGKILL, OOM, a lost "
        "host) runs again on another worker within seconds (TASK_REAP_SECONDS). SIGTERM/SIGINT: "
        "finish the running tasks, then exit; a second signal exits at once (the tasks then run "
        "again elsewhere)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--processes", type=int, default=None,
                            help="Worker processes (default TASK_WORKER_PROCESSES); 1 runs the loop here.")
        parser.add_argument("--child", action="store_true", help="(internal) one process of a --processes N worker")
        parser.set_defaults(queue_name="*", reload=False)

    def handle(self, *, verbosity, queue_name, interval, batch, backend_name, startup_delay, max_tasks,
               worker_id, exclude_queues, processes=None, child=False, **options):
        self.configure_logging(verbosity)
        processes = processes or settings.TASK_WORKER_PROCESSES
        worker_id = worker_id[:24] if worker_id else get_random_string(12)
        if not child:
            task_worker.reset_orphans_sqlite()
        if processes == 1:
            self.stdout.write(f"Task worker {worker_id}: queues {queue_name}, pid {os.getpid()}")
            task_worker.run(
                worker_id=worker_id, queue_names=queue_name.split(","), interval=interval, batch=batch,
                backend_name=backend_name, startup_delay=startup_delay, max_tasks=max_tasks,
                excluded_queue_names=exclude_queues.split(",") if exclude_queues else [],
            )
            return
        argv = [sys.executable, "-m", "django", "worker", "--child", "--processes", "1", "--queue-name", queue_name,
                "--interval", str(interval), "--backend", backend_name, "-v", str(verbosity), "--skip-checks"]
        if exclude_queues:
            argv += ["--exclude-queues", exclude_queues]
        self.supervise(argv, processes, worker_id)

    def supervise(self, argv: list[str], processes: int, worker_id: str) -> None:
        """Keep `processes` children running (one restarted a second after it dies); on
        SIGTERM/SIGINT pass the signal on and wait for them to finish their tasks."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "clawdirector.settings")}
        children: dict[int, subprocess.Popen] = {}
        stopping = []

        def spawn(i: int) -> None:
            # Their own session: a terminal's Ctrl-C reaches only this process, which passes one
            # SIGTERM on (a second signal makes a worker abandon its task).
            children[i] = subprocess.Popen([*argv, "--worker-id", f"{worker_id}-{i}"], env=env, start_new_session=True)

        def on_signal(signum, frame):
            stopping.append(signum)
            for proc in children.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL if len(stopping) > 1 else signal.SIGTERM)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        for i in range(processes):
            spawn(i)
        self.stdout.write(f"Task worker {worker_id}: {processes} processes, pid {os.getpid()}")
        while True:
            time.sleep(0.5)
            if stopping:
                if all(proc.poll() is not None for proc in children.values()):
                    return
                continue
            for i, proc in list(children.items()):
                if proc.poll() is not None:
                    self.stderr.write(f"Worker process {proc.pid} exited ({proc.returncode}); starting another")
                    time.sleep(1)
                    spawn(i)
