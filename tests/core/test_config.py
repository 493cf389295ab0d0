"""Loading agentlease.toml: routes, strict keys, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

import agentlease
from agentlease.audit import read_log
from agentlease.config import CONFIG_ENV, find_config, load_settings
from agentlease.errors import ConfigurationError, PolicyLoadError, UnknownRouteError

VALID = """
[identity]
spiffe_id = "spiffe://example.org/agent/research"

[broker]
grant_lifetime = 120

[audit]
path = "logs/audit.jsonl"

[[routes]]
name = "eu"
base_url = "http://127.0.0.1:9/v1"
model = "eu-model"
jurisdiction = "eu"
clearance = "confidential"
groups = ["default"]
priority = 5

[routes.capabilities]
vision = true

[[routes]]
name = "us"
base_url = "http://127.0.0.1:9/v1"
model = "us-model"
credential = "api_key"
api_key_env = "US_KEY"
groups = ["default"]
"""


def write(tmp_path: Path, text: str, name: str = "agentlease.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_builds_routes(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID))
    routes = settings.build_routes()
    assert [r.name for r in routes] == ["eu", "us"]
    assert routes[0].clearance == "confidential"
    assert routes[0].capabilities.vision is True
    assert routes[0].groups == ("default",)
    assert routes[1].credential == "api_key"
    assert routes[1].api_key_env == "US_KEY"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID))
    assert settings.resolve_path(settings.audit.path) == tmp_path.resolve() / "logs/audit.jsonl"


def test_runtime_from_config_uses_file(tmp_path: Path) -> None:
    runtime = agentlease.Runtime.from_config(write(tmp_path, VALID))
    try:
        assert runtime.grant_lifetime == 120
        assert [r.name for r in runtime.routes.resolve("default")] == ["eu", "us"]
        assert runtime.identity.get().id == "spiffe://example.org/agent/research"
        assert runtime.audit.path == tmp_path.resolve() / "logs/audit.jsonl"
    finally:
        runtime.close()


def test_unknown_key_is_rejected_with_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("priority = 5", "priorty = 5"))
    with pytest.raises(ConfigurationError, match="priorty") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[[routes]\nname = ")
    with pytest.raises(ConfigurationError, match="not valid TOML") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_api_key_route_without_variable_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('api_key_env = "US_KEY"\n', ""))
    with pytest.raises(ConfigurationError, match="api_key_env"):
        load_settings(path)


def test_unknown_data_class_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('clearance = "confidential"', 'clearance = "secret"'))
    with pytest.raises(ConfigurationError, match="'secret'"):
        load_settings(path)


def test_duplicate_route_names_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('name = "us"', 'name = "eu"'))
    with pytest.raises(ConfigurationError, match="declared twice"):
        agentlease.Runtime.from_config(path)


def test_missing_policy_file_names_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + '\n[policy]\npath = "missing.cedar"\n')
    with pytest.raises(PolicyLoadError, match=r"missing\.cedar"):
        agentlease.Runtime.from_config(path)


def test_invalid_cedar_policy_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "bad.cedar").write_text("permit(principal, action, resource) when {", "utf-8")
    path = write(tmp_path, VALID + '\n[policy]\npath = "bad.cedar"\n')
    with pytest.raises(PolicyLoadError):
        agentlease.Runtime.from_config(path)


def test_config_env_names_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=CONFIG_ENV):
        find_config()


def test_no_file_gives_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.source is None
    assert settings.routes == []


def test_unknown_model_names_known_routes(tmp_path: Path) -> None:
    runtime = agentlease.Runtime.from_config(write(tmp_path, VALID))
    try:
        with pytest.raises(UnknownRouteError, match="gpt-5") as caught:
            runtime.routes.resolve("gpt-5")
        assert "eu" in caught.value.known
    finally:
        runtime.close()


def test_invalid_policy_is_recorded_in_audit_log(tmp_path: Path) -> None:
    (tmp_path / "bad.cedar").write_text("permit(principal, action, resource) when {", "utf-8")
    path = write(tmp_path, VALID + '\n[policy]\npath = "bad.cedar"\n')
    with pytest.raises(PolicyLoadError):
        agentlease.Runtime.from_config(path)
    records = read_log(tmp_path / "logs/audit.jsonl")
    assert [r.action for r in records] == ["config.error"]
    assert records[0].outcome == "error"
    assert records[0].error is not None
    assert "PolicyLoadError" in records[0].error.type


def test_malformed_file_is_recorded_in_default_audit_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "[[routes]\nname = ")
    with pytest.raises(ConfigurationError):
        agentlease.Runtime.from_config(path)
    records = read_log(tmp_path / ".agentlease/audit.jsonl")
    assert records[0].action == "config.error"
    assert records[0].resource == str(path)
