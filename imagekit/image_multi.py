"""``bai-imagekit build --platform linux/amd64,linux/arm64``: one build per platform, one manifest list.

The engine (classic image store) holds one image per tag, so each platform's image is tagged
``<tag>-<arch>`` locally (``…:1.0-amd64``, ``…:1.0-arm64``).  With ``--push`` both are pushed
through the engine and ``<tag>`` is written to the registry as a Docker manifest list of the two
(:func:`put_manifest_list`), which the registry validation then reads platform by platform.

Build arguments may be given per platform: ``--build-arg linux/arm64:BASE_IMAGE=…`` applies to
that platform only and wins over a plain ``--build-arg BASE_IMAGE=…``.
"""

from __future__ import annotations

import json
from dataclasses import replace

from .errors import UsageError
from .findings import Finding, Location
from .image_build import BuildOptions
from .image_push import PushedTag, split_tag

#: the platforms a multi-platform build accepts (Backend.AI agents: x86_64 and aarch64)
PLATFORMS = ("linux/amd64", "linux/arm64")
#: the manifest list's platform object per platform (arm64 images are ARMv8)
PLATFORM_OBJECTS = {"linux/amd64": {"architecture": "amd64", "os": "linux"},
                    "linux/arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"}}


def parse_platforms(value: str | None) -> list[str]:
    """``--platform`` → the platforms, in order; several need to be among :data:`PLATFORMS`."""
    if not value:
        return []
    platforms = list(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    if len(platforms) > 1:
        unknown = [p for p in platforms if p not in PLATFORMS]
        if unknown:
            raise UsageError(f"--platform {value!r}: a multi-platform build takes {' and '.join(PLATFORMS)}, "
                             f"not {', '.join(unknown)}")
    return platforms


def arch_suffix(platform: str) -> str:
    return platform.split("/")[1]


def platform_tag(tag: str, platform: str) -> str:
    """The local tag of one platform's image: ``repo:1.0`` → ``repo:1.0-arm64``."""
    repository, name = split_tag(tag)
    return f"{repository}:{name}-{arch_suffix(platform)}"


def split_build_args(raw: dict[str, str], platforms: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Plain and ``PLATFORM:KEY`` build arguments apart; a prefix for a platform not built is refused."""
    common: dict[str, str] = {}
    per: dict[str, dict[str, str]] = {p: {} for p in platforms}
    for key, value in raw.items():
        platform, sep, name = key.rpartition(":")
        if not sep:
            common[key] = value
        elif platform in per:
            per[platform][name] = value
        else:
            raise UsageError(f"--build-arg {key}={value}: {platform!r} is not one of the --platform values "
                             f"({', '.join(platforms)})")
    return common, per


def options_per_platform(options: BuildOptions, platforms: list[str]) -> list[BuildOptions]:
    """One :class:`BuildOptions` per platform: its platform, its build arguments, its ``-<arch>`` tags."""
    common, per = split_build_args(options.build_args, platforms)
    return [replace(options, platform=p, build_args={**common, **per[p]},
                    tags=[platform_tag(t, p) for t in options.tags]) for p in platforms]


def label_mismatches(labels: dict[str, dict[str, str]], where: Location) -> list[Finding]:
    """BAI316 for every platform whose ``ai.backend.*`` labels differ from the first platform's."""
    from .rules.registry_image import label_differences, labels_differ_finding

    platforms = list(labels)
    first = platforms[0]
    backend = {p: {k: v for k, v in labels[p].items() if k.startswith("ai.backend.")} for p in platforms}
    findings = []
    for platform in platforms[1:]:
        diffs = label_differences(backend[first], backend[platform])
        if diffs:
            findings.append(labels_differ_finding(platform, first, diffs, where))
    return findings


def put_manifest_list(tag: str, pushed: dict[str, PushedTag], *, insecure: bool = False) -> PushedTag:
    """Write ``tag`` in its registry as a Docker manifest list of the pushed per-platform images."""
    from .registry.client import RegistryClient
    from .registry.manifest import DOCKER_MANIFEST_LIST
    from .registry.reference import parse_reference

    ref = parse_reference(tag)
    _, name = split_tag(tag)
    entries = []
    with RegistryClient(ref.api_host, insecure=insecure) as client:
        for platform, item in pushed.items():
            fetched = client.get_manifest(ref.repository, item.digest)
            entries.append({"mediaType": fetched.media_type, "digest": fetched.digest, "size": len(fetched.raw),
                            "platform": PLATFORM_OBJECTS[platform]})
        body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries},
                          indent=3).encode()
        resp = client.request("PUT", f"/v2/{ref.repository}/manifests/{name}", scope=f"repository:{ref.repository}:pull,push",
                              headers={"Content-Type": DOCKER_MANIFEST_LIST}, data=body, ok=(201,),
                              what=f"PUT the manifest list {tag}")
        digest = resp.headers.get("Docker-Content-Digest", "")
        resp.close()
    repository, _ = split_tag(tag)
    return PushedTag(reference=tag, repository=repository, tag=name, digest=digest, size=len(body))
