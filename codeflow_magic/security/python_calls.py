"""Python rules for the remaining calls, and the tables that dispatch calls by callee name.

`visit_Call` looks a resolved callee up in `PROCESS_HANDLERS`, then `PATH_HANDLERS`, then
`CALL_HANDLERS`: one dict lookup each instead of a long elif chain, with the chain's order kept
(a name in two groups goes to the first).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths, rules
from .fold import _DECODERS, Folded, as_text
from .paths import COMPUTED
from .python_files import FileRules
from .python_shell import ShellRules
from .python_tables import (
    BIG_BYTES,
    COPY_CALLS,
    DELETE_CALLS,
    DUNDERS,
    DYNAMIC_CALLS,
    EXEC_CALLS,
    MARSHAL_CALLS,
    MOVE_CALLS,
    NETWORK_FETCH,
    NETWORK_SEND,
    OPEN_CALLS,
    PERM_CALLS,
    PICKLE_CALLS,
    PIP_MAIN,
    RISKY_ATTRS,
    RISKY_MODULES,
    ROUND_TRIP_DUMPS,
    SAVE_CALLS,
    SHELL_CALLS,
    SUBPROCESS_CALLS,
    YAML_UNSAFE,
    _file_key,
    _join_argv,
    _looks_like_code,
)


class CallRules(FileRules):
    """Rules for dynamic code, unpickling, network, memory and the extras of any call."""

    def _call_extras(self, node: ast.Call, q: str | None) -> None:
        func = node.func
        attr = func.attr if isinstance(func, ast.Attribute) else ""
        for kw in node.keywords:
            if kw.arg in ("LD_PRELOAD", "LD_AUDIT"):
                self._preload(kw, kw.arg)
        if attr in ("query", "eval") and (q is None or not q.startswith(("numpy.", "jax."))):
            self._query(node, q or f"….{attr}")
        if q in PIP_MAIN:
            self._pip_main(node, q)
        if q in (
            "jupyter_core.paths.jupyter_runtime_dir",
            "jupyter_client.find_connection_file",
            "jupyter_client.connect.find_connection_file",
        ):
            self.add(
                "kernel-keys",
                node,
                f"{q} locates Jupyter kernel connection files (their keys let anyone run code in "
                "the kernels)",
            )
        if attr in ("extractall", "extract") or q == "shutil.unpack_archive":
            self._extract(node, q or f"….{attr}", attr)
        self._model_code(node, q or f"….{attr}", attr)

    def _model_code(self, node: ast.Call, q: str, attr: str) -> None:
        """Loading a model can run code that came with it: a hub repository's hubconf.py,
        a model repository's Python (`trust_remote_code=True`), a Keras file's Lambda layers
        (`safe_mode=False`)."""
        if q == "torch.hub.load":
            repo = self.folder.fold_str(self._arg(node, 0, "repo_or_dir")) or "a repository"
            source = self.folder.fold_str(
                next((k.value for k in node.keywords if k.arg == "source"), None)
            )
            if source != "local":
                self.add(
                    "remote-code",
                    node,
                    f"torch.hub.load runs the hubconf.py of {repo} fetched from GitHub",
                )
        for kw in node.keywords:
            if kw.arg not in ("trust_remote_code", "safe_mode"):
                continue
            folded = self.folder.fold(kw.value)
            value = folded.value if folded is not None else None
            if kw.arg == "trust_remote_code" and value is not False:
                model = self.folder.fold_str(self._arg(node, 0, "pretrained_model_name_or_path"))
                self.add(
                    "remote-code",
                    node,
                    f"{q} with trust_remote_code runs the Python code shipped with "
                    f"{model or 'the model'} from the hub",
                )
            elif kw.arg == "safe_mode" and value is not True and attr == "load_model":
                self.add(
                    "unpickle-unsafe",
                    node,
                    f"{q} with safe_mode=False deserializes Lambda layers: a model file can run "
                    "any code when it is loaded",
                )

    def _indirect_capability(self, node: ast.Call, q: str) -> None:
        """`importlib.import_module("os").system("ls")` is as capable as a plain call, and it
        hides which capability it uses: rate what is reached, not how harmless the literal
        argument looks."""
        capability = self._capability(q)
        if capability is None:
            return
        how = self._indirection(node.func)
        if how is None:
            return
        category, does = capability
        shown = ""
        first = self._arg(node, 0, "args")
        if first is not None:
            text, _ = self.folder.fold_text(first)
            if text is None:
                folded = self.folder.fold(first)
                if folded is not None and isinstance(folded.value, (list, tuple)):
                    text = _join_argv([str(v) for v in folded.value])
            if text is not None:
                text = text.replace(COMPUTED, "…")
                shown = f" with {text if len(text) <= 60 else text[:57] + '...'!r}"
        self.add(
            "indirect-capability",
            node,
            f"calls {q}{shown} reached through {how}: hidden access to code that {does}",
            category=category,
        )

    def _fold_args_rules(self, node: ast.Call) -> None:
        """Folded (non-literal) strings passed anywhere: hidden paths and decoded payloads."""
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Constant):
                continue
            folded = self.folder.fold(arg)
            if folded is None:
                continue
            text = as_text(folded.value)
            if text is None:
                continue
            verdict = paths.mention_verdict(text)
            if verdict is not None:
                self.add_verdict("mention", verdict, arg)

    def _dynamic(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "source")
        if arg is None:
            arg = self._arg(node, 0, "code") or self._arg(node, 0, "expression")
        if arg is None:
            self.add("dynamic-code", node, f"{q} runs code")
            return
        if isinstance(arg, ast.Call) and self.qual(arg.func) == "compile":
            return
        if isinstance(arg, ast.Name) and (self.qual(arg) or "").startswith("compile("):
            return
        folded = self.folder.fold(arg)
        text = as_text(folded.value) if folded is not None else None
        language = "ipython" if q.startswith("get_ipython()") else "python"
        if text is not None and folded is not None:
            if folded.decoded:
                self.add("decoded-exec", node, f"{q} runs a decoded payload")
            elif self._assembled(arg):
                shown = text if len(text) <= 60 else text[:57] + "..."
                self.add(
                    "built-exec",
                    node,
                    f"{q} runs code assembled at run time ({shown!r}): what it runs is hidden "
                    "from a reader",
                )
            else:
                self.add("literal-exec", node, f"{q} runs literal code")
            self._nested(text, language, node, f"code run by {q}")
            return
        origins = self.origins(arg)
        if "network" in origins:
            self.add("download-exec", node, f"{q} runs code downloaded from the network")
        elif "decoded" in origins:
            self.add("decoded-exec", node, f"{q} runs a decoded payload")
        else:
            self.add("computed-exec", node, f"{q} runs computed code")

    def _dynamic_import(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "name")
        folded = self.folder.fold(arg) if arg is not None else None
        name = as_text(folded.value) if folded is not None else None
        if name is None:
            candidates = self._candidates(arg) if arg is not None else None
            if candidates is None:
                self.add("computed-import", node, f"{q} imports a module whose name is computed")
                return
            risky = sorted(c for c in candidates if c.split(".")[0] in RISKY_MODULES)
            if risky:
                self.add(
                    "hidden-import",
                    node,
                    f"{q} imports {', '.join(risky)} under a name chosen at run time",
                    severity="medium",
                )
            if any(c.split(".")[0] == "ctypes" for c in candidates):
                self._import_rule("ctypes", node)
            return
        top = name.split(".")[0]
        if not isinstance(arg, ast.Constant) and top in RISKY_MODULES:
            self.add(
                "hidden-import",
                node,
                f"{q} builds the module name {name!r} at run time",
                severity="high" if folded is not None and folded.decoded else "medium",
            )
        if top == "ctypes":
            self._import_rule(name, node)

    def _candidates(self, node: ast.AST, depth: int = 0) -> set[str] | None:
        """Every string `node` can be, when all are written in the code (a literal, a
        conditional of literals, a loop over a literal list), else None."""
        if depth > 4:
            return None
        folded = self.folder.fold(node)
        if folded is not None:
            text = as_text(folded.value)
            return {text} if text is not None and not folded.decoded else None
        if isinstance(node, ast.IfExp):
            body, orelse = (
                self._candidates(node.body, depth + 1),
                self._candidates(node.orelse, depth + 1),
            )
            return body | orelse if body is not None and orelse is not None else None
        if isinstance(node, ast.Name):
            loop = self._loop_iter(node)
            if loop is not None:
                if node.id in self.b.assigns:
                    return None
                values = self.folder.fold(loop)
                if (
                    values is not None
                    and not values.decoded
                    and isinstance(values.value, list | tuple | set | frozenset)
                    and values.value
                    and all(isinstance(v, str) for v in values.value)
                ):
                    return {str(v) for v in values.value}
                return None
            bound = self.binding(node.id)
            if bound is not None and bound is not node:
                return self._candidates(bound, depth + 1)
        return None

    def _dangerous_object(self, target: ast.AST) -> str | None:
        """What makes `target` dangerous to reach attributes of by computed name: a module
        with process, file, network or code capability, or a dunder walk."""
        base = self.qual(target)
        if base is not None:
            top = base.split(".")[0]
            if top in RISKY_MODULES or top in ("<globals>", "builtins"):
                return base
        if any(a in DUNDERS or a == "__dict__" for a in self._dunder_chain(target)):
            return "an object reached through interpreter internals"
        how = self._indirection(target)
        if how is not None:
            return f"an object reached through {how}"
        return None

    def _getattr(self, node: ast.Call, q: str) -> None:
        if len(node.args) < 2:
            return
        target, name_node = node.args[0], node.args[1]
        folded = self.folder.fold(name_node)
        name = as_text(folded.value) if folded is not None else None
        base = self.qual(target)
        if name is None:
            if q == "hasattr":
                return
            candidates = self._candidates(name_node)
            if candidates is not None:
                risky = sorted(c for c in candidates if c in RISKY_ATTRS or c in DUNDERS)
                if risky:
                    self.add(
                        "hidden-attribute",
                        node,
                        f"{q} picks the attribute {', '.join(repr(r) for r in risky)} of "
                        f"{base or 'an object'} at run time",
                    )
                return
            dangerous = self._dangerous_object(target)
            if dangerous is not None:
                self.add(
                    "computed-attribute",
                    node,
                    f"{q} reaches an attribute of {dangerous} by a computed attribute name: "
                    "any function of it can be called",
                )
            else:
                self.add(
                    "computed-attribute",
                    node,
                    f"{q} on {base or 'a value'} with a computed attribute name",
                    severity="low",
                )
            return
        if not isinstance(name_node, ast.Constant) and (name in RISKY_ATTRS or name in DUNDERS):
            self.add(
                "hidden-attribute", node, f"{q} builds the attribute name {name!r} at run time"
            )
        elif name in DUNDERS and name not in ("__mro__", "__bases__", "__base__"):
            severity, reason = DUNDERS[name]
            self.add(rules.introspection_rule(name), node, f"{reason} ({name})", severity=severity)

    def _unpickle(self, node: ast.Call, q: str) -> None:
        if q == "yaml.load":
            loader = self._arg(node, 1, "Loader")
            lq = self.qual(loader) if loader is not None else None
            if lq is not None and lq.rsplit(".", 1)[-1] in (
                "SafeLoader",
                "CSafeLoader",
                "BaseLoader",
            ):
                return
            self.add(
                "yaml-unsafe", node, "yaml.load without SafeLoader builds arbitrary Python objects"
            )
            return
        if q in YAML_UNSAFE:
            self.add("yaml-unsafe", node, f"{q} builds arbitrary objects")
            return
        if q == "numpy.load":
            allow = next((k.value for k in node.keywords if k.arg == "allow_pickle"), None)
            folded_allow = self.folder.fold(allow) if allow is not None else None
            if folded_allow is None or not folded_allow.value:
                return
        if q == "torch.load":
            weights = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
            folded_weights = self.folder.fold(weights) if weights is not None else None
            if folded_weights is not None and folded_weights.value is True:
                return
            if folded_weights is not None and folded_weights.value is False:
                self.add(
                    "unpickle-unsafe",
                    node,
                    "torch.load with weights_only=False unpickles arbitrary objects: a model "
                    "file can run any code when it is loaded",
                )
        arg = self._arg(node, 0, "data")
        if arg is None:
            arg = self._arg(node, 0, "file")
        if arg is None:
            arg = self._arg(node, 0, "filepath_or_buffer")
        downloaded = self._downloaded_file(arg) if arg is not None else None
        if downloaded is not None:
            name, host = downloaded
            self.add(
                "pickle-network",
                node,
                f"{q} unpickles {name} downloaded from {host}: runs code from the network",
            )
            return
        if isinstance(arg, ast.Call) and self.qual(arg.func) in ROUND_TRIP_DUMPS:
            return  # `pickle.loads(pickle.dumps(obj))` copies an object already in memory
        url = self.folder.fold_str(arg) if arg is not None else None
        if url is not None and re.match(r"^(https?|ftp|s3|gs)://", url):
            self.add(
                "pickle-network",
                node,
                f"{q} unpickles a file fetched from {url}: whoever serves it can run any code here",
            )
            return
        if arg is None:
            self.add("unpickle", node, f"{q} unpickles data of unknown origin")
            return
        folded = self.folder.fold(arg)
        if folded is not None and isinstance(folded.value, (bytes, bytearray, str)):
            raw = (
                folded.value
                if isinstance(folded.value, (bytes, bytearray))
                else folded.value.encode("utf-8", "replace")
            )
            if folded.decoded or re.search(
                rb"(posix|\bos\b|nt|subprocess|builtins|__builtin__)\s*\n?\s*(system|popen|"
                rb"eval|exec|getattr|check_output|Popen|run)|c?os\nsystem|\bsystem\b|\beval\b",
                bytes(raw),
            ):
                self.add("pickle-payload", node, f"{q} unpickles a payload that runs a command")
                return
            if isinstance(folded.value, str) and q not in (
                "pickle.loads",
                "dill.loads",
                "cloudpickle.loads",
                "marshal.loads",
            ):
                text = folded.value
                where = paths.locate(paths.normalize(text))
                if where in (paths.WORK, paths.TMP) and _file_key(text) in self._saved_pickles():
                    return  # `joblib.dump(model, p)` ... `joblib.load(p)`: its own object back
                if where in (paths.WORK, paths.TMP):
                    self.add(
                        "unpickle-file",
                        node,
                        f"{q} loads a pickle file ({text}); only load files you trust",
                    )
                    return
            self.add("unpickle", node, f"{q} unpickles literal bytes")
            return
        origins = self.origins(arg)
        if "network" in origins:
            self.add("pickle-network", node, f"{q} unpickles bytes received from the network")
            return
        if "decoded" in origins:
            self.add("pickle-payload", node, f"{q} unpickles a decoded payload")
            return
        opened = arg
        if isinstance(arg, ast.Name) and arg.id in self.b.sources:
            opened = self.b.sources[arg.id]
        if isinstance(opened, ast.Call) and self.qual(opened.func) in OPEN_CALLS:
            opened_path = self._path_text(self._arg(opened, 0, "file"))
            if opened_path is not None and _file_key(opened_path) in self._saved_pickles():
                return  # its own object back, as above
            if opened_path is not None and paths.locate(paths.normalize(opened_path)) in (
                paths.WORK,
                paths.TMP,
            ):
                self.add(
                    "unpickle-file",
                    node,
                    f"{q} loads a pickle file ({opened_path}); only load files you trust",
                )
                return
        if "file" in origins or (isinstance(arg, ast.Name) and self.binding(arg.id) is None):
            self.add(
                "unpickle-file",
                node,
                f"{q} unpickles data; only load data you trust",
                severity="low" if "file" in origins else "medium",
            )
            return
        self.add("unpickle", node, f"{q} unpickles data of unknown origin")

    def _downloaded_file(self, arg: ast.AST) -> tuple[str, str] | None:
        """(file, host) when `arg` is, or opens, a file the code saved from the network."""
        downloads = self._downloads()
        if not downloads:
            return None
        opened: ast.AST | None = arg
        if isinstance(arg, ast.Name) and arg.id in self.b.sources:
            opened = self.b.sources[arg.id]
        if isinstance(opened, ast.Call) and self.qual(opened.func) in OPEN_CALLS:
            opened = self._arg(opened, 0, "file")
        name = self.folder.fold_str(opened) if opened is not None else None
        if name is None:
            return None
        host = downloads.get(_file_key(name))
        return (name, host) if host is not None else None

    def _run_script(self, node: ast.Call, q: str) -> None:
        """Running (or importing) a script by path; one the code saved from the network runs
        code from the network."""
        path = self._arg(node, 1 if q.endswith("spec_from_file_location") else 0, "path")
        downloaded = self._downloaded_file(path) if path is not None else None
        if downloaded is not None:
            name, host = downloaded
            self.add("download-exec", node, f"{q} runs {name} downloaded from {host}")
        elif not q.endswith("spec_from_file_location"):
            self.add("run-script", node, f"{q} runs another script")

    def _saved_pickles(self) -> set[str]:
        """Files this code itself pickles into (`joblib.dump(m, "m.joblib")`, `torch.save`,
        `pickle.dump(obj, open(p, "wb"))`, `df.to_pickle(p)`): loading one back is a round trip
        of the code's own objects, not of data from elsewhere."""
        if self._saved_memo is not None:
            return self._saved_memo
        saved: set[str] = set()
        for sub in ast.walk(self.tree):
            if not isinstance(sub, ast.Call):
                continue
            q = self.qual(sub.func) or ""
            target: ast.AST | None
            if q in SAVE_CALLS:
                index = SAVE_CALLS[q]
                target = sub.args[index] if len(sub.args) > index else None
            elif isinstance(sub.func, ast.Attribute) and sub.func.attr == "to_pickle":
                target = sub.args[0] if sub.args else None
            else:
                continue
            if isinstance(target, ast.Name) and target.id in self.b.sources:
                target = self.b.sources[target.id]  # `with open(p, "wb") as f: pickle.dump(o, f)`
            if isinstance(target, ast.Call) and self.qual(target.func) in OPEN_CALLS:
                target = self._arg(target, 0, "file")
            name = self.folder.fold_str(target) if target is not None else None
            if name is not None and COMPUTED not in name:
                saved.add(_file_key(name))
        self._saved_memo = saved
        return saved

    def _dns_lookup(self, node: ast.Call, q: str) -> None:
        """A host name built from a secret or the environment, looked up: DNS exfiltration."""
        name = self._arg(node, 0, "host")
        if name is None:
            name = self._arg(node, 0, "qname")
        if name is None or isinstance(name, ast.Constant):
            return
        probe = ast.Call(func=node.func, args=[name], keywords=[])
        self._parents[id(probe)] = node
        secret = self._carries_secret(probe)
        if secret is not None:
            self.add(
                "exfiltration",
                node,
                f"{q} looks up a host name built from {secret}: the value leaves the machine "
                "in the DNS query (DNS exfiltration)",
            )

    def _marshal(self, node: ast.Call, q: str) -> None:
        self.add("marshal", node, f"{q} builds code objects from bytes")

    def _network(self, node: ast.Call, q: str) -> None:
        url_node = self._arg(node, 0, "url")
        url, _ = self.folder.fold_text(url_node) if url_node is not None else (None, False)
        host = "a network host"
        if url:
            m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)", url)
            if m:
                host = m.group(1).replace(COMPUTED, "…")
        if isinstance(url_node, (ast.Tuple,)) or q.startswith("socket."):
            folded = self.folder.fold(url_node) if url_node is not None else None
            if folded is not None and isinstance(folded.value, tuple) and folded.value:
                host = (
                    f"{folded.value[0]}:{folded.value[1]}"
                    if len(folded.value) > 1
                    else str(folded.value[0])
                )
        if host.startswith(("127.", "localhost")) and q in NETWORK_FETCH:
            self.add("local-fetch", node, f"{q} talks to {host}")
            return
        sends = (
            q in NETWORK_SEND
            or any(k.arg in ("data", "json", "files") for k in node.keywords)
            or (
                q in ("requests.request", "httpx.request")
                and self.folder.fold_str(self._arg(node, 0, "method"))
                in ("POST", "PUT", "PATCH", "post", "put", "patch")
            )
        )
        if q in ("socket.socket", "socket.fromfd"):
            self.add("raw-socket", node, "opens a raw network socket")
        elif q.endswith((".bind", ".listen")) or q.startswith(("socketserver.", "http.server.")):
            self.add("listen", node, f"{q} listens for network connections")
        elif sends and self._literal_payload(node):
            self.add("upload-literal", node, f"{q} sends fixed data written in the code to {host}")
        elif sends:
            self.add("upload", node, f"{q} sends data to {host}")
        elif self._https_host(node) is not None and self._carries_secret(node) is None:
            self.add("download", node, f"{q} fetches from {host} over https", severity="low")
        else:
            self.add("download", node, f"{q} fetches from {host}", severity="medium")

    def _allocation(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "shape")
        folded = self.folder.fold(arg) if arg is not None else None
        if folded is None:
            return
        value = folded.value
        count: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            count = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            count = 1
            for v in value:
                count *= v
        elif q in ("numpy.random.rand",) and all(
            isinstance(self.folder.fold(a), Folded) for a in node.args
        ):
            count = 1
            for a in node.args:
                f = self.folder.fold(a)
                count *= int(f.value) if f is not None else 1
        if count is None:
            return
        size = count if q in ("bytearray", "bytes", "os.urandom") else count * 8
        if size >= BIG_BYTES:
            self.add(
                "big-allocation", node, f"{q} allocates about {size / 1024**3:.0f} GB in memory"
            )

    def _decoder(self, node: ast.Call, q: str) -> None:
        folded = self.folder.fold(node)
        if folded is None:
            return
        text = as_text(folded.value)
        if text is None or not all(c.isprintable() or c in "\n\r\t" for c in text):
            return
        if not _looks_like_code(text):
            return
        shown = text if len(text) <= 60 else text[:57] + "..."
        if self._feeds_runner(node):
            return  # the exec/system call that runs it reports the payload itself
        self.add("decoded-payload", node, f"{q} decodes a hidden payload: {shown!r}")
        inner: list[Finding] = []
        try:
            ast.parse(text)
            inner = self.code_scan(text, "python", self.line(node), self.depth + 1)
        except (SyntaxError, ValueError):
            inner = self.bash_scan(text, self.line(node), self.depth + 1)
        for f in inner:
            if severity_rank(f.severity) >= severity_rank("high"):
                self.findings.append(
                    Finding(f.rule, f.severity, f.category, f.line, f"hidden payload: {f.message}")
                )

    def _getenv(self, node: ast.Call, q: str) -> None:
        key = self.folder.fold_str(self._arg(node, 0, "key"))
        if key is not None and is_secret_name(key):
            self._secret_read(node, key)

    def _crontab(self, node: ast.Call, q: str) -> None:
        self.add("cron", node, "edits the user's crontab")

    def _credential_store(self, node: ast.Call, q: str) -> None:
        self.add("credential-store", node, f"{q} reads stored passwords or cookies")


