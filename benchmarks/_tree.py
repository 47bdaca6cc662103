"""Shared by the benchmarks: run a command and measure its whole process tree."""

from __future__ import annotations

import resource
import subprocess
import threading
import time

GIB = 2**30


def have_psutil(script: str) -> bool:
    """Whether psutil (which measures the process tree) is installed; says so when not."""
    import sys

    try:
        import psutil  # noqa: F401
    except ImportError:
        print(f"{script} needs psutil (pip install psutil)", file=sys.stderr)
        return False
    return True


def run_tree(cmd: list[str], *, env=None, memory_cap_gib: float | None = None) -> dict:
    """Run ``cmd``: wall time, peak RSS of its whole process tree (sampled), its stdout/stderr.

    ``peak_tree_gib`` sums each process's resident set (RSS): pages shared by processes
    (a forked worker's copy-on-write pages, the libraries every kernel maps) count once per
    process, so it overstates what the tree takes. ``peak_pss_gib`` sums the proportional
    set sizes instead (a shared page split between its users; Linux only, else None): what
    the tree costs the machine. Targets are judged on the stricter RSS sum.

    ``memory_cap_gib`` caps the address space of the command and of each of its children
    (RLIMIT_AS): a report that needs more fails with MemoryError instead of pushing a shared
    machine into its out-of-memory killer.
    """
    import psutil

    def cap() -> None:
        limit = int(memory_cap_gib * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=cap if memory_cap_gib else None)
    peak, peak_pss, stop = 0, 0, threading.Event()
    parts: list[tuple[str, float]] = []

    def sample() -> None:
        nonlocal peak, peak_pss, parts
        root = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                total = pss = 0
                now = []
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        info = proc.memory_full_info()
                        total += info.rss
                        pss += getattr(info, "pss", 0)
                        now.append((_role(proc, root), info.rss / GIB))
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                if total > peak:
                    parts = sorted(now, key=lambda part: -part[1])
                peak, peak_pss = max(peak, total), max(peak_pss, pss)
            except psutil.NoSuchProcess:
                return
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    return {"wall_s": wall, "peak_tree_gib": peak / GIB, "peak_pss_gib": peak_pss / GIB if peak_pss else None,
            "peak_parts": parts, "code": process.returncode, "stdout": stdout, "stderr": stderr}


def _role(proc, root) -> str:
    """What a process of the tree is: the command itself, a report kernel, or another child."""
    if proc.pid == root.pid:
        return "runner"
    try:
        line = " ".join(proc.cmdline())
    except Exception:  # gone or not ours: a plain child
        return "child"
    return "kernel" if "ipykernel" in line else "child"


def describe_parts(parts) -> str:
    """``runner 0.18, kernel 1.80, ...`` (GiB, largest first): the tree at its peak."""
    return ", ".join(f"{role} {gib:.2f}" for role, gib in parts)
