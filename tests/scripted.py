"""In-process stand-ins for the flow's ports, for unit tests of the pure loop.

They live in the package (`codeflow_magic.testing`) so that users can test their own code with
them; this module re-exports them for the tests that import `scripted`.
"""

from __future__ import annotations

from codeflow_magic.testing import MemoryExecutor, ScriptedProvider

__all__ = ["MemoryExecutor", "ScriptedProvider"]
