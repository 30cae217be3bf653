"""`python -m codeflow_magic.cli ...` is `codeflow ...`."""

from .main import entry

entry()
