#!/usr/bin/env python3
"""Structured output end to end: `upg run --json-schema` on the default model, seeded
samples at temperature 1, each output parsed and validated with Python's `jsonschema`
(an independent implementation; scripts/install-python-deps.sh installs it), plus
`upg grammar check` exit codes.

Run by ctest (grammar-generate) with UPG_CLI and UPG_MODEL; skips without the model.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import jsonschema
except ImportError as e:
    sys.exit(f"test_generate: {e}; run scripts/install-python-deps.sh")

CLI = os.environ.get("UPG_CLI", "build/upg")
MODEL = os.environ.get("UPG_MODEL", "")
HAVE_MODEL = bool(MODEL) and os.path.isfile(MODEL)
SCHEMAS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "grammar")
SEEDS = range(1, 5)


def run(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)


@unittest.skipUnless(HAVE_MODEL, "UPG_MODEL is not set to the default model")
class Generate(unittest.TestCase):
    def test_samples_validate(self):
        for name in sorted(os.listdir(SCHEMAS)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(SCHEMAS, name)
            schema = json.load(open(path))
            for seed in SEEDS:
                with self.subTest(schema=name, seed=seed):
                    r = run("run", MODEL, "-t", "2", "--json-schema", path, "--temp", "1", "--top-k", "0",
                            "--top-p", "1", "--min-p", "0", "--seed", str(seed), "-n", "400",
                            "-p", "Reply with a JSON object: " + json.dumps(schema.get("description", name)))
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("stop: eos", r.stderr, "the grammar did not finish within -n")
                    out = json.loads(r.stdout)
                    # The 2020-12 checker: FormatChecker() would mix in draft 3's "time" (no offset).
                    jsonschema.validate(out, schema, cls=jsonschema.Draft202012Validator,
                                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    def test_check_exit_codes(self):
        with tempfile.TemporaryDirectory() as d:
            schema = os.path.join(SCHEMAS, "person.json")
            good, bad, uns = (os.path.join(d, f) for f in ("good.json", "bad.json", "uns.json"))
            open(good, "w").write('{"name": "Ada", "age": 36, "languages": ["en"]}')
            open(bad, "w").write('{"name": "Ada", "age": 360, "languages": ["en"]}')
            open(uns, "w").write('{"type": "array", "uniqueItems": true}')
            r = run("grammar", "check", MODEL, "--json-schema", schema, good)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = run("grammar", "check", MODEL, "--json-schema", schema, bad)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("rejected: token", r.stdout)
            r = run("grammar", "check", MODEL, "--json-schema", uns, good)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
            self.assertIn("$.uniqueItems", r.stderr)


if __name__ == "__main__":
    unittest.main()
