"""The registry HTTP API v2 over HTTP(S), with the docker CLI's authentication.

One :class:`RegistryClient` per registry host. Every request that gets ``401`` is answered the
way the challenge asks: ``Bearer`` → a token from the challenge's realm for the request's scope
(``repository:<repo>:pull``, ``registry:catalog:*``), sent with the user's basic credentials or
identity token when there are any; ``Basic`` → the user's credentials. Tokens are cached per scope.

TLS is verified against ``SSL_CERT_FILE`` when set, else the system CA bundle; ``insecure`` means
plain HTTP. Every failure becomes a :class:`RegistryError` (an
:class:`~imagekit.errors.EnvironmentProblem`, exit 2) whose text says what happened and where.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from pydantic import ValidationError

from .. import __version__
from ..errors import EnvironmentProblem
from . import DEFAULT_TIMEOUT
from .auth import (
    Challenge,
    Credentials,
    TokenResponse,
    find_credentials,
    parse_www_authenticate,
)
from .manifest import (
    ACCEPT,
    INDEX_TYPES,
    MANIFEST_TYPES,
    SCHEMA1_TYPES,
    ImageConfig,
    ImageIndex,
    ImageManifest,
)

SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")
MAX_DOCUMENT = 8 << 20  # manifests and configs are small; refuse to buffer more
PAGE_SIZE = 100
USER_AGENT = f"bai-imagekit/{__version__}"


class RegistryError(EnvironmentProblem):
    """The registry cannot answer what was asked (exit 2)."""


class NotFoundError(RegistryError):
    pass


class DeniedError(RegistryError):
    pass


def ca_bundle() -> str | bool:
    """``SSL_CERT_FILE`` if set, else the first system bundle that exists, else requests' default."""
    env = os.environ.get("SSL_CERT_FILE")
    if env:
        if not Path(env).is_file():
            raise EnvironmentProblem(f"SSL_CERT_FILE={env} does not exist")
        return env
    return next((p for p in SYSTEM_CA_BUNDLES if Path(p).is_file()), True)


@dataclass(frozen=True)
class Fetched:
    """A manifest or index as the registry sent it."""

    media_type: str
    digest: str
    raw: bytes
    document: ImageManifest | ImageIndex | None  # None: a type imagekit does not read


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _error_text(resp: requests.Response) -> str:
    """The registry's own error message (``{"errors": [{"code", "message"}]}``), if any."""
    try:
        errors = resp.json().get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        return "; ".join(p for p in parts if p)
    except (ValueError, AttributeError):
        return ""


