#!/usr/bin/env python3
"""End-to-end test of `tessera serve` over real HTTP (standard library only).

serve_client.py TESSERA_BINARY SAVED_MODEL_DIR

Starts `tessera serve --port 0` (any free port, read from its first line) on 127.0.0.1 as a child
process, sends requests, then SIGTERM and expects exit code 0. Every wait has a timeout and the
child is killed at the end in any case. Exit code 0 when every check passes.
"""
import http.client
import json
import math
import re
import signal
import subprocess
import sys
import threading

TIMEOUT = 120  # seconds for any one request or wait


def main():
    binary, load = sys.argv[1], sys.argv[2]
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

    server = subprocess.Popen([binary, "serve", "--load", load, "--port", "0", "--host", "127.0.0.1",
                               "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first = [None]

        def read_first():
            first[0] = server.stdout.readline().decode()

        t = threading.Thread(target=read_first, daemon=True)
        t.start()
        t.join(TIMEOUT)
        assert first[0], f"tessera serve printed nothing within {TIMEOUT} s"
        print(first[0].rstrip())
        m = re.search(r"http://127\.0\.0\.1:(\d+)/api", first[0])
        assert m, f"no address in {first[0]!r}"
        port = int(m.group(1))
        # Drain the rest of its output so that it never blocks on a full pipe.
        threading.Thread(target=lambda: server.stdout.read(), daemon=True).start()

        def request(method, body, raw=False):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            try:
                data = body if raw else json.dumps(body)
                c.request(method, "/api", body=data.encode() if data is not None else None,
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, json.loads(r.read().decode())
            finally:
                c.close()

        def ok(body):
            status, j = request("PUT", body)
            assert status == 200, (status, j)
            return j

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
        bad({"prompts": ["a"] * 129}, "prompts must hold 1 to 128")
        bad({"prompts": [""]}, "prompts[0] is empty")
        bad({"prompts": ["x" * 30], "tokens_to_generate": 8}, "would exceed the context", "prompts[0]")
        bad({"prompts": [prompt]}, "would exceed the context")  # 7 + 64 > 32
        bad(None, "PUT /api", method="GET", status=405, raw=True)
        bad(greedy, "PUT /api", method="POST", status=405)
        # Still serving.
        assert ok(greedy)["text"] == [expected]

        server.send_signal(signal.SIGTERM)
        code = server.wait(TIMEOUT)
        assert code == 0, f"tessera serve exited {code} after SIGTERM"
        print("SIGTERM: exit 0")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(TIMEOUT)
    print("serve_client: all checks passed")


if __name__ == "__main__":
    main()
