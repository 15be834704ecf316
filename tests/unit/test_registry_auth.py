"""Credentials found the way the docker CLI finds them, and WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from imagekit.errors import EnvironmentProblem
from imagekit.registry.auth import (
    find_credentials,
    load_docker_config,
    parse_www_authenticate,
)


def test_bearer_challenge_with_quoted_commas():
    (c,) = parse_www_authenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                        "scope": "repository:a/b:pull,push"}


def test_several_challenges_and_basic():
    found = parse_www_authenticate('Basic realm="bai-test-registry", Bearer realm="http://t/x",service=s')
    assert [c.scheme for c in found] == ["basic", "bearer"]
    assert found[0].params == {"realm": "bai-test-registry"}
    assert found[1].params == {"realm": "http://t/x", "service": "s"}
    assert parse_www_authenticate("") == []


def _config(tmp_path, monkeypatch, doc):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(doc))
    return load_docker_config()


def test_auths_base64_and_hub_key(tmp_path, monkeypatch):
    auth = base64.b64encode(b"alice:s3:cret").decode()
    config = _config(tmp_path, monkeypatch, {"auths": {
        "https://index.docker.io/v1/": {"auth": auth},
        "https://cr.example.com": {"username": "bob", "password": "pw"},
        "tok.example.com": {"identitytoken": "refresh-me"},
    }})
    hub = find_credentials("registry-1.docker.io", config)
    assert hub is not None and hub.basic == ("alice", "s3:cret")
    assert find_credentials("cr.example.com", config).basic == ("bob", "pw")
    assert find_credentials("tok.example.com", config).identity_token == "refresh-me"
    assert find_credentials("other.example.com", config) is None


def test_no_config_file_is_anonymous(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    assert find_credentials("cr.example.com") is None


def test_broken_config_is_an_environment_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EnvironmentProblem, match="not valid"):
        load_docker_config()


def _helper(tmp_path, monkeypatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / "docker-credential-unit"
    helper.write_text("#!/bin/sh\n" + body)
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_cred_helper_wins_over_auths_and_gets_the_server_on_stdin(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, 'read server; printf \'{"Username":"u-%s","Secret":"x"}\' "$server"\n')
    config = _config(tmp_path, monkeypatch, {"credHelpers": {"cr.example.com": "unit"},
                                             "auths": {"cr.example.com": {"username": "no", "password": "no"}}})
    creds = find_credentials("cr.example.com", config)
    assert creds.basic == ("u-cr.example.com", "x") and creds.source == "credential helper unit"


def test_creds_store_token_and_not_found(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, 'read server\n[ "$server" = "https://index.docker.io/v1/" ] && '
            'echo \'{"Username":"<token>","Secret":"idt"}\' && exit 0\n'
            'echo "credentials not found in native keychain"; exit 1\n')
    config = _config(tmp_path, monkeypatch, {"credsStore": "unit"})
    assert find_credentials("docker.io", config).identity_token == "idt"
    assert find_credentials("cr.example.com", config) is None
