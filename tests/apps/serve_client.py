#!/usr/bin/env python3
"""End-to-end test of `tessera serve` over real HTTP (standard library only).

serve_client.py TESSERA_BINARY SAVED_MODEL_DIR
serve_client.py TESSERA_BINARY SAVED_MODEL_DIR --tp MPIEXEC [MPIEXEC_ARGS...]

Starts `tessera serve --port 0` (any free port, read from the line that announces it) on 127.0.0.1
as a child process, sends requests, then SIGTERM and expects exit code 0. Every wait has a timeout
and the child is killed at the end in any case. Exit code 0 when every check passes. SIGTERM sent
the moment the serving line appears stops the server too (5 starts; 2 under --tp).

--tp: a one-process server and `MPIEXEC -np 2 tessera serve --tp 2` on the same saved model answer
the same requests alike (greedy text, logprobs within 1e-5, a batch of two prompts of different
lengths, scoring, seeded sampling, beam search, two concurrent requests); an invalid request is a 400 from rank 0
and the job serves on; SIGTERM to rank 0 ends both ranks with exit 0 (mpirun's exit code). And
`tessera generate --tp 2` (with and without the key/value cache) prints what one process prints.
"""
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parallel"))
from mpi_processes import descendants, world_rank  # noqa: E402

TIMEOUT = 120  # seconds for any one request or wait


