#!/usr/bin/env python3
"""Unit tests of scripts/bench-report.py on synthetic Google Benchmark JSON (stdlib only)."""
import contextlib
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-report.py")
_spec = importlib.util.spec_from_file_location("bench_report", SCRIPT)
br = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(br)

CONTEXT = {"date": "2026-01-01T00:00:00+00:00", "host_name": "testhost", "num_cpus": 2,
           "mhz_per_cpu": 2600, "cpu_scaling_enabled": False, "load_avg": [0.5, 0.25, 0.125],
           "caches": [{"type": "Data", "level": 1, "size": 32768, "num_sharing": 1},
                      {"type": "Unified", "level": 3, "size": 33554432, "num_sharing": 2}],
           "library_build_type": "release", "cpu_model": "Test CPU 9000", "upg_build_type": "Release"}


def runs(name, times, unit="ms", aggregates=True, **counters):
    """Rows as upg-bench writes them: one per repetition, then the aggregates."""
    rows = []
    for i, t in enumerate(times):
        row = {"name": name, "run_name": name, "run_type": "iteration", "repetitions": len(times),
               "repetition_index": i, "threads": 1, "iterations": 10, "real_time": t, "cpu_time": t,
               "time_unit": unit}
        for k, v in counters.items():
            row[k] = v[i] if isinstance(v, list) else v
        rows.append(row)
    if aggregates and len(times) > 1:
        mean = statistics.fmean(times)
        for agg, value in (("mean", mean), ("median", statistics.median(times)),
                           ("stddev", statistics.stdev(times)), ("cv", statistics.stdev(times) / mean)):
            rows.append({"name": f"{name}_{agg}", "run_name": name, "run_type": "aggregate",
                         "repetitions": len(times), "threads": 1, "aggregate_name": agg,
                         "aggregate_unit": "percentage" if agg == "cv" else "time", "iterations": len(times),
                         "real_time": value, "cpu_time": value, "time_unit": unit})
    return rows


def doc(*groups, context=CONTEXT):
    return {"context": dict(context), "benchmarks": [r for g in groups for r in g]}


class TempDir(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = br.main(list(argv))
            except SystemExit as e:  # argparse usage errors
                rc = e.code
        return rc, out.getvalue(), err.getvalue()

    def report(self, data, *extra):
        path = self.write("bench.json", data)
        out = os.path.join(self.dir, "report.html")
        rc, _, err = self.main(path, "-o", out, *extra)
        self.assertEqual(rc, 0, err)
        with open(out, encoding="utf-8") as f:
            return f.read()


class Aggregates(unittest.TestCase):
    def test_repetitions_reduce_to_median_min_max_cv(self):
        times = [10.0, 12.0, 11.0, 13.0, 30.0]
        b = br.collect(doc(runs("BM_A/real_time", times, unit="us", bytes_per_second=[1, 2, 3, 4, 5])))["BM_A/real_time"]
        self.assertEqual(b.reps, 5)
        self.assertAlmostEqual(b.median_ns, 12_000.0)
        self.assertAlmostEqual(b.min_ns, 10_000.0)
        self.assertAlmostEqual(b.max_ns, 30_000.0)
        self.assertAlmostEqual(b.cv, statistics.stdev(times) / statistics.fmean(times))
        self.assertEqual(b.counters(), {"bytes_per_second": 3})
        self.assertEqual(b.unit, "us")

    def test_aggregates_only_file_uses_the_median_aggregate(self):
        rows = [r for r in runs("BM_A", [1.0, 2.0, 9.0], unit="s") if r["run_type"] == "aggregate"]
        b = br.collect(doc(rows))["BM_A"]
        self.assertTrue(b.ok)
        self.assertAlmostEqual(b.median_ns, 2e9)
        self.assertIsNone(b.min_ns)
        self.assertAlmostEqual(b.cv, statistics.stdev([1.0, 2.0, 9.0]) / 4.0)
        self.assertEqual(b.reps, 3)

    def test_single_repetition_has_no_cv(self):
        b = br.collect(doc(runs("BM_A", [5.0])))["BM_A"]
        self.assertEqual((b.reps, b.median_ns, b.cv), (1, 5e6, None))

    def test_error_rows_are_kept_apart(self):
        rows = [{"name": "UPG_E2E/x", "run_name": "UPG_E2E/x", "run_type": "iteration",
                 "error_occurred": True, "error_message": "default model missing"}]
        b = br.collect(doc(rows))["UPG_E2E/x"]
        self.assertFalse(b.ok)
        self.assertEqual(b.error, "default model missing")


class LeastSquares(unittest.TestCase):
    def test_exact_line(self):
        slope, intercept, r2 = br.least_squares([1, 2, 3, 4], [5, 8, 11, 14])
        self.assertEqual((slope, intercept, r2), (3.0, 2.0, 1.0))

    def test_known_scatter(self):
        # mean (2, 2); Sxy = 1, Sxx = 2 -> slope 0.5; residuals -0.5, 1, -0.5 -> R^2 = 1 - 1.5/2.
        self.assertEqual(br.least_squares([1, 2, 3], [1, 3, 2]), (0.5, 1.0, 0.25))

    def test_degenerate_input_is_refused(self):
        with self.assertRaises(ValueError):
            br.least_squares([1], [1])
        with self.assertRaises(ValueError):
            br.least_squares([2, 2], [1, 3])


class Comparison(TempDir):
    def base_and_new(self, new_median):
        base = doc(runs("BM_Same", [100.0] * 3), runs("BM_X", [100.0, 101.0, 99.0]), runs("BM_Gone", [1.0]))
        new = doc(runs("BM_Same", [100.0] * 3), runs("BM_X", [new_median] * 3), runs("BM_New", [1.0]))
        return self.write("base.json", base), self.write("new.json", new)

    def test_status_by_threshold(self):
        base = br.collect(doc(runs("A", [100.0]), runs("B", [100.0]), runs("C", [100.0])))
        new = br.collect(doc(runs("A", [104.9]), runs("B", [110.0]), runs("C", [80.0]), runs("D", [1.0])))
        c = br.compare(new, base, 5.0)
        self.assertEqual(c["A"][0], "unchanged")
        self.assertEqual(c["B"][0], "slower")
        self.assertAlmostEqual(c["B"][1], 10.0)
        self.assertEqual(c["C"], ("faster", -20.0))
        self.assertNotIn("D", c)

    def test_regression_past_limit_exits_1_and_names_it(self):
        base, new = self.base_and_new(120.0)
        out = os.path.join(self.dir, "r.html")
        rc, stdout, err = self.main(new, "--baseline", base, "--fail-on-regression", "10", "-o", out)
        self.assertEqual(rc, 1)
        self.assertIn("BM_X: +20.0%", err)
        self.assertNotIn("BM_Same", err)
        self.assertTrue(os.path.exists(out), "the report is written even when the check fails")
        with open(out, encoding="utf-8") as f:
            page = f.read()
        self.assertIn("slower +20.0%", page)
        self.assertIn("Not in the baseline", page)
        self.assertIn("BM_Gone", page)

    def test_regression_within_limit_exits_0(self):
        base, new = self.base_and_new(108.0)
        rc, stdout, err = self.main(new, "--baseline", base, "--fail-on-regression", "10",
                                    "-o", os.path.join(self.dir, "r.html"))
        self.assertEqual(rc, 0, err)
        self.assertIn("1 slower", stdout)

    def test_no_limit_no_failure(self):
        base, new = self.base_and_new(500.0)
        rc, _, _ = self.main(new, "--baseline", base, "-o", os.path.join(self.dir, "r.html"))
        self.assertEqual(rc, 0)

    def test_exit_status_of_the_real_process(self):
        base, new = self.base_and_new(150.0)
        p = subprocess.run([sys.executable, SCRIPT, new, "--baseline", base, "--fail-on-regression", "5",
                            "-o", os.path.join(self.dir, "r.html")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("BM_X: +50.0%", p.stderr)

    def test_smoke_against_full_run_is_flagged(self):
        base = self.write("base.json", doc(runs("A", [1.0])))
        smoke = self.write("smoke.json", doc(runs("A", [1.0]), context=dict(CONTEXT, upg_smoke="1")))
        out = os.path.join(self.dir, "r.html")
        for new, flagged in ((base, False), (smoke, True)):
            self.assertEqual(self.main(new, "--baseline", base, "-o", out)[0], 0)
            with open(out, encoding="utf-8") as f:
                self.assertEqual("is a smoke run" in f.read(), flagged)

    def test_fail_on_regression_needs_baseline(self):
        rc, _, err = self.main(self.write("n.json", doc(runs("A", [1.0]))), "--fail-on-regression", "5")
        self.assertEqual(rc, 2)


class BadInput(TempDir):
    def expect_error(self, path, fragment):
        rc, _, err = self.main(path, "-o", os.path.join(self.dir, "r.html"))
        self.assertEqual(rc, 2)
        self.assertIn(fragment, err)
        self.assertEqual(err.strip().count("\n"), 0, f"one line expected: {err!r}")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "r.html")))

    def test_missing_file(self):
        self.expect_error(os.path.join(self.dir, "nope.json"), "nope.json: no such file")

    def test_not_json(self):
        self.expect_error(self.write("bad.json", '{"benchmarks": [ '), "bad.json: not valid JSON")

    def test_no_benchmarks_list(self):
        self.expect_error(self.write("bad.json", {"context": {}}), 'no "benchmarks" list')

    def test_row_without_time(self):
        rows = runs("BM_A", [1.0])
        del rows[0]["real_time"]
        self.expect_error(self.write("bad.json", doc(rows)), 'benchmark BM_A: missing "real_time"')

    def test_unknown_time_unit(self):
        self.expect_error(self.write("bad.json", doc(runs("BM_A", [1.0], unit="fortnight"))), "unknown time_unit")

    def test_malformed_baseline(self):
        good = self.write("good.json", doc(runs("BM_A", [1.0])))
        bad = self.write("base.json", "[1, 2]")
        rc, _, err = self.main(good, "--baseline", bad, "-o", os.path.join(self.dir, "r.html"))
        self.assertEqual(rc, 2)
        self.assertIn("base.json", err)


class Sections(TempDir):
    def test_kernels_only_skips_the_plots(self):
        page = self.report(doc(runs("BM_Matmul/F32/real_time", [1.0, 1.1, 0.9], unit="us", label="AVX2"),
                               runs("BM_StreamRead/threads:2/real_time", [10.0, 10.0],
                                    bytes_per_second=2.5e10)))
        for title in ("SpMV per encoding", "Scaling with matrix size", "End to end", "Against the baseline"):
            self.assertNotIn(title, page)
        self.assertNotIn("<svg", page)
        self.assertIn("All benchmarks", page)
        self.assertIn("BM_Matmul/F32", page)
        self.assertIn("25.0 GB/s (2 threads)", page)  # memory bandwidth in the machine table
        self.assertIn("<th>SIMD target</th><td>AVX2</td>", page)
        self.assertIn("Test CPU 9000", page)
        self.assertIn("0.50 / 0.25 / 0.12 at the start", page)

    def test_spmv_ratios_against_dense(self):
        page = self.report(doc(runs("UPG_SpMV/cpu_dense_fp32_5120", [400.0], unit="us"),
                               runs("UPG_SpMV/cpu_dense_int8_5120", [200.0], unit="us"),
                               runs("UPG_SpMV/cpu_mdcsr_int8_5120", [100.0], unit="us")))
        self.assertIn("SpMV per encoding", page)
        self.assertIn("CPU 5120 x 5120", page)
        self.assertIn("100 \u00b5s \u00b7 4.00\u00d7 vs dense_fp32, 2.00\u00d7 vs dense_int8", page)
        self.assertIn("400 \u00b5s \u00b7 0.50\u00d7 vs dense_int8", page)  # the fp32 baseline against int8

    def test_scaling_fit_is_printed(self):
        # t = 2 ns per entry + 1 us, exactly: slope 2, R^2 1.
        rows = [r for n in (512, 1024, 2048, 4096) for r in runs(f"UPG_Scaling/{n}", [(2.0 * n * n + 1000.0)], "ns")]
        page = self.report(doc(rows))
        self.assertIn("Scaling with matrix size", page)
        self.assertIn("slope <b>2.00 ns per entry</b>", page)
        self.assertIn("R\u00b2 = <b>1.0000</b>", page)
        self.assertIn("N=4096", page)

    def test_scaling_prefers_an_nnz_counter(self):
        rows = [r for n in (512, 1024, 2048) for r in runs(f"UPG_Scaling/{n}", [1.5 * n * n / 2], "ns", nnz=n * n / 2)]
        page = self.report(doc(rows))
        self.assertIn("slope <b>1.50 ns per entry</b>", page)
        self.assertIn("stored entries (nnz counter)", page)

    def test_zero_times_and_sizes_are_left_out_of_the_plots(self):
        page = self.report(doc(runs("UPG_SpMV/cpu_dense_int8_64", [0.0]), runs("UPG_SpMV/cpu_csr_64", [1.0]),
                               runs("UPG_Scaling/0", [1.0]), runs("UPG_Scaling/8", [2.0]),
                               runs("UPG_Scaling/16", [4.0])))
        self.assertNotIn("vs dense_int8", page)
        self.assertIn("(2 sizes)", page)

    def test_e2e_bars_and_baseline_values(self):
        def e2e(decode):
            return doc(runs("UPG_E2E/dense_f32/128/128/2/real_time", [2000.0, 2100.0], prompt_tok_s=[500.0, 520.0],
                            decode_tok_s=[decode, decode], label="cpu (AVX3, 2 threads)"))
        base = self.write("base.json", e2e(40.0))
        page = self.report(e2e(50.0), "--baseline", base)
        self.assertIn("End to end: tokens per second", page)
        self.assertIn("510.0 tok/s", page)
        self.assertIn("50.00 tok/s (was 40.00, +25.0%)", page)
        self.assertIn("AVX3", page)  # SIMD target recognised in the label

    def test_error_benchmark_is_listed(self):
        err = [{"name": "UPG_E2E/dense_f32", "run_name": "UPG_E2E/dense_f32", "run_type": "iteration",
                "error_occurred": True, "error_message": "default model missing: run scripts/fetch-model.sh"}]
        page = self.report(doc(err, runs("BM_A", [1.0])))
        self.assertIn("error: default model missing", page)
        self.assertNotIn("End to end", page)
        self.assertIn("1 benchmark, 1 with errors", page)

    def test_output_is_one_self_contained_html_file(self):
        page = self.report(doc(runs("UPG_E2E/dense_f16", [1.0], decode_tok_s=70.0, prompt_tok_s=600.0)))
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertIn("<svg", page)
        self.assertIn("<style>", page)
        for needle in ("<script", "<link", "src=", "@import", "url("):
            self.assertNotIn(needle, page)
        self.assertEqual(sorted(os.listdir(self.dir)), ["bench.json", "report.html"])  # no temp file left

    def test_odd_context_values_do_not_stop_the_report(self):
        ctx = dict(CONTEXT, caches=[{"size": "big"}, 7, {"size": 1024, "num_sharing": "x"}], load_avg="high")
        page = self.report(doc(runs("BM_A", [1.0], label=5), context=ctx))
        self.assertIn("1 KiB", page)
        self.assertNotIn("Load average", page)

    def test_busy_machine_is_flagged(self):
        quiet = self.report(doc(runs("BM_A", [1.0])))
        self.assertNotIn("The machine was busy", quiet)
        busy = self.report(doc(runs("BM_A", [1.0]), context=dict(CONTEXT, load_avg_end=[3.5, 2.0, 1.0])))
        self.assertIn("load average up to 3.50 on 2 CPUs", busy)

    def test_names_are_escaped(self):
        page = self.report(doc(runs("BM_<b>&", [1.0], label="<i>x</i>")))
        self.assertIn("BM_&lt;b&gt;&amp;", page)
        self.assertNotIn("<i>x</i>", page)


