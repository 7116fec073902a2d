"""Kills one rank of a running `tessera train` job with SIGKILL and requires the whole job to end
with a non-zero exit code within a time limit, its log naming the dead rank (issue 3: "killing one
rank mid-run ends the job with a non-zero code in under 60 s").

usage: kill_rank_test.py LIMIT_S RANK MPIEXEC... -- COMMAND...
  Runs `MPIEXEC... COMMAND...` (e.g. `mpiexec -np 3 tessera train run.toml`), waits until training
  has started (the first iteration line), finds the process of world rank RANK among the launcher's
  children (by OMPI_COMM_WORLD_RANK / PMIX_RANK in its environment), kills it with SIGKILL, and
  measures the time until the launcher exits. A job still running LIMIT_S seconds after the kill is
  killed (its whole process group) and the test fails: a hang is what this guards against.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

from mpi_processes import descendants, world_rank

STARTED = re.compile(r"iteration\s+\d+/")


def main():
    limit, rank = float(sys.argv[1]), int(sys.argv[2])
    rest = sys.argv[3:]
    cmd = rest[:rest.index("--")] + rest[rest.index("--") + 1:]
    print("running:", " ".join(cmd), flush=True)
    # A session of its own, so that a hung job can be ended as a whole (and only this job).
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log, started = [], threading.Event()

    def read():
        for line in job.stdout:
            log.append(line)
            if STARTED.search(line):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    status = 0
    try:
        if not started.wait(120):
            print("FAIL: no iteration line within 120 s; output so far:\n" + "".join(log))
            return 1
        if job.poll() is not None:
            print(f"FAIL: the job ended (code {job.returncode}) before a rank could be killed:\n" + "".join(log))
            return 1
        victims = [p for p in descendants(job.pid) if world_rank(p) == rank]
        if not victims:
            print(f"FAIL: no process of world rank {rank} below the launcher (pid {job.pid})")
            return 1
        # The rank's own process is the deepest one with the rank in its environment (a wrapper
        # such as a shell or orted would come first).
        victim = victims[-1]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        print(f"killed world rank {rank} (pid {victim}) with SIGKILL", flush=True)
        try:
            rc = job.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        elapsed = time.monotonic() - killed
        reader.join(10)
        output = "".join(log)
        print(output, end="")
        if rc is None:
            print(f"FAIL: the job was still running {limit:.0f} s after rank {rank} was killed")
            status = 1
        else:
            print(f"kill test: exit code {rc} {elapsed:.1f} s after rank {rank} was killed (limit {limit:.0f} s)")
            if rc == 0:
                print("FAIL: the job exited with code 0 although a rank was killed")
                status = 1
        named = re.compile(rf"process rank {rank} with PID \d+ on node \S+ exited on signal 9")
        if not named.search(output):
            print(f"FAIL: the output does not name the killed rank (expected: {named.pattern})")
            status = 1
        return status
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


if __name__ == "__main__":
    sys.exit(main())
