"""The quickstart of python/README.md, as a program.

    .venv/bin/python python/examples/quickstart.py 127.0.0.1:50551

Needs a running server (`cargo run --release --features server --bin
varwatch-server`).
"""
import sys
import threading

import varwatch

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50551"

with varwatch.Client(address) as client:
    client.get_or_create_session("lab")
    try:
        client.register("lab", "temperature", "float", 20.0, min=0.0, max=100.0)
    except varwatch.AlreadyExists:
        pass

    with client.watch("lab", ["temperature"]) as watch:
        # Registered with its snapshot: nothing written after this line is missed.
        threading.Thread(target=lambda: [client.update("lab", "temperature", t) for t in (21.0, 22.5, 24.0)]).start()
        for event in watch:
            print(f"{event.kind:8} {event.name} v{event.version} = {event.value}")
            if event.value == 24.0:
                break

    try:
        client.update("lab", "temperature", 150.0)
    except varwatch.InvalidArgument as e:
        print("refused:", e)
