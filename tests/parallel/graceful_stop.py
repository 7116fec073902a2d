"""Graceful stop of `tessera train` (issue 14 item 3; docs/reliability.md §7): SIGTERM, SIGINT and
[training] exit_signal make the run finish its iteration, save a resumable checkpoint and exit 0;
exit_interval and exit_duration_in_mins do the same without a signal; a second signal aborts.

usage: graceful_stop.py TESSERA CONFIG WORKDIR single
       graceful_stop.py TESSERA CONFIG WORKDIR mpi MPIEXEC...

single (one process):
  - SIGTERM after iteration 3 of a long run: exit 0, "exiting program at iteration K", a complete
    checkpoint iter_K (latest = K) and no final weights; resuming it to K+3 (stopped there by
    exit_interval) logs the same learning rates, losses, grad norms and validation losses, as strings,
    as one uninterrupted run to K+3 (which has no checkpoint.save: it stops with a warning, exit 0);
  - exit_signal = "USR1" and SIGUSR1: the same stop; exit_duration_in_mins: stops after that wall
    time with a checkpoint (that iteration's line logged between log_interval lines); a second signal (SIGINT right after SIGTERM) ends the process at once
    with that signal and no checkpoint; exit_signal_handler = false: SIGTERM kills as usual;
    exit_signal = "SIGKILL", and exit_signal with exit_signal_handler = false, are ConfigErrors naming
    the keys.
mpi (two data-parallel ranks under MPIEXEC): SIGTERM to world rank 1 only, then to world rank 0
  only (distributed_adam): the whole job stops after one iteration, saves one checkpoint (both ranks'
  optimizer shards)
  and exits 0 — never a hang (each run has a time limit); and SIGUSR1 to the launcher (which forwards
  it to every rank) with exit_signal = "SIGUSR1".
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from mpi_processes import descendants, world_rank

LINE = re.compile(r"iteration\s+(\d+)/.*\| learning rate: (\S+) \|.*\| lm loss: (\S+) \|(?: [a-z_]+: \S+ \|)* grad norm: (\S+) \|")
VALID = re.compile(r"validation loss at iteration (\d+) \| lm loss value: (\S+)")
EXITING = re.compile(r"exiting program at iteration (\d+): (.*)")
LONG = ["--set", "training.train_iters=20000", "--set", "training.eval_interval=4"]


class Job:
    """A running command whose merged output is collected line by line."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def output(self):
        with self.cond:
            return "".join(self.lines)

    def wait_for(self, pattern, timeout=120):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not re.search(pattern, "".join(self.lines)):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.reader.is_alive():
                    self.kill()
                    sys.exit(f"FAIL: no {pattern!r} in the output of {' '.join(self.cmd)}:\n{''.join(self.lines)}")
                self.cond.wait(min(left, 0.5))

    def finish(self, timeout=120):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            sys.exit(f"FAIL: still running {timeout} s later (a hang): {' '.join(self.cmd)}\n{self.output()}")
        self.reader.join(10)
        return rc, self.output()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def run(cmd, timeout=300):
    job = Job(cmd)
    return job.finish(timeout)


def values(out, first=1, last=10 ** 9):
    v = {}
    for m in LINE.finditer(out):
        it = int(m.group(1))
        if first <= it <= last:
            v[f"lr@{it}"], v[f"loss@{it}"], v[f"grad_norm@{it}"] = m.group(2), m.group(3), m.group(4)
    for m in VALID.finditer(out):
        if first <= int(m.group(1)) <= last:
            v[f"valid@{m.group(1)}"] = m.group(2)
    return v


def expect_ok(rc, out, what):
    if rc != 0:
        sys.exit(f"FAIL: {what}: exit code {rc}, expected 0:\n{out}")


def stopped_at(out, reason, what):
    m = EXITING.search(out)
    if not m or reason not in m.group(2):
        sys.exit(f"FAIL: {what}: no 'exiting program at iteration K: ...{reason}...' line:\n{out}")
    return int(m.group(1))


def check_checkpoint(save, k, what, files=("model_tp0_pp0.safetensors", "optimizer_tp0_pp0_dp0.safetensors")):
    with open(os.path.join(save, "latest_checkpointed_iteration.txt")) as f:
        latest = f.read().strip()
    if latest != str(k):
        sys.exit(f"FAIL: {what}: latest_checkpointed_iteration.txt says {latest}, the run stopped at {k}")
    folder = os.path.join(save, f"iter_{k:07d}")
    for name in ("metadata.json",) + tuple(files):
        if not os.path.isfile(os.path.join(folder, name)):
            sys.exit(f"FAIL: {what}: {folder} has no {name}: {sorted(os.listdir(folder))}")
    leftovers = [n for n in os.listdir(save) if n.endswith(".tmp") or n.endswith(".old")]
    if leftovers:
        sys.exit(f"FAIL: {what}: unfinished saves left in {save}: {leftovers}")
    if os.path.exists(os.path.join(save, "model.safetensors")):
        sys.exit(f"FAIL: {what}: a stopped run wrote final weights (model.safetensors) to {save}")