class RegistryClient:
    """The v2 API of one registry (``host[:port]``)."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: Credentials | None = None,
        use_docker_config: bool = True,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.host = host
        self.insecure = insecure
        self.timeout = timeout
        self.page_size = page_size
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credentials = credentials if credentials is not None or not use_docker_config else find_credentials(host)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.trust_env = False  # the registry is reached directly; no netrc/proxy surprises
        self._session.verify = False if insecure else ca_bundle()
        self._tokens: dict[str, str] = {}
        self._basic = False  # the registry asked for basic auth
        self._pinged = False
        self._configs: dict[tuple[str, str], ImageConfig] = {}

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str], scope: str | None,
              stream: bool, **kwargs: Any) -> requests.Response:
        headers = dict(headers)
        token = self._tokens.get(scope or "")
        auth = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self._basic and self.credentials and self.credentials.basic:
            auth = self.credentials.basic
        try:
            return self._session.request(method, url, headers=headers, auth=auth, stream=stream,
                                         timeout=self.timeout, allow_redirects=True, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise RegistryError(
                f"TLS with {self.host} failed: {_reason(exc)}. If the registry serves plain HTTP use --insecure; "
                "if its certificate comes from a private CA, point SSL_CERT_FILE at a bundle that holds it"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise RegistryError(f"{self.host} did not answer within {self.timeout:g}s ({method} {url})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise RegistryError(f"cannot connect to {self.host}: {_reason(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"{method} {url} failed: {exc}") from exc

    def request(self, method: str, path: str, *, scope: str | None, headers: dict[str, str] | None = None,
                stream: bool = False, ok: tuple[int, ...] = (200,), what: str = "", **kwargs: Any) -> requests.Response:
        """Send, answering one authentication challenge; a status outside *ok* raises :class:`RegistryError`."""
        self.ping()
        url = path if path.startswith(("http://", "https://")) else self.base + path
        resp = self._send(method, url, headers or {}, scope, stream, **kwargs)
        if resp.status_code == 401:
            challenges = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            self._authenticate(challenges, scope, what or path)
            resp = self._send(method, url, headers or {}, scope, stream, **kwargs)
        if resp.status_code in ok:
            return resp
        try:
            self._raise_for(resp, what or f"{method} {path}")
        finally:
            resp.close()
        raise AssertionError("unreachable")

    def _raise_for(self, resp: requests.Response, what: str) -> None:
        detail = _error_text(resp)
        suffix = f" ({detail})" if detail else ""
        status = resp.status_code
        if status == 404:
            raise NotFoundError(f"{what}: not found in {self.host}{suffix}")
        if status in (401, 403):
            who = f"with the credentials from {self.credentials.source}" if self.credentials else "anonymously"
            raise DeniedError(f"{what}: access denied by {self.host} {who} (HTTP {status}){suffix}; "
                              "log in with `docker login` or check the account's pull permission")
        raise RegistryError(f"{what}: {self.host} answered HTTP {status}{suffix}")

    # -- authentication ----------------------------------------------------------------------------

    def _authenticate(self, challenges: list[Challenge], scope: str | None, what: str) -> None:
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            self._tokens[scope or ""] = self._fetch_token(bearer, scope, what)
            return
        if any(c.scheme == "basic" for c in challenges):
            if not (self.credentials and self.credentials.basic):
                raise DeniedError(f"{what}: {self.host} needs a user name and password (basic auth) and none is "
                                  "configured; log in with `docker login " + self.host + "`")
            if self._basic:
                raise DeniedError(f"{what}: {self.host} rejected the user name and password from "
                                  f"{self.credentials.source} (HTTP 401)")
            self._basic = True
            return
        raise DeniedError(f"{what}: {self.host} answered 401 without a usable WWW-Authenticate challenge")

    def _fetch_token(self, challenge: Challenge, scope: str | None, what: str) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise DeniedError(f"{what}: {self.host} asked for a bearer token without naming a realm")
        params: dict[str, str] = {"client_id": "bai-imagekit"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        wanted = scope or challenge.params.get("scope")
        if wanted:
            params["scope"] = wanted
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                resp = self._session.post(realm, data={**params, "grant_type": "refresh_token",
                                                       "refresh_token": creds.identity_token},
                                          timeout=self.timeout)
            else:
                resp = self._session.get(realm, params=params, auth=creds.basic if creds else None,
                                         timeout=self.timeout)
        except requests.exceptions.Timeout as exc:
            raise RegistryError(f"the token server {realm} did not answer within {self.timeout:g}s") from exc
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"cannot get a token from {realm}: {_reason(exc)}") from exc
        with resp:
            if resp.status_code in (401, 403):
                who = f"the credentials from {creds.source}" if creds else "anonymous access"
                raise DeniedError(f"{what}: the token server {realm} refused {who} for scope {wanted!r} "
                                  f"(HTTP {resp.status_code})")
            if resp.status_code != 200:
                raise RegistryError(f"{what}: the token server {realm} answered HTTP {resp.status_code}")
            try:
                token = TokenResponse.model_validate(resp.json()).value
            except (ValueError, ValidationError) as exc:
                raise RegistryError(f"the token server {realm} did not answer with a token") from exc
        if not token:
            raise RegistryError(f"the token server {realm} did not answer with a token")
        return token

    # -- the API -----------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the v2 API (401 is fine: it wants credentials)."""
        if self._pinged:
            return
        resp = self._send("GET", self.base + "/v2/", {}, None, False)
        with resp:
            api = resp.headers.get("Docker-Distribution-API-Version", "")
            if resp.status_code == 404 or (resp.status_code == 200 and not api.startswith("registry/2")
                                           and not _is_json(resp)):
                raise RegistryError(f"{self.host} does not speak the registry HTTP API v2 "
                                    f"(GET /v2/ answered HTTP {resp.status_code}); is this a container registry?")
            if resp.status_code not in (200, 401, 403):
                raise RegistryError(f"{self.host} answered GET /v2/ with HTTP {resp.status_code}")
        self._pinged = True

    def get_manifest(self, repository: str, reference: str) -> Fetched:
        what = f"{self.host}/{repository}{'@' if ':' in reference else ':'}{reference}"
        resp = self.request("GET", f"/v2/{repository}/manifests/{reference}", scope=_pull(repository),
                            headers={"Accept": ", ".join(ACCEPT)}, what=what)
        with resp:
            raw = _read_limited(resp, what)
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"{what}: the manifest is not JSON") from exc
        if media_type not in (*MANIFEST_TYPES, *INDEX_TYPES, *SCHEMA1_TYPES) and isinstance(body, dict):
            media_type = body.get("mediaType") or media_type  # some registries send application/json
        digest = resp.headers.get("Docker-Content-Digest") or _sha256(raw)
        if reference.startswith("sha256:") and _sha256(raw) != reference:
            raise RegistryError(f"{what}: the manifest's content does not match its digest")
        document: ImageManifest | ImageIndex | None = None
        try:
            if media_type in MANIFEST_TYPES:
                document = ImageManifest.model_validate(body)
            elif media_type in INDEX_TYPES:
                document = ImageIndex.model_validate(body)
        except ValidationError as exc:
            raise RegistryError(f"{what}: the {media_type} document is malformed: {exc.errors()[0]['msg']}") from exc
        return Fetched(media_type, digest, raw, document)

    def get_config(self, repository: str, digest: str) -> ImageConfig:
        key = (repository, digest)
        if key not in self._configs:
            self._configs[key] = self._get_config(repository, digest)
        return self._configs[key]

    def _get_config(self, repository: str, digest: str) -> ImageConfig:
        what = f"{self.host}/{repository} config blob {digest[:19]}"
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository), what=what)
        with resp:
            raw = _read_limited(resp, what)
        if _sha256(raw) != digest and digest.startswith("sha256:"):
            raise RegistryError(f"{what}: the blob's content does not match its digest")
        try:
            return ImageConfig.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise RegistryError(f"{what}: the image config is not valid JSON of an image config") from exc

    def download_blob(self, repository: str, digest: str, dest: Path,
                      progress: Callable[[int], None] | None = None) -> None:
        """Stream a blob to *dest*, checking its sha256 digest on the way."""
        what = f"{self.host}/{repository} blob {digest[:19]}"
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository), stream=True,
                            what=what)
        hasher = hashlib.sha256()
        with resp, dest.open("wb") as fh:
            try:
                for chunk in resp.iter_content(1 << 20):
                    hasher.update(chunk)
                    fh.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            except requests.exceptions.RequestException as exc:
                raise RegistryError(f"{what}: the download broke off: {_reason(exc)}") from exc
        if digest.startswith("sha256:") and "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"{what}: the downloaded content does not match its digest")

    def _pages(self, path: str, key: str, scope: str, what: str) -> Iterator[str]:
        url: str | None = f"{path}?n={self.page_size}"
        seen: set[str] = set()
        while url:
            resp = self.request("GET", url, scope=scope, what=what)
            with resp:
                try:
                    items = resp.json().get(key) or []
                except (ValueError, AttributeError) as exc:
                    raise RegistryError(f"{what}: the answer is not the expected JSON") from exc
                nxt = resp.links.get("next", {}).get("url")
            yield from (i for i in items if isinstance(i, str))
            url = urljoin(self.base + "/", nxt) if nxt else None
            if url in seen:
                raise RegistryError(f"{what}: the registry's pagination loops ({url})")
            if url:
                seen.add(url)

    def catalog(self) -> Iterator[str]:
        """Every repository name (``GET /v2/_catalog``, following ``Link: rel="next"``)."""
        return self._pages("/v2/_catalog", "repositories", "registry:catalog:*", f"{self.host} catalog")

    def tags(self, repository: str) -> list[str]:
        return list(self._pages(f"/v2/{repository}/tags/list", "tags", _pull(repository),
                                f"{self.host}/{repository} tags"))


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _is_json(resp: requests.Response) -> bool:
    return "json" in resp.headers.get("Content-Type", "")


def _read_limited(resp: requests.Response, what: str) -> bytes:
    data = resp.content
    if len(data) > MAX_DOCUMENT:
        raise RegistryError(f"{what}: the document is larger than {MAX_DOCUMENT >> 20} MiB")
    return data


def _reason(exc: BaseException) -> str:
    """The innermost, most specific reason of a requests/urllib3 error."""
    seen = exc
    for _ in range(12):
        nxt = seen.__cause__ or seen.__context__ or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            nxt = reason
        if nxt is None or nxt is seen:
            break
        seen = nxt
    text = str(seen) or type(seen).__name__
    return text[:300]
