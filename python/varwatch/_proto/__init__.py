"""Generated protobuf and gRPC stubs of `proto/varwatch/v1/varwatch.proto`.

Do not edit: regenerate with `python tools/gen_proto.py` (a test fails when
these are stale).
"""