def signalled_run(base, save, sig, what, extra=()):
    """A long run, signalled after iteration 3; returns the iteration it stopped at and its output."""
    job = Job(base + LONG + ["--set", f"checkpoint.save={save}"] + list(extra))
    job.wait_for(r"iteration\s+3/")
    os.kill(job.proc.pid, sig)
    rc, out = job.finish()
    expect_ok(rc, out, what)
    k = stopped_at(out, f"{signal.Signals(sig).name} received", what)
    check_checkpoint(save, k, what)
    print(f"{what}: stopped at iteration {k} with a checkpoint, exit 0")
    return k, out


def single(tessera, config, workdir):
    base = [tessera, "train", config]
    # (a) SIGTERM, resume, against one uninterrupted run.
    save = os.path.join(workdir, "sigterm")
    k, signalled = signalled_run(base, save, signal.SIGTERM, "SIGTERM")
    end = k + 3  # exit_interval = end stops both runs there (the first multiple of it after k)
    rc, resumed = run(base + LONG + ["--set", f"checkpoint.load={save}", "--set", f"checkpoint.save={save}",
                                     "--set", f"training.exit_interval={end}"])
    expect_ok(rc, resumed, "resume")
    if stopped_at(resumed, "training.exit_interval", "resume") != end:
        sys.exit(f"FAIL: the resumed run did not stop at exit_interval {end}:\n{resumed}")
    check_checkpoint(save, end, "exit_interval")
    rc, whole = run(base + LONG + ["--set", f"training.exit_interval={end}"])
    expect_ok(rc, whole, "uninterrupted run without checkpoint.save")
    if stopped_at(whole, "training.exit_interval", "uninterrupted") != end or "without a checkpoint" not in whole:
        sys.exit(f"FAIL: the uninterrupted run without checkpoint.save should stop at {end} with a warning:\n{whole}")
    want, got = values(whole), dict(values(signalled, 1, k), **values(resumed, k + 1, end))
    if not any(key.startswith(f"loss@{end}") for key in got) or want != got:
        diff = {key: (want.get(key), got.get(key)) for key in sorted(set(want) | set(got)) if want.get(key) != got.get(key)}
        sys.exit(f"FAIL: signalled + resumed run differs from the uninterrupted one: {diff}")
    print(f"SIGTERM at {k} + resume to {end} logs the uninterrupted run's {len(want)} values")

    # exit_signal: Slurm's pre-emption signal.
    signalled_run(base, os.path.join(workdir, "sigusr1"), signal.SIGUSR1, "exit_signal USR1",
                  ["--set", "training.exit_signal=USR1"])

    # exit_duration_in_mins: 0.03 minutes = 1.8 s.
    save = os.path.join(workdir, "duration")
    t0 = time.monotonic()
    rc, out = run(base + LONG + ["--set", f"checkpoint.save={save}", "--set", "training.exit_duration_in_mins=0.03",
                                 "--set", "logging.log_interval=100000"])
    elapsed = time.monotonic() - t0
    expect_ok(rc, out, "exit_duration_in_mins")
    k = stopped_at(out, "training.exit_duration_in_mins", "exit_duration_in_mins")
    check_checkpoint(save, k, "exit_duration_in_mins")
    if elapsed < 1.8 or k >= 20000:
        sys.exit(f"FAIL: exit_duration_in_mins = 0.03 stopped after {elapsed:.1f} s at iteration {k}")
    if [int(m.group(1)) for m in LINE.finditer(out)] != [k]:  # the stopping iteration's line, whatever log_interval
        sys.exit(f"FAIL: with log_interval 100000 the only iteration line should be the last one, {k}:\n{out}")
    print(f"exit_duration_in_mins = 0.03: stopped at iteration {k} after {elapsed:.1f} s with a checkpoint")

    # (d) A second signal aborts at once: SIGINT right after SIGTERM, while the iteration runs.
    save = os.path.join(workdir, "second")
    job = Job(base + LONG + ["--set", f"checkpoint.save={save}"])
    job.wait_for(r"iteration\s+3/")
    os.kill(job.proc.pid, signal.SIGTERM)
    os.kill(job.proc.pid, signal.SIGINT)
    rc, out = job.finish()
    if rc == 0 or "aborting now" not in out or EXITING.search(out):
        sys.exit(f"FAIL: a second signal should abort at once (non-zero exit, 'aborting now'): exit code {rc}\n{out}")
    if os.path.exists(os.path.join(save, "latest_checkpointed_iteration.txt")):
        sys.exit("FAIL: the aborted run saved a checkpoint")
    print(f"second signal: aborted with exit code {rc}, no checkpoint")

    # exit_signal_handler = false: SIGTERM's default action.
    job = Job(base + LONG + ["--set", "training.exit_signal_handler=false"])
    job.wait_for(r"iteration\s+3/")
    os.kill(job.proc.pid, signal.SIGTERM)
    rc, out = job.finish()
    if rc != -signal.SIGTERM:
        sys.exit(f"FAIL: with exit_signal_handler = false SIGTERM should kill the process: exit code {rc}\n{out}")
    print("exit_signal_handler = false: SIGTERM kills the process")

    rc, out = run(base + ["--set", "training.exit_signal=SIGKILL"])
    if rc != 1 or "training.exit_signal = SIGKILL in --set is not one of: SIGTERM, SIGINT, SIGUSR1" not in out:
        sys.exit(f"FAIL: exit_signal = SIGKILL should be a ConfigError naming the key: exit code {rc}\n{out}")
    print("exit_signal = SIGKILL: ConfigError naming the key")
    rc, out = run(base + ["--set", "training.exit_signal=USR1", "--set", "training.exit_signal_handler=false"])
    if rc != 1 or "training.exit_signal = USR1 in --set needs training.exit_signal_handler = true" not in out:
        sys.exit(f"FAIL: exit_signal without exit_signal_handler should be a ConfigError: exit code {rc}\n{out}")
    print("exit_signal with exit_signal_handler = false: ConfigError naming both keys")


