"""The rule catalogue: every rule id the scanner can report, with its rating and why.

The Python and Bash visitors only *detect*; what a finding is called, how harmful it is
(`severity`) and what kind of harm it is (`category`) are written here once, so a rule that
both languages report (`kill`, `upload`, `reverse-shell`, ...) cannot drift apart. A visitor
creates findings with `finding(rule_id, line, message)`; the message carries the specifics
(which path, which host, which command).

Some rules are *graded*: their rating depends on what the code reaches, so one id has more
than one severity (or category). A graded rule lists the ratings it may take in `severities`
(and `categories`), says in `graded_by` what picks one, and the call site passes the rating
explicitly (`finding(..., severity=...)`); `finding` refuses any rating the catalogue does not
list, so a typo or a new drift fails loudly (the scanner fails closed on it) instead of
shipping silently. Everything else has exactly one rating.

One cross-cutting escalation applies after the fact: in Python, a `high` introspection finding
becomes `critical` when the same code also does something harmful (a `high` or worse finding
in `process`, `dynamic-code` or `filesystem`), because introspection used to reach a harmful
capability is an escape, not curiosity. Those rules list `critical` among their severities.

`codeflow scan --rules` prints this catalogue; the README's rule table is generated from it
(`python -m codeflow_magic.security.rules --markdown`, checked by a test).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

from ..models import SEVERITIES, Finding

CATEGORIES: tuple[str, ...] = (
    "process",
    "filesystem",
    "network",
    "dynamic-code",
    "dangerous-module",
    "introspection",
    "persistence",
    "secrets",
    "resource",
)

#: How paths are rated (`paths.py`): the verdict decides severity and category.
_PATH_GRADED = "the path it touches (paths.py): home, system, credential or work-dir files"
_PATH_SEVERITIES = ("low", "medium", "high", "critical")
_PATH_CATEGORIES = ("filesystem", "secrets", "persistence")
_ESCALATED = "escalated to critical when the same code also runs harmful code (see module doc)"


@dataclass(frozen=True)
class Rule:
    """One catalogue entry."""

    id: str
    severity: str  # the rating when the call site passes none
    category: str
    summary: str  # what the code does, one line
    rationale: str  # why that rating
    languages: tuple[str, ...]  # which scanners report it: "python", "bash", "scanner"
    severities: tuple[str, ...] = ()  # graded: every rating the call sites may pass
    categories: tuple[str, ...] = ()  # graded category: every category they may pass
    graded_by: str = ""  # graded: what picks the rating
    source: str = ""  # the public advisory or write-up the rule comes from, when there is one

    @property
    def allowed_severities(self) -> tuple[str, ...]:
        return self.severities or (self.severity,)

    @property
    def allowed_categories(self) -> tuple[str, ...]:
        return self.categories or (self.category,)

    @property
    def graded(self) -> bool:
        return len(self.allowed_severities) > 1 or len(self.allowed_categories) > 1


PY = ("python",)
SH = ("bash",)
BOTH = ("python", "bash")

#: Attributes that reach interpreter internals: attribute -> (severity, reason). Each is its
#: own rule (`dunder__globals__`, `frame-f_back`, see `introspection_rule`).
INTROSPECTION_ATTRS: dict[str, tuple[str, str]] = {
    "__subclasses__": ("high", "lists every class in the interpreter (a sandbox-escape walk)"),
    "__globals__": ("high", "reaches a function's module globals"),
    "__builtins__": ("high", "reaches the builtins namespace"),
    "__code__": ("medium", "reads or replaces a function's code object"),
    "__closure__": ("medium", "reads a function's closure cells"),
    "__mro__": ("medium", "walks the class hierarchy"),
    "__bases__": ("medium", "walks the class hierarchy"),
    "__base__": ("medium", "walks the class hierarchy"),
    "__loader__": ("medium", "reaches a module loader"),
    "__import__": ("high", "reaches the import function through an attribute"),
    "f_globals": ("high", "reads a frame's globals"),
    "f_locals": ("high", "reads a frame's locals"),
    "f_builtins": ("high", "reads a frame's builtins"),
    "f_back": ("high", "walks the call stack"),
    "gi_frame": ("high", "reaches a generator's frame"),
    "cr_frame": ("high", "reaches a coroutine's frame"),
    "ag_frame": ("high", "reaches an async generator's frame"),
    "tb_frame": ("high", "reaches a traceback's frame"),
    "func_globals": ("high", "reaches a function's module globals"),
}
#: Attributes whose walk from a class reaches module globals (a known sandbox escape).
CHAIN_ESCAPE_ATTRS = ("__globals__", "__builtins__", "__import__")


def introspection_rule(attr: str) -> str:
    """The rule id for reaching `attr`: `dunder__globals__`, `frame-f_back`."""
    return f"dunder{attr}" if attr.startswith("_") else f"frame-{attr}"


# fmt: off
_RULES: list[Rule] = [
    # -- the scanner itself ---------------------------------------------------------------
    Rule("unparseable", "high", "dynamic-code", "code cannot be parsed",
       "unanalysable code must not pass silently: the scanner fails closed",
       ("scanner", "bash")),
    Rule("scanner-error", "high", "dynamic-code", "the scanner failed or the code nests too deep",
       "a scanner bug must not let code through unseen", ("scanner",)),
    Rule("nesting", "high", "dynamic-code", "code nested too deep to check (shell in Python in shell...)",
       "past the nesting limit the inner code is not checked", ("scanner", "bash")),
    # -- filesystem -----------------------------------------------------------------------
    Rule("delete-path", "high", "filesystem", "deletes or moves a path away",
       "deleting the home directory, system files or credentials is unrecoverable; "
       "the work dir's own files are the code's business", BOTH,
       severities=_PATH_SEVERITIES, categories=_PATH_CATEGORIES, graded_by=_PATH_GRADED),
    Rule("delete-loop", "high", "filesystem", "deletes every entry a loop over a folder yields",
       "rated as deleting one entry of the listed folder", PY,
       severities=_PATH_SEVERITIES, categories=_PATH_CATEGORIES, graded_by=_PATH_GRADED),
    Rule("write-path", "high", "filesystem", "writes, copies or moves a file onto a path",
       "overwriting shell start-up files, SSH config or system files persists or breaks things",
       BOTH, severities=_PATH_SEVERITIES, categories=_PATH_CATEGORIES, graded_by=_PATH_GRADED),
    Rule("read-secret", "high", "secrets", "reads a credential file",
       "SSH keys, cloud credentials and tokens are what attackers come for", BOTH,
       severities=_PATH_SEVERITIES, categories=_PATH_CATEGORIES, graded_by=_PATH_GRADED),
    Rule("mention", "high", "secrets", "names a credential or system path in a string",
       "a path built or passed on may be read or written later; dropped when the same line "
       "already has a finding of its category", PY,
       severities=_PATH_SEVERITIES, categories=_PATH_CATEGORIES, graded_by=_PATH_GRADED),
    Rule("rm-root", "critical", "filesystem", "rm with --no-preserve-root",
       "deletes the root filesystem", SH),
    Rule("rm-stdin", "medium", "filesystem", "deletes paths read from input (xargs rm)",
       "which paths are deleted is not visible", SH),
    Rule("format-disk", "critical", "filesystem", "formats, partitions or wipes a disk",
       "destroys whole filesystems", SH),
    Rule("change-perms", "high", "filesystem", "changes permissions outside the work dir",
       "chmod on home or system paths opens them to others or breaks them", BOTH),
    Rule("extract-system", "critical", "filesystem", "extracts an archive into a system directory",
       "overwrites system files", BOTH),
    Rule("extract-home", "high", "filesystem", "extracts an archive outside the work dir",
       "overwrites the user's files", BOTH, severities=("medium", "high"),
       graded_by="high into the home directory itself, medium elsewhere outside the work dir"),
    Rule("archive-paths", "high", "filesystem",
       "writes archive members to the paths the archive names",
       "a member named ../x escapes the target folder (Zip Slip)", BOTH),
    Rule("mount", "high", "filesystem", "mounts or unmounts filesystems",
       "changes what the machine's paths point to", SH),
    # -- processes ------------------------------------------------------------------------
    Rule("shell-command", "low", "process", "runs a shell command from Python",
       "rated by what the command does (its Bash findings); at least high when the program "
       "name is computed, the command was hidden by encoding or os.exec* replaces the "
       "kernel's own process", PY,
       severities=SEVERITIES, graded_by="the worst finding of the command it runs"),
    Rule("ipython-shell", "low", "process", "runs an IPython shell escape (!cmd, %system, %sx)",
       "rated like shell-command", PY,
       severities=SEVERITIES, graded_by="the worst finding of the command it runs"),
    Rule("computed-command", "high", "process", "runs a command that cannot be known statically",
       "nothing about what runs can be checked", PY),
    Rule("computed-program", "medium", "process", "runs a program whose name is a variable",
       "the arguments are visible but not which program gets them", SH),
    Rule("shell-cell", "low", "process", "a %%bash/%%sh cell runs a shell script",
       "the script itself is scanned as Bash", PY),
    Rule("privilege", "high", "process", "changes process privileges (sudo, setuid, chroot)",
       "code generated for a notebook never needs more rights", BOTH),
    Rule("setuid", "high", "process", "sets the setuid/setgid bit",
       "a classic way to keep elevated rights", SH),
    Rule("preload", "high", "process", "sets LD_PRELOAD / LD_AUDIT",
       "injects a library into every process started afterwards", BOTH),
    Rule("fork", "medium", "process", "forks the interpreter",
       "forking a kernel is rarely intended", PY),
    Rule("kill", "low", "process", "kills one process",
       "usually the code's own child; the parent and every-process cases have their own rules",
       BOTH),
    Rule("kill-group", "high", "process", "kills a whole process group (os.killpg)",
       "the group can include the kernel itself", PY),
    Rule("kill-all", "critical", "process", "signals every process (kill -1, killall5)",
       "takes down the session and the notebook server", BOTH),
    Rule("kill-parent", "high", "process", "kills the parent process",
       "the parent is the notebook server or kernel manager", BOTH),
    Rule("kill-by-name", "medium", "process", "kills processes by name (pkill, killall)",
       "by-name matches more than the code started", SH, severities=("medium", "high"),
       graded_by="high for interpreters, Jupyter, shells, init/systemd, sshd or -u USER"),
    Rule("shutdown", "critical", "process", "shuts down or reboots the machine",
       "ends every session on the machine", SH),
    Rule("service-stop", "high", "process", "stops system services", "breaks the machine", SH),
    Rule("kernel-module", "critical", "process", "loads or removes kernel modules",
       "runs code in the kernel", SH),
    Rule("impair-defenses", "critical", "process",
       "turns off host defences (SELinux, AppArmor, firewall, audit, security agents)",
       "switching off what watches the machine prepares an attack (MITRE ATT&CK T1562)", BOTH),
    Rule("docker-socket", "critical", "process", "talks to the Docker daemon's socket",
       "the Docker API starts privileged containers: root on the host", BOTH),
    Rule("hide-history", "medium", "process", "hides or erases shell history",
       "covering tracks has no place in generated code", SH),
    Rule("callable-ref", "high", "process", "passes a shell or exec function as a value",
       "called later where no scan sees its arguments", PY,
       categories=("process", "dynamic-code"),
       graded_by="dynamic-code for eval/exec, process for shell and subprocess calls"),
    # -- network --------------------------------------------------------------------------
    Rule("reverse-shell", "critical", "network", "wires a shell to a network connection",
       "gives a remote party a shell on the machine", BOTH),
    Rule("dev-tcp", "critical", "network", "redirects to /dev/tcp or /dev/udp",
       "Bash's built-in raw network connection, the usual reverse-shell idiom", SH),
    Rule("raw-connection", "high", "network", "opens a raw network connection (nc, socat, telnet)",
       "a raw pipe to another host", SH),
    Rule("raw-socket", "high", "network", "opens a raw network socket", "a raw pipe to another "
       "host", PY),
    Rule("listen", "high", "network", "listens for network connections",
       "exposes the machine to the network", BOTH),
    Rule("serve-files", "medium", "network", "serves files over HTTP",
       "exposes the work dir to the network", SH),
    Rule("upload", "high", "network", "sends data to another host",
       "the usual second half of exfiltration", BOTH),
    Rule("upload-literal", "low", "network", "sends literal data to another host",
       "only the literal is sent", PY),
    Rule("download", "medium", "network", "downloads from another host",
       "what arrives is unknown (the download-and-run cases have their own rules)", BOTH,
       severities=("low", "medium"),
       graded_by="low from an https URL naming its host, medium for plain http, a raw IP "
       "address, a host that cannot be known, or a request that carries a secret"),
    Rule("local-fetch", "low", "network", "talks to localhost", "stays on the machine", PY),
    Rule("remote-copy", "high", "network", "copies files to or from another host (scp, rsync)",
       "moves data off the machine", SH),
    Rule("ssh", "high", "network", "opens an SSH session", "runs commands on another host", SH),
    Rule("firewall", "high", "network", "changes the firewall", "opens or closes the machine", SH),
    Rule("pip-index", "high", "network", "pip installs from another index or URL list",
       "a package index the user did not choose (dependency confusion)", SH),
    Rule("pip-url", "high", "network", "pip installs a package from a URL",
       "the package's set-up code runs with the user's rights", SH),
    Rule("browser-network", "medium", "network", "a %%javascript/%%html cell sends requests",
       "runs in the browser with the user's session", PY),
    # -- dynamic code ---------------------------------------------------------------------
    Rule("download-exec", "critical", "dynamic-code", "runs code fetched from the network",
       "unseen code from someone else runs with the user's rights", BOTH),
    Rule("download-run", "critical", "process", "downloads a program, then runs it",
       "unseen code from someone else runs with the user's rights", SH),
    Rule("decode-run", "critical", "dynamic-code", "decodes a payload to a file, then runs it",
       "encoding hides what runs", SH),
    Rule("decoded-exec", "critical", "dynamic-code", "runs a decoded (base64, hex...) payload",
       "encoding exists only to hide what runs", BOTH),
    Rule("decoded-payload", "high", "dynamic-code", "decodes text that looks like code",
       "hidden code; its own findings are reported too", PY),
    Rule("dynamic-code", "medium", "dynamic-code", "eval/exec/compile of code",
       "the code run is checked only when it can be folded", PY),
    Rule("literal-exec", "medium", "dynamic-code", "eval/exec of literal code",
       "the literal is scanned too; running code through exec is still unusual", PY),
    Rule("built-exec", "high", "dynamic-code", "eval/exec of code assembled from pieces",
       "assembling code hides it", PY),
    Rule("computed-exec", "high", "dynamic-code", "eval/exec of computed code",
       "what runs cannot be known", PY),
    Rule("decorator-exec", "high", "dynamic-code", "uses eval/exec as a decorator",
       "runs code without a visible call", PY),
    Rule("class-hook-exec", "high", "dynamic-code", "a class hook runs a harmful call",
       "runs code without a visible call", PY,
       categories=("process", "filesystem", "network", "dynamic-code"),
       graded_by="the category of the capability the hook reaches"),
    Rule("indirect-capability", "high", "process",
       "reaches a shell, file, network or exec call through an indirection",
       "hiding which capability is used is itself the signal; rated by what is reached", PY,
       categories=("process", "filesystem", "network", "dynamic-code"),
       graded_by="the category of the capability reached"),
    Rule("computed-import", "high", "dynamic-code", "imports a module whose name is computed",
       "which module is loaded cannot be known (a loop over written names is checked name by "
       "name instead)", PY),
    Rule("hidden-import", "medium", "dynamic-code", "imports a module whose name is built",
       "the name is folded and the module checked", PY, severities=("medium", "high"),
       graded_by="high when the name was hidden by encoding"),
    Rule("computed-magic", "high", "dynamic-code", "runs an IPython magic whose name is computed",
       "what runs cannot be known", PY),
    Rule("run-script", "low", "dynamic-code", "runs another script (%run, runpy)",
       "the script is not scanned", PY),
    Rule("query-code", "high", "dynamic-code", "pandas query/eval of computed text",
       "pandas evaluates Python expressions in the string", PY,
       severities=("high", "critical"), graded_by="the worst finding of the code it runs"),
    Rule("eval", "medium", "dynamic-code", "eval of a string in Bash",
       "the string is scanned when it can be", SH),
    Rule("inline-script", "medium", "dynamic-code", "runs an inline interpreter script",
       "perl -e / node -e / a %%ruby cell: not scanned", BOTH),
    Rule("inline-script-shell", "high", "process", "an inline interpreter script runs commands",
       "a shell command hidden in another language", SH),
    Rule("piped-code", "high", "dynamic-code", "runs code read from a pipe",
       "what runs is not visible", SH),
    Rule("piped-literal", "medium", "dynamic-code", "pipes literal text into an interpreter",
       "the text is scanned too; piping code is still unusual", SH),
    # -- dangerous modules ----------------------------------------------------------------
    Rule("ctypes", "high", "dangerous-module", "imports or calls ctypes",
       "raw memory and C calls bypass every Python-level check", PY),
    Rule("marshal", "high", "dangerous-module", "builds code objects from bytes",
       "code objects bypass the source scan", PY),
    Rule("unpickle", "medium", "dangerous-module", "unpickles data",
       "unpickling runs code chosen by whoever wrote the bytes", PY),
    Rule("unpickle-file", "low", "dangerous-module", "unpickles a file",
       "everyday for the code's own files", PY, severities=("low", "medium"),
       graded_by="low when the data comes from a file, medium otherwise"),
    Rule("unpickle-unsafe", "high", "dangerous-module", "unpickles with an unsafe loader",
       "runs code chosen by whoever wrote the bytes", PY),
    Rule("pickle-network", "critical", "dangerous-module", "unpickles data from the network",
       "remote code execution by design", PY),
    Rule("remote-code", "high", "dynamic-code", "loads a model with code from the network",
       "torch.hub.load runs the repository's hubconf.py; trust_remote_code runs the model "
       "repository's Python", PY),
    Rule("pickle-payload", "critical", "dangerous-module", "a pickle payload that runs commands",
       "the classic __reduce__ attack", PY),
    Rule("pickle-reduce", "low", "dangerous-module", "customises unpickling (__reduce__)",
       "harmless unless it runs something (then pickle-payload)", PY),
    Rule("yaml-unsafe", "medium", "dangerous-module", "yaml.load with an unsafe loader",
       "can build arbitrary Python objects", PY),
    Rule("pip-main", "medium", "dangerous-module", "pip.main installs packages while running",
       "installs run set-up code with the user's rights", PY),
    Rule("pip-main-url", "high", "dangerous-module", "pip.main installs a package from a URL",
       "set-up code from an arbitrary URL runs in the kernel's process", PY),
    # -- introspection --------------------------------------------------------------------
    Rule("dunder-builtins", "high", "introspection", "reaches the builtins namespace",
       "the usual first step of a sandbox escape", PY,
       severities=("high", "critical"), graded_by=_ESCALATED),
    Rule("sys-modules", "high", "introspection", "looks modules up through sys.modules",
       "hides which module is used", PY, severities=("high", "critical"), graded_by=_ESCALATED),
    Rule("module-chain", "high", "introspection", "reaches a module through another's attributes",
       "os.path.os.system hides os", PY, severities=("high", "critical"), graded_by=_ESCALATED),
    Rule("frames", "high", "introspection", "inspects interpreter internals (frames, gc)",
       "reaches other code's variables", PY, severities=("high", "critical"),
       graded_by=_ESCALATED),
    Rule("computed-attribute", "high", "introspection", "getattr with a computed name",
       "which attribute is reached cannot be known", PY, severities=("low", "high"),
       graded_by="high on a module that reaches processes, files, the network or code (os, "
       "sys, subprocess, builtins, importlib, pickle...) or on an object reached by a dunder "
       "walk, low otherwise; none when every name it can take is written in the code; never "
       "escalated"),
    Rule("hidden-attribute", "high", "introspection", "builds a dunder or risky attribute name",
       "hiding the name is the signal", PY, severities=("high", "critical"),
       graded_by=_ESCALATED),
    # -- persistence ----------------------------------------------------------------------
    Rule("cron", "critical", "persistence", "installs or edits a cron job",
       "keeps running after the notebook is gone", BOTH),
    Rule("cron-import", "high", "persistence", "imports a crontab editor",
       "only a crontab editor; editing is cron", PY),
    Rule("at-job", "high", "persistence", "schedules a command (at, batch)",
       "runs later, unseen", SH),
    Rule("service", "high", "persistence", "installs or enables a service",
       "keeps running after the notebook is gone", SH),
    Rule("accounts", "high", "persistence", "changes user accounts or passwords",
       "a way back in", SH),
    Rule("git-hook", "high", "persistence", "makes git run a program",
       "runs on every later git command", SH),
    # -- secrets --------------------------------------------------------------------------
    Rule("env-dump", "high", "secrets", "dumps the whole environment",
       "API keys and tokens live there", BOTH),
    Rule("env-names", "low", "secrets", "lists environment variable names", "names only", PY),
    Rule("secret-variable", "high", "secrets", "reads a secret environment variable",
       "printed, sent or written, it leaks", BOTH, severities=("low", "high"),
       graded_by="low when the value is only checked or kept (not shown, written or sent), "
       "high otherwise"),
    Rule("secret-auth", "low", "secrets", "passes a secret variable to a client to authenticate",
       "what the variable is for", BOTH),
    Rule("credential-store", "critical", "secrets", "reads stored passwords or browser cookies",
       "the user's accounts everywhere", PY),
    Rule("credential-store-import", "high", "secrets", "imports a password or cookie reader",
       "only the import; reading is credential-store", PY),
    Rule("kernel-keys", "high", "secrets", "locates Jupyter kernel connection files",
       "their keys let anyone run code in the kernels", PY),
    Rule("cloud-token", "high", "secrets", "prints cloud credentials", "a token is a login", SH),
    Rule("export-keys", "critical", "secrets", "exports private keys (gpg)",
       "the user's identity", SH),
    Rule("exfiltration", "critical", "secrets", "reads credentials and talks to the network",
       "the two halves of exfiltration in one piece of code", ("scanner", "python", "bash")),
    # -- resources ------------------------------------------------------------------------
    Rule("fork-bomb", "critical", "resource", "a fork bomb", "takes the machine down", BOTH),
    Rule("endless-spawn", "critical", "resource", "starts processes in an endless loop",
       "takes the machine down", BOTH),
    Rule("endless-write", "high", "resource", "writes to disk in an endless loop",
       "fills the disk", BOTH),
    Rule("endless-growth", "high", "resource", "grows memory in an endless loop",
       "takes the kernel and maybe the machine down", PY),
    Rule("busy-loop", "high", "resource", "an endless loop with no exit",
       "hangs the kernel", BOTH),
    Rule("output-flood", "high", "resource", "prints in an endless loop",
       "floods the notebook and the browser", BOTH),
    Rule("big-allocation", "high", "resource", "allocates a huge buffer",
       "exhausts memory", PY),
    Rule("fill-disk", "high", "resource", "fills the disk (yes > file, fallocate, dd)",
       "a full disk breaks everything", SH, severities=("medium", "high"),
       graded_by="medium for truncate (sparse files), high otherwise"),
    Rule("stress", "high", "resource", "exhausts CPU or memory on purpose", "by design", SH),
    Rule("miner", "critical", "resource", "runs a cryptocurrency miner",
       "the usual payload of notebook attacks", SH),
]
# fmt: on

for _attr, (_sev, _reason) in INTROSPECTION_ATTRS.items():
    _severities = (_sev, "critical") if _sev == "high" else (_sev,)
    _by = (
        (
            "critical when walked to from a class (__subclasses__/__bases__/__mro__); "
            if _attr in CHAIN_ESCAPE_ATTRS
            else ""
        )
        + _ESCALATED
        if _sev == "high"
        else ""
    )
    _RULES.append(
        Rule(
            introspection_rule(_attr),
            _sev,
            "introspection",
            _reason,
            "interpreter internals are how sandbox escapes reach what a scan cannot see",
            PY,
            severities=_severities,
            graded_by=_by,
        )
    )

#: The public write-ups behind a rule: the sources of the dev-split corpus items
#: (`benchmarks/scanner/corpus/dev/public.yaml`) whose worst finding is that rule.
SOURCES: dict[str, str] = {
    "reverse-shell": "PayloadsAllTheThings and pentestmonkey reverse shell cheat sheets",
    "download-run": "Aqua Nautilus, attacks on exposed Jupyter notebooks (download, chmod, run), "
    "2022; Kinsing / H2Miner write-ups",
    "decode-run": "TeamTNT campaign reports (encoded stage written to disk and executed)",
    "miner": "Cado Security, cryptojacking on cloud notebooks (stratum pool arguments)",
    "busy-loop": "Aqua Nautilus, Panamorfi resource abuse on Jupyter, 2024",
    "delete-loop": "Aqua Nautilus, Python ransomware on Jupyter notebooks, 2022",
    "exfiltration": 'SANS ISC, hijacked "ctx" package (secret kept in a variable, then sent)',
    "extract-home": 'Snyk, "Zip Slip" archive extraction write-up',
    "archive-paths": 'Snyk, "Zip Slip" archive extraction write-up',
    "impair-defenses": "MITRE ATT&CK T1562, Impair Defenses (T1562.001 disable or modify "
    "tools, T1562.004 disable or modify system firewall)",
    "docker-socket": "MITRE ATT&CK T1611, Escape to Host (Docker socket)",
    "extract-system": "Trellix, tarfile path traversal (CVE-2007-4559) write-up",
    "built-exec": "Phylum, W4SP stealer (code assembled from fragments)",
    "hidden-attribute": "Phylum, obfuscated stealers using getattr on builtins",
    "class-hook-exec": 'HackTricks, "Bypass Python sandboxes"',
    "decorator-exec": 'HackTricks, "Bypass Python sandboxes"',
    "indirect-capability": 'HackTricks, "Bypass Python sandboxes"',
    "sys-modules": 'HackTricks, "Bypass Python sandboxes"',
    "pickle-network": "JFrog Security Research, malicious models loaded from a remote source, 2024",
    "pip-main-url": "Checkmarx, run-time installs of second stages",
    "remote-code": "PyTorch docs, torch.hub (hubconf.py runs on load); Hugging Face docs, "
    "trust_remote_code",
    "preload": "Trend Micro, TeamTNT libprocesshider; Intezer, Symbiote",
    "query-code": "GitHub Security Lab issue 814 (code injection sinks in pandas); pandas pull "
    "request 58697",
}

RULES: dict[str, Rule] = {}
for _rule in _RULES:
    if _rule.id in SOURCES:
        _rule = replace(_rule, source=SOURCES[_rule.id])
    if _rule.id in RULES:
        raise ValueError(f"rule {_rule.id!r} is catalogued twice")
    RULES[_rule.id] = _rule
del _rule, _RULES


def finding(
    rule_id: str,
    line: int | None,
    message: str,
    *,
    severity: str | None = None,
    category: str | None = None,
) -> Finding:
    """A finding of catalogued rule `rule_id`; a graded rule's call site passes its rating.

    Raises `KeyError` for an id not in the catalogue and `ValueError` for a rating the
    catalogue does not allow for it (the scanner turns both into a fail-closed finding).
    """
    rule = RULES[rule_id]
    sev = rule.severity if severity is None else severity
    cat = rule.category if category is None else category
    if sev not in rule.allowed_severities:
        raise ValueError(f"rule {rule_id!r} cannot be rated {sev!r}")
    if cat not in rule.allowed_categories:
        raise ValueError(f"rule {rule_id!r} cannot have category {cat!r}")
    return Finding(rule_id, sev, cat, line, message)


def catalogue() -> list[Rule]:
    """Every rule, most harmful first, then by category and id."""
    return sorted(RULES.values(), key=lambda r: (-SEVERITIES.index(r.severity), r.category, r.id))


def _severity_text(rule: Rule) -> str:
    if len(rule.allowed_severities) == 1:
        return rule.severity
    ordered = sorted(rule.allowed_severities, key=SEVERITIES.index)
    return f"{ordered[0]}–{ordered[-1]}"


def _category_text(rule: Rule) -> str:
    return rule.category if len(rule.allowed_categories) == 1 else "/".join(rule.allowed_categories)


def rule_dict(rule: Rule) -> dict[str, object]:
    return {
        "id": rule.id,
        "severity": rule.severity,
        "severities": list(rule.allowed_severities),
        "category": rule.category,
        "categories": list(rule.allowed_categories),
        "languages": list(rule.languages),
        "summary": rule.summary,
        "rationale": rule.rationale,
        "graded_by": rule.graded_by,
        "source": rule.source,
    }


def text_table() -> str:
    """The catalogue as aligned text: id, severity, category, summary."""
    rows = [(r.id, _severity_text(r), _category_text(r), r.summary) for r in catalogue()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    head = f"{'rule':<{w0}}  {'severity':<{w1}}  {'category':<{w2}}  summary"
    lines = [head, "-" * len(head)]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's rule table (kept in sync by a test)."""
    lines = ["| rule | severity | category | what it flags |", "|---|---|---|---|"]
    for r in catalogue():
        summary = r.summary.replace("|", "\\|")
        lines.append(f"| `{r.id}` | {_severity_text(r)} | {_category_text(r)} | {summary} |")
    return "\n".join(lines) + "\n"


README_BEGIN = (
    "<!-- rule-table: generated by `python -m codeflow_magic.security.rules --readme README.md` -->"
)
README_END = "<!-- rule-table end -->"


def with_readme_table(readme: str) -> str:
    """`readme` with the text between the rule-table markers replaced by `markdown_table()`."""
    start = readme.index(README_BEGIN) + len(README_BEGIN)
    end = readme.index(README_END, start)
    return readme[:start] + "\n\n" + markdown_table() + "\n" + readme[end:]


def main(argv: list[str]) -> int:
    """`--markdown` prints the README table, `--readme PATH` rewrites it in place."""
    if argv[:1] == ["--readme"] and len(argv) == 2:
        with open(argv[1], encoding="utf-8") as fh:
            text = fh.read()
        with open(argv[1], "w", encoding="utf-8") as fh:
            fh.write(with_readme_table(text))
        return 0
    sys.stdout.write(markdown_table() if argv == ["--markdown"] else text_table())
    return 0


if __name__ == "__main__":  # pragma: no cover - a maintenance helper
    sys.exit(main(sys.argv[1:]))
