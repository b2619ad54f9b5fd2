"""Code that uses the API as documented: mypy --strict accepts it
(run_tests.sh checks it against the installed package)."""
import asyncio
from typing import List, Optional, Union

import varwatch


def blocking(address: str) -> None:
    with varwatch.Client(address, timeout=5.0, backoff=(0.05, 0.5), heartbeat_interval=1.0) as c:
        info: varwatch.SessionInfo = c.get_or_create_session("lab", ttl=60.0)
        assert info.id == "lab"
        c.register("lab", "t", "float", 20.0, min=0.0, max=100.0)
        version: int = c.update("lab", "t", 21.5, expected_version=0, source="me", timeout=0.5)
        results: List[Union[int, varwatch.VarwatchError]] = c.update_best_effort("lab", [("t", 1.0)])
        with c.watch("lab", ["t"], coalesce=True) as w:
            e: Optional[varwatch.Event] = w.next(1.0)
            if e is not None:
                kind: varwatch.EventKind = e.kind
                print(kind, e.value, e.version, version, results)
        try:
            c.update("lab", "t", 150.0)
        except varwatch.VersionConflict as err:
            current: Optional[int] = err.current
            print(current)


async def asynchronous(address: str) -> None:
    async with varwatch.AsyncClient(address, timeout=5.0) as c:
        await c.update("lab", "t", 22.0, timeout=0.5)
        async for e in c.watch("lab", ["t"], timeout=2.0):
            print(e.name, e.value)
            break


if __name__ == "__main__":
    asyncio.run(asynchronous("127.0.0.1:50551"))