def mpi(tessera, config, workdir, mpiexec):
    for rank in (1, 0):
        save = os.path.join(workdir, f"mpi_rank{rank}")
        # distributed_adam: each rank writes its own optimizer shard, so the files show both ranks saved.
        job = Job(mpiexec + ["-np", "2", tessera, "train", config] + LONG +
                  ["--set", f"checkpoint.save={save}", "--set", "optimizer.plugin=distributed_adam"])
        job.wait_for(r"iteration\s+3/")
        victims = [p for p in descendants(job.proc.pid) if world_rank(p) == rank]
        if not victims:
            job.kill()
            sys.exit(f"FAIL: no process of world rank {rank} below the launcher")
        os.kill(victims[-1], signal.SIGTERM)  # the rank itself, not mpirun (which would signal all)
        rc, out = job.finish()
        expect_ok(rc, out, f"SIGTERM to rank {rank}")
        reason = "SIGTERM received by another rank" if rank else "SIGTERM received ("
        k = stopped_at(out, reason, f"SIGTERM to rank {rank}")
        check_checkpoint(save, k, f"SIGTERM to rank {rank}",
                         ("model_tp0_pp0.safetensors", "optimizer_tp0_pp0_dp0.safetensors",
                          "optimizer_tp0_pp0_dp1.safetensors"))
        if re.search(rf"iteration\s+{k + 1}/", out):
            sys.exit(f"FAIL: a rank went on past iteration {k}:\n{out}")
        print(f"np=2, SIGTERM to world rank {rank} only: every rank stopped at iteration {k}, one checkpoint, exit 0")
    # Slurm's pre-emption signal sent to the launcher: OpenMPI's mpirun forwards SIGUSR1 to every rank
    # (each may see it in another iteration: the all-reduce makes them agree). SIGTERM to mpirun is not
    # forwarded as such: mpirun ends the job itself (docs/reliability.md).
    save = os.path.join(workdir, "mpi_usr1")
    job = Job(mpiexec + ["-np", "2", tessera, "train", config] + LONG +
              ["--set", f"checkpoint.save={save}", "--set", "training.exit_signal=SIGUSR1"])
    job.wait_for(r"iteration\s+3/")
    os.kill(job.proc.pid, signal.SIGUSR1)
    rc, out = job.finish()
    expect_ok(rc, out, "SIGUSR1 to mpirun")
    k = stopped_at(out, "SIGUSR1 received", "SIGUSR1 to mpirun")
    check_checkpoint(save, k, "SIGUSR1 to mpirun")
    print(f"np=2, SIGUSR1 to the launcher with exit_signal = SIGUSR1: stopped at iteration {k}, exit 0")


def main():
    tessera, config, workdir, mode = sys.argv[1:5]
    os.makedirs(workdir, exist_ok=True)
    for name in os.listdir(workdir):  # the folders of an earlier run
        if name in ("sigterm", "sigusr1", "duration", "second", "mpi_rank0", "mpi_rank1", "mpi_usr1"):
            shutil.rmtree(os.path.join(workdir, name))
    if mode == "single":
        single(tessera, config, workdir)
    elif mode == "mpi":
        mpi(tessera, config, workdir, sys.argv[5:])
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