def peer_doc(**over):
    """A peer file as bench/peer/peer-bench.py writes it: the shipped file beside llama.cpp,
    a requantized one UPG cannot load, and llama-batched-bench rows."""
    data = {
        "kind": "upg-peer-bench", "version": 1,
        "machine": {"host_name": "peerhost", "num_cpus": 2, "cpu_model": "Test CPU 9000", "isa": ["avx2", "fma"],
                    "date": "2026-01-02T00:00:00+00:00", "load_avg": [0.1, 0.1, 0.1], "load_avg_end": [0.2, 0.1, 0.1]},
        "settings": {"n_prompt": 128, "n_gen": 128, "threads": 2, "repetitions": 3},
        "source": {"path": "models/M.Q4_1.gguf", "type": "Q4_1"},
        "llama_cpp": {"package": "llama-cpp-python", "version": "0.3.36", "build_commit": "abc123",
                      "build": "-DGGML_NATIVE=OFF"},
        "upg": {"commit": "deadbeef"},
        "files": [
            {"file": "M.Q4_1.gguf", "type": "Q4_1", "shipped": True, "size_bytes": 98362432,
             "llama_cpp": {"pp": 1000.0, "tg": 100.0, "peak_rss_mib": 200.0},
             "upg": {"pp": 2500.0, "tg": 140.0, "peak_rss_mib": 180.0, "load_s": 0.3},
             "ratio": {"pp": 2.5, "tg": 1.4, "peak_rss": 0.9},
             "targets": {"pp": 2.0, "tg": 1.5, "peak_rss": 1.0, "load_s": 0.5}},
            {"file": "M.IQ4_XS.gguf", "type": "IQ4_XS", "shipped": False, "size_bytes": 80000000,
             "llama_cpp": {"pp": 900.0, "tg": 110.0, "peak_rss_mib": 190.0},
             "upg": {"error": "exit 1: upg: error: GGUF type <IQ4_XS> is not supported"},
             "ratio": {"pp": None, "tg": None, "peak_rss": None}, "targets": {"load_s": 0.5}},
        ],
        "batched": [{"file": "M.Q4_1.gguf", "type": "Q4_1", "upg": None, "upg_note": "UPG has no batched engine yet",
                     "llama_cpp": {"rows": [{"pl": 8, "speed_pp": 950.0, "speed_tg": 300.0, "speed": 480.0}]}}],
    }
    data.update(over)
    return data


