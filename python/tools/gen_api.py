#!/usr/bin/env python3
"""Writes API.md, the reference of the package's public API, from its
docstrings (`python tools/gen_api.py`; `--check` fails if it is stale).
Run with the package installed (run_tests.sh checks it is fresh)."""
import argparse
import inspect
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "API.md")


def doc(obj):
    return inspect.cleandoc(obj.__doc__ or "").strip()


def render():
    # The installed package (its extension is built), else the sources.
    try:
        import varwatch
    except ImportError:
        sys.path.insert(0, os.path.join(HERE, ".."))
        import varwatch

    lines = [
        "# varwatch for Python: API reference",
        "",
        "Generated from the docstrings by `python tools/gen_api.py`; do not edit.",
        "",
        doc(varwatch),
        "",
    ]
    for name in varwatch.__all__:
        obj = getattr(varwatch, name)
        if inspect.isclass(obj):
            kind = "exception" if issubclass(obj, BaseException) else "class"
            lines += [f"## {kind} `{name}`", ""]
            if doc(obj):
                lines += [doc(obj), ""]
            if hasattr(obj, "__members__"):  # an enum
                lines += ["Values: " + ", ".join(f"`{m.name}` (`{m.value!s}`)" for m in obj), ""]
                continue
            for attr, member in obj.__dict__.items():
                if attr.startswith("_") and attr not in ("__init__",):
                    continue
                fn = member.fget if isinstance(member, property) else member
                if not (inspect.isfunction(fn) or inspect.iscoroutinefunction(fn)):
                    continue
                if attr == "__init__" and not doc(fn):
                    continue
                try:
                    sig = str(inspect.signature(fn)).replace("(self, ", "(").replace("(self)", "()")
                except (TypeError, ValueError):
                    sig = "(...)"
                prefix = "async " if inspect.iscoroutinefunction(fn) else ""
                shown = f"{prefix}{attr}" if not isinstance(member, property) else f"{attr} (property)"
                lines += [f"### `{name}.{shown}{'' if isinstance(member, property) else sig}`", ""]
                if doc(fn):
                    lines += [doc(fn), ""]
    return "\n".join(lines).rstrip() + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not os.path.exists(OUT) or open(OUT).read() != text:
            sys.exit("API.md is stale: run python tools/gen_api.py")
        print("API.md is up to date")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
