#!/usr/bin/env python3
"""Unit tests of scripts/frontier-speed.py's choice of files and of the decode column and
targets that scripts/quality.py writes from its figures (stdlib only; nothing is run)."""
import csv
import importlib.util
import os
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fs = load("frontier_speed", "frontier-speed.py")
quality = load("quality", "quality.py")


class SpeedFlags(unittest.TestCase):
    def test_value_flags_go_and_magnitude_comes(self):
        flags = ["--values", "int4", "--group-size", "64", "--zero-point", "--act-order", "--embeddings", "int4",
                 "--gptq-head", "--gptq", "--calib-tokens", "8192"]
        self.assertEqual(fs.speed_flags(flags), ["--values", "int4", "--group-size", "64", "--zero-point",
                                                 "--embeddings", "int4", "--prune", "magnitude"])
        self.assertEqual(fs.speed_flags(["--pattern", "2:4", "--prune", "wanda", "--values", "int8", "--calib",
                                         "tests/fixtures/calibration.txt"]),
                         ["--pattern", "2:4", "--values", "int8", "--prune", "magnitude"])

    def test_budget_rows_keep_their_flags(self):
        flags = ["--target-bpw", "0.60", "--act-order", "--gptq", "--calib-tokens", "8192"]
        self.assertEqual(fs.speed_flags(flags), flags)

    def test_rows_of_one_form_share_a_file(self):
        a = fs.speed_flags(["--sparsity", "0.5", "--pattern", "unstructured", "--prune", "sparsegpt", "--values",
                            "int8", "--gptq", "--calib-tokens", "8192"])
        b = fs.speed_flags(["--sparsity", "0.5", "--pattern", "unstructured", "--prune", "wanda", "--values", "int8"])
        self.assertEqual(fs.file_name(a), fs.file_name(b))
        self.assertNotEqual(fs.file_name(a), fs.file_name(fs.speed_flags(["--dense-int8"])))

    def test_every_configuration_has_a_file(self):
        names = {fs.file_name(fs.speed_flags(f)) for _, f, _ in quality.CONFIGS if isinstance(f, list)}
        self.assertTrue(all(n.endswith(".upg") and "/" not in n for n in names))
        self.assertLess(len(names), sum(1 for _, f, _ in quality.CONFIGS if isinstance(f, list)))


class DecodeColumn(unittest.TestCase):
    def test_cells(self):
        self.assertEqual(quality.speed_cell(None), "-")
        self.assertEqual(quality.speed_cell({"decode_tok_s": "91.5", "llama_decode_tok_s": "", "speed_flags": "",
                                             "speed_measured": "x"}), "91.5")
        self.assertEqual(quality.speed_cell({"decode_tok_s": "91.5", "llama_decode_tok_s": "70.1",
                                             "speed_flags": "", "speed_measured": "x"}), "91.5 (llama.cpp 70.1)")
        self.assertEqual(quality.speed_cell({"decode_tok_s": "80", "llama_decode_tok_s": "",
                                             "speed_flags": "--dense-int8 --prune magnitude",
                                             "speed_measured": "x"}), "80*")

    def test_speeds_survive_a_rewrite_of_the_points(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "points.csv")
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["label", "kind", "bytes_per_weight", "chat_ppl", "kjv_ppl", "measured"] +
                           quality.SPEED_FIELDS)
                w.writerow(["a", "UPG", "0.5", "4", "8", "2026-01-01", "99.5", "", "--x", "today"])
            speeds = quality.previous_speeds(path)
            self.assertEqual(speeds["a"]["decode_tok_s"], "99.5")
            self.assertEqual(speeds["a"]["speed_flags"], "--x")


class Targets(unittest.TestCase):
    def row(self, label, flags, bpw, chat, kjv):
        return {"label": label, "flags": flags, "bpw": bpw, "chat": chat, "kjv": kjv}

    def test_met_and_missed(self):
        rows = [self.row("GGUF Q4_0 (llama-quantize)", {"gguf": "Q4_0"}, 0.682, 4.40, 7.85),
                self.row("GGUF Q3_K_M (llama-quantize)", {"gguf": "Q3_K_M"}, 0.695, 3.85, 6.96),
                self.row("dense int4 g64, x", ["--values", "int4"], 0.574, 3.9, 8.4),
                self.row("2:4 y int4 g64, x", ["--pattern", "2:4"], 0.49, 9.6, 62.8)]
        speeds = {"GGUF Q4_0 (llama-quantize)": {"decode_tok_s": "100", "llama_decode_tok_s": "50",
                                                 "speed_flags": "", "speed_measured": "t"},
                  "dense int4 g64, x": {"decode_tok_s": "80", "llama_decode_tok_s": "", "speed_flags": "",
                                        "speed_measured": "t"},
                  "2:4 y int4 g64, x": {"decode_tok_s": "90", "llama_decode_tok_s": "", "speed_flags": "",
                                        "speed_measured": "t"}}
        text = "\n".join(quality.targets(rows, speeds))
        self.assertIn("met by 1 files; the best, dense int4 g64, x", text)
        self.assertIn("so there it is not better", text)
        self.assertIn("0.45 bytes/weight and better than GGUF Q3_K_M (chat 3.85 at 0.695 bytes/weight): missed", text)
        self.assertIn("(1.60x to 1.60x): met.", text)
        self.assertIn("2:4 y int4 g64, x decoded at 90.0 tok/s against 80.0 for the fastest dense int4 file: met in "
                      "this run", text)


if __name__ == "__main__":
    unittest.main()