class Peer(TempDir):
    def peer_report(self, peer, *extra):
        path = self.write("peer.json", peer)
        out = os.path.join(self.dir, "peer.html")
        rc, _, err = self.main(*extra, "--peer", path, "-o", out)
        self.assertEqual(rc, 0, err)
        with open(out, encoding="utf-8") as f:
            return f.read()

    def test_peer_alone_shows_the_table_ratios_and_targets(self):
        page = self.peer_report(peer_doc())
        self.assertIn("Beside llama.cpp", page)
        self.assertIn("Test CPU 9000", page)  # the machine section reads the peer's machine
        self.assertIn("2,500.0", page)
        self.assertIn('<span class="faster">2.50\u00d7</span>', page)   # pp past its target
        self.assertIn('<span class="slower">1.40\u00d7</span>', page)   # tg short of 1.5
        self.assertIn('<span class="faster">0.90\u00d7</span>', page)   # memory at most 1
        self.assertIn("llama-cpp-python 0.3.36", page)
        self.assertIn("UPG has no batched engine yet", page)
        self.assertIn("GGUF type &lt;IQ4_XS&gt; is not supported", page)  # the error, escaped
        self.assertNotIn("<IQ4_XS>", page)

    def test_peer_beside_a_benchmark_run(self):
        page = self.peer_report(peer_doc(), self.write("bench.json", doc(runs("BM_A", [1.0]))))
        self.assertIn("UPG benchmark report", page)
        self.assertIn("Beside llama.cpp", page)
        self.assertIn("BM_A", page)

    def test_without_peer_no_peer_section(self):
        self.assertNotIn("Beside llama.cpp", self.report(doc(runs("BM_A", [1.0]))))

    def test_bad_peer_files_are_one_line_errors(self):
        for data, fragment in (("{", "not valid JSON"), ({"files": []}, "not a peer benchmark file"),
                               (peer_doc(files=[{"file": "x"}]), 'files[0] has no "llama_cpp"')):
            path = self.write("peer.json", data)
            rc, _, err = self.main("--peer", path, "-o", os.path.join(self.dir, "r.html"))
            self.assertEqual(rc, 2)
            self.assertIn(fragment, err)
            self.assertEqual(err.strip().count("\n"), 0, err)

    def test_nothing_to_show_is_a_usage_error(self):
        rc, _, err = self.main()
        self.assertEqual(rc, 2)
        self.assertIn("--peer", err)


if __name__ == "__main__":
    unittest.main()
