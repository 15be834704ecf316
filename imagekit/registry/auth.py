"""Registry credentials the way the docker CLI finds them, and the ``WWW-Authenticate`` challenge.

Lookup order for a registry host (as ``docker`` does it): ``credHelpers[host]`` → that helper;
else ``credsStore`` → that helper; else ``auths`` (base64 ``user:password`` in ``auth``, or
``username``/``password``, or ``identitytoken``). The config file is
``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``. A helper is the program
``docker-credential-<name>``, asked with ``get`` and the server URL on stdin; it answers
``{"ServerURL", "Username", "Secret"}`` (``Username`` ``<token>`` means the secret is an identity
token). Docker Hub's key is ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import EnvironmentProblem
from .reference import DOCKER_HUB_ALIASES

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 30.0
IDENTITY_TOKEN_USER = "<token>"


class Credentials(BaseModel):
    """A user name and password, or an identity (refresh) token for the bearer flow."""

    model_config = ConfigDict(frozen=True)

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    source: str = ""  # where they came from, for messages (never the secret)

    @property
    def basic(self) -> tuple[str, str] | None:
        if self.username is not None and self.password is not None:
            return self.username, self.password
        return None


class _AuthEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    auth: str | None = None
    username: str | None = None
    password: str | None = None
    identitytoken: str | None = None


class DockerConfig(BaseModel):
    """The part of ``config.json`` that says where credentials are."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    auths: dict[str, _AuthEntry] = Field(default_factory=dict)
    cred_helpers: dict[str, str] = Field(default_factory=dict, alias="credHelpers")
    creds_store: str | None = Field(default=None, alias="credsStore")


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def load_docker_config(path: Path | None = None) -> DockerConfig:
    """The Docker config (empty if the file does not exist); a broken file is an environment problem."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DockerConfig()
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read the Docker config {path}: {exc}") from exc
    try:
        return DockerConfig.model_validate(json.loads(text) if text.strip() else {})
    except (ValueError, ValidationError) as exc:
        raise EnvironmentProblem(f"the Docker config {path} is not valid: {exc}") from exc


def _hostname(key: str) -> str:
    """An ``auths`` key as a host: ``https://host:port/v1/`` → ``host:port`` (what the CLI compares)."""
    key = re.sub(r"^[a-z]+://", "", key)
    return key.split("/", 1)[0]


def _is_hub(host: str) -> bool:
    return host in DOCKER_HUB_ALIASES


def server_key(host: str) -> str:
    """The key the CLI stores *host*'s credentials under (and passes to helpers)."""
    return DOCKER_HUB_KEY if _is_hub(host) else host


def _from_entry(entry: _AuthEntry, source: str) -> Credentials | None:
    username, password = entry.username, entry.password
    if entry.auth:
        try:
            decoded = base64.b64decode(entry.auth, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise EnvironmentProblem(f"{source}: the auth value is not base64 of USER:PASSWORD") from exc
        if ":" not in decoded:
            raise EnvironmentProblem(f"{source}: the auth value is not base64 of USER:PASSWORD")
        username, password = decoded.split(":", 1)
    if entry.identitytoken:
        return Credentials(username=username, identity_token=entry.identitytoken, source=source)
    if username is None and password is None:
        return None
    return Credentials(username=username or "", password=password or "", source=source)


def run_helper(name: str, server: str) -> Credentials | None:
    """Ask ``docker-credential-<name> get`` for *server*'s credentials (None if it has none)."""
    program = f"docker-credential-{name}"
    if shutil.which(program) is None:
        raise EnvironmentProblem(f"the Docker config names the credential helper {name!r}, but {program} "
                                 "is not on PATH")
    try:
        proc = subprocess.run([program, "get"], input=server, capture_output=True, text=True,
                              timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem(f"{program} get did not answer within {HELPER_TIMEOUT:.0f}s") from exc
    except OSError as exc:
        raise EnvironmentProblem(f"cannot run {program}: {exc}") from exc
    if proc.returncode != 0:
        text = (proc.stdout + proc.stderr).strip()
        if "credentials not found" in text.lower():
            return None
        raise EnvironmentProblem(f"{program} get failed (exit {proc.returncode}): {text[:300]}")
    try:
        data = json.loads(proc.stdout)
        username, secret = data.get("Username", ""), data.get("Secret", "")
    except (ValueError, AttributeError) as exc:
        raise EnvironmentProblem(f"{program} get printed something that is not its JSON answer") from exc
    if not secret:
        return None
    source = f"credential helper {name}"
    if username == IDENTITY_TOKEN_USER:
        return Credentials(identity_token=secret, source=source)
    return Credentials(username=username, password=secret, source=source)


def find_credentials(host: str, config: DockerConfig | None = None) -> Credentials | None:
    """*host*'s credentials as the docker CLI would find them, or None (anonymous)."""
    config = config if config is not None else load_docker_config()
    helper = config.cred_helpers.get(host) or next(
        (h for k, h in config.cred_helpers.items() if _is_hub(host) and _hostname(k) in DOCKER_HUB_ALIASES), None
    )
    if helper:
        return run_helper(helper, server_key(host))
    if config.creds_store:
        return run_helper(config.creds_store, server_key(host))
    for key, entry in config.auths.items():
        name = _hostname(key)
        if name == host or (_is_hub(host) and _is_hub(name)):
            return _from_entry(entry, f"{config_path()} auths[{key!r}]")
    return None


# ------------------------------------------------------------------------------------ challenges


class Challenge(BaseModel):
    """One ``WWW-Authenticate`` challenge: the scheme (lowercase) and its parameters."""

    model_config = ConfigDict(frozen=True)

    scheme: str
    params: dict[str, str] = Field(default_factory=dict)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 9110 §11.6.1; several challenges may be comma-joined)."""
    out: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = _SCHEME.match(text, pos)
        if not m:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while pos < len(text):
            p = _PARAM.match(text, pos)
            if not p:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
        out.append(Challenge(scheme=scheme, params=params))
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    return out


class TokenResponse(BaseModel):
    """A token server's answer (Docker's ``token``, OAuth2's ``access_token``)."""

    model_config = ConfigDict(extra="ignore")

    token: str | None = None
    access_token: str | None = None
    expires_in: int | None = None

    @property
    def value(self) -> str | None:
        return self.token or self.access_token