CallHandler = Callable[[CallRules, ast.Call, str], None]
"""A call rule: (analyzer, call node, resolved callee name)."""


def _table(*groups: tuple[Iterable[str], CallHandler]) -> dict[str, CallHandler]:
    """Callee name -> handler; a name in two groups goes to the first, as an elif chain would."""
    table: dict[str, CallHandler] = {}
    for names, handler in groups:
        for name in names:
            table.setdefault(name, handler)
    return table


# Calls that run commands or magics: looked up first, as the elif chain they replace did.
PROCESS_HANDLERS = _table(
    (SHELL_CALLS, ShellRules._shell_call),
    (SUBPROCESS_CALLS, ShellRules._argv_call),
    (("get_ipython().run_line_magic", "get_ipython().magic"), ShellRules._line_magic),
    (("get_ipython().run_cell_magic",), ShellRules._cell_magic),
)
CTYPES_SHELL = ("system", "popen", "execve", "execv", "execl")


def process_handler(q: str) -> CallHandler | None:
    """The process rule for callee `q`: a table entry, else the two patterns no table can
    list (libc's `system` reached through ctypes, the `os.exec*`/`os.spawn*` family)."""
    handler = PROCESS_HANDLERS.get(q)
    if handler is not None:
        return handler
    if q.startswith("ctypes.CDLL()") and q.rsplit(".", 1)[-1] in CTYPES_SHELL:
        return ShellRules._shell_call
    if EXEC_CALLS.match(q):
        return ShellRules._argv_call
    return None


