"""Images where they live: read a registry over its HTTP API v2, without pulling and without a Docker engine.

* :mod:`.reference` – parse ``REGISTRY/REPO:TAG@DIGEST`` (docker.io defaults);
* :mod:`.auth` – credentials the way the docker CLI finds them, ``WWW-Authenticate``, bearer tokens;
* :mod:`.client` – the v2 API (ping, manifests, blobs, catalog, tags) over HTTP(S);
* :mod:`.manifest` – the manifest, index and config documents (pydantic);
* :mod:`.rescan` – what the Backend.AI manager's rescan concludes for each platform of a tag;
* :mod:`.layers_fs` – an :class:`~imagekit.kernel_inputs.ImageFS` over the layer blobs;
* :mod:`.target` – registry images as validation targets (one per platform).
"""

#: seconds to wait for a registry's answer unless told otherwise
DEFAULT_TIMEOUT = 30.0
