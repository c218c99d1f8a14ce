#!/usr/bin/env python3
"""Tests of peer-bench.py's bookkeeping with stand-in programs: interleaving, medians,
ratios, errors kept per file and engine, cached variants, the JSON the report reads.
No llama.cpp build and no model: every tool is a small script that prints canned JSON."""
import contextlib
import importlib.util
import io
import json
import os
import stat
import struct
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("peer_bench", os.path.join(HERE, "peer-bench.py"))
pb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pb)
_rspec = importlib.util.spec_from_file_location(
    "bench_report", os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "bench-report.py"))
br = importlib.util.module_from_spec(_rspec)
_rspec.loader.exec_module(br)

# One script for every tool, told apart by its name. Each call is logged; speeds cycle
# through 100, 300, 200 per (tool, file) so the median is the middle one.
STUB = textwrap.dedent('''\
    #!/usr/bin/env python3
    import json, os, sys
    tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
    log = os.environ["STUB_LOG"]
    def arg(flag):
        return args[args.index(flag) + 1]
    def speed(path):
        key = tool + ":" + os.path.basename(path)
        with open(log, encoding="utf-8") as f:
            n = sum(1 for line in f if line.split(" ", 1)[0] == key)
        return [100.0, 300.0, 200.0][(n - 1) % 3]
    if tool == "llama-quantize":
        inp, out, qtype = args[-3:]
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{tool}:{qtype} {' '.join(args)}\\n")
        if qtype == "BADTYPE":
            sys.exit("invalid quantization type BADTYPE")
        with open(out, "w") as f:
            f.write("GGUF " + qtype)
        sys.exit(0)
    path = arg("-m") if tool.startswith("llama") else args[1]
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"{tool}:{os.path.basename(path)} {' '.join(args)}\\n")
    v = speed(path)
    if tool == "llama-bench":
        if "Q2_K" in path:
            sys.exit("llama_model_load: error loading model")
        for p, n in ((int(arg("-p")), 0), (0, int(arg("-n")))):
            print(json.dumps({"build_commit": "abc123", "model_type": "llama ?B", "n_prompt": p, "n_gen": n,
                              "avg_ts": v * (10 if p else 1), "samples_ts": [v]}))
    elif tool == "llama-batched-bench":
        for pl in (1, 8, 32):
            print(json.dumps({"pp": 128, "tg": 128, "pl": pl, "n_kv": pl * 256, "t_pp": 1.0,
                              "speed_pp": v * pl, "t_tg": 2.0, "speed_tg": v, "t": 3.0, "speed": v + pl}))
    elif tool == "upg":
        if "IQ4_XS" in path:
            print("upg: loaded nothing", file=sys.stderr)
            sys.exit("upg: error: " + path + ": tensor blk.0.attn_q.weight: GGUF type IQ4_XS is not supported")
        for t, p, n in (("pp", int(arg("-p")), 0), ("tg", 0, int(arg("-n")))):
            print(json.dumps({"model": path, "file_bytes": 5, "backend": "cpu", "dtype": "f16",
                              "load_s": v / 1000, "test": f"{t}{p or n}", "n_prompt": p, "n_gen": n,
                              "threads": int(arg("-t")), "avg_ts": 2 * v * (10 if p else 1), "stddev_ts": 0,
                              "samples_ts": [v], "peak_rss_mib": 50}))
    ''')


