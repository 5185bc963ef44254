"""Write docs/options.inc, the reference of every setting, from the option table.

Run ``python docs/generate_options.py`` after changing an option; tests/test_options.py fails
while the file and the table differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from docker_registry_wsgi.cli import COMMANDS  # noqa: E402
from docker_registry_wsgi.options import reference_rst  # noqa: E402

HEADER = ".. Generated from the option table by docs/generate_options.py: do not edit.\n\n"


def render() -> str:
    """The reference: serve's settings by group, then the options the other commands add."""
    serve = COMMANDS["serve"].options
    parts = [HEADER, reference_rst(serve)]
    for name, command in COMMANDS.items():
        own = [option for option in command.options if option not in serve]
        if own:
            parts.append(reference_rst(own, title=f"{name}: its own options"))
    return "".join(parts)


if __name__ == "__main__":
    target = HERE / "options.inc"
    target.write_text(render())
    print(f"wrote {target}")
