"""Ray for work that outgrows one machine: connecting to a cluster, and a process-pool look-alike on Ray tasks.

Ray is an optional extra (``pip install -e .[ray]``, in its own venv: see the README). Nothing here imports it
at module level, so the rest of the project never needs it. ``--address`` everywhere means what ``ray.init``
means: ``host:port`` of a running cluster (``ray start --head`` prints it), ``auto`` for the cluster this
machine already belongs to, or ``local`` to start a private Ray on this machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "earworm"


def require_ray():
    """``import ray``, or one clear error saying how to install it."""
    try:
        import ray  # noqa: PLC0415
    except ImportError as error:
        raise SystemExit(
            "Ray is not installed in this environment. It lives in its own venv because RLlib pins another "
            "gymnasium than the project: run `make setup-ray` and use .venv-ray/bin/python (see the README)."
        ) from error
    return ray


def connect(address: str | None) -> str:
    """Join (or start, for ``local``/None) a Ray cluster once per process; returns this driver's node id.

    Workers import the project from the same path as this driver (``PYTHONPATH``), so every node of a cluster
    needs the project installed at the same place (a shared filesystem or the same image).
    """
    ray = require_ray()
    if not ray.is_initialized():
        local = address in (None, "", "local")
        kwargs = {"include_dashboard": False, "num_cpus": os.cpu_count()} if local else {}
        try:
            ray.init(
                address="local" if local else address,
                namespace=NAMESPACE,
                runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}},
                logging_level="WARNING",
                log_to_driver=False,
                **kwargs,
            )
        except ConnectionError as error:
            raise SystemExit(
                f"Cannot reach a Ray cluster at --address {address!r} ({error}). Start one with "
                "`ray start --head --port 6379` and pass its host:port, or omit --address to run Ray locally."
            ) from error
    return ray.get_runtime_context().get_node_id()


def _call(initializer: Callable | None, initargs: tuple, fn: Callable, args: tuple):
    """Run ``fn(*args)`` in a Ray worker after ``initializer(*initargs)`` ran once in that process."""
    import ray  # noqa: PLC0415

    key = (getattr(initializer, "__qualname__", None), initargs)
    if initializer is not None and _INITIALISED.get("key") != key:
        initializer(*initargs)
        _INITIALISED["key"] = key
    return ray.get_runtime_context().get_node_id(), fn(*args)


_INITIALISED: dict = {}


class RayResult:
    """What :meth:`RayExecutor.submit` returns: ``result()`` waits, like a ``concurrent.futures.Future``."""

    def __init__(self, ref, executor: RayExecutor):
        self.ref, self.executor = ref, executor

    def result(self):
        import ray  # noqa: PLC0415

        node, value = ray.get(self.ref)
        self.executor.nodes[node] += 1
        return value


class RayExecutor:
    """The ``ProcessPoolExecutor`` interface the builds use (``submit``, context manager) on Ray tasks.

    Each task runs ``initializer(*initargs)`` the first time its worker process sees it (workers are reused,
    so a FluidSynth renderer is made once per process, never pickled). ``nodes`` counts finished tasks by the
    node that ran them. ``cpus_per_task`` is Ray's ``num_cpus`` of one task.
    """

    def __init__(self, address: str | None, initializer: Callable | None = None, initargs: tuple = (),
                 cpus_per_task: float = 1.0):
        self.ray = require_ray()
        connect(address)
        self.initializer, self.initargs = initializer, tuple(initargs)
        # SPREAD: independent CPU-bound tasks go round the nodes instead of filling the driver's node first.
        self.remote = self.ray.remote(num_cpus=cpus_per_task, max_retries=3, scheduling_strategy="SPREAD")(_call)
        self.nodes: Counter[str] = Counter()

    def submit(self, fn: Callable, *args) -> RayResult:
        return RayResult(self.remote.remote(self.initializer, self.initargs, fn, args), self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


# Notice a dead node in ~3 s instead of ~30 s (the GCS pings every node every second; 3 misses = dead).
FAST_HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                      "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "1000"}


class LocalCluster:
    """A real multi-node Ray cluster on this machine: ``ray start --head`` plus ``workers`` ``ray start --address``
    nodes, loopback only, ``cpus`` CPUs and ``object_store_mb`` MiB of object store each. For tests and
    benchmarks; ``stop()`` (or leaving the ``with`` block) runs ``ray stop --force``, which stops every Ray
    process of this user on this machine.
    """

    def __init__(self, workers: int = 1, cpus: int = 1, object_store_mb: int = 80):
        import socket  # noqa: PLC0415
        import subprocess  # noqa: PLC0415
        import sys  # noqa: PLC0415

        require_ray()
        # A local `ray.init()` leaves ~/.ray/auth_token behind; with it, `ray start` nodes and drivers disagree on
        # token authentication and the worker node cannot join. This cluster is loopback-only: no tokens, for
        # this process and the drivers it starts.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        self._run = subprocess.run
        self.ray_cli = str(Path(sys.executable).with_name("ray"))
        self.node_flags = ["--num-cpus", str(cpus), "--object-store-memory", str(object_store_mb << 20),
                           "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        try:
            self._ray("start", "--head", "--port", str(port), "--include-dashboard=false")
            for _ in range(workers):
                self.add_worker_node()
        except BaseException:
            self.stop()
            raise

    def _ray(self, *args: str) -> None:
        done = self._run([self.ray_cli, *args, *self.node_flags], capture_output=True, text=True, timeout=180,
                         env={**os.environ, **FAST_HEALTH_CHECKS})
        if done.returncode != 0:
            raise RuntimeError(f"`ray {' '.join(args)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def add_worker_node(self) -> None:
        self._ray("start", "--address", self.address)

    def stop(self) -> None:
        ray = require_ray()
        if ray.is_initialized():
            ray.shutdown()
        self._run([self.ray_cli, "stop", "--force"], capture_output=True, timeout=180)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
