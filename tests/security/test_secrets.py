"""Secret names, environment scrubbing and redaction."""

from __future__ import annotations

import pytest

from codeflow_magic.secrets import (
    SECRET_NAME_PATTERNS,
    Redactor,
    is_secret_name,
    scrub_env,
    secret_values,
)

ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/u",
    "ANTHROPIC_API_KEY": "sk-ant-test-SECRET-0123456789",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999",
    "OPENAI_API_KEY": "sk-openai-abcdefghijkl",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value-123456",
    "AWS_SESSION_TOKEN": "aws-session-token-value",
    "GITHUB_TOKEN": "ghp_0123456789abcdef",
    "HF_TOKEN": "hf_abcdefghijklmnop",
    "DB_PASSWORD": "hunter2hunter2",
    "MY_SERVICE_API_KEY": "svc-key-99999999",
    "SHORT_TOKEN": "abc",
    "SORT_KEY": "name",
    "LANG": "C.UTF-8",
    "TOKENIZERS_PARALLELISM": "false",
    "MY_INTERNAL": "internal-value-1234",
}


@pytest.mark.parametrize(
    "name",
    [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_ORG_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GITHUB_TOKEN",
        "HF_TOKEN",
        "DB_PASSWORD",
        "MYSQL_PASSWD",
        "CLIENT_SECRET",
        "STRIPE_SECRET_KEY",
        "X_API_KEY",
        "slack_token",
        "DATABASE_URL",
        "STRIPE_KEY",
        "SORT_KEY",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "KEYBOARD", "LANG", "TOKENIZERS_PARALLELISM", "PWD", "MONKEY_COUNT"]
)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_patterns_are_exported() -> None:
    assert any("TOKEN" in p for p in SECRET_NAME_PATTERNS)


def test_scrub_env_drops_secrets_and_extra_names() -> None:
    out = scrub_env(ENV, extra_names=["my_internal"])  # extra names match in any case
    assert set(out) == {"PATH", "HOME", "LANG", "TOKENIZERS_PARALLELISM"}
    assert out["PATH"] == ENV["PATH"]
    assert "MY_INTERNAL" in scrub_env(ENV)  # only dropped when named


def test_secret_values_skip_short_ones() -> None:
    values = secret_values(ENV, extra_names=["MY_INTERNAL"])
    assert "sk-ant-test-SECRET-0123456789" in values
    assert "internal-value-1234" in values
    assert "abc" not in values
    assert "name" not in values


def test_redact_labels_values_by_name() -> None:
    r = Redactor.from_env(ENV)
    text = "key=sk-ant-test-SECRET-0123456789 and ghp_0123456789abcdef, short abc"
    assert r.redact(text) == (
        "key=[REDACTED:ANTHROPIC_API_KEY] and [REDACTED:GITHUB_TOKEN], short abc"
    )
    plain = Redactor(["sk-ant-test-SECRET-0123456789"])
    assert plain.redact("x sk-ant-test-SECRET-0123456789 y") == "x [REDACTED] y"
    assert Redactor([]).redact("nothing to do") == "nothing to do"
    assert not Redactor([]) and bool(plain)


def test_longer_value_containing_another_is_replaced_whole() -> None:
    r = Redactor({"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-longer"})
    assert r.redact("abcdefgh-longer abcdefgh") == "[REDACTED:B_TOKEN] [REDACTED:A_TOKEN]"


def test_redact_output_covers_text_and_leaves_images() -> None:
    r = Redactor.from_env(ENV)
    key = ENV["ANTHROPIC_API_KEY"]
    stream = {"output_type": "stream", "name": "stdout", "text": f"k={key}\n"}
    assert r.redact_output(stream)["text"] == "k=[REDACTED:ANTHROPIC_API_KEY]\n"
    listed = {"output_type": "stream", "name": "stdout", "text": [f"{key}\n", "ok\n"]}
    assert r.redact_output(listed)["text"] == ["[REDACTED:ANTHROPIC_API_KEY]\n", "ok\n"]
    result = {
        "output_type": "execute_result",
        "execution_count": 1,
        "metadata": {},
        "data": {
            "text/plain": f"'{key}'",
            "text/html": f"<b>{key}</b>",
            "application/json": {"k": key},
            "image/png": key,  # base64 payloads are never touched
        },
    }
    red = r.redact_output(result)
    assert red["data"]["text/plain"] == "'[REDACTED:ANTHROPIC_API_KEY]'"
    assert red["data"]["text/html"] == "<b>[REDACTED:ANTHROPIC_API_KEY]</b>"
    assert red["data"]["application/json"] == {"k": "[REDACTED:ANTHROPIC_API_KEY]"}
    assert red["data"]["image/png"] == key
    assert result["data"]["text/plain"] == f"'{key}'"  # a copy, the input is unchanged
    error = {"output_type": "error", "ename": "KeyError", "evalue": key, "traceback": [key, "x"]}
    red_err = r.redact_output(error)
    assert red_err["evalue"] == "[REDACTED:ANTHROPIC_API_KEY]"
    assert red_err["traceback"] == ["[REDACTED:ANTHROPIC_API_KEY]", "x"]


def test_redact_obj_recurses() -> None:
    r = Redactor({"GITHUB_TOKEN": "ghp_0123456789abcdef"})
    obj = {"a": ["ghp_0123456789abcdef", 3, None, ("ghp_0123456789abcdef",)], "n": 1}
    assert r.redact_obj(obj) == {
        "a": ["[REDACTED:GITHUB_TOKEN]", 3, None, ("[REDACTED:GITHUB_TOKEN]",)],
        "n": 1,
    }
