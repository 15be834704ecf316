"""Image references and registry targets parsed the way the docker CLI reads them."""

from __future__ import annotations

import pytest

from imagekit.errors import UsageError
from imagekit.registry.reference import (
    looks_like_registry_reference,
    parse_reference,
    parse_registry_target,
)
from imagekit.targets import detect_kind


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("python", "docker.io", "library/python", "latest", None),
    ("python:3.12", "docker.io", "library/python", "3.12", None),
    ("lablup/python:3.9-ubuntu20.04", "docker.io", "lablup/python", "3.9-ubuntu20.04", None),
    ("127.0.0.1:5000/bai-ref/python:latest", "127.0.0.1:5000", "bai-ref/python", "latest", None),
    ("localhost/a/b", "localhost", "a/b", "latest", None),
    ("cr.backend.ai/stable/python:3.12@sha256:" + "a" * 64, "cr.backend.ai", "stable/python", "3.12", "sha256:" + "a" * 64),
    ("cr.backend.ai/stable/python@sha256:" + "b" * 64, "cr.backend.ai", "stable/python", None, "sha256:" + "b" * 64),
    ("registry:5000/x", "registry:5000", "x", "latest", None),
])
def test_parse_reference(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.reference == (digest or tag)


def test_docker_hub_is_reached_at_its_api_host():
    assert parse_reference("python").api_host == "registry-1.docker.io"
    assert parse_reference("127.0.0.1:5000/x").api_host == "127.0.0.1:5000"


@pytest.mark.parametrize("text", ["https://cr.example.com/a:1", "cr.example.com/A/b", "x/y:bad tag", "x@sha256:12",
                                  "cr.example.com/"])
def test_bad_references_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_reference(text)


def test_what_counts_as_a_registry_reference(tmp_path, monkeypatch):
    assert looks_like_registry_reference("127.0.0.1:5000/bai-ref/python:latest")
    assert looks_like_registry_reference("cr.example.com/a/b")
    assert looks_like_registry_reference("localhost/a")
    for name in ("bai-ref/python:latest", "python:3.12", "./dir/x", "kernels/python/", "foo.json", "/abs/path"):
        assert not looks_like_registry_reference(name), name
    monkeypatch.chdir(tmp_path)
    assert detect_kind("127.0.0.1:5000/bai-ref/python:latest") == "registry"
    assert detect_kind("bai-ref/python:latest") == "image"


def test_registry_targets():
    assert parse_registry_target("127.0.0.1:5000") == ("127.0.0.1:5000", "")
    assert parse_registry_target("cr.example.com/my-project/") == ("cr.example.com", "my-project")
    for bad in ("my-project", "http://cr.example.com", "cr.example.com/Bad"):
        with pytest.raises(UsageError):
            parse_registry_target(bad)