# Calls on paths: looked up after those, before the `pathlib.Path().<method>` catch-all.
PATH_HANDLERS = _table(
    (DELETE_CALLS, FileRules._delete_call),
    (MOVE_CALLS, FileRules._move_call),
    (COPY_CALLS, FileRules._copy_call),
    (PERM_CALLS, FileRules._perm_call),
    (OPEN_CALLS, FileRules._open_call),
)
# Every other call with a rule of its own, looked up after it.
CALL_HANDLERS = {
    name: handler
    for name, handler in _table(
        (DYNAMIC_CALLS, CallRules._dynamic),
        (("__import__", "importlib.import_module"), CallRules._dynamic_import),
        (("getattr", "setattr", "delattr", "hasattr"), CallRules._getattr),
        ((*PICKLE_CALLS, *YAML_UNSAFE, "yaml.load"), CallRules._unpickle),
        (MARSHAL_CALLS, CallRules._marshal),
        (
            (*NETWORK_SEND, *NETWORK_FETCH, "socket.socket", "socket.fromfd"),
            CallRules._network,
        ),
        (
            (
                "socket.gethostbyname",
                "socket.gethostbyname_ex",
                "socket.getaddrinfo",
                "dns.resolver.resolve",
                "dns.resolver.query",
                "dns.resolver.Resolver().resolve",
                "dns.resolver.Resolver().query",
            ),
            CallRules._dns_lookup,
        ),
        (("os.fork", "os.forkpty"), CallRules._fork),
        (("os.dup2",), CallRules._dup2),
        (("os.kill", "os.killpg"), CallRules._kill),
        (
            ("os.setuid", "os.setgid", "os.seteuid", "os.setreuid", "os.chroot"),
            ShellRules._privilege,
        ),
        (
            (
                "os.getenv",
                "os.environ.get",
                "os.environ.pop",
                "os.getenvb",
                "os.environ.setdefault",
            ),
            CallRules._getenv,
        ),
        (
            (
                "bytearray",
                "bytes",
                "os.urandom",
                "numpy.zeros",
                "numpy.ones",
                "numpy.empty",
                "numpy.full",
                "numpy.random.rand",
                "numpy.random.random",
                "numpy.arange",
                "torch.zeros",
                "torch.ones",
                "torch.empty",
                "torch.randn",
            ),
            CallRules._allocation,
        ),
        (("crontab.CronTab",), CallRules._crontab),
        (
            (
                "keyring.get_password",
                "browser_cookie3.load",
                "browser_cookie3.chrome",
                "browser_cookie3.firefox",
            ),
            CallRules._credential_store,
        ),
        (
            ("runpy.run_path", "runpy.run_module", "get_ipython().run_line_magic.run"),
            CallRules._run_script,
        ),
        (("importlib.util.spec_from_file_location",), CallRules._run_script),
        ((*_DECODERS, "codecs.decode"), CallRules._decoder),
    ).items()
    # the elif chain this replaces tested the pathlib catch-all first
    if name not in PATH_HANDLERS and not name.startswith("pathlib.Path().")
}
