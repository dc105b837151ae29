"""Print the install target with every optional extra of pyproject.toml, e.g. `.[sdk,redis]`."""

import re
import sys
from pathlib import Path

text = Path(__file__).resolve().parent.parent.joinpath("pyproject.toml").read_text("utf-8")
section = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text, re.S | re.M)
names = re.findall(r"^([A-Za-z0-9_-]+)\s*=", section.group(1), re.M) if section else []
sys.stdout.write(f".[{','.join(names)}]" if names else ".")
