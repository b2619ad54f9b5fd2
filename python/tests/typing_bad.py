"""Misuses of the API that mypy --strict must reject (run_tests.sh checks
that it does, and that the mistyped keyword is named)."""
import varwatch

varwatch.Client("127.0.0.1:50551", heartbeat_intreval=1.0)
varwatch.AsyncClient("127.0.0.1:50551", heartbeat_intreval=1.0)
varwatch.Client("127.0.0.1:50551").update("lab", "t", 1.0, expected_versoin=3)
