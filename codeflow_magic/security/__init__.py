"""Pre-execution security scanner for generated code.

Static scanning is defence in depth: it catches plainly harmful code (deleting the home
directory, reading SSH keys, fork bombs, obfuscated payloads) before it runs in the user's own
kernel and explains why to the model so the next attempt avoids it. The boundary for untrusted
code is the sandbox backends, not this module.

The flow calls exactly: `scan_code`, `highest_severity`, `blocking_findings`, `POLICIES` and
`format_findings`.
"""

from __future__ import annotations

from .policy import POLICIES, blocking_findings, highest_severity
from .scanner import LANGUAGES, format_findings, scan_code

__all__ = [
    "LANGUAGES",
    "POLICIES",
    "blocking_findings",
    "format_findings",
    "highest_severity",
    "scan_code",
]