class PeerBench(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        d = self.dir = self._tmp.name
        self.bin = os.path.join(d, "bin")
        os.makedirs(self.bin)
        stub = os.path.join(self.bin, "stub")
        with open(stub, "w", encoding="utf-8") as f:
            f.write(STUB)
        os.chmod(stub, os.stat(stub).st_mode | stat.S_IXUSR)
        for tool in ("llama-bench", "llama-batched-bench", "llama-quantize", "upg"):
            os.symlink(stub, os.path.join(self.bin, tool))
        self.model = os.path.join(d, "Fake-1M.Q4_1.gguf")
        with open(self.model, "w") as f:
            f.write("GGUF shipped")
        self.log = os.path.join(d, "calls.log")
        open(self.log, "w").close()
        os.environ["STUB_LOG"] = self.log
        self.out = os.path.join(d, "peer.json")

    def tearDown(self):
        self._tmp.cleanup()

    def run_harness(self, *extra, types="Q8_0,Q2_K,IQ4_XS,BADTYPE"):
        out, err = io.StringIO(), io.StringIO()
        argv = ["--model", self.model, "--types", types, "--llama-bin", self.bin, "--upg",
                os.path.join(self.bin, "upg"), "--cache", os.path.join(self.dir, "cache"), "--out", self.out, *extra]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = pb.main(argv)
        self.assertEqual(rc, 0, err.getvalue())
        with open(self.out, encoding="utf-8") as f:
            return json.load(f), out.getvalue()

    def calls(self):
        with open(self.log, encoding="utf-8") as f:
            return [line.split(" ", 1)[0] for line in f]

    def test_interleaved_medians_ratios_and_errors(self):
        result, table = self.run_harness()
        files = {f["type"]: f for f in result["files"]}
        self.assertEqual([f["type"] for f in result["files"]], ["Q4_1", "Q8_0", "Q2_K", "IQ4_XS", "BADTYPE"])
        shipped = files["Q4_1"]
        self.assertTrue(shipped["shipped"])
        # 100, 300, 200 -> median 200; pp is 10x tg; UPG's stand-in is 2x llama.cpp's.
        self.assertEqual(shipped["llama_cpp"]["tg"], 200)
        self.assertEqual(shipped["llama_cpp"]["pp"], 2000)
        self.assertEqual(sorted(shipped["llama_cpp"]["tg_samples"]), [100, 200, 300])
        self.assertEqual(shipped["llama_cpp"]["tg_spread"], 3.0)
        self.assertEqual(shipped["upg"]["tg"], 400)
        self.assertAlmostEqual(shipped["upg"]["load_s"], 0.2)
        self.assertEqual(shipped["ratio"], {"pp": 2.0, "tg": 2.0, "peak_rss": shipped["ratio"]["peak_rss"]})
        self.assertEqual(shipped["targets"], {"pp": 2.0, "tg": 1.5, "peak_rss": 1.0, "load_s": 0.5})
        # Each engine's failure stays with its file, and a file that failed once is not rerun.
        self.assertIn("IQ4_XS is not supported", files["IQ4_XS"]["upg"]["error"])
        self.assertEqual(files["IQ4_XS"]["llama_cpp"]["tg"], 200)
        self.assertIsNone(files["IQ4_XS"]["ratio"]["tg"])
        self.assertIn("error loading model", files["Q2_K"]["llama_cpp"]["error"])
        self.assertEqual(files["Q2_K"]["upg"]["tg"], 400)
        self.assertIn("BADTYPE", files["BADTYPE"]["llama_cpp"]["error"])
        calls = self.calls()
        self.assertEqual(calls.count("upg:Fake-1M.IQ4_XS.gguf"), 1)
        self.assertEqual(calls.count("llama-bench:Fake-1M.Q2_K.gguf"), 1)
        self.assertEqual(calls.count("upg:Fake-1M.Q8_0.gguf"), 3)
        # Interleaved: repetition by repetition, llama.cpp then UPG on each file in turn.
        runs = [c for c in calls if c.startswith(("llama-bench:", "upg:"))]
        self.assertEqual(runs[:4], ["llama-bench:Fake-1M.Q4_1.gguf", "upg:Fake-1M.Q4_1.gguf",
                                    "llama-bench:Fake-1M.Q8_0.gguf", "upg:Fake-1M.Q8_0.gguf"])
        self.assertEqual(runs.index("llama-bench:Fake-1M.Q4_1.gguf", 1), 8)  # 4 files made, 2 runs each
        # Variants come from one F32 export of the shipped file.
        self.assertEqual(calls[0], "llama-quantize:F32")
        # llama-batched-bench on the shipped file and Q8_0, with no UPG numbers.
        self.assertEqual([b["type"] for b in result["batched"]], ["Q4_1", "Q8_0"])
        self.assertIsNone(result["batched"][0]["upg"])
        self.assertEqual([r["pl"] for r in result["batched"][0]["llama_cpp"]["rows"]], [1, 8, 32])
        self.assertEqual(result["batched"][0]["llama_cpp"]["rows"][2]["speed_pp"], 200 * 32)
        self.assertEqual(result["llama_cpp"]["build_commit"], "abc123")
        self.assertEqual(shipped["tensor_types"], {"error": "unsupported GGUF version"})  # the stand-in file
        self.assertIn("UPG has no batched engine", table)
        self.assertIn("2.00x (>=1.5 ok)", table)
        self.assertIn("IQ4_XS is not supported", table)
        self.assertIn("noisy (fastest over slowest repetition above 1.2): Q4_1 llama.cpp pp 3.00", table)

    def test_depth_goes_to_both_engines(self):
        result, table = self.run_harness("-d", "64", types="Q8_0")
        self.assertEqual(result["settings"]["n_depth"], 64)
        with open(self.log, encoding="utf-8") as f:
            runs = [line.split() for line in f if line.startswith(("llama-bench:", "upg:"))]
        self.assertTrue(runs)
        for r in runs:
            self.assertIn("-d", r, r)
            self.assertEqual(r[r.index("-d") + 1], "64", r)
        self.assertIn("tg128 @ d64", table)

    def test_upg_files_beside_the_against_type(self):
        upg_file = os.path.join(self.dir, "int4.upg")
        with open(upg_file, "w") as f:
            f.write("UPG")
        result, table = self.run_harness("--no-batched", "--upg-file", upg_file, "--against", "Q8_0", types="Q8_0")
        [u] = result["upg_files"]
        self.assertEqual(u["file"], "int4.upg")
        self.assertEqual(u["upg"]["tg"], 400)  # median of 200, 600, 400
        self.assertEqual(u["against"], {"type": "Q8_0", "file": "Fake-1M.Q8_0.gguf", "llama_cpp_pp": 2000,
                                        "llama_cpp_tg": 200})
        self.assertEqual(u["ratio"], {"pp": 2.0, "tg": 2.0})
        # Timed in each repetition, after the GGUF files.
        runs = [c for c in self.calls() if c.startswith(("llama-bench:", "upg:"))]
        self.assertEqual(runs.count("upg:int4.upg"), 3)
        self.assertEqual(runs[4], "upg:int4.upg")
        self.assertIn("UPG files beside llama.cpp on Fake-1M.Q8_0.gguf", table)
        # A missing file stops the run before anything is timed.
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = pb.main(["--model", self.model, "--types", "Q8_0", "--llama-bin", self.bin, "--upg",
                          os.path.join(self.bin, "upg"), "--cache", os.path.join(self.dir, "cache"), "--out",
                          self.out, "--upg-file", os.path.join(self.dir, "missing.upg")])
        self.assertEqual(rc, 1)
        self.assertIn("missing.upg: no such file", err.getvalue())

    def test_variants_are_made_once(self):
        self.run_harness("--reps", "1", "--no-batched", types="Q8_0")
        first = [c for c in self.calls() if c.startswith("llama-quantize")]
        self.assertEqual(first, ["llama-quantize:F32", "llama-quantize:Q8_0"])
        result, _ = self.run_harness("--reps", "1", "--no-batched", types="Q8_0")
        again = [c for c in self.calls() if c.startswith("llama-quantize")]
        self.assertEqual(again, first)
        self.assertEqual(result["batched"], [])

    def test_the_report_shows_the_json(self):
        self.run_harness("--reps", "1")
        html_path = os.path.join(self.dir, "peer.html")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = br.main(["--peer", self.out, "-o", html_path])
        self.assertEqual(rc, 0)
        with open(html_path, encoding="utf-8") as f:
            page = f.read()
        self.assertIn("Beside llama.cpp", page)
        self.assertIn("Fake-1M.Q8_0.gguf", page)
        self.assertIn("IQ4_XS is not supported", page)
        self.assertIn("llama-batched-bench", page)

    def test_source_type_from_the_file_name(self):
        self.assertEqual(pb.source_type("a/SmolLM2-135M-Instruct.Q4_1.gguf"), "Q4_1")
        self.assertEqual(pb.source_type("m-Q4_K_M.gguf"), "Q4_K_M")
        self.assertEqual(pb.source_type("model.gguf"), "?")

    def test_tensor_types_from_a_gguf_header(self):
        def string(t):
            return struct.pack("<Q", len(t)) + t.encode()
        kvs = (string("general.name") + struct.pack("<I", 8) + string("m")
               + string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + string("a") + string("bc")
               + string("x.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 1, 2, 3)
               + string("x.bos") + struct.pack("<II", 4, 1))
        tensors = b"".join(string(n) + struct.pack("<I", 2) + struct.pack("<QQ", 576, 576) + struct.pack("<IQ", t, 0)
                           for n, t in (("a.weight", 14), ("b.weight", 8), ("c.weight", 8), ("n", 0)))
        path = os.path.join(self.dir, "t.gguf")
        with open(path, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, 4, 4) + kvs + tensors)
        self.assertEqual(pb.gguf_types.tensor_types(path), {"Q8_0": 2, "F32": 1, "Q6_K": 1})
        with open(path, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, 4, 4) + kvs[:10])
        with self.assertRaises(ValueError):
            pb.gguf_types.tensor_types(path)

    def test_failure_text_is_the_last_stderr_line(self):
        self.assertEqual(pb.failure_text(1, "a\nupg: error: x\n\n"), "exit 1: upg: error: x")
        self.assertEqual(pb.failure_text(-4, ""), "killed by signal 4")


if __name__ == "__main__":
    unittest.main()
