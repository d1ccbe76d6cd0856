"""Ctrl-C that never hangs: a subprocess VecEnv that can always be closed, a second-Ctrl-C exit, and a test hook.

Why SB3's own ``SubprocVecEnv.close()`` can hang (measured): after ``step_async`` it sets ``waiting`` and
``step_wait`` reads one result per worker in turn. A KeyboardInterrupt that lands after some of those reads leaves
``waiting=True``; ``close()`` then calls ``recv()`` once per worker, and blocks for ever on a worker whose result
was already read (it has nothing more to send). ``ClosableSubprocVecEnv`` remembers which results it has read,
drains only the rest (with a time limit), and terminates any worker that does not exit in time.

``interrupt_point(phase)`` raises KeyboardInterrupt when ``$EARWORM_TEST_INTERRUPT`` names that phase, once, so
tests can interrupt a run at a named moment (``rollout``, ``monitor``, ``checkpoint``, ``summary``) without
depending on timing. It costs one dictionary lookup when unset.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from stable_baselines3.common.vec_env import SubprocVecEnv
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

TEST_HOOK = "EARWORM_TEST_INTERRUPT"
PHASES = ("rollout", "monitor", "checkpoint", "summary")


def interrupt_point(phase: str) -> None:
    """Raise KeyboardInterrupt here if ``$EARWORM_TEST_INTERRUPT == phase`` (test-only; fires once per process)."""
    if os.environ.get(TEST_HOOK) == phase:
        del os.environ[TEST_HOOK]
        print(f"{TEST_HOOK}: interrupting at phase {phase!r} at t={time.time():.3f}", file=sys.stderr, flush=True)
        raise KeyboardInterrupt


@contextmanager
def interrupts_handled(second: str) -> Iterator[None]:
    """Inside: the first Ctrl-C raises KeyboardInterrupt (the caller saves and closes); any later one exits at
    once with ``second`` as the message. Atomic writes mean an exit in the middle of a save leaves the old file
    intact. The previous SIGINT handler is restored on leaving."""
    count = 0

    def handler(signum, frame):
        nonlocal count
        count += 1
        if count == 1:
            raise KeyboardInterrupt
        raise SystemExit(second)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ClosableSubprocVecEnv(SubprocVecEnv):
    """SB3's ``SubprocVecEnv`` whose ``close()`` returns within ``timeout`` seconds whenever it is interrupted."""

    timeout = 5.0

    _received = 0  # results of the current step already read

    def step_async(self, actions: np.ndarray) -> None:
        self._received = 0
        super().step_async(actions)

    def step_wait(self):
        results = []
        for remote in self.remotes:
            results.append(remote.recv())
            self._received += 1
            if len(self.remotes) > 1:
                interrupt_point("rollout")  # workers still busy: the moment SB3's close() used to hang
        self.waiting = False
        obs, rews, dones, infos, self.reset_infos = zip(*results, strict=True)
        return _stack_obs(obs, self.observation_space), np.stack(rews), np.stack(dones), infos

    def close(self) -> None:
        if self.closed:
            return
        deadline = time.monotonic() + self.timeout
        if self.waiting:  # read only what is still owed, and never wait past the deadline
            for remote in self.remotes[getattr(self, "_received", 0):]:
                if remote.poll(max(0.0, deadline - time.monotonic())):
                    try:
                        remote.recv()
                    except (EOFError, OSError):
                        pass
            self.waiting = False
        for remote in self.remotes:
            try:
                remote.send(("close", None))
            except (BrokenPipeError, OSError):
                pass  # that worker is already gone
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)
        for remote in self.remotes:
            remote.close()
        self.closed = True
