"""`codeflow scan FILE...`: the pre-execution scanner as a command, for CI and pre-commit use.

`codeflow scan --rules` prints the rule catalogue (`security/rules.py`) instead of scanning."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tokenize
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..models import SCAN_LANGUAGES, Finding, severity_rank
from ..options import add_options
from ..security.policy import highest_severity
from ..security.rules import catalogue, rule_dict, text_table
from ..security.scanner import format_findings, scan_code

EXTENSIONS: dict[str, str] = {".py": "python", ".sh": "bash", ".bash": "bash", ".ipy": "ipython"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan code files for harmful operations before running them",
        description=(
            "Scan Python, IPython or Bash files for harmful operations (deleting files, reading "
            "credentials, shell commands, obfuscated payloads...). Exit 1 when a finding reaches "
            "--fail-on, 0 otherwise, 2 for usage errors. --rules lists every rule instead."
        ),
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="files to scan")
    add_options(parser, ("rules", "scan.language", "report.format", "fail_on"))
    parser.set_defaults(func=run_scan)


def _language_for(path: Path, forced: str | None) -> str:
    if forced:
        return forced
    lang = EXTENSIONS.get(path.suffix.lower())
    if lang is None:
        raise UsageError(
            f"cannot tell the language of {path} from its extension; pass --language "
            f"({'|'.join(SCAN_LANGUAGES)})"
        )
    return lang


def _read(path: Path, lang: str) -> str:
    """The file's text; bytes that are not text in its encoding are a usage error that names
    the byte, rather than characters replaced and a clean report on what was never read.

    Python files may declare another encoding in a coding cookie, as Python itself allows."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    encoding = "utf-8"
    if lang in ("python", "ipython"):
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as exc:
            if "encoding problem" in str(exc) or "unknown encoding" in str(exc):
                raise UsageError(f"{path}: {exc.msg}") from None
            encoding = "utf-8"  # bad bytes near the top: the decode below names them
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{path}: not {encoding} text (byte offset {exc.start}, line {line}: {exc.reason})"
        ) from None


def run_scan(args: argparse.Namespace) -> int:
    if args.rules:
        if args.files:
            raise UsageError("--rules lists the rule catalogue; pass it without files")
        return _print_rules(args.fmt)
    if not args.files:
        raise UsageError("pass one or more files to scan (or --rules for the rule catalogue)")
    files = [Path(f) for f in args.files]
    # Check every input before scanning any, so a typo never yields a partial report.
    jobs = []
    for p in files:
        if not p.exists():
            raise UsageError(f"no such file: {p}")
        if p.is_dir():
            raise UsageError(f"{p} is a directory; pass files")
        lang = _language_for(p, args.language)
        jobs.append((p, lang, _read(p, lang)))
    results: list[dict[str, Any]] = []
    failed = False
    threshold = severity_rank(args.fail_on)
    for path, lang, text in jobs:
        findings = scan_code(text, lang)
        if any(severity_rank(f.severity) >= threshold for f in findings):
            failed = True
        results.append(_result(path, lang, findings))
    if args.fmt == "json":
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text_report(results))
    return 1 if failed else 0


def _print_rules(fmt: str) -> int:
    if fmt == "json":
        json.dump([rule_dict(r) for r in catalogue()], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text_table())
    return 0


def _result(path: Path, lang: str, findings: list[Finding]) -> dict[str, Any]:
    return {
        "path": str(path),
        "language": lang,
        "severity": highest_severity(findings),
        "findings": [f.to_dict() for f in findings],
    }


def _text_report(results: list[dict[str, Any]]) -> str:
    blocks = []
    for r in results:
        findings = [Finding.from_dict(f) for f in r["findings"]]
        count = len(findings)
        head = f"{r['path']} ({r['language']}): {r['severity']}"
        head += f", {count} finding{'s' if count != 1 else ''}" if count else ", no findings"
        body = format_findings(findings)
        blocks.append(
            head + ("\n" + "\n".join("  " + ln for ln in body.splitlines()) if body else "")
        )
    return "\n\n".join(blocks) + "\n"
