"""`make soak`'s verdict covers its own run: a fault planned but not applied,
or a publish given up, fails it (scripts/soak.py run_checks), as a lost
delivery does."""

import importlib.util
import random
import sys
import time
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "scripts" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("soak_script", SOAK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def verdict(soak, faults, stats) -> dict[str, bool]:
    return {check.name: check.ok for check in soak.run_checks(faults, stats)}


def test_a_run_with_every_fault_applied_and_nothing_given_up_passes(soak):
    faults = soak.Faults(planned=3, worker_kills=2, redis_restarts=1)
    assert all(verdict(soak, faults, soak.PublishStats()).values())


def test_a_kill_that_found_no_process_fails_the_run(soak):
    faults = soak.Faults(planned=3, worker_kills=2)
    faults.missed.append("+ 12.0s kill_worker: no worker process to kill")
    assert verdict(soak, faults, soak.PublishStats())["every planned fault was applied"] is False


def test_a_restart_that_raised_fails_the_run(soak):
    faults = soak.Faults(planned=1)
    faults.failed.append("+ 30.0s restart_redis: port in use")
    assert verdict(soak, faults, soak.PublishStats())["every planned fault was applied"] is False


def test_a_publish_given_up_fails_the_run(soak):
    stats = soak.PublishStats()
    stats.abandoned.append("soak-17")
    faults = soak.Faults(planned=1, pool_kills=1)
    assert verdict(soak, faults, stats) == {
        "every planned fault was applied": True,
        "no publish was given up": False,
    }


def test_a_worker_kill_just_after_the_pool_was_killed_waits_for_its_restart(soak):
    # The chaos thread both applies faults and restarts what they killed: a
    # kill waiting for a worker must restart the pool meanwhile.
    class PoolBeingRestarted:
        restarted = False

        def kill_random_worker(self, rng):
            return 4321 if self.restarted else None

        def supervise(self):
            self.restarted = True

    chaos = soak.Chaos([], PoolBeingRestarted(), None, None, random.Random(1), time.monotonic())
    chaos.kill_worker()
    assert chaos.faults.missed == [] and chaos.faults.worker_kills == 1
