"""The allocator tuning: large freed blocks are reused instead of faulting in new pages every run."""

import subprocess
import sys
import textwrap
from pathlib import Path

from runtime.memory import FreeMemoryPolicy, tune_allocator

ROOT = Path(__file__).resolve().parents[2]

CHURN = textwrap.dedent(
    """
    import resource, sys
    sys.path.insert(0, {root!r})
    from runtime.memory import tune_allocator
    tuned = tune_allocator() if sys.argv[1] == "tuned" else False
    def churn():
        for _ in range(10):
            blocks = [bytearray(8 << 20) for _ in range(3)]  # a request's copies of an upload, held at once
            for block in blocks:
                block[::4096] = b"x" * len(block[::4096])  # touch every page
            del blocks
    churn()  # the first round may grow the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    churn()
    print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def page_faults(mode: str, **env: str) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHURN.format(root=str(ROOT)), mode],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    tuned, faults = done.stdout.split()
    return tuned == "True", int(faults)


def test_tuned_processes_reuse_freed_blocks_instead_of_faulting_in_pages():
    tuned, faults = page_faults("tuned")
    untuned, untuned_faults = page_faults("default")

    assert tuned and not untuned
    # glibc gives the 24 MB back to the kernel after each round (its trim threshold follows its mmap
    # threshold, ~16 MB here), and faults pages in again the next: thousands of faults.
    assert untuned_faults > 2000
    assert faults < untuned_faults // 20


def test_an_operators_malloc_settings_are_left_alone():
    tuned, _ = page_faults("tuned", MALLOC_ARENA_MAX="2")
    assert not tuned


def test_django_processes_are_tuned_at_start():
    # RuntimeConfig.ready() ran in this test process: tuning again is still possible and succeeds.
    assert tune_allocator() is True


def test_freed_memory_goes_back_after_a_large_run_an_idle_server_or_a_while():
    policy = FreeMemoryPolicy(large_run_bytes=100 * 2**20, every_seconds=60)
    small, large = 2**20, 200 * 2**20
    assert not policy.run_ended(small, others_running=True)  # a small run among others: kept for the next
    assert not policy.run_ended(small, others_running=True)
    assert policy.run_ended(large, others_running=True)
    assert policy.run_ended(small, others_running=False)  # the last run ended: the server gives it all back
    assert not policy.run_ended(small, others_running=True)
    policy._last -= 61  # a minute of small runs
    assert policy.run_ended(small, others_running=True)
    assert policy.trims == 3
