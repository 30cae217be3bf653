"""Where a path points, judged by harm: shared by the Python and the Bash rules.

Paths arrive as text in which `~` stands for the home directory (Python's `expanduser`,
`Path.home()`, `$HOME` all fold to it) and `${COMPUTED}` stands for any part the scanner could
not work out. Relative paths are the work dir: that is where generated code is meant to write.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

COMPUTED = "${COMPUTED}"
"""Placeholder for the parts of a string the scanner could not fold."""

SEVERITY_NONE = "none"


@dataclass(frozen=True)
class Verdict:
    severity: str  # "none", "low", "medium", "high" or "critical"
    category: str
    reason: str


NONE = Verdict(SEVERITY_NONE, "filesystem", "")

_SECRET_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (r"(^|/)\.ssh/id_[^/]*$", "critical", "reads an SSH private key"),
    (r"(^|/)\.ssh(/[^/]*_(rsa|dsa|ecdsa|ed25519|key))$", "critical", "reads an SSH private key"),
    (r"(^|/)\.ssh/?$", "critical", "reads the SSH key directory"),
    (r"(^|/)\.ssh/(\*|[^/]*\*[^/]*)$", "critical", "reads the SSH key directory"),
    (r"(^|/)\.ssh/authorized_keys2?$", "high", "reads the SSH login keys"),
    (r"(^|/)\.ssh/", "high", "reads SSH configuration"),
    (r"(^|/)\.aws(/|$)", "critical", "reads AWS credentials"),
    (r"(^|/)\.azure(/|$)", "critical", "reads Azure credentials"),
    (r"(^|/)\.config/gcloud(/|$)", "critical", "reads Google Cloud credentials"),
    (r"(^|/)application_default_credentials\.json$", "critical", "reads Google Cloud credentials"),
    (r"(^|/)\.kube/config$", "critical", "reads Kubernetes credentials"),
    (
        r"^/(var/)?run/secrets(/|$)",
        "critical",
        "reads mounted service credentials (a Kubernetes service account token, Docker secrets)",
    ),
    (r"(^|/)\.docker/config\.json$", "critical", "reads Docker registry credentials"),
    (r"(^|/)\.netrc$", "critical", "reads stored login passwords (.netrc)"),
    (r"(^|/)\.git-credentials$", "critical", "reads stored git credentials"),
    (r"(^|/)\.config/gh/hosts\.yml$", "critical", "reads the GitHub CLI token"),
    (r"(^|/)\.pypirc$", "critical", "reads the PyPI upload token"),
    (r"(^|/)\.npmrc$", "high", "reads npm credentials"),
    (r"(^|/)\.gnupg(/|$)", "critical", "reads GnuPG private keys"),
    (r"(^|/)\.password-store(/|$)", "critical", "reads the password store"),
    (r"(^|/)\.vault-token$", "critical", "reads a Vault token"),
    (r"(^|/)(\.cache/)?huggingface/token$", "critical", "reads the Hugging Face token"),
    (r"(^|/)\.anthropic(/|$)", "critical", "reads Anthropic credentials"),
    (r"(^|/)\.config/(anthropic|openai)(/|$)", "critical", "reads model API credentials"),
    (
        r"(^|/)(\.mozilla|\.config/google-chrome|\.config/chromium)/",
        "critical",
        "reads browser profiles (passwords, cookies)",
    ),
    (r"^/etc/(g?shadow|sudoers)(-|$)", "critical", "reads the system password hashes"),
    (r"^/proc/[^/]+/environ$", "high", "reads a process environment (API keys included)"),
    (
        r"^/proc/(?!self/|thread-self/)[^/]+/(task/[^/]+/)?mem$",
        "critical",
        "reads another process's memory (/proc/<pid>/mem: passwords and keys in use)",
    ),
    (
        r"(^|/)jupyter/runtime(/|$)|(^|/)\.jupyter-runtime(/|$)|(^|/)kernel-[^/]*\.json$",
        "critical",
        "reads Jupyter kernel connection files (their keys let anyone run code in the kernels)",
    ),
    (r"(^|/)\.(bash|zsh|python|sh|mysql|psql)_history$", "high", "reads shell history"),
    (r"(^|/)\.env$", "medium", "reads a .env file of secrets"),
)
_SECRET_RES = tuple((re.compile(p), s, r) for p, s, r in _SECRET_PATTERNS)

_PERSIST_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (
        r"(^|/)\.(bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv|zlogin"
        r"|cshrc|tcshrc|kshrc|mkshrc|inputrc)$",
        "critical",
        "writes a shell start-up file",
    ),
    (r"(^|/)\.config/fish/config\.fish$", "critical", "writes a shell start-up file"),
    (
        r"^/etc/(profile|bash\.bashrc|environment|zsh/|profile\.d/)",
        "critical",
        "writes a system-wide shell start-up file",
    ),
    (r"\.pth$", "critical", "writes a .pth file (runs at every Python start)"),
    (r"(^|/)(site|user)customize\.py$", "critical", "writes a Python start-up hook"),
    (
        r"(^|/)\.ipython/profile_[^/]+/startup(/|$)",
        "critical",
        "writes an IPython start-up script (runs in every kernel)",
    ),
    (
        r"(^|/)(ipython|ipython_kernel)_config\.(py|json)$",
        "critical",
        "writes IPython configuration",
    ),
    (
        r"(^|/)\.jupyter(/|$)|(^|/)jupyter_[a-z_]*config\.(py|json)$",
        "critical",
        "writes Jupyter configuration (runs at every Jupyter start)",
    ),
    (r"(^|/)\.ssh/authorized_keys2?$", "critical", "adds an SSH login key"),
    (r"(^|/)\.ssh/(config|rc|environment)$", "high", "changes SSH configuration"),
    (
        r"^/etc/(cron|anacrontab)|^/var/spool/cron|(^|/)crontabs?/",
        "critical",
        "installs a cron job",
    ),
    (
        r"^/etc/(systemd|init\.d|rc\.local|rc\d\.d)|(^|/)\.config/systemd/|^/(usr/)?lib/systemd/",
        "critical",
        "installs a service that starts automatically",
    ),
    (
        r"(^|/)\.config/autostart(/|$)|(^|/)LaunchAgents/|(^|/)LaunchDaemons/",
        "critical",
        "installs a program that starts at login",
    ),
    (r"^/etc/ld\.so\.preload$", "critical", "preloads a library into every program"),
    (r"^/etc/(sudoers|passwd|shadow|group)(\.d/|$)", "critical", "changes user accounts"),
    (r"(^|/)\.git/hooks/", "high", "installs a git hook"),
    (
        r"(^|/)(\.pip/pip\.conf|\.config/pip/pip\.conf|pip\.conf)$|^/etc/pip\.conf$",
        "high",
        "changes where pip installs packages from",
    ),
    (r"(^|/)\.local/bin/", "high", "puts a program on the user's PATH"),
    (r"(^|/)\.gitconfig$", "medium", "changes git configuration"),
)
_PERSIST_RES = tuple((re.compile(p), s, r) for p, s, r in _PERSIST_PATTERNS)

_SYSTEM_ROOTS = (
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/var",
    "/opt",
    "/sys",
    "/proc",
    "/dev",
    "/srv",
    "/snap",
    "/mnt",
    "/media",
    "/run",
)
_TMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")
_HARMLESS_DEVICES = (
    "/dev/null",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/tty",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/dev/stdin",
    "/dev/fd",
)
_DISK_RE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|md|dm-|loop|mapper/)")

# Where a path points.
ROOT, HOME, HOME_SUB, SYSTEM, TMP, OTHER_ABS, PARENT, WORK, UNKNOWN, DEVICE, DISK = (
    "root",
    "home",
    "home_sub",
    "system",
    "tmp",
    "other_abs",
    "parent",
    "work",
    "unknown",
    "device",
    "disk",
)


def normalize(path: str) -> str:
    """Collapse `//`, `.` and `..`; map `~user`, `/root` and `/home/x` to home forms."""
    p = path.strip().strip("'\"")
    if not p:
        return p
    if p.startswith("file://"):
        p = p[7:]
    p = re.sub(r"^~[A-Za-z_][\w.-]*", "~", p)
    p = re.sub(r"^(/root|/home/[^/*]+)(?=/|$)", "~", p)
    head_home = p.startswith("~")
    if head_home:
        rest = p[1:].lstrip("/")
        norm = posixpath.normpath("/" + rest) if rest else "/"
        if norm.startswith("//"):
            norm = norm[1:]
        return "~" if norm == "/" else "~" + norm
    if p.startswith(COMPUTED):
        return p
    norm = posixpath.normpath(p)
    if norm.startswith("//"):
        norm = norm[1:]
    return norm


def locate(path: str) -> str:
    """One of the location words above for an already normalized path."""
    p = path
    if not p:
        return UNKNOWN
    if p.startswith(COMPUTED):
        return UNKNOWN
    if p.startswith("~"):
        tail = p[1:].lstrip("/")
        if tail in ("", "*", ".*", "{*,.*}") or re.fullmatch(r"[*.]+", tail):
            return HOME
        return HOME_SUB
    if p.startswith("/"):
        if p in ("/", "/*", "/.*") or re.fullmatch(r"/[*.]+", p):
            return ROOT
        if p in ("/home", "/home/*", "/root", "/Users", "/Users/*"):
            return HOME
        if any(p == t or p.startswith(t + "/") for t in _TMP_ROOTS):
            return TMP
        if any(p == d or p.startswith(d + "/") for d in _HARMLESS_DEVICES):
            return DEVICE
        if _DISK_RE.match(p):
            return DISK
        if any(p == r or p.startswith(r + "/") for r in _SYSTEM_ROOTS):
            return SYSTEM
        return OTHER_ABS
    if p == ".." or p.startswith("../"):
        return PARENT
    return WORK


def _match(res: tuple[tuple[re.Pattern[str], str, str], ...], path: str) -> Verdict | None:
    for regex, severity, reason in res:
        if regex.search(path):
            return Verdict(severity, "", reason)
    return None


def secret_file(path: str) -> Verdict | None:
    """The verdict for reading `path` when it holds credentials, else None."""
    p = normalize(path)
    v = _match(_SECRET_RES, p)
    return Verdict(v.severity, "secrets", v.reason) if v else None


def persistence_file(path: str) -> Verdict | None:
    """The verdict for writing `path` when that makes code run later, else None."""
    p = normalize(path)
    v = _match(_PERSIST_RES, p)
    return Verdict(v.severity, "persistence", v.reason) if v else None


def _shown(path: str) -> str:
    return path.replace(COMPUTED, "…")


def delete_verdict(path: str | None, recursive: bool) -> Verdict:
    """Harm of deleting `path` (None: a path the scanner could not work out)."""
    if path is None:
        if recursive:
            return Verdict("medium", "filesystem", "deletes a computed path")
        return NONE
    p = normalize(path)
    where = locate(p)
    if where == ROOT:
        return Verdict("critical", "filesystem", "deletes the root filesystem")
    if where == HOME:
        return Verdict("critical", "filesystem", "deletes the home directory")
    if where == SYSTEM:
        return Verdict("critical", "filesystem", f"deletes system files ({_shown(p)})")
    if where == DISK:
        return Verdict("critical", "filesystem", f"destroys a disk device ({p})")
    secret = secret_file(p)
    if secret is not None:
        return Verdict("critical", "filesystem", f"deletes credentials ({_shown(p)})")
    persist = persistence_file(p)
    if persist is not None:
        return Verdict("high", "filesystem", f"deletes a start-up file ({_shown(p)})")
    if where == HOME_SUB:
        if recursive:
            return Verdict(
                "critical", "filesystem", f"deletes a folder in the home directory ({p})"
            )
        return Verdict("high", "filesystem", f"deletes a file outside the work dir ({p})")
    if where == OTHER_ABS:
        return Verdict("high", "filesystem", f"deletes files outside the work dir ({p})")
    if where == PARENT:
        return Verdict("high", "filesystem", f"deletes files outside the work dir ({p})")
    if where == UNKNOWN:
        if re.fullmatch(re.escape(COMPUTED) + r"/?\*?", p) or p.startswith(COMPUTED + "/*"):
            return Verdict(
                "high",
                "filesystem",
                "deletes '<computed>/': the root filesystem if the value is empty",
            )
        if recursive:
            return Verdict("medium", "filesystem", f"deletes a computed path ({_shown(p)})")
        return NONE
    if where == WORK and recursive and p in (".", "*", "./*"):
        return Verdict("medium", "filesystem", "deletes everything in the work dir")
    if where == TMP and recursive and p in ("/tmp", "/var/tmp", "/dev/shm"):
        return Verdict("medium", "filesystem", f"deletes all of {p}")
    return NONE


_TOOL_SETTINGS = re.compile(
    r"^~/\.(kaggle|keras|matplotlib|streamlit)(/|$)|^~/\.config/matplotlib(/|$)"
)
"""Where data-science tools keep their own settings and API tokens: writing there is set-up."""


def write_verdict(path: str | None) -> Verdict:
    """Harm of writing (creating, overwriting, appending to) `path`."""
    if path is None:
        return NONE
    p = normalize(path)
    persist = persistence_file(p)
    if persist is not None:
        return persist
    where = locate(p)
    if where in (ROOT, SYSTEM):
        return Verdict("critical", "filesystem", f"writes system files ({_shown(p)})")
    if where == DISK:
        return Verdict("critical", "filesystem", f"overwrites a disk device ({p})")
    secret = secret_file(p)
    if secret is not None and secret.severity in ("critical", "high"):
        return Verdict("high", "filesystem", f"overwrites credentials ({_shown(p)})")
    if where == HOME:
        return Verdict("high", "filesystem", "writes into the home directory")
    tool = _TOOL_SETTINGS.search(p)
    if where == HOME_SUB and tool is not None:
        return Verdict("low", "filesystem", f"writes tool settings ({_shown(p)})")
    if where == HOME_SUB:
        return Verdict("high", "filesystem", f"writes outside the work dir ({p})")
    if where in (OTHER_ABS, PARENT):
        return Verdict("medium", "filesystem", f"writes outside the work dir ({p})")
    return NONE


def read_verdict(path: str | None) -> Verdict:
    """Harm of reading `path`: only credential files matter."""
    if path is None:
        return NONE
    p = normalize(path)
    secret = secret_file(p)
    if secret is not None:
        return secret
    if p == "/etc/passwd":
        return Verdict("medium", "secrets", "reads the system user list")
    return NONE


_MENTION_HINT = re.compile(
    r"ssh|aws|azure|gcloud|kube|docker|netrc|credential|pypirc|npmrc|gnupg|password|vault|"
    r"huggingface|anthropic|openai|mozilla|chrom|shadow|sudoers|environ|history|\.env|"
    r"rc$|profile|\.pth|customize|ipython|jupyter|cron|systemd|autostart|Launch|preload|hooks|"
    r"pip\.conf|\.local/bin|gitconfig",
    re.IGNORECASE,
)


def mention_verdict(text: str) -> Verdict | None:
    """A string that names a credential or start-up file, even if the use is unclear."""
    if len(text) > 300 or not _MENTION_HINT.search(text):
        return None
    candidate = text.strip()
    if " " in candidate or "\n" in candidate:
        return None
    if "/" not in candidate and not candidate.startswith("."):
        return None
    secret = secret_file(candidate)
    if secret is not None and secret.severity in ("critical", "high"):
        return Verdict("high", "secrets", f"refers to a credential file ({candidate})")
    persist = persistence_file(candidate)
    if persist is not None and persist.severity == "critical":
        return Verdict("high", "persistence", f"refers to a start-up file ({candidate})")
    return None
