#!/usr/bin/env python3
"""Checks `upg export` against the PyPI compressed-tensors package, an independent reader.

For each UPG file: `upg export FILE -o CT` (the compressed-tensors checkpoint) and `upg
decompress FILE -o DENSE` (every weight as the engine decodes it, in fp32). The package
then decompresses CT as it does a checkpoint llm-compressor wrote (ModelCompressor from
CT's config.json: the sparsity compressor first, then each quantization format's
compressor on the modules its config groups target), over CT's tensors with their floats
upcast to fp32 first, so code x scale is computed in fp32 as UPG does rather than rounded
to the scales' fp16. Every tensor of DENSE must come out equal, bit for bit, and CT must
hold nothing else.

    python3 scripts/check-compressed-tensors-export.py [--upg build/upg] FILE.upg...
    python3 scripts/check-compressed-tensors-export.py --self-test [--upg build/upg]

--self-test makes the files first, from tests/fixtures/tiny/llama with `upg compress`, in
every form that has a counterpart (int4 g32/g64/g128 with and without zero points, the
int8 embedding beside int4, dense int8, 2:4 int8, unstructured int8, 2:4 int4); ctest
runs it (test `compressed-tensors-export`).

Needs torch, safetensors and compressed-tensors 0.14.0.1 (the release the reader's
fixtures come from: scripts/fixtures/README.md). Without them it exits 77, which ctest
counts as skipped; UPG_CT_PYTHON names a Python that has them (it is re-run under it).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests", "fixtures", "tiny", "llama")
SELF_TEST = [
    ["--values", "int4", "--group-size", "32", "--zero-point"],
    ["--values", "int4", "--group-size", "64"],
    ["--values", "int4", "--group-size", "128", "--zero-point", "--embeddings", "int8"],
    ["--dense-int8"],
    ["--pattern", "2:4", "--values", "int8"],
    ["--sparsity", "0.5", "--pattern", "unstructured", "--values", "int8"],
    ["--pattern", "2:4", "--values", "int4", "--group-size", "32", "--zero-point"],
]


def imports():
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
        import compressed_tensors  # noqa: F401
        return True
    except ImportError:
        return False


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"check-compressed-tensors-export: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return p.stderr


def package_weights(ct_dir):
    """Every tensor of the checkpoint as the package decompresses it."""
    import torch
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationScheme
    from safetensors.torch import load_file

    qc = json.load(open(os.path.join(ct_dir, "config.json")))["quantization_config"]
    reread = ModelCompressor.from_pretrained(ct_dir)
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in load_file(os.path.join(ct_dir, "model.safetensors")).items()}
    if reread.sparsity_compressor is not None:
        state = dict(reread.sparsity_compressor.decompress_from_state_dict(state))
    schemes, fmt_of = {}, {}
    for group in qc.get("config_groups", {}).values():
        scheme = QuantizationScheme.model_validate({k: group[k] for k in ("targets", "weights", "format")})
        for t in group["targets"]:  # the writer names modules exactly
            schemes[t], fmt_of[t] = scheme, group["format"]
    out = {k: v for k, v in state.items() if k.rsplit(".", 1)[0] not in schemes}
    for fmt, compressor in (reread.quantization_compressor or {}).items():
        part = {k: v for k, v in state.items() if fmt_of.get(k.rsplit(".", 1)[0]) == fmt}
        for module, data in compressor.decompress_from_state_dict(part, names_to_scheme=schemes):
            out[module + ".weight"] = data["weight"]
    return out, qc


def check(upg_bin, path, tmp):
    from safetensors.torch import load_file

    ct, dense = os.path.join(tmp, "ct"), os.path.join(tmp, "dense")
    summary = run([upg_bin, "export", path, "-o", ct]).strip()
    run([upg_bin, "decompress", path, "-o", dense])
    got, qc = package_weights(ct)
    want = load_file(os.path.join(dense, "model.safetensors"))
    bad = [k for k in want if k not in got]
    bad += [f"{k} (not in the UPG file)" for k in got if k not in want]
    for k, w in want.items():
        if k in got:
            g = got[k]
            if g.dtype != w.dtype:
                g = g.to(w.dtype)
            if g.shape != w.shape or not bool((g == w).all()):
                diff = float((g.float() - w.float()).abs().max()) if g.shape == w.shape else "shape"
                bad.append(f"{k} (max |diff| {diff})")
    formats = sorted({g["format"] for g in qc.get("config_groups", {}).values()} |
                     ({qc["sparsity_config"]["format"]} if qc.get("sparsity_config") else set()))
    name = os.path.basename(path)
    if bad:
        print(f"FAIL {name}: {len(bad)} tensors differ: {', '.join(bad[:5])}")
        return False
    print(f"ok   {name}: {len(want)} tensors equal, bit for bit ({', '.join(formats)}); {summary}")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="UPG files")
    ap.add_argument("--upg", default=os.path.join(ROOT, "build", "upg"))
    ap.add_argument("--self-test", action="store_true", help="make the files from the tiny fixture first")
    args = ap.parse_args()
    if not imports():
        other = os.environ.get("UPG_CT_PYTHON")
        if other and not os.environ.get("UPG_CT_REEXEC"):  # once: a venv's python may be this one's link
            os.environ["UPG_CT_REEXEC"] = "1"
            os.execv(other, [other] + sys.argv)
        print("check-compressed-tensors-export: skipped: needs torch, safetensors and compressed-tensors "
              "(or UPG_CT_PYTHON naming a Python with them)")
        sys.exit(77)
    import compressed_tensors
    print(f"compressed-tensors {compressed_tensors.__version__}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        files = list(args.files)
        if args.self_test:
            for i, flags in enumerate(SELF_TEST):
                f = os.path.join(tmp, f"tiny-{i}-{'_'.join(x.strip('-') for x in flags)}.upg".replace(":", ""))
                run([args.upg, "compress", TINY, "-o", f, "--prune", "magnitude", "-t", "1"] + flags)
                files.append(f)
        if not files:
            sys.exit("check-compressed-tensors-export: no UPG files (give some, or --self-test)")
        for i, f in enumerate(files):
            d = os.path.join(tmp, f"out-{i}")
            os.mkdir(d)
            ok = check(args.upg, f, d) and ok
    print(f"{sum(1 for _ in files)} files: {'all equal' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
