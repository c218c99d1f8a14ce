#!/usr/bin/env python3
"""Unit tests of scripts/flamegraph.py on a synthetic `perf script` text (stdlib only)."""
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flamegraph.py")
_spec = importlib.util.spec_from_file_location("flamegraph", SCRIPT)
fg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fg)

SVG = "{http://www.w3.org/2000/svg}"

# What `perf script` prints for `perf record -e cpu-clock -g`: a header per sample, frames
# leaf first, a blank line between samples. Includes a kernel frame, an unresolved frame,
# an anonymous namespace, a lambda, an operator() and two malformed lines.
PERF_SCRIPT = """\
upg 1234 [000] 123.456: 250000 cpu-clock:
\t    7f12ab upg::kernels::foo<4>(long, int)+0x1c (/path/build/upg)
\t    7f1300 upg::Model::forward(upg::Batch const&) (/path/build/upg)
\t    7f1400 main (/path/build/upg)

upg 1234 [000] 123.457: 250000 cpu-clock:
\t    7f12ab upg::kernels::foo<4>(long, int)+0x20 (/path/build/upg)
\t    7f1300 upg::Model::forward(upg::Batch const&) (/path/build/upg)
\t    7f1400 main (/path/build/upg)

upg 1234 [000] 123.458: 250000 cpu-clock:
\t    7f1500 upg::kernels::(anonymous namespace)::nm_tile<2, 4, 1>(float const*, long) (/path/build/upg)
\t    7f1300 upg::Model::forward(upg::Batch const&) (/path/build/upg)
\t    7f1400 main (/path/build/upg)

upg 1235 [001] 123.459: 250000 cpu-clock:
\tffffffff81000c82 asm_exc_page_fault+0x22 ([kernel.kallsyms])
\t    7f1600 upg::ThreadPool::run(int)::{lambda()#1}::operator()() const (/path/build/upg)
\t    7f1700 [unknown] ([unknown])
this line is garbage
\tnot a frame line at all

upg 1235 [001] 123.460: 250000 cpu-clock:
\t    7f1500 upg::kernels::(anonymous namespace)::nm_tile<2, 4, 1>(float const*, long) (/path/build/upg)
\t    7f1300 upg::Model::forward(upg::Batch const&) (/path/build/upg)
\t    7f1400 main (/path/build/upg)

"""

EXPECTED = {
    "main;upg::Model::forward;upg::kernels::foo<4>": 2,
    "main;upg::Model::forward;upg::kernels::(anon)::nm_tile<2, 4, 1>": 2,
    "[unknown];upg::ThreadPool::run::{lambda#1}::operator();asm_exc_page_fault": 1,
}


class ShortenTest(unittest.TestCase):
    def test_names(self):
        cases = {
            "upg::kernels::foo<4>(long, int)+0x1c": "upg::kernels::foo<4>",
            "upg::(anonymous namespace)::f(int) const": "upg::(anon)::f",
            "std::function<void (int)>::operator()(int) const": "std::function<void (int)>::operator()",
            "std::ostream::operator<<(int)": "std::ostream::operator<<",
            "my_operator(int)": "my_operator",
            "foo<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >(int)":
                "foo<std::string>",
        }
        for raw, short in cases.items():
            self.assertEqual(fg.shorten(raw), short, raw)

    def test_unknown_kept(self):
        self.assertEqual(fg.frame_name("[unknown]"), "[unknown]")


class FoldTest(unittest.TestCase):
    def test_fold(self):
        folded = fg.fold(PERF_SCRIPT.splitlines(True))
        self.assertEqual(folded, EXPECTED)
        self.assertEqual(sum(folded.values()), 5)  # one per sample; malformed lines add none

    def test_no_trailing_blank_line(self):
        # The last sample counts even when the input ends without a blank line.
        folded = fg.fold(PERF_SCRIPT.rstrip("\n").splitlines(True))
        self.assertEqual(sum(folded.values()), 5)

    def test_tree_counts(self):
        root = fg.build_tree(EXPECTED)
        self.assertEqual(root.count, 5)
        self.assertEqual(root.children["main"].count, 4)
        self.assertEqual(root.children["main"].children["upg::Model::forward"].count, 4)


class RenderTest(unittest.TestCase):
    def setUp(self):
        self.svg = fg.render(EXPECTED, "decode of <2:4> model & co")
        self.root = ET.fromstring(self.svg)  # raises if not well-formed XML

    def test_svg_structure(self):
        self.assertEqual(self.root.tag, SVG + "svg")
        groups = self.root.findall(SVG + "g")
        # all + main + forward + foo + nm_tile + [unknown] + lambda + page fault
        self.assertEqual(len(groups), 8)
        tips = [g.find(SVG + "title").text for g in groups]
        self.assertIn("all (5 samples, 100.00%)", tips)
        self.assertIn("upg::kernels::foo<4> (2 samples, 40.00%)", tips)

    def test_width_proportional(self):
        widths = {g.find(SVG + "title").text.split(" (")[0]: float(g.find(SVG + "rect").get("width"))
                  for g in self.root.findall(SVG + "g")}
        self.assertAlmostEqual(widths["main"] / widths["all"], 0.8, places=3)
        self.assertAlmostEqual(widths["upg::kernels::foo<4>"] / widths["all"], 0.4, places=3)

    def test_title(self):
        texts = [t.text for t in self.root.findall(SVG + "text")]
        self.assertEqual(texts[0], "decode of <2:4> model & co")
        self.assertIn("5 samples", texts[1])

    def test_min_width_drops_frames(self):
        svg = fg.render(EXPECTED, "t", min_width=0.3)  # drops the one-sample stack (20%)
        names = [g.find(SVG + "title").text for g in ET.fromstring(svg).findall(SVG + "g")]
        self.assertFalse(any(n.startswith("[unknown]") for n in names))
        self.assertEqual(len(names), 5)


class CliTest(unittest.TestCase):
    def run_cli(self, *args, stdin=""):
        return subprocess.run([sys.executable, SCRIPT, *args], input=stdin, capture_output=True, text=True)

    def test_empty_input(self):
        r = self.run_cli(stdin="")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertIn("no samples", r.stderr)

    def test_folded_and_file_input(self):
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "perf.txt"), os.path.join(d, "out.folded")
            with open(src, "w") as f:
                f.write(PERF_SCRIPT)
            r = self.run_cli(src, "--folded", out, "--title", "T")
            self.assertEqual(r.returncode, 0, r.stderr)
            ET.fromstring(r.stdout)
            with open(out) as f:
                lines = f.read().splitlines()
            self.assertEqual(dict((k, int(v)) for k, v in (l.rsplit(" ", 1) for l in lines)), EXPECTED)


if __name__ == "__main__":
    unittest.main()
