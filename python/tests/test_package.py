"""The generated stubs in varwatch/_proto match the repository's .proto."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_the_generated_stubs_are_fresh():
    tool = os.path.join(HERE, "..", "tools", "gen_proto.py")
    r = subprocess.run([sys.executable, tool, "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def test_the_installed_package_is_the_tested_one():
    """The tests import the installed package (not the source tree), so a
    packaging mistake (a module left out) fails here."""
    import varwatch

    assert "site-packages" in varwatch.__file__ or "dist-packages" in varwatch.__file__, varwatch.__file__
    import varwatch._proto.varwatch_pb2  # noqa: F401  (shipped)


def test_the_api_reference_is_fresh():
    tool = os.path.join(HERE, "..", "tools", "gen_api.py")
    r = subprocess.run([sys.executable, tool, "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def test_the_readme_quickstart_runs_as_written(server):
    """examples/quickstart.py is the README's code; its output is the
    README's (on a fresh server: the session is new)."""
    import re

    readme = open(os.path.join(HERE, "..", "README.md")).read()
    code = open(os.path.join(HERE, "..", "examples", "quickstart.py")).read()
    body = code.split('"""', 2)[2].strip()
    assert body in readme, "the README's quickstart and examples/quickstart.py differ"
    expected = re.search(r"```text\n(initial  temperature.*?)```", readme, re.S).group(1)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "..", "examples", "quickstart.py"), server.address],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected
