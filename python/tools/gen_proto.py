#!/usr/bin/env python3
"""Generates the protobuf and gRPC stubs of the package from the protocol.

    python tools/gen_proto.py          # writes varwatch/_proto/
    python tools/gen_proto.py --check  # exits 1 if the committed stubs are stale

Reads ../proto/varwatch/v1/varwatch.proto (the repository's protocol) and
writes varwatch_pb2.py, varwatch_pb2.pyi and varwatch_pb2_grpc.py into
varwatch/_proto/, with their imports made relative to that package (protoc
writes `from varwatch.v1 import ...`, which would import a top-level
`varwatch.v1` package that does not exist). Needs grpcio-tools.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(HERE, "..", "varwatch", "_proto")
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")
PROTO = os.path.join("varwatch", "v1", "varwatch.proto")
FILES = ("varwatch_pb2.py", "varwatch_pb2.pyi", "varwatch_pb2_grpc.py")


def generate(out_dir):
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        os.path.join(PROTO_ROOT, PROTO),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    gen = os.path.join(out_dir, "varwatch", "v1")
    out = {}
    for name in FILES:
        with open(os.path.join(gen, name)) as f:
            text = f.read()
        text = re.sub(r"^from varwatch\.v1 import ", "from . import ", text, flags=re.M)
        out[name] = text
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed stubs differ")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    try:
        fresh = generate(tmp)
    finally:
        shutil.rmtree(tmp)
    if args.check:
        stale = []
        for name, text in fresh.items():
            path = os.path.join(PACKAGE, name)
            if not os.path.exists(path) or open(path).read() != text:
                stale.append(name)
        if stale:
            sys.exit(f"stale stubs: {', '.join(stale)}; run python tools/gen_proto.py")
        print("stubs are up to date")
        return
    os.makedirs(PACKAGE, exist_ok=True)
    for name, text in fresh.items():
        with open(os.path.join(PACKAGE, name), "w") as f:
            f.write(text)
    print(f"wrote {', '.join(FILES)} to {os.path.relpath(PACKAGE)}")


if __name__ == "__main__":
    main()
