"""The registry documents imagekit reads: image manifests, manifest lists / OCI indexes, image configs.

Only the fields the rescan and the validator use are modelled; everything else is ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: what imagekit asks for (the manager's rescan asks for the same, plus the schema-1 types)
ACCEPT = (DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST)
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
SCHEMA1_TYPES = (DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED)

GZIP_LAYERS = (
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
TAR_LAYERS = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar")


class Platform(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    os: str = ""
    architecture: str = ""
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Descriptor(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    media_type: str = Field(default="", alias="mediaType")
    digest: str
    size: int = 0
    platform: Platform | None = None
    #: None when the key is absent (the manager tells attestation manifests by its presence)
    annotations: dict[str, str] | None = None


class ImageManifest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    config: Descriptor
    layers: list[Descriptor] = Field(default_factory=list)

    @property
    def size(self) -> int:
        """What the manager records as the image size: the compressed layers plus the config blob."""
        return sum(layer.size for layer in self.layers) + self.config.size


class ImageIndex(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    manifests: list[Descriptor] = Field(default_factory=list)


class _ContainerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Labels: dict[str, Any] | None = None
    Cmd: list[str] | None = None
    Entrypoint: list[str] | None = None


class HistoryItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    created_by: str = ""
    empty_layer: bool = False


class ImageConfig(BaseModel):
    """The config blob (``application/vnd.oci.image.config.v1+json`` or Docker's)."""

    model_config = ConfigDict(extra="ignore")

    history: list[HistoryItem] = Field(default_factory=list)

    architecture: str | None = None
    os: str | None = None
    variant: str | None = None
    config: _ContainerConfig | None = None
    container_config: _ContainerConfig | None = None

    def layer_commands(self, count: int) -> list[str]:
        """What made each of *count* layers (the history entries that are not empty layers), if it adds up."""
        made = [h.created_by for h in self.history if not h.empty_layer]
        return made if len(made) == count else [""] * count

    @property
    def labels(self) -> dict[str, str]:
        """``config.Labels``, else ``container_config.Labels`` (the manager's order); values as strings."""
        labels = (self.config.Labels if self.config else None) or (
            self.container_config.Labels if self.container_config else None) or {}
        return {str(k): v if isinstance(v, str) else str(v) for k, v in labels.items()}
