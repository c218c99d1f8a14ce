#!/usr/bin/env python3
"""Integration tests of `upg serve`: the real binary on an ephemeral loopback port, the
default model, the official openai client and raw HTTP (httpx).

Run by ctest (server-integration) with UPG_CLI (the binary) and UPG_MODEL (the default
model; every test skips when it is absent, as in the sanitizer run). Few tokens per
request keep the whole file within about a minute and a half on two cores.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

try:
    import httpx
    import openai
except ImportError as e:  # the set-up installs them: scripts/install-python-deps.sh
    sys.exit(f"test_server: {e}; run scripts/install-python-deps.sh")

CLI = os.environ.get("UPG_CLI", "build/upg")
MODEL = os.environ.get("UPG_MODEL", "")
HAVE_MODEL = bool(MODEL) and os.path.isfile(MODEL)
STARTUP_S = 120


class ServerProcess:
    """`upg serve MODEL --port 0 ...`, the port read from its "listening on" line."""

    def __init__(self, *flags):
        self.proc = subprocess.Popen([CLI, "serve", MODEL, "--port", "0", "-t", "2", *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        got_port = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    got_port.set()
            got_port.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not got_port.wait(STARTUP_S) or self.port is None:
            self.kill()
            raise RuntimeError("upg serve did not start:\n" + "".join(self.log))
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, headers=None):
        deadline = time.time() + STARTUP_S
        seen_loading = False
        while time.time() < deadline:
            r = httpx.get(self.url + "/health", headers=headers)
            if r.status_code == 200:
                return seen_loading
            assert r.status_code == 503, r.text
            seen_loading = True
            time.sleep(0.05)
        raise RuntimeError("upg serve never became ready:\n" + "".join(self.log))

    def metrics(self, headers=None):
        text = httpx.get(self.url + "/metrics", headers=headers).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def chat_body(content, max_tokens=8, **kw):
    return {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0, **kw}


def read_stream(lines):
    """Chunks of one SSE response (its lines, parsed), and whether it ended with [DONE]."""
    chunks, done = [], False
    for line in lines:
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        chunks.append(json.loads(data))
    return chunks, done


@unittest.skipUnless(HAVE_MODEL, "UPG_MODEL (the default model) is not available")
class ServerTest(unittest.TestCase):
    """One server, many tests: the API, concurrency, bad input."""

    @classmethod
    def setUpClass(cls):
        # Batch invariant: a request gives the same tokens whatever runs beside it (the n
        # choices of one request start a step apart or together, as the HTTP threads
        # happen to submit them) and whether its prompt's first blocks come from the cache.
        cls.server = ServerProcess("--max-queue", "48", "--max-body", "1", "--timeout", "60",
                                   "--batch-invariant")
        cls.saw_loading = cls.server.wait_ready()
        cls.url = cls.server.url
        cls.client = openai.OpenAI(base_url=cls.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        cls.model = cls.client.models.list().data[0].id

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def chat(self, content, max_tokens=8, **kw):
        return self.client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": content}],
                                                   max_tokens=max_tokens, temperature=0, **kw)

    def chat_streamed(self, content, max_tokens=8, **kw):
        text, finish, usage, roles = "", None, None, 0
        for chunk in self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens,
                temperature=0, stream=True, stream_options={"include_usage": True}, **kw):
            if chunk.usage is not None:
                usage = chunk.usage
            for c in chunk.choices:
                roles += c.delta.role == "assistant"
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        return text, finish, usage, roles

    def test_health_and_models(self):
        # The listener starts before the model loads (/health answers 503 meanwhile).
        log = "".join(self.server.log)
        self.assertLess(log.index("listening on"), log.index("upg: loaded"))
        self.assertEqual(httpx.get(self.url + "/health").json(), {"status": "ok"})
        models = httpx.get(self.url + "/v1/models").json()
        self.assertEqual(models["object"], "list")
        self.assertEqual(models["data"][0]["id"], os.path.basename(MODEL).rsplit(".", 1)[0])

    def test_chat_non_streamed(self):
        r = self.chat("What is the capital of France?", max_tokens=12)
        self.assertTrue(r.id.startswith("chatcmpl-"))
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.model, self.model)
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertTrue(r.choices[0].message.content)
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 5)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        self.assertLessEqual(r.usage.completion_tokens, 12)

    def test_chat_equals_upg_run(self):
        # The same chat template, tokenization and greedy decode as the CLI (which, as
        # the server here, keeps prompt and generated tokens to their own kernels).
        prompt = "What is the capital of France?"
        run = subprocess.run([CLI, "run", MODEL, "-p", prompt, "--temp", "0", "-n", "12", "-t", "2",
                              "--batch-invariant"],
                             capture_output=True, text=True, timeout=120, check=True)
        self.assertEqual(self.chat(prompt, max_tokens=12).choices[0].message.content, run.stdout[:-1])

    def test_chat_streamed_equals_non_streamed(self):
        alone = self.chat("Name three colors.", max_tokens=16)
        text, finish, usage, roles = self.chat_streamed("Name three colors.", max_tokens=16)
        self.assertEqual(text, alone.choices[0].message.content)
        self.assertEqual(finish, alone.choices[0].finish_reason)
        self.assertEqual(roles, 1)
        self.assertEqual(usage.completion_tokens, alone.usage.completion_tokens)
        self.assertEqual(usage.prompt_tokens, alone.usage.prompt_tokens)

    def test_completions_streamed_and_not(self):
        kw = dict(model=self.model, prompt="The quick brown fox", max_tokens=10, temperature=0)
        whole = self.client.completions.create(**kw)
        self.assertEqual(whole.object, "text_completion")
        self.assertEqual(whole.choices[0].finish_reason, "length")
        self.assertEqual(whole.usage.completion_tokens, 10)
        streamed = "".join(c.choices[0].text for c in self.client.completions.create(stream=True, **kw) if c.choices)
        self.assertEqual(streamed, whole.choices[0].text)
        # Token ids as the prompt give what their text gives.
        ids = httpx.post(self.url + "/v1/completions", json={"prompt": "The quick brown fox", "max_tokens": 1,
                                                              "logprobs": 0, "temperature": 0}).json()
        self.assertEqual(len(ids["choices"][0]["logprobs"]["tokens"]), 1)

    def test_stop_seed_n_and_logprobs(self):
        base = self.chat("Count from one to ten in words.", max_tokens=16).choices[0].message.content
        words = base.split()
        self.assertGreater(len(words), 2)
        stopped = self.chat("Count from one to ten in words.", max_tokens=16, stop=[words[2]])
        self.assertEqual(stopped.choices[0].finish_reason, "stop")
        self.assertEqual(stopped.choices[0].message.content, base[:base.index(words[2])])
        # n choices with a seed: reproducible, and sampled (temperature 1) they differ.
        kw = dict(model=self.model, messages=[{"role": "user", "content": "Say something."}], max_tokens=8,
                  temperature=1.0, n=3, seed=11)
        a = self.client.chat.completions.create(**kw)
        b = self.client.chat.completions.create(**kw)
        self.assertEqual([c.message.content for c in a.choices], [c.message.content for c in b.choices])
        self.assertEqual([c.index for c in a.choices], [0, 1, 2])
        self.assertGreater(len({c.message.content for c in a.choices}), 1)
        lp = self.chat("Hello", max_tokens=4, logprobs=True, top_logprobs=3)
        content = lp.choices[0].logprobs.content
        self.assertEqual(len(content), lp.usage.completion_tokens)
        for t in content:
            self.assertEqual(len(t.top_logprobs), 3)
            # At temperature 0 the sampled token is the most likely one.
            self.assertAlmostEqual(t.logprob, t.top_logprobs[0].logprob, places=4)
            self.assertLessEqual(t.logprob, 0)

    def test_concurrent_streams_equal_alone(self):
        prompts = [f"Write a short sentence about the number {i}." for i in range(32)]
        alone = [self.chat(p, max_tokens=8) for p in prompts]
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda p: self.chat_streamed(p, max_tokens=8), prompts))
        # Batch invariant (setUpClass): exactly the same text in a batch of 32 as alone.
        for i, (text, finish, usage, _) in enumerate(results):
            self.assertIsNotNone(finish)
            self.assertEqual(text, alone[i].choices[0].message.content, f"request {i}")

    def test_client_dropping_mid_stream_frees_its_blocks(self):
        body = chat_body("Tell me a long story.", max_tokens=400, ignore_eos=True, stream=True)
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", self.url + "/v1/chat/completions", json=body) as resp:
                self.assertEqual(resp.status_code, 200)
                lines = resp.iter_lines()
                got = 0
                for line in lines:
                    got += line.startswith("data: ")
                    if got >= 4:
                        break
        # The connection is closed: the server notices at its next write and cancels.
        self.assert_freed_and_healthy(time.time() + 20)

    def assert_freed_and_healthy(self, deadline):
        while time.time() < deadline:
            m = self.server.metrics()
            if m["upg_requests_running"] == 0 and m["upg_kv_blocks_used"] == 0:
                break
            time.sleep(0.05)
        m = self.server.metrics()
        self.assertEqual(m["upg_requests_running"], 0)
        self.assertEqual(m["upg_requests_waiting"], 0)
        self.assertEqual(m["upg_kv_blocks_used"], 0)
        self.assertLess(m["upg_generated_tokens_total"], 1e9)
        self.assertEqual(httpx.get(self.url + "/health").status_code, 200)
        self.assertTrue(self.chat("Hi", max_tokens=2).choices[0].message.content is not None)
        return m

    def test_client_leaving_a_non_streamed_request_cancels_it(self):
        # 4000 tokens take a minute or more on two cores: a request that went on after its
        # client left would still be running at the deadline below.
        body = json.dumps(chat_body("Tell me a long story.", max_tokens=4000, ignore_eos=True)).encode()
        before = self.server.metrics()["upg_generated_tokens_total"]
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        deadline = time.time() + 30
        while self.server.metrics()["upg_requests_running"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.server.metrics()["upg_requests_running"], 1)
        sock.close()
        # Within a few steps of the close, not when the 4000th token is written.
        m = self.assert_freed_and_healthy(time.time() + 5)
        self.assertLess(m["upg_generated_tokens_total"] - before, 4000)

    TOOLS = [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

    def test_tool_results_fed_back_and_streamed_equals_whole(self):
        # The second half of a tool round trip: the call and its result go back through
        # the chat template (SmolLM2's knows no tools: the generic format describes them in
        # the system message and writes the earlier call as its JSON reply).
        messages = [{"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": None, "tool_calls": [{
                        "id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "21 C and sunny"}]
        kw = dict(model=self.model, messages=messages, tools=self.TOOLS, max_tokens=24, temperature=0)
        whole = self.client.chat.completions.create(**kw)
        choice = whole.choices[0]
        self.assertIn(choice.finish_reason, ("stop", "length", "tool_calls"))
        plain = self.client.chat.completions.create(**{**kw, "tools": None})
        self.assertNotEqual(whole.usage.prompt_tokens, plain.usage.prompt_tokens)  # the tools are in the prompt
        text, calls, finish = "", {}, None
        for chunk in self.client.chat.completions.create(stream=True, **kw):
            for c in chunk.choices:
                text += c.delta.content or ""
                for t in c.delta.tool_calls or []:
                    got = calls.setdefault(t.index, {"id": "", "name": "", "arguments": ""})
                    got["id"] += t.id or ""
                    got["name"] += t.function.name or ""
                    got["arguments"] += t.function.arguments or ""
                finish = c.finish_reason or finish
        self.assertEqual(text, choice.message.content or "")
        self.assertEqual(finish, choice.finish_reason)
        # Ids are the response's own; the calls otherwise reassemble to the whole reply's.
        self.assertTrue(all(c.pop("id").startswith("call_") for c in calls.values()))
        self.assertEqual([calls[i] for i in sorted(calls)],
                         [{"name": t.function.name, "arguments": t.function.arguments}
                          for t in choice.message.tool_calls or []])

    def tool_chat(self, messages, **kw):
        return self.client.chat.completions.create(model=self.model, messages=messages, tools=self.TOOLS,
                                                   max_tokens=48, temperature=0, **kw)

    def test_tool_call_required_round_trip(self):
        # "required": the grammar holds the reply to a call of a given tool with valid
        # arguments; the call and its result then go back for the final answer.
        # One call (parallel_tool_calls off): left free to call again, the small model
        # repeats its call until max_tokens.
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        r = self.tool_chat(question, tool_choice="required", parallel_tool_calls=False)
        choice = r.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls", choice)
        call = choice.message.tool_calls[0]
        self.assertEqual(call.type, "function")
        self.assertEqual(call.function.name, "get_weather")
        args = json.loads(call.function.arguments)
        self.assertIsInstance(args["city"], str)
        # Streamed, the call's deltas reassemble to the same call.
        calls, finish = {}, None
        for chunk in self.client.chat.completions.create(
                model=self.model, messages=question, tools=self.TOOLS, max_tokens=48, temperature=0,
                tool_choice="required", parallel_tool_calls=False, stream=True):
            for c in chunk.choices:
                for t in c.delta.tool_calls or []:
                    got = calls.setdefault(t.index, {"name": "", "arguments": ""})
                    got["name"] += t.function.name or ""
                    got["arguments"] += t.function.arguments or ""
                finish = c.finish_reason or finish
        self.assertEqual(finish, "tool_calls")
        self.assertEqual(calls[0], {"name": call.function.name, "arguments": call.function.arguments})
        # The result goes back; the model answers.
        history = question + [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
            {"role": "tool", "tool_call_id": call.id, "content": "21 C and sunny"}]
        final = self.tool_chat(history, tool_choice="none")
        self.assertIn(final.choices[0].finish_reason, ("stop", "length"))
        self.assertTrue(final.choices[0].message.content)
        self.assertIsNone(final.choices[0].message.tool_calls)

    def test_tool_call_named_function(self):
        tools = self.TOOLS + [{"type": "function", "function": {
            "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                               "required": ["zone"]}}}]
        r = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=tools,
            tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=48, temperature=0)
        calls = r.choices[0].message.tool_calls
        self.assertEqual([c.function.name for c in calls], ["get_time"])
        self.assertIsInstance(json.loads(calls[0].function.arguments)["zone"], str)

    def test_structured_output(self):
        import pydantic

        class City(pydantic.BaseModel):
            name: str
            country: str
            population: int = pydantic.Field(ge=0, le=100_000_000)  # bounds are enforced too

        parsed = self.client.chat.completions.parse(
            model=self.model, messages=[{"role": "user", "content": "Give the name, country and population of Paris."}],
            response_format=City, max_tokens=64, temperature=0)
        choice = parsed.choices[0]
        self.assertEqual(choice.finish_reason, "stop", choice.message.content)
        self.assertIsInstance(choice.message.parsed, City)
        r = self.chat("Give me a JSON object about cats.", max_tokens=48, response_format={"type": "json_object"})
        if r.choices[0].finish_reason == "stop":
            self.assertIsInstance(json.loads(r.choices[0].message.content), dict)
        else:  # cut by max_tokens: a valid prefix of an object
            self.assertTrue(r.choices[0].message.content.startswith("{"))
        # llama.cpp's fields: a GBNF grammar.
        g = httpx.post(self.url + "/v1/chat/completions", json=chat_body(
            "Is the sky blue?", max_tokens=4, grammar='root ::= "yes" | "no"')).json()
        self.assertIn(g["choices"][0]["message"]["content"], ("yes", "no"))
        self.assertEqual(g["choices"][0]["finish_reason"], "stop")

    def test_bad_structured_output(self):
        def refused(**body):
            r = httpx.post(self.url + "/v1/chat/completions", json=chat_body("hi", **body))
            self.assertEqual(r.status_code, 400, r.text)
            return r.json()["error"]
        err = refused(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {
                "a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}}})
        self.assertEqual(err["param"], "response_format.json_schema.schema")
        self.assertIn("$.properties.a.uniqueItems", err["message"])  # the keyword and where it is
        self.assertEqual(refused(grammar="root ::= ")["param"], "grammar")

    def test_bad_tool_requests(self):
        def refused(**body):
            r = httpx.post(self.url + "/v1/chat/completions", json=chat_body("hi", **body))
            self.assertEqual(r.status_code, 400, r.text)
            return r.json()["error"]["param"]
        self.assertEqual(refused(tools=self.TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}),
                         "tool_choice.function.name")
        self.assertEqual(refused(tools=[{"type": "function", "function": {"name": "a b"}}]), "tools[0].function.name")
        self.assertEqual(refused(tool_choice="required"), "tool_choice")
        r = httpx.post(self.url + "/v1/chat/completions", json={
            "messages": [{"role": "tool", "content": "x"}], "max_tokens": 2})
        self.assertEqual(r.json()["error"]["param"], "messages[0].tool_call_id")

    def test_bad_requests(self):
        msgs = [{"role": "user", "content": "hi"}]
        long_prompt = "hello " * 9000
        cases = [  # (path, body, status, param)
            ("/v1/chat/completions", b"{not json", 400, None),
            ("/v1/chat/completions", b"[1, 2]", 400, None),
            ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "\xff"}]}'.encode("latin-1"), 400, None),
            ("/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
            ("/v1/chat/completions", {"messages": []}, 400, "messages"),
            ("/v1/chat/completions", {"messages": msgs, "max_tokens": -5}, 400, "max_tokens"),
            ("/v1/chat/completions", {"messages": msgs, "max_tokens": 10 ** 12}, 400, "max_tokens"),
            ("/v1/chat/completions", {"messages": msgs, "max_tokens": "8"}, 400, "max_tokens"),
            ("/v1/chat/completions", {"messages": msgs, "temperature": "hot"}, 400, "temperature"),
            ("/v1/chat/completions", {"messages": msgs, "n": 1000}, 400, "n"),
            ("/v1/chat/completions", {"messages": msgs, "max_tokenz": 4}, 400, "max_tokenz"),
            ("/v1/chat/completions", {"messages": msgs, "model": "gpt-17"}, 404, "model"),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": long_prompt}]}, 400, "messages"),
            ("/v1/completions", {"prompt": long_prompt, "max_tokens": 4}, 400, "prompt"),
            ("/v1/completions", {"prompt": [10 ** 7]}, 400, "prompt"),
            ("/v1/completions", {"prompt": 5}, 400, "prompt"),
            ("/v1/completions", {"prompt": "x", "stop": [""]}, 400, "stop"),
            ("/v1/nowhere", {"prompt": "x"}, 404, None),
            ("/v1/completions", b"{\"prompt\": \"" + b"a" * (2 << 20) + b"\"}", 413, None),
        ]
        for path, body, status, param in cases:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = httpx.post(self.url + path, content=data, headers={"Content-Type": "application/json"}, timeout=30)
            with self.subTest(path=path, body=data[:80]):
                self.assertEqual(r.status_code, status, r.text[:300])
                err = r.json()["error"]
                self.assertEqual(set(err), {"message", "type", "param", "code"})
                self.assertTrue(err["message"])
                self.assertEqual(err["param"], param)
        # The openai client raises its typed errors for them.
        with self.assertRaises(openai.BadRequestError):
            self.client.chat.completions.create(model=self.model, messages=[], max_tokens=4)
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="nope", messages=msgs, max_tokens=4)
        self.assertEqual(httpx.get(self.url + "/health").status_code, 200)

    def test_malformed_body_fuzz(self):
        rng = random.Random(26)
        seeds = [json.dumps(chat_body("Hi there", max_tokens=2)),
                 json.dumps({"prompt": ["a b", [1, 2]], "max_tokens": 2, "n": 2, "stop": ["x"], "logprobs": 2}),
                 json.dumps(chat_body("x", max_tokens=3, stream=True, top_p=0.5, seed=3, logprobs=True))]
        alphabet = '{}[]",:0123456789-.eEtrufalsn \\\xff\x00'
        statuses = {}
        with httpx.Client(timeout=30) as c:
            for i in range(300):
                body = list(rng.choice(seeds))
                for _ in range(rng.randint(1, 4)):
                    op, pos = rng.randrange(3), rng.randrange(len(body))
                    if op == 0:
                        body[pos] = rng.choice(alphabet)
                    elif op == 1:
                        body.insert(pos, rng.choice(alphabet))
                    else:
                        del body[pos:pos + rng.randint(1, 8)]
                data = "".join(body).encode("utf-8", "surrogateescape") if rng.random() < 0.9 else \
                    bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
                path = "/v1/chat/completions" if rng.random() < 0.5 else "/v1/completions"
                r = c.post(self.url + path, content=data, headers={"Content-Type": "application/json"})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                self.assertLess(r.status_code, 500, (data, r.text))
                if r.status_code != 200:
                    self.assertIn("error", r.json())
        self.assertGreater(statuses.get(400, 0), 100, statuses)
        self.assertEqual(httpx.get(self.url + "/health").status_code, 200)

    def test_no_cors_and_no_prompts_in_the_log(self):
        def logged():
            return "".join(self.server.log).count("POST /v1/chat/completions 200")
        before = logged()
        r = httpx.post(self.url + "/v1/chat/completions", json=chat_body("unlogged-prompt-7391", max_tokens=1),
                       headers={"Origin": "http://app.test"}, timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertNotIn("access-control-allow-origin", r.headers)
        pre = httpx.options(self.url + "/v1/chat/completions", headers={
            "Origin": "http://app.test", "Access-Control-Request-Method": "POST"})
        self.assertGreaterEqual(pre.status_code, 400)
        self.assertNotIn("access-control-allow-origin", pre.headers)
        deadline = time.time() + 5  # the request's log line is written after its response
        while logged() == before and time.time() < deadline:
            time.sleep(0.05)
        self.assertGreater(logged(), before)
        self.assertNotIn("unlogged-prompt-7391", "".join(self.server.log))

    def test_metrics(self):
        self.chat("Hi", max_tokens=2)
        m = self.server.metrics()
        self.assertGreater(m['upg_requests_total{endpoint="/v1/chat/completions",status="200"}'], 0)
        self.assertGreater(m["upg_time_to_first_token_seconds_count"], 0)
        self.assertGreater(m["upg_generated_tokens_total"], 0)
        self.assertEqual(m["upg_ready"], 1)
        self.assertIn("upg_kv_blocks_free", m)
        self.assertIn("upg_spec_accepted_tokens_total", m)
        self.assertIn("upg_spec_draft_tokens_total", m)
        self.assertIn("upg_requests_waiting", m)
        self.assertGreater(m["upg_prompt_tokens_total"], 0)
        self.assertGreater(m["upg_inter_token_seconds_count"], 0)  # "Hi" with 2 tokens has one gap
        self.assertGreater(m["upg_request_seconds_count"], 0)
        self.assertEqual(m['upg_request_seconds_bucket{le="+Inf"}'], m["upg_request_seconds_count"])


@unittest.skipUnless(HAVE_MODEL, "UPG_MODEL (the default model) is not available")
class SmallServerTest(unittest.TestCase):
    """A server with an API key, a queue of one, a 4 s timeout, CORS for one origin and prompts logged: 401, CORS,
    429, "abort", then SIGTERM mid-stream."""

    KEY = {"Authorization": "Bearer sk-test-key"}
    ORIGIN = "http://app.test"

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess("--max-seqs", "1", "--max-queue", "1", "--api-key", "sk-test-key", "--grace", "30",
                                   "--timeout", "4", "--cors-origin", cls.ORIGIN, "--log-prompts")
        cls.server.wait_ready()
        cls.url = cls.server.url

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def test_a_api_key(self):
        body = chat_body("Hi", max_tokens=2)
        self.assertEqual(httpx.get(self.url + "/health").status_code, 200)  # exempt
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sk-test-key"}):
            r = httpx.post(self.url + "/v1/chat/completions", json=body, headers=headers)
            self.assertEqual(r.status_code, 401)
            self.assertEqual(r.json()["error"]["code"], "invalid_api_key")
        self.assertEqual(httpx.get(self.url + "/metrics").status_code, 401)
        r = httpx.post(self.url + "/v1/chat/completions", json=body, headers=self.KEY, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        client = openai.OpenAI(base_url=self.url + "/v1", api_key="sk-test-key", max_retries=0)
        self.assertEqual(len(client.models.list().data), 1)

    def test_a_cors_when_asked_and_prompts_logged(self):
        # The preflight needs no key (browsers send none with it); the request it asks about does.
        pre = httpx.options(self.url + "/v1/chat/completions", headers={
            "Origin": self.ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(pre.status_code, 204)
        self.assertEqual(pre.headers["access-control-allow-origin"], self.ORIGIN)
        self.assertIn("POST", pre.headers["access-control-allow-methods"])
        self.assertIn("authorization", pre.headers["access-control-allow-headers"].lower())
        body = chat_body("logged-prompt-5820", max_tokens=1)
        r = httpx.post(self.url + "/v1/chat/completions", json=body, headers={"Origin": self.ORIGIN})
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.headers["access-control-allow-origin"], self.ORIGIN)  # the page can read why
        r = httpx.post(self.url + "/v1/chat/completions", json=body, headers={"Origin": self.ORIGIN, **self.KEY},
                       timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["access-control-allow-origin"], self.ORIGIN)
        other = httpx.get(self.url + "/health", headers={"Origin": "http://elsewhere.test"})
        self.assertNotIn("access-control-allow-origin", other.headers)
        self.assertIn("logged-prompt-5820", "".join(self.server.log))  # --log-prompts: before generation

    def test_b_full_queue_gives_429(self):
        body = chat_body("Tell me a long story.", max_tokens=300, ignore_eos=True, stream=True)
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", self.url + "/v1/chat/completions", json=body, headers=self.KEY) as resp:
                self.assertEqual(resp.status_code, 200)
                next(resp.iter_lines())
                r = httpx.post(self.url + "/v1/chat/completions", json=chat_body("Hi", max_tokens=2),
                               headers=self.KEY)
                self.assertEqual(r.status_code, 429)
                self.assertEqual(r.headers["Retry-After"], "1")
                self.assertEqual(r.json()["error"]["code"], "rate_limit_exceeded")
        deadline = time.time() + 20  # the dropped stream leaves the queue
        while time.time() < deadline:
            r = httpx.post(self.url + "/v1/chat/completions", json=chat_body("Hi", max_tokens=2), headers=self.KEY)
            if r.status_code == 200:
                break
            time.sleep(0.1)
        self.assertEqual(r.status_code, 200)

    def test_c_timeout_ends_with_abort(self):
        t0 = time.time()
        r = httpx.post(self.url + "/v1/chat/completions", headers=self.KEY, timeout=60,
                       json=chat_body("Tell me a long story.", max_tokens=4000, ignore_eos=True))
        took = time.time() - t0
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["choices"][0]["finish_reason"], "abort")
        self.assertGreater(r.json()["usage"]["completion_tokens"], 0)
        self.assertTrue(4 <= took < 30, took)

    def test_z_sigterm_drains_the_stream_and_exits_0(self):
        # Long enough to be still streaming while the checks below run on a quiet machine
        # (a few hundred ms), short enough to end within the server's 4 s timeout on a busy one.
        body = chat_body("Tell me a story.", max_tokens=64, ignore_eos=True, stream=True)
        with httpx.Client(timeout=60) as c:
            with c.stream("POST", self.url + "/v1/chat/completions", json=body, headers=self.KEY) as resp:
                lines = resp.iter_lines()
                first = next(lines)
                self.assertTrue(first.startswith("data: "))
                self.server.proc.send_signal(signal.SIGTERM)
                # Draining: /health says so as soon as the signal is handled, new work is
                # refused, the stream in flight goes on.
                deadline = time.time() + 2
                while httpx.get(self.url + "/health").status_code != 503 and time.time() < deadline:
                    time.sleep(0.01)
                self.assertEqual(httpx.get(self.url + "/health").status_code, 503)
                r = httpx.post(self.url + "/v1/chat/completions", json=chat_body("Hi"), headers=self.KEY)
                self.assertEqual(r.status_code, 503)
                chunks, done = read_stream(lines)
        self.assertTrue(done)
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "length")
        self.assertEqual(self.server.proc.wait(timeout=60), 0, "".join(self.server.log))



@unittest.skipUnless(HAVE_MODEL, "UPG_MODEL (the default model) is not available")
class ShortContextServerTest(unittest.TestCase):
    """A context of 128 tokens and no grace period: max_tokens capped by the context, then SIGINT mid-stream ends
    the stream with "abort" and the process with 0."""

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess("-c", "128", "--grace", "0")
        cls.server.wait_ready()
        cls.url = cls.server.url

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def test_a_max_tokens_capped_by_the_context(self):
        r = httpx.post(self.url + "/v1/completions", timeout=60, json={
            "prompt": "Once upon a time", "max_tokens": 128, "temperature": 0, "ignore_eos": True}).json()
        self.assertEqual(r["choices"][0]["finish_reason"], "length", r)
        self.assertEqual(r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"], 128)
        self.assertEqual(httpx.post(self.url + "/v1/completions", json={"prompt": "x", "max_tokens": 129}).status_code,
                         400)

    def test_z_sigint_past_the_grace_period_aborts_and_exits_0(self):
        body = {"prompt": "Once upon a time", "max_tokens": 120, "temperature": 0, "ignore_eos": True, "stream": True}
        with httpx.Client(timeout=60) as c:
            with c.stream("POST", self.url + "/v1/completions", json=body) as resp:
                lines = resp.iter_lines()
                self.assertTrue(next(lines).startswith("data: "))
                self.server.proc.send_signal(signal.SIGINT)
                chunks, done = read_stream(lines)
        self.assertTrue(done)
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "abort")
        self.assertLess(len(chunks), 110)  # ended, not run out
        self.assertEqual(self.server.proc.wait(timeout=60), 0, "".join(self.server.log))


if __name__ == "__main__":
    unittest.main(verbosity=2)