class Server:
    """A running `tessera serve --port 0` (argv), its port read from its output."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines = []
        found = threading.Event()
        self.port = None

        def read():
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                m = re.search(r"http://127\.0\.0\.1:(\d+)/api", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    found.set()
            found.set()

        # Reads everything, so that the server never blocks on a full pipe.
        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        found.wait(TIMEOUT)
        assert self.port, f"tessera serve announced no address within {TIMEOUT} s:\n{self.output()}"
        print(next(line for line in self.lines if "http://" in line).rstrip())

    def output(self):
        return "".join(self.lines)

    def request(self, method, body, raw=False):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            data = body if raw else json.dumps(body)
            c.request(method, "/api", body=data.encode() if data is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read().decode())
        finally:
            c.close()

    def ok(self, body):
        status, j = self.request("PUT", body)
        assert status == 200, (status, j)
        return j

    def stop(self, pid=None, timeout=TIMEOUT):
        """SIGTERM (to pid, else the server process); the exit code."""
        os.kill(pid or self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s after SIGTERM (a hang):\n{self.output()}")
        self.reader.join(10)
        return code

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(TIMEOUT)


def stop_at_once(argv, starts, ranks=0):
    """SIGTERM the moment the serving line is read, before the HTTP thread may listen (a signal there
    was once lost: the server ran until SIGKILL). Each of `starts` starts must exit 0 promptly.
    ranks: under mpirun, the number of ranks; the signal goes to rank 0 (found before the line, so
    that nothing delays the signal after it)."""
    for i in range(starts):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        # The reads below block: a watchdog kills a server that never announces itself.
        watchdog = threading.Timer(TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            pid = proc.pid
            while ranks:
                found = rank_pids(proc)
                if len(found) == ranks and 0 in found:
                    pid = found[0]
                    break
                assert proc.poll() is None, f"exited {proc.returncode} before its ranks started"
                time.sleep(0.01)
            lines = []
            for raw in proc.stdout:
                lines.append(raw.decode(errors="replace"))
                if "http://" in lines[-1]:
                    break
            os.kill(pid, signal.SIGTERM)
            try:
                rest, _ = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"still running 20 s after an immediate SIGTERM (start {i + 1}): a lost "
                                     f"signal:\n{''.join(lines)}")
            out = "".join(lines) + rest.decode(errors="replace")
            assert proc.returncode == 0, f"exit {proc.returncode} after an immediate SIGTERM (start {i + 1}):\n{out}"
            assert "server stopped" in out, out
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(TIMEOUT)
    print(f"SIGTERM right after the serving line: exit 0, {starts} of {starts} starts")


def rank_pids(proc):
    ranks = {world_rank(p): p for p in descendants(proc.pid)}
    ranks.pop(None, None)
    return ranks


def generate(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert r.returncode == 0, (argv, r.returncode, r.stdout, r.stderr)
    return r.stdout.decode("utf-8", errors="replace")


def close(a, b, what):
    assert len(a) == len(b) and all(abs(x - y) <= 1e-5 for x, y in zip(a, b)), (what, a, b)


def tensor_parallel(binary, load, mpiexec):
    """The one-process server and a tp = 2 job: the same answers; SIGTERM to rank 0 stops both ranks."""
    mpi = mpiexec + ["-np", "2", binary]
    prompt, n = "Tensor ", 8
    for extra in ([], ["--no-kv-cache"]):
        cmd = ["generate", "--load", load, "--prompt", prompt, "--max-new-tokens", str(n), "--temperature", "1",
               "--top-k", "0", "--top-p", "1", "--seed", "3", "--threads", "1"] + extra
        one, tp = generate([binary] + cmd), generate(mpi + cmd + ["--tp", "2"])
        assert tp == one, ("tessera generate --tp 2", extra, tp, one)
        print(f"tessera generate --tp 2 {' '.join(extra)}= one process: {one!r}")

    single = Server([binary, "serve", "--load", load, "--port", "0", "--threads", "1"])
    try:
        tp = Server(mpi + ["serve", "--load", load, "--port", "0", "--threads", "1", "--tp", "2"])
        try:
            requests = [
                {"prompts": [prompt], "tokens_to_generate": n, "top_k": 1, "logprobs": True},
                # A batch of two prompts of different lengths.
                {"prompts": [prompt, "int x = "], "tokens_to_generate": 6, "top_k": 1, "logprobs": True},
                # Scoring (the key/value cache's prompt steps).
                {"prompts": ["namespace tessera"], "tokens_to_generate": 0, "logprobs": True},
                {"prompts": [prompt, "a"], "tokens_to_generate": n, "temperature": 1.0, "random_seed": 3,
                 "logprobs": True},
            ]
            for body in requests:
                a, b = single.ok(body), tp.ok(body)
                assert b["text"] == a["text"] and b["segments"] == a["segments"], (body, a, b)
                for i, (x, y) in enumerate(zip(a["logprobs"], b["logprobs"])):
                    close(x, y, (body, i))
                print(f"tp 2 = one process: {body} -> {b['text']}")
            # Beam search: every rank selects the same beams (from rank 0's logits), row moves included.
            beam = {"prompts": [prompt], "tokens_to_generate": 4, "beam_width": 3}
            a, b = single.ok(beam), tp.ok(beam)
            assert b["text"] == a["text"] and b["segments"] == a["segments"], (a, b)
            close(a["scores"], b["scores"], beam)
            print(f"tp 2 = one process: {beam} -> {b['text']}")
            # Unseeded sampling: every rank draws alike (rank 0's seed), so the job answers at all.
            assert len(tp.ok({"prompts": [prompt], "tokens_to_generate": n, "temperature": 1.0})["text"]) == 1

            # Two concurrent requests: both answered, as one at a time.
            want = {i: single.ok(requests[i]) for i in (0, 1)}
            results, errors = {}, []

            def worker(i):
                try:
                    results[i] = tp.request("PUT", requests[i])
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

            threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(TIMEOUT)
            assert not errors, errors
            for i in (0, 1):
                status, j = results[i]
                assert status == 200 and j["text"] == want[i]["text"], (i, results[i], want[i])
                for x, y in zip(j["logprobs"], want[i]["logprobs"]):
                    close(x, y, ("concurrent", i))
            print("2 concurrent requests: 200, as one process answers them")

            # Invalid: a 400 from rank 0 alone (the followers never see it), then serving goes on.
            for body in ({"prompts": ["a"], "top_k": 5000}, {"prompts": ["x" * 30], "tokens_to_generate": 8}):
                status, j = tp.request("PUT", body)
                assert status == 400, (status, j)
                print(f"tp 2: {body} -> 400 {j['error']}")
            assert tp.ok(requests[0])["text"] == single.ok(requests[0])["text"]

            # SIGTERM to rank 0: it stops listening and tells the follower; mpirun exits 0 (every rank did).
            ranks = rank_pids(tp.proc)
            assert sorted(ranks) == [0, 1], ranks
            code = tp.stop(ranks[0])
            out = tp.output()
            assert code == 0, f"mpirun exited {code} after SIGTERM to rank 0:\n{out}"
            assert "server stopped" in out and "rank 1: stopped by rank 0" in out, out
            print("SIGTERM to rank 0: both ranks exit 0")
        finally:
            tp.kill()
        assert single.stop() == 0
    finally:
        single.kill()
    # The serving line is printed once every rank has loaded, so rank 0's pid is known by then; the
    # follower must hear "stop" too (mpirun exits 0 only when both ranks did).
    stop_at_once(mpi + ["serve", "--load", load, "--port", "0", "--threads", "1", "--tp", "2"], 2, ranks=2)
    print("serve_client: all checks passed")


def main():
    binary, load = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3 and sys.argv[3] == "--tp":
        tensor_parallel(binary, load, sys.argv[4:])
        return
    prompt, n = "Tensor ", 8
    generated = subprocess.run([binary, "generate", "--load", load, "--prompt", prompt, "--max-new-tokens", str(n),
                                "--temperature", "0", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT, check=True)
    expected = generated.stdout.decode()
    assert expected.endswith("\n"), expected
    expected = expected[:-1]
    print(f"tessera generate (greedy): {expected!r}")
    # Sampled with a seed: the server's random_seed draws the same tokens as generate's --seed.
    sampled_cli = subprocess.run([binary, "generate", "--load", load, "--prompt", prompt, "--max-new-tokens", str(n),
                                  "--temperature", "1", "--top-k", "0", "--top-p", "1", "--seed", "3",
                                  "--threads", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT, check=True)
    sampled_expected = sampled_cli.stdout.decode("utf-8", errors="replace")[:-1]
    print(f"tessera generate (seed 3): {sampled_expected!r}")

    server = Server([binary, "serve", "--load", load, "--port", "0", "--host", "127.0.0.1", "--threads", "1"])
    try:
        request, ok = server.request, server.ok

        def bad(body, *needles, raw=False, status=400, method="PUT"):
            s, j = request(method, body, raw)
            assert s == status, (s, j, body)
            for needle in needles:
                assert needle in j["error"], (needle, j)
            shown = body if raw else json.dumps(body)
            print(f"{method} {shown if shown is None or len(shown) < 100 else shown[:100] + '…'} -> {s} {j['error']}")

        greedy = {"prompts": [prompt], "tokens_to_generate": n, "top_k": 1, "logprobs": True}
        j = ok(greedy)
        assert j["text"] == [expected], (j["text"], expected)
        assert "".join(j["segments"][0]) == expected, j["segments"]
        lp = j["logprobs"][0]
        assert 1 <= len(lp) <= n and all(math.isfinite(x) and x <= 0 for x in lp), lp
        assert len(j["segments"][0]) == len(prompt) + len(lp)  # bytes: one token per character
        print("greedy = tessera generate:", j["text"][0].__repr__(), "logprobs", lp)
        sampled = ok({"prompts": [prompt], "tokens_to_generate": n, "temperature": 1.0, "random_seed": 3})
        # (Bytes that are not UTF-8 become U+FFFD on both sides, though not always as many: compare
        # with every run of non-ASCII characters as one '?'.)
        def ascii_runs(t):
            return re.sub(r"[^\x00-\x7f]+", "?", t)

        assert ascii_runs(sampled["text"][0]) == ascii_runs(sampled_expected), (sampled["text"], sampled_expected)
        # A tiny temperature is greedy too.
        assert ok(dict(greedy, top_k=0, temperature=1e-4))["text"] == [expected]
        assert ok({"prompts": [prompt], "tokens_to_generate": n, "top_k": 1})["logprobs"] is None

        # Two prompts of different lengths in one request: each as it is alone.
        alone = ok({"prompts": ["a"], "tokens_to_generate": 5, "top_k": 1})["text"][0]
        both = ok({"prompts": [prompt, "a"], "tokens_to_generate": n, "top_k": 1})["text"]
        assert both[0] == expected and both[1].startswith(alone), (both, alone)

        # Scoring: tokens_to_generate 0 gives the prompt's logprobs (one per token after the first).
        s = ok({"prompts": [prompt], "tokens_to_generate": 0, "logprobs": True})
        assert s["text"] == [prompt] and len(s["logprobs"][0]) == len(prompt) - 1, s

        # random_seed: the same seed, the same sample.
        seeded = {"prompts": [prompt, "int "], "tokens_to_generate": n, "temperature": 1.0, "random_seed": 7}
        assert ok(seeded) == ok(seeded)

        # Megatron's beam search: one beam is greedy; a wider one answers its beams best first.
        beam = ok({"prompts": [prompt], "tokens_to_generate": n, "beam_width": 1})
        assert beam["text"] == [expected] and "logprobs" not in beam and len(beam["scores"]) == 1, beam
        beams = ok({"prompts": [prompt], "tokens_to_generate": 4, "beam_width": 3, "length_penalty": 0.5})
        assert 1 <= len(beams["text"]) <= 3 and all(t.startswith(prompt) for t in beams["text"]), beams
        assert beams["scores"] == sorted(beams["scores"], reverse=True), beams
        print("beam_width 1 = greedy; beam_width 3:", beams["text"], beams["scores"])
        # Decaying top_p and the newline rules: with stop_on_eol a newline can only end the text.
        eol = ok({"prompts": [prompt, "a:"], "tokens_to_generate": n, "top_p": 0.9, "top_p_decay": 0.5,
                  "top_p_bound": 0.3, "random_seed": 1, "stop_on_eol": True, "prevent_newline_after_colon": True,
                  "no_log": True})
        for text, start in zip(eol["text"], (prompt, "a:")):
            assert "\n" not in text[len(start):-1], eol
        assert not eol["text"][1].startswith("a:\n"), eol

        # Concurrent requests: all answered, the same as one at a time.
        results, errors = [None] * 6, []

        def worker(i):
            try:
                results[i] = request("PUT", greedy)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(TIMEOUT)
        assert not errors, errors
        assert all(r is not None and r[0] == 200 and r[1]["text"] == [expected] for r in results), results
        print("6 concurrent requests: 200, identical")

        # Invalid requests: 400 with a message naming the field.
        bad('{"prompts": ["a"', "not valid JSON", raw=True)
        bad("", "not valid JSON", raw=True)
        bad({"prompts": "a"}, "prompts must be a list")
        bad({"prompts": ["a"], "tokens_to_generate": "8"}, "tokens_to_generate must be an integer")
        bad({"prompts": ["a"], "top_k": 5000}, "top_k must be in [0, 1000]")
        bad({"prompts": ["a"], "temperature": 0}, "temperature")
        bad({"prompts": ["a"], "top_p": 0.9, "top_k": 4}, "top_p and top_k")
        bad({"prompts": ["a"], "bogus": 1}, 'unknown field "bogus"')
        bad({"prompts": ["a"], "max_len": 4}, "max_len")
        bad({"prompts": ["a", "b"], "tokens_to_generate": 2, "beam_width": 2}, "beam_width", "one prompt")
        bad({"prompts": ["a"], "tokens_to_generate": 2, "beam_width": 2, "top_k": 1}, "top_k cannot be used with beam_width")
        bad({"prompts": ["a"], "top_p_decay": 0.5}, "top_p_decay needs top_p > 0")
        bad({"prompts": ["a"], "top_p": 0.5, "top_p_bound": 0.7}, "top_p_bound must be in (0, top_p]")
        bad({"prompts": ["a"], "stop_on_eol": "yes"}, "stop_on_eol must be true or false")
        bad({"prompts": ["a"] * 129}, "prompts must hold 1 to 128")
        bad({"prompts": [""]}, "prompts[0] is empty")
        bad({"prompts": ["x" * 30], "tokens_to_generate": 8}, "would exceed the context", "prompts[0]")
        bad({"prompts": [prompt]}, "would exceed the context")  # 7 + 64 > 32
        bad(None, "PUT /api", method="GET", status=405, raw=True)
        bad(greedy, "PUT /api", method="POST", status=405)
        # Still serving.
        assert ok(greedy)["text"] == [expected]

        code = server.stop()
        assert code == 0, f"tessera serve exited {code} after SIGTERM:\n{server.output()}"
        print("SIGTERM: exit 0")
    finally:
        server.kill()
    stop_at_once([binary, "serve", "--load", load, "--port", "0", "--threads", "1"], 5)
    print("serve_client: all checks passed")


if __name__ == "__main__":
    main()
