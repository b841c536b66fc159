"""Run the task worker: django-tasks-db's `db_worker`, N loops per process, with leases."""

import os
import signal
import threading

from django.conf import settings
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Command as DBWorkerCommand

from sprites import worker as task_worker


class Command(DBWorkerCommand):
    help = (
        "Run background tasks (sprite set-ups, pool refills, the console's bulk actions) from the "
        "database queue: --threads loops (default TASK_WORKER_THREADS), each claiming one task at a "
        "time with FOR UPDATE SKIP LOCKED. Run it on any number of hosts against one PostgreSQL. A "
        "task whose worker dies (SIGKILL, OOM, a lost host) runs again on another worker within "
        "seconds (TASK_REAP_SECONDS). SIGTERM/SIGINT: finish the running tasks, then exit; a "
        "second signal exits at once (the tasks are then re-run elsewhere)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--threads", type=int, default=None,
                            help="Worker loops in this process (default TASK_WORKER_THREADS).")
        parser.set_defaults(queue_name="*", reload=False)

    def handle(self, *, verbosity, queue_name, interval, batch, backend_name, startup_delay, max_tasks,
               worker_id, exclude_queues, threads=None, **options):
        self.configure_logging(verbosity)
        threads = threads or settings.TASK_WORKER_THREADS
        workers = task_worker.run_workers(
            threads=threads, worker_id=worker_id or get_random_string(12), queue_names=queue_name.split(","),
            interval=interval, batch=batch, backend_name=backend_name, startup_delay=startup_delay,
            max_tasks=max_tasks, excluded_queue_names=exclude_queues.split(",") if exclude_queues else [],
        )
        self.stdout.write(f"Task worker: {threads} loop(s), queues {queue_name}, pid {os.getpid()}")
        stopping = threading.Event()

        def on_signal(signum, frame):
            if stopping.is_set():
                os._exit(1)  # second signal: now; the reaper re-runs what was running
            stopping.set()
            task_worker.stop(workers)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        for w in workers:
            while w.thread.is_alive():
                w.thread.join(timeout=0.5)
