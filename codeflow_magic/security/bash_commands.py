"""Bash command handlers beyond files, and `HANDLERS`, the program name -> handler table.

The scanner looks a command's program up in `HANDLERS` instead of walking an elif chain; the
file handlers come from `bash_files`.
"""

from __future__ import annotations

import re

from ..secrets import is_secret_name
from . import paths
from .bash_files import _copy, _dd, _disk_tool, _extract, _find, _perms, _rm, _sed, _shred
from .bash_lex import Command
from .bash_tables import (
    BIG_BYTES,
    DECODERS,
    DOWNLOADERS,
    RAW_NET,
    REMOTE_COPY,
    Handler,
    Scanner,
    _flags_and_targets,
    _host,
    _shell_path,
    _size_bytes,
)


def _net_download(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    host = _host(args)
    upload = False
    for idx, a in enumerate(args):
        if re.match(
            r"^(-d|--data\S*|-F|--form\S*|-T|--upload-file|--post-data|--post-file|"
            r"--body-data|--body-file|--json)(=|$)",
            a,
        ) or (a.startswith("-d") and prog == "curl" and len(a) > 2):
            upload = True
        if a in ("-X", "--request", "--method") and idx + 1 < len(args):
            if args[idx + 1].upper() in ("POST", "PUT", "PATCH"):
                upload = True
        if a in ("-o", "--output", "-O", "--output-document") and idx + 1 < len(args):
            s.add_verdict("write-path", paths.write_verdict(_shell_path(args[idx + 1])), line)
    if upload or (prog == "http" and any("=" in a for a in args)):
        s.add("upload", line, f"sends data to {host}")
    elif _named_https(args, host):
        s.add("download", line, f"downloads from {host} over https", severity="low")
    else:
        s.add("download", line, f"downloads from {host}", severity="medium")


AUTH_HEADER = re.compile(
    r"^(?:authorization:\s*(?:bearer|token)\s+|x-api-key:\s*|api-key:\s*|private-token:\s*)"
    r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$",
    re.IGNORECASE,
)
"""A request header whose whole value is one variable sent to authenticate."""


def _named_https(args: list[str], host: str) -> bool:
    """Every URL is https to a named host and nothing is expanded into the command but an
    authentication header."""
    urls = [a for a in args if re.match(r"^[a-z][a-z0-9+.-]*://", a)]
    if not urls or any(("$" in a or "`" in a) and not AUTH_HEADER.match(a) for a in args):
        return False
    for url in urls:
        m = re.match(r"^https://([^/:?#@\s]+)(?::\d+)?(?:[/?#]|$)", url)
        if not m or "." not in m.group(1) or re.fullmatch(r"[\d.]+", m.group(1)):
            return False
        if m.group(1).lower().startswith(("localhost", "127.")):
            return False
    return host != "a network host"


def _raw_net(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    text = " ".join(args)
    if any(a in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") for a in args) or re.search(
        r"\b(EXEC|SYSTEM):", text, re.IGNORECASE
    ):
        s.add("reverse-shell", line, f"opens a remote shell over the network ({prog})")
        return
    if any(re.fullmatch(r"-[a-zA-Z]*l[a-zA-Z]*", a) for a in args) or "LISTEN" in text.upper():
        s.add("listen", line, f"listens for network connections ({prog})")
        return
    s.add("raw-connection", line, f"opens a raw network connection to {_host(args)} ({prog})")


def _remote(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    host = _host(args)
    if prog == "ssh":
        s.add("ssh", line, f"opens an SSH session to {host}")
        rest = [a for a in args if not a.startswith("-")]
        if len(rest) > 1:
            s.findings.extend(s.nested(" ".join(rest[1:]), line))
        return
    s.add("remote-copy", line, f"copies data to or from {host} ({prog})")


def _env_dump(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "printenv":
        names = [a for a in args if not a.startswith("-")]
        if not names:
            s.add("env-dump", line, "dumps the whole environment (API keys included)")
        for n in names:
            if is_secret_name(n):
                s.add("secret-variable", line, f"prints the secret variable {n}")
        return
    if prog in ("set", "export", "declare", "typeset"):
        if not args or args in (["-p"], ["-x"], ["-px"]):
            s.add("env-dump", line, "dumps the whole environment (API keys included)")
        if prog == "export":
            for a in args:
                m = re.match(r"^(HISTFILE|HISTSIZE|HISTFILESIZE)=", a)
                if m:
                    s.add("hide-history", line, "hides shell history")
                m2 = re.match(r"^(LD_PRELOAD|PYTHONSTARTUP|PROMPT_COMMAND|BASH_ENV)=", a)
                if m2:
                    s.add("preload", line, f"sets {m2.group(1)} (runs code inside other programs)")
        if prog == "set" and args[:2] == ["+o", "history"]:
            s.add("hide-history", line, "turns shell history off")


def _history(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "history" and any(a in ("-c", "-w", "-d") for a in args):
        s.add("hide-history", line, "erases shell history")
    if prog == "unset" and any(a.startswith("HIST") for a in args):
        s.add("hide-history", line, "hides shell history")


def _eval(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    subs_text = " ".join(t for t, _ in cmd.subs)
    if any(re.search(rf"\b{d}\b", subs_text) for d in DOWNLOADERS):
        s.add("download-exec", line, "evaluates code downloaded from the network")
    elif DECODERS.search(subs_text):
        s.add("decoded-exec", line, "evaluates a decoded payload")
    else:
        s.add("eval", line, "evaluates a string as shell code")
    s.findings.extend(s.nested(" ".join(args), line))


def _cron(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "crontab":
        if args and all(a in ("-l", "-u") or not a.startswith("-") for a in args) and "-l" in args:
            return
        s.add("cron", line, "installs a cron job (crontab)")
        return
    if prog in ("at", "batch"):
        if any(a in ("-l", "-r", "-d") for a in args):
            return
        s.add("at-job", line, f"schedules a command to run later ({prog})")
        return
    if prog in ("systemctl", "launchctl", "update-rc.d", "chkconfig", "rc-update"):
        verbs = [a for a in args if not a.startswith("-")]
        if (
            prog == "systemctl"
            and verbs
            and verbs[0] in ("poweroff", "reboot", "halt", "kexec", "suspend", "hibernate")
        ):
            s.add("shutdown", line, f"shuts the machine down ({verbs[0]})")
            return
        if (
            prog == "systemctl"
            and verbs
            and verbs[0] not in ("enable", "link", "edit", "mask", "set-property", "daemon-reload")
        ):
            if verbs[0] in ("stop", "kill", "disable"):
                s.add("service-stop", line, f"stops system services ({prog})")
            return
        s.add("service", line, f"installs a service ({prog})")


def _kill(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "killall5":
        s.add("kill-all", line, "kills every process")
        return
    if prog == "kill":
        pids: list[str] = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("-s", "-n"):
                skip = True
                continue
            if a == "-1" and pids == [] and any(x != "-1" for x in args[args.index(a) + 1 :]):
                continue  # signal number 1 (SIGHUP) followed by pids
            if re.fullmatch(r"-\w+", a) and a != "-1":
                continue
            pids.append(a)
        if "-1" in pids or "0" in pids:
            s.add("kill-all", line, "kills every process it may signal")
        elif any(p in ("$PPID", "${PPID}", "1") for p in pids):
            s.add("kill-parent", line, "kills the parent process (the notebook server)")
        elif pids:
            s.add("kill", line, "kills a process")
        return
    targets = [a for a in args if not a.startswith("-")]
    severity = (
        "high"
        if any(
            re.search(r"python|jupyter|ipykernel|sshd|init|systemd|bash|node", t) for t in targets
        )
        or "-u" in args
        else "medium"
    )
    s.add("kill-by-name", line, f"kills processes by name ({prog})", severity=severity)


def _shutdown(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog in ("init", "telinit") and not (args and args[0] in ("0", "6")):
        return
    s.add("shutdown", line, f"shuts the machine down ({prog})")


def _fill(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    to_file = any(
        op in (">", ">>", "&>", "&>>") and not t.startswith("/dev/null") for op, t in cmd.redirects
    )
    if prog == "yes" and to_file:
        s.add("fill-disk", line, "writes without end to a file (fills the disk)")
        return
    if (
        prog == "cat"
        and to_file
        and any(a in ("/dev/zero", "/dev/urandom", "/dev/random") for a in args)
    ):
        s.add("fill-disk", line, "copies an endless device into a file")
        return
    if prog == "head" and to_file:
        for idx, a in enumerate(args):
            if a in ("-c", "--bytes") and idx + 1 < len(args):
                size = _size_bytes(args[idx + 1])
                if size is not None and size >= BIG_BYTES:
                    s.add("fill-disk", line, f"writes {args[idx + 1]} to disk")
    if prog in ("fallocate", "truncate"):
        for idx, a in enumerate(args):
            if a in ("-l", "--length", "-s", "--size") and idx + 1 < len(args):
                size = _size_bytes(args[idx + 1])
                if size is not None and size >= BIG_BYTES:
                    s.add(
                        "fill-disk",
                        line,
                        f"allocates {args[idx + 1]} on disk",
                        severity="high" if prog == "fallocate" else "medium",
                    )
        _, targets = _flags_and_targets(args)
        for t in targets:
            if not re.fullmatch(r"[\d.]+[KMGTPE]?i?B?", t, re.IGNORECASE):
                s.add_verdict("write-path", paths.write_verdict(_shell_path(t)), line)
    if prog in ("stress", "stress-ng"):
        s.add("stress", line, f"exhausts CPU or memory on purpose ({prog})")


def _firewall(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    """Firewall rules (iptables, nft, ufw) decide what can reach this machine."""
    s.add("firewall", line, f"changes the firewall ({prog})")


def _accounts(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    """New or changed accounts (useradd, passwd, visudo) outlive the session."""
    s.add("accounts", line, f"changes user accounts ({prog})")


def _kernel_module(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    """Kernel modules (insmod, modprobe) run code with no checks at all."""
    s.add("kernel-module", line, f"loads kernel modules ({prog})")


def _mount(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    """Mounting (mount, umount) changes which files every program sees."""
    s.add("mount", line, f"mounts or unmounts filesystems ({prog})")


def _pip_cmd(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "easy_install":
        s._pip(["install", *args], line)
        return
    s._pip(args, line)


def _git(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if "config" in args and any(
        re.search(r"hookspath|fsmonitor|sshcommand|core\.editor", a, re.IGNORECASE) for a in args
    ):
        s.add("git-hook", line, "makes git run a program (git config)")


def _gpg(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if any(a.startswith("--export-secret") for a in args):
        s.add("export-keys", line, "exports private keys (gpg)")


def _cloud(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    text = " ".join(args)
    if re.search(
        r"print-access-token|print-identity-token|get-session-token|"
        r"configure\s+(get|export)|get-login-password|auth\s+token",
        text,
    ):
        s.add("cloud-token", line, f"prints cloud credentials ({prog})")


HANDLERS: dict[str, Handler] = {
    "rm": _rm,
    "rmdir": _rm,
    "unlink": _shred,
    "shred": _shred,
    "wipe": _shred,
    "srm": _shred,
    "find": _find,
    "dd": _dd,
    "fdisk": _disk_tool,
    "sfdisk": _disk_tool,
    "parted": _disk_tool,
    "wipefs": _disk_tool,
    "gdisk": _disk_tool,
    "blkdiscard": _disk_tool,
    "cp": _copy,
    "mv": _copy,
    "install": _copy,
    "ln": _copy,
    "rsync": _copy,
    "tee": _copy,
    "touch": _copy,
    "sed": _sed,
    "chmod": _perms,
    "chown": _perms,
    "chgrp": _perms,
    "chattr": _perms,
    "printenv": _env_dump,
    "set": _env_dump,
    "export": _env_dump,
    "declare": _env_dump,
    "typeset": _env_dump,
    "history": _history,
    "unset": _history,
    "eval": _eval,
    "crontab": _cron,
    "at": _cron,
    "batch": _cron,
    "systemctl": _cron,
    "launchctl": _cron,
    "update-rc.d": _cron,
    "chkconfig": _cron,
    "rc-update": _cron,
    "kill": _kill,
    "pkill": _kill,
    "killall": _kill,
    "killall5": _kill,
    "shutdown": _shutdown,
    "reboot": _shutdown,
    "halt": _shutdown,
    "poweroff": _shutdown,
    "init": _shutdown,
    "telinit": _shutdown,
    "yes": _fill,
    "cat": _fill,
    "head": _fill,
    "fallocate": _fill,
    "truncate": _fill,
    "stress": _fill,
    "stress-ng": _fill,
    "iptables": _firewall,
    "ip6tables": _firewall,
    "nft": _firewall,
    "ufw": _firewall,
    "useradd": _accounts,
    "adduser": _accounts,
    "usermod": _accounts,
    "passwd": _accounts,
    "chpasswd": _accounts,
    "userdel": _accounts,
    "visudo": _accounts,
    "insmod": _kernel_module,
    "modprobe": _kernel_module,
    "rmmod": _kernel_module,
    "mount": _mount,
    "umount": _mount,
    "pip": _pip_cmd,
    "tar": _extract,
    "unzip": _extract,
    "pip3": _pip_cmd,
    "easy_install": _pip_cmd,
    "git": _git,
    "gpg": _gpg,
    "gpg2": _gpg,
    "gcloud": _cloud,
    "aws": _cloud,
    "az": _cloud,
    "gh": _cloud,
}
for _prog in DOWNLOADERS:
    HANDLERS[_prog] = _net_download
for _prog in RAW_NET:
    HANDLERS[_prog] = _raw_net
for _prog in REMOTE_COPY:
    HANDLERS[_prog] = _remote


SECURITY_AGENTS = (
    r"auditd|apparmor|firewalld|ufw|nftables|netfilter-persistent|selinux|falcon-sensor|"
    r"falcond|osqueryd|wazuh-agent|wazuh|ossec|sysmon|clamav-daemon|clamav-freshclam|clamd|"
    r"fail2ban|aegis|aliyundun|ydservice|cloudmonitor|crowdstrike|sentinelone|cbagentd|"
    r"elastic-agent|auditbeat|snoopy|tripwire|aide"
)
_AGENT = re.compile(rf"(?<![\w-])({SECURITY_AGENTS})(?![\w-])", re.IGNORECASE)


def impaired_defence(prog: str, args: list[str], subs_text: str) -> str | None:
    """What host defence the command turns off (MITRE ATT&CK T1562), or None."""
    verbs = [a for a in args if not a.startswith("-")]
    if prog == "setenforce" and verbs and verbs[0].lower() in ("0", "permissive"):
        return "switches SELinux to permissive (setenforce 0)"
    if prog == "ufw" and verbs[:1] == ["disable"]:
        return "turns the ufw firewall off"
    if prog in ("iptables", "ip6tables") and any(a in ("-F", "--flush", "-X") for a in args):
        return f"flushes every firewall rule ({prog} {' '.join(args)})"
    if prog in ("iptables", "ip6tables") and "-P" in args and "ACCEPT" in args:
        return "sets the firewall's default policy to accept everything"
    if prog == "nft" and verbs[:2] == ["flush", "ruleset"]:
        return "flushes every firewall rule (nft flush ruleset)"
    if prog == "auditctl" and (("-e" in args and "0" in args) or "-D" in args):
        return "turns kernel auditing off (auditctl)"
    if prog == "aa-teardown" or (prog == "apparmor_parser" and "-R" in args):
        return "unloads AppArmor profiles"
    if prog == "sysctl" and any(re.match(r"^kernel\.", v) and "=" in v for v in verbs):
        setting = next(v for v in verbs if v.startswith("kernel."))
        return f"changes the kernel setting {setting}"
    if prog in ("systemctl", "service") and verbs:
        action = [v for v in verbs if v in ("stop", "disable", "mask", "kill")]
        agents = [m.group(1) for v in verbs if (m := _AGENT.search(v))]
        if action and agents:
            return f"stops the security service {agents[0]} ({prog} {' '.join(verbs)})"
    if prog == "tee" and any(a.startswith("/proc/sys/kernel/") for a in args):
        return "writes a kernel setting under /proc/sys/kernel"
    if prog in ("kill", "pkill", "killall"):
        hit = _AGENT.search(" ".join(args) + " " + subs_text)
        if hit is not None:
            return f"kills the security agent {hit.group(1)} ({prog})"
    return None


_INET = re.compile(r"/inet[46]?/(tcp|udp)/(\d+)/([\w.:-]+)/(\d+)")


def awk_network(prog: str, args: list[str]) -> str | None:
    """gawk's /inet special files: a raw TCP/UDP connection made from awk."""
    if not re.fullmatch(r"[gmn]?awk", prog):
        return None
    m = _INET.search(" ".join(args))
    if m is None:
        return None
    proto, local, host, port = m.groups()
    if host == "0" and port == "0":
        return f"listens on {proto.upper()} port {local} from awk (gawk's /inet special file)"
    return (
        f"opens a {proto.upper()} connection to {host}:{port} from awk (gawk's /inet special "
        "file): a raw network channel, the awk reverse shell"
    )


DOCKER_SOCKET = re.compile(r"(?:/var)?/run/docker\.sock|docker\.sock\b")


def docker_socket(prog: str, args: list[str]) -> str | None:
    """A command that talks to the Docker daemon's socket."""
    if prog in ("ls", "stat", "test", "[", "file", "echo", "printf"):
        return None
    hit = next((a for a in args if DOCKER_SOCKET.search(a)), None)
    if hit is None:
        return None
    sock = DOCKER_SOCKET.search(hit)
    where = sock.group(0) if sock is not None else hit
    return (
        f"{prog} talks to the Docker daemon through {where}: it can start a privileged "
        "container, which is root on the host"
    )


def dns_exfiltration(prog: str, args: list[str]) -> str | None:
    """A DNS lookup of a name built from a variable or a command's output."""
    if prog not in ("nslookup", "dig", "host", "drill", "resolvectl", "getent"):
        return None
    for a in args:
        m = re.search(r"(\$\{?(\w+)\}?|\$\(|`)[^\s]*\.[A-Za-z][\w-]*", a)
        if m is None:
            continue
        name = m.group(2)
        if name and name != "COMPUTED" and not is_secret_name(name):
            continue  # `dig $host.example.com` in a loop over names
        what = f"${name}" if name and name != "COMPUTED" else "a value computed at run time"
        a = a.replace("${COMPUTED}", "$(...)")
        return (
            f"{prog} looks up a host name built from {what} ({a}): the value leaves the "
            "machine in the DNS query (DNS exfiltration)"
        )
    return None
