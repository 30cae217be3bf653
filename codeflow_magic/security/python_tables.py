"""Python rule tables: which callees run commands, touch files, talk to the network or run code.

Kept apart from the analyzer so the tables can be read and extended without the walking code
around them. Besides the tables: pure helpers over names (`_canon`), loops and argv that need
no analyzer state.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator

from . import rules
from .fold import _DECODERS
from .paths import COMPUTED

BUILTIN_NAMES = frozenset(dir(builtins))
BIG_BYTES = 4 * 1024**3
SHELL_CALLS = frozenset(
    {
        "os.system",
        "os.popen",
        "os.popen2",
        "os.popen3",
        "os.popen4",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "commands.getoutput",
        "commands.getstatusoutput",
        "platform.popen",
        "asyncio.create_subprocess_shell",
        "pty.spawn",
        "get_ipython().system",
        "get_ipython().getoutput",
        "get_ipython().system_raw",
        "get_ipython().system_piped",
        "IPython.utils.process.system",
        "IPython.utils.process.getoutput",
    }
)
SUBPROCESS_CALLS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "asyncio.create_subprocess_exec",
        "pexpect.spawn",
        "pexpect.run",
        "sh.Command",
        "plumbum.local",
        "delegator.run",
        "invoke.run",
        "fabric.Connection().run",
    }
)
EXEC_CALLS = re.compile(r"^os\.(exec|spawn)[lv]p?e?$|^os\.posix_spawnp?$")
DELETE_CALLS: dict[str, bool] = {
    "os.remove": False,
    "os.unlink": False,
    "os.rmdir": False,
    "os.removedirs": True,
    "shutil.rmtree": True,
    "send2trash.send2trash": False,
    "pathlib.Path().unlink": False,
    "pathlib.Path().rmdir": False,
    "os.truncate": False,
}
MOVE_CALLS = frozenset(
    {
        "os.rename",
        "os.replace",
        "shutil.move",
        "os.renames",
        "pathlib.Path().rename",
        "pathlib.Path().replace",
    }
)
COPY_CALLS = frozenset(
    {
        "shutil.copy",
        "shutil.copy2",
        "shutil.copyfile",
        "shutil.copytree",
        "os.link",
        "os.symlink",
        "distutils.file_util.copy_file",
    }
)
PERM_CALLS = frozenset(
    {"os.chmod", "os.chown", "os.lchown", "os.lchmod", "shutil.chown", "pathlib.Path().chmod"}
)
OPEN_CALLS = frozenset(
    {
        "open",
        "io.open",
        "codecs.open",
        "os.open",
        "io.FileIO",
        "aiofiles.open",
        "gzip.open",
        "bz2.open",
        "lzma.open",
    }
)
WRITE_METHODS = frozenset(
    {
        "to_csv",
        "to_json",
        "to_excel",
        "to_parquet",
        "to_pickle",
        "savefig",
        "to_html",
        "to_feather",
        "to_hdf",
        "to_stata",
        "to_latex",
        "to_markdown",
        "write_text",
        "write_bytes",
        "save",
        "savez",
        "imwrite",
        "to_file",
        "touch",
        "mkfifo",
    }
)
READ_METHODS = frozenset({"read_text", "read_bytes"})
DYNAMIC_CALLS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "execfile",
        "get_ipython().run_cell",
        "get_ipython().ex",
        "get_ipython().ev",
        "get_ipython().run_code",
        "code.InteractiveInterpreter().runsource",
        "code.InteractiveConsole().push",
        "code.InteractiveInterpreter().runcode",
    }
)
PICKLE_CALLS = frozenset(
    {
        "pickle.loads",
        "pickle.load",
        "pickle.Unpickler",
        "dill.loads",
        "dill.load",
        "cloudpickle.loads",
        "cloudpickle.load",
        "joblib.load",
        "pandas.read_pickle",
        "shelve.open",
        "jsonpickle.decode",
        "torch.load",
        "numpy.load",
        "_pickle.loads",
        "pickle.Unpickler().load",
    }
)
MARSHAL_CALLS = frozenset({"marshal.loads", "marshal.load", "types.CodeType", "types.FunctionType"})
YAML_UNSAFE = frozenset({"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load"})
NETWORK_FETCH = frozenset(
    {
        "requests.get",
        "requests.head",
        "requests.options",
        "requests.request",
        "requests.Session().get",
        "requests.Session",
        "httpx.get",
        "httpx.stream",
        "httpx.Client",
        "httpx.AsyncClient",
        "httpx.Client().get",
        "httpx.request",
        "urllib.request.urlopen",
        "urllib.request.urlretrieve",
        "urllib.urlopen",
        "urllib2.urlopen",
        "urllib3.PoolManager",
        "urllib3.PoolManager().request",
        "http.client.HTTPConnection",
        "http.client.HTTPSConnection",
        "aiohttp.ClientSession",
        "aiohttp.request",
        "wget.download",
        "pycurl.Curl",
        "urllib.request.Request",
        "xmlrpc.client.ServerProxy",
        "websocket.create_connection",
        "websockets.connect",
        "IPython.display.IFrame",
    }
)
NETWORK_SEND = frozenset(
    {
        "requests.post",
        "requests.put",
        "requests.patch",
        "requests.delete",
        "requests.Session().post",
        "requests.Session().put",
        "httpx.post",
        "httpx.put",
        "httpx.patch",
        "httpx.Client().post",
        "aiohttp.ClientSession().post",
        "socket.socket().connect",
        "socket.socket().connect_ex",
        "socket.socket().sendto",
        "socket.socket().send",
        "socket.socket().sendall",
        "socket.create_connection",
        "smtplib.SMTP",
        "smtplib.SMTP_SSL",
        "ftplib.FTP",
        "ftplib.FTP_TLS",
        "telnetlib.Telnet",
        "paramiko.SSHClient",
        "paramiko.Transport",
        "pysftp.Connection",
        "http.client.HTTPConnection().request",
        "http.client.HTTPSConnection().request",
        "ssl.wrap_socket",
        "socket.socket().bind",
        "socket.socket().listen",
        "socketserver.TCPServer",
        "http.server.HTTPServer",
        "http.server.ThreadingHTTPServer",
        "http.server.test",
    }
)
NETWORK_ANY = (
    NETWORK_FETCH
    | NETWORK_SEND
    | {"socket.socket", "socket.fromfd", "socket.socket().recv", "socket.socket().recvfrom"}
)
REACHABLE_MODULES = frozenset(
    {
        "os",
        "subprocess",
        "sys",
        "builtins",
        "shutil",
        "posix",
        "ctypes",
        "importlib",
        "pty",
        "socket",
    }
)
RISKY_MODULES = REACHABLE_MODULES | {"pickle", "marshal", "nt", "commands", "code", "runpy"}
RISKY_ATTRS = frozenset(
    {
        "system",
        "popen",
        "eval",
        "exec",
        "__import__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "spawn",
        "execv",
        "execve",
        "fork",
        "rmtree",
        "remove",
        "unlink",
        "check_output",
        "Popen",
        "getoutput",
        "import_module",
        "loads",
        "compile",
        "__code__",
        "f_globals",
    }
)
DUNDERS = rules.INTROSPECTION_ATTRS  # attribute -> (severity, reason); one rule each
STAR_MEMBERS: dict[str, frozenset[str]] = {}
INDIRECT_LOOKUPS = frozenset(
    {"__import__", "importlib.import_module", "importlib.__import__", "getattr", "vars"}
)
ROUND_TRIP_DUMPS = frozenset(
    {"pickle.dumps", "dill.dumps", "cloudpickle.dumps", "_pickle.dumps", "copy.deepcopy"}
)
SAVE_CALLS: dict[str, int] = {
    # call -> position of the path (or open file) it writes a pickle to
    "pickle.dump": 1,
    "dill.dump": 1,
    "cloudpickle.dump": 1,
    "joblib.dump": 1,
    "torch.save": 1,
    "numpy.save": 0,
}
PIP_MAIN = frozenset({"pip.main", "pip._internal.main", "pip._internal.cli.main.main"})
OUTPUT_CALLS = frozenset(
    {"print", "sys.stdout.write", "sys.stderr.write", "IPython.display.display", "display"}
)
WAIT_CALLS = frozenset(
    {"time.sleep", "asyncio.sleep", "input", "select.select", "threading.Event().wait"}
)
QUERY_REACH = re.compile(
    r"__\w+__|\b(os|sys|subprocess|builtins|importlib|shutil|socket|pty)\s*\.\s*\w|"
    r"\b(system|popen|getoutput|check_output|Popen|__import__|exec|eval|compile|open)\s*\("
)
PANDAS_AT_REACH = re.compile(r"@\w+(\.\w+)*\.(os|sys|subprocess|builtins|system|popen|__\w+__)")
QUERY_COMMAND = re.compile(
    r"\b(system|popen|getoutput|check_output|Popen|run|call)\s*\(\s*\[?\s*(\"{3}|'{3}|\"|')(.*?)\2"
)


def _canon(q: str) -> str:
    """Spell equivalent callees one way (`posix.system` is `os.system`)."""
    if q.startswith("builtins."):
        q = q[len("builtins.") :]
    elif q.startswith("__builtins__."):
        q = q[len("__builtins__.") :]
    for old, new in (
        ("posix.", "os."),
        ("nt.", "os."),
        ("posixpath.", "os.path."),
        ("_pickle.", "pickle."),
        ("cPickle.", "pickle."),
        ("importlib.__import__", "__import__"),
        ("_io.open", "open"),
        ("io.open", "open"),
        ("pathlib.PosixPath", "pathlib.Path"),
        ("pathlib.PurePosixPath", "pathlib.Path"),
        ("pathlib.PurePath", "pathlib.Path"),
        ("pathlib.WindowsPath", "pathlib.Path"),
        ("ctypes.cdll.LoadLibrary()", "ctypes.CDLL()"),
        ("ctypes.cdll.", "ctypes.CDLL()."),
        ("ctypes.PyDLL()", "ctypes.CDLL()"),
        ("ctypes.CDLL(", "ctypes.CDLL("),
    ):
        if q == old.rstrip(".") or q.startswith(old):
            q = new + q[len(old) :] if q.startswith(old) else new.rstrip(".")
            break
    return q


def _star_members() -> dict[str, frozenset[str]]:
    if not STAR_MEMBERS:
        table: dict[str, set[str]] = {}
        for q in (
            SHELL_CALLS
            | SUBPROCESS_CALLS
            | set(DELETE_CALLS)
            | MOVE_CALLS
            | COPY_CALLS
            | PICKLE_CALLS
            | MARSHAL_CALLS
            | NETWORK_ANY
            | set(_DECODERS)
            | {
                "os.environ",
                "os.getenv",
                "os.fork",
                "os.kill",
                "os.execv",
                "os.execve",
                "ctypes.CDLL",
                "ctypes.cdll",
                "ctypes.pythonapi",
                "sys.modules",
            }
        ):
            mod, _, name = q.rpartition(".")
            if mod and "(" not in mod:
                table.setdefault(mod, set()).add(name)
        STAR_MEMBERS.update({k: frozenset(v) for k, v in table.items()})
    return STAR_MEMBERS


def _looks_like_code(text: str) -> bool:
    return bool(
        re.search(
            r"\b(import|exec|eval|system|subprocess|popen|__import__|socket|chmod|getattr)\b|"
            r"\brm\s+-|curl\s|wget\s|/bin/(ba)?sh|\bnc\s|/dev/tcp|\.ssh/|base64\s+-d",
            text,
        )
    )


def _alloc_size(a: object, b: object) -> int | None:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, bytearray)) and isinstance(n, int):
            return len(seq) * n
        if isinstance(seq, (list, tuple)) and isinstance(n, int):
            return len(seq) * n * 8
    return None


def _has_exit(loop: ast.While | ast.For) -> bool:
    for sub in _walk_body(loop):
        if isinstance(sub, (ast.Break, ast.Return, ast.Raise)):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else (func.id if isinstance(func, ast.Name) else "")
            )
            if name in ("exit", "_exit", "quit"):
                return True
    return False


def _walk_body(loop: ast.While | ast.For) -> Iterator[ast.AST]:
    """Nodes of a loop body, not descending into nested loops' breaks or function bodies."""
    stack: list[ast.AST] = list(loop.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.While, ast.For, ast.AsyncFor)):
                # A break in a nested loop does not end this one; still look for writes.
                for inner in ast.walk(child):
                    if not isinstance(inner, (ast.Break,)):
                        yield inner
                continue
            stack.append(child)


def _join_argv(parts: list[str]) -> str:
    import shlex

    out = []
    for p in parts:
        if p == COMPUTED or re.fullmatch(r"[\w@%+=:,./~${}-]+", p):
            out.append(p)
        else:
            out.append(shlex.quote(p))
    return " ".join(out)


CREDENTIAL_KEYS = frozenset(
    {
        "key",
        "api-key",
        "apikey",
        "token",
        "access-token",
        "auth",
        "authorization",
        "x-api-key",
        "appid",
    }
)
"""params/headers entries whose value authenticates (compared lower-case, `_` as `-`)."""
ENV_GETTERS = frozenset(
    {"os.getenv", "os.environ.get", "os.environ.pop", "os.getenvb", "os.environ.setdefault"}
)


def _file_key(name: str) -> str:
    """A file name as the code may write it (`./m.pkl`, `m.pkl`), for matching."""
    name = name.strip().strip("'\"")
    while name.startswith("./"):
        name = name[2:]
    return name
