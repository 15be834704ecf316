"""Read one tag from a registry into an :class:`~.rescan.ImageView`: manifest or index, each
platform's manifest and config blob, and the rescan's verdict for each platform. No layer is read."""

from __future__ import annotations

from .client import Fetched, NotFoundError, RegistryClient, RegistryError
from .manifest import (
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
    ImageIndex,
    ImageManifest,
)
from .reference import ImageReference
from .rescan import (
    ImageView,
    LayerInfo,
    PlatformView,
    Verdict,
    alias_arch,
    decide,
    oci_manifest_arch,
)

UNKNOWN_TYPE = ("the manager's rescan fails on this tag: the registry answered with {type!r}, which it does not "
                "read (\"The registry does not support the standard way of listing multiarch images.\")")


def read_image(client: RegistryClient, ref: ImageReference, project: str | None = None) -> ImageView:
    """The rescan's view of *ref*; a missing tag raises :class:`~.client.NotFoundError`."""
    fetched = client.get_manifest(ref.repository, ref.reference)
    view = ImageView(reference=str(ref), registry=ref.registry, repository=ref.repository, tag=ref.tag,
                     digest=fetched.digest, media_type=fetched.media_type)
    if fetched.media_type in SCHEMA1_TYPES:
        view.error = ("a Docker schema-1 manifest (deprecated): the manager still reads it, with a warning; "
                      "bai-imagekit does not. Push the image again with a current client")
        return view
    if fetched.document is None:
        view.error = UNKNOWN_TYPE.format(type=fetched.media_type or "no Content-Type")
        return view
    if isinstance(fetched.document, ImageManifest):
        view.platforms = [_single(client, ref, fetched, project)]
    else:
        view.platforms = _index(client, ref, fetched, project)
    _stop_after_failure(view.platforms)
    return view


def _platform_view(client: RegistryClient, ref: ImageReference, manifest: ImageManifest, digest: str,
                   platform: str, arch: str | None, project: str | None) -> PlatformView:
    config = client.get_config(ref.repository, manifest.config.digest)
    if arch is None:  # a single Docker v2 manifest: the architecture comes from the config
        if not config.architecture:
            return PlatformView(platform=platform or "?", architecture="?", verdict=Verdict.FAILS,
                                reason="the config blob has no architecture: the manager's rescan raises on this tag",
                                fails_whole_tag=True,
                                manifest_digest=digest, config_digest=manifest.config.digest, size=manifest.size)
        arch = alias_arch(config.architecture)
    if not platform:
        platform = "/".join(p for p in (config.os, config.architecture, config.variant) if p) or arch
    labels = config.labels
    verdict, reason, accels = decide(labels, tag=ref.tag, repository=ref.repository, project=project)
    return PlatformView(
        platform=platform, architecture=arch, verdict=verdict, reason=reason, manifest_digest=digest,
        config_digest=manifest.config.digest, accelerators=accels, size=manifest.size,
        layers=[LayerInfo(digest=layer.digest, size=layer.size, media_type=layer.media_type, created_by=made)
                for layer, made in zip(manifest.layers, config.layer_commands(len(manifest.layers)))],
        labels=labels, cmd=(config.config.Cmd if config.config else None),
    )


def _single(client: RegistryClient, ref: ImageReference, fetched: Fetched, project: str | None) -> PlatformView:
    manifest = fetched.document
    assert isinstance(manifest, ImageManifest)
    arch = None
    if fetched.media_type == OCI_MANIFEST:
        config = client.get_config(ref.repository, manifest.config.digest)
        arch = oci_manifest_arch(config.architecture, ref.tag or "")
    return _platform_view(client, ref, manifest, fetched.digest, "", arch, project)


def _index(client: RegistryClient, ref: ImageReference, fetched: Fetched, project: str | None) -> list[PlatformView]:
    index = fetched.document
    assert isinstance(index, ImageIndex)
    out: list[PlatformView] = []
    by_arch: dict[str, PlatformView] = {}
    for entry in index.manifests:
        platform = str(entry.platform) if entry.platform else "?"
        if fetched.media_type == OCI_INDEX and entry.annotations is not None:
            kind = (entry.annotations or {}).get("vnd.docker.reference.type", "")
            why = "an attestation manifest" if kind == "attestation-manifest" or platform == "unknown/unknown" \
                else "an index entry with annotations"
            out.append(PlatformView(platform=platform, architecture=alias_arch(entry.platform.architecture)
                                    if entry.platform else "?", verdict=Verdict.SKIPPED, manifest_digest=entry.digest,
                                    reason=f"{why}: the manager skips index entries that carry annotations"))
            continue
        if entry.platform is None:
            out.append(PlatformView(platform="?", architecture="?", verdict=Verdict.FAILS, manifest_digest=entry.digest,
                                    reason="an index entry without a platform: the manager's rescan raises on this tag",
                                    fails_whole_tag=True))
            continue
        arch = alias_arch(entry.platform.architecture)
        try:
            child = client.get_manifest(ref.repository, entry.digest)
        except NotFoundError:
            out.append(PlatformView(platform=platform, architecture=arch, verdict=Verdict.FAILS,
                                    manifest_digest=entry.digest,
                                    reason="the index names a manifest the registry does not have",
                                    fails_whole_tag=True))
            continue
        if not isinstance(child.document, ImageManifest):
            what = "another index" if child.media_type in INDEX_TYPES else repr(child.media_type)
            view = PlatformView(platform=platform, architecture=arch, verdict=Verdict.FAILS,
                                manifest_digest=entry.digest,
                                reason=f"the entry is {what}, not an image manifest: the manager's rescan raises",
                                fails_whole_tag=True)
        else:
            view = _platform_view(client, ref, child.document, entry.digest, platform, arch, project)
        earlier = by_arch.get(arch)
        if earlier is not None and earlier.registered:
            earlier.verdict, earlier.accelerators = Verdict.SKIPPED, None
            earlier.reason = (f"replaced by the later entry {platform} of the same architecture {arch} "
                              "(the manager keys an index's platforms by architecture)")
        by_arch[arch] = view
        out.append(view)
    return out


def _stop_after_failure(platforms: list[PlatformView]) -> None:
    """A platform whose reading raises stops the manager's loop: the platforms after it are not registered."""
    early = next((p for p in platforms if p.verdict is Verdict.FAILS and p.fails_whole_tag), None)
    if early is not None:
        for p in platforms:
            if p.registered:
                p.verdict, p.accelerators = Verdict.SKIPPED, None
                p.reason = f"not registered: the rescan of this tag fails at {early.platform} ({early.reason})"
        return
    failed = next((p for p in platforms if p.verdict is Verdict.FAILS), None)
    if failed is None:
        return
    for p in platforms[platforms.index(failed) + 1:]:
        if p.registered:
            p.verdict, p.accelerators = Verdict.SKIPPED, None
            p.reason = f"not reached: the rescan of this tag stopped at {failed.platform} ({failed.reason})"


__all__ = ["read_image", "RegistryError", "NotFoundError"]
