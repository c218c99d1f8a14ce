#!/usr/bin/env python3
"""Load on an OpenAI-compatible server: streamed chat, temperature 0, N tokens per
request, at each level of concurrent clients (each sends its requests one after the
other). Reports per level the aggregate generated tok/s (tokens / wall time of the
level), time to first token and inter-token latency (p50, p99) and errors. Loopback and
bounded: levels x clients x requests, each at most --max-tokens tokens.

Usage: bench/serve/serve-load.py --url http://127.0.0.1:8080 [--levels 1,8,32,64]
       [--requests 2] [--max-tokens 128] [--model NAME] [--label NAME] [--json OUT]
Needs httpx (installed with openai by scripts/install-python-deps.sh).
"""
import argparse
import json
import sys
import threading
import time

import httpx

TOPICS = ["the sea", "a lighthouse", "autumn leaves", "a city at night", "a robot", "mountains", "a library",
          "the desert", "a train journey", "a garden", "the moon", "a storm", "an old map", "a bakery",
          "a violin", "winter", "a river", "a market", "a dragon", "the forest", "a clock", "a bridge",
          "a ship", "a cat", "the stars", "a castle", "rain", "a festival", "a letter", "the ocean floor",
          "a volcano", "a snowflake"]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(client, url, model, prompt, max_tokens):
    """(tokens, ttft seconds, [inter-token gaps]); raises on any error."""
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    if model:
        body["model"] = model
    t0 = time.perf_counter()
    first, last, gaps, pieces, usage = None, None, [], 0, None
    with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.read()[:200]!r}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for c in chunk.get("choices", []):
                if (c.get("delta") or {}).get("content"):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        gaps.append(now - last)
                    last = now
                    pieces += 1
    tokens = usage["completion_tokens"] if usage else pieces
    if first is None:
        raise RuntimeError("no token streamed")
    return tokens, first - t0, gaps


def run_level(url, model, clients, requests, max_tokens):
    ttfts, gaps, errors, tokens = [], [], [], [0]
    lock = threading.Lock()

    def client_loop(i):
        with httpx.Client(timeout=600) as client:
            for j in range(requests):
                prompt = f"Write a long story about {TOPICS[(i * requests + j) % len(TOPICS)]}. (client {i})"
                try:
                    n, ttft, g = one_request(client, url, model, prompt, max_tokens)
                    with lock:
                        tokens[0] += n
                        ttfts.append(ttft)
                        gaps.extend(g)
                        if n != max_tokens:
                            errors.append(f"client {i}: {n} tokens, not {max_tokens}")
                except Exception as e:  # counted, reported, never hidden
                    with lock:
                        errors.append(f"client {i}: {e}")

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": clients * requests, "tokens": tokens[0], "wall_s": wall,
            "tok_per_s": tokens[0] / wall, "ttft_p50_s": percentile(ttfts, 50), "ttft_p99_s": percentile(ttfts, 99),
            "itl_p50_s": percentile(gaps, 50), "itl_p99_s": percentile(gaps, 99), "errors": len(errors),
            "error_samples": errors[:5]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--requests", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", default="")
    ap.add_argument("--label", default="server")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    if not levels or min(levels) < 1 or max(levels) > 256 or not 1 <= a.requests <= 16 or not 1 <= a.max_tokens <= 4096:
        sys.exit("serve-load: levels in [1, 256], --requests in [1, 16], --max-tokens in [1, 4096]")
    rows = []
    # One untimed request first: page-in and first-call costs belong to neither level.
    run_level(a.url, a.model, 1, 1, 8)
    print(f"{'server':<14} {'clients':>7} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8} "
          f"{'errors':>6}")
    for c in levels:
        r = run_level(a.url, a.model, c, a.requests, a.max_tokens)
        r["label"] = a.label
        rows.append(r)
        print(f"{a.label:<14} {c:>7} {r['tok_per_s']:>8.1f} {r['ttft_p50_s']:>8.3f}s {r['ttft_p99_s']:>8.3f}s "
              f"{r['itl_p50_s'] * 1000:>6.1f}ms {r['itl_p99_s'] * 1000:>6.1f}ms {r['errors']:>6}", flush=True)
        for e in r["error_samples"]:
            print(f"  error: {e}", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
