"""The kernel container's contract, defined once: ports, paths, label keys, intrinsic services.

What a Backend.AI agent and a kernel image agree on besides the messages (those are in
:mod:`krunner.protocol`). krunner reads it at run time; imagekit imports it to validate, build
and test images, so the two cannot drift.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------ ports

REPL_IN_PORT = 2000  # the runner binds PULL; the agent PUSHes ops here
REPL_OUT_PORT = 2001  # the runner binds PUSH; the agent PULLs records here
PTY_IN_PORT = 2002  # the runner binds SUB; keystrokes into the PTY (never published by a stock agent)
PTY_OUT_PORT = 2003  # the runner binds PUB; PTY screen output
SSHD_PORT = 2200
TTYD_PORT = 7681

#: the intrinsic services the runner provides itself, by name, and their container ports
INTRINSIC_SERVICE_PORTS: dict[str, int] = {"sshd": SSHD_PORT, "ttyd": TTYD_PORT}
INTRINSIC_SERVICES: tuple[str, ...] = tuple(INTRINSIC_SERVICE_PORTS)
#: what every port that is not an image's own is used for
RESERVED_PORTS: dict[int, str] = {
    REPL_IN_PORT: "the REPL input port",
    REPL_OUT_PORT: "the REPL output port",
    PTY_IN_PORT: "the PTY input port",
    PTY_OUT_PORT: "the PTY output port",
    SSHD_PORT: "the intrinsic sshd",
    TTYD_PORT: "the intrinsic ttyd (web terminal)",
}
#: ports a model service may never use (the agent raises ReservedPortError)
REPL_PORTS = (REPL_IN_PORT, REPL_OUT_PORT)

#: keys of /home/config/intrinsic-ports.json; ptyin/ptyout are our extension (the agent never writes them)
INTRINSIC_PORT_KEYS = {
    "replin": REPL_IN_PORT,
    "replout": REPL_OUT_PORT,
    "sshd": SSHD_PORT,
    "ttyd": TTYD_PORT,
    "ptyin": PTY_IN_PORT,
    "ptyout": PTY_OUT_PORT,
}

# ------------------------------------------------------------------------------ paths in the container

KRUNNER_PREFIX = "/opt/backend.ai"  # the krunner volume (read-only)
KERNEL_TOOLS_DIR = "/opt/kernel"  # the agent's (or the bundle's) tools
ENTRYPOINT_PATH = f"{KERNEL_TOOLS_DIR}/entrypoint.sh"
WORK_DIR = "/home/work"
CONFIG_DIR = "/home/config"
SERVICE_DEFS_DIR = "/etc/backend.ai/service-defs"
JAIL_DIR = "/etc/backend.ai/jail"
JAIL_POLICY_PATH = f"{JAIL_DIR}/policy.yml"
BOOTSTRAP_PATH = "/opt/container/bootstrap.sh"

# ------------------------------------------------------------------------------ image labels

LABEL_PREFIX = "ai.backend."
KERNELSPEC_LABEL = LABEL_PREFIX + "kernelspec"
FEATURES_LABEL = LABEL_PREFIX + "features"
BASE_DISTRO_LABEL = LABEL_PREFIX + "base-distro"
RUNTIME_TYPE_LABEL = LABEL_PREFIX + "runtime-type"
RUNTIME_PATH_LABEL = LABEL_PREFIX + "runtime-path"
ROLE_LABEL = LABEL_PREFIX + "role"
SERVICE_PORTS_LABEL = LABEL_PREFIX + "service-ports"
ENDPOINT_PORTS_LABEL = LABEL_PREFIX + "endpoint-ports"
MODEL_PATH_LABEL = LABEL_PREFIX + "model-path"
MODEL_FORMAT_LABEL = LABEL_PREFIX + "model-format"
CORECOUNT_LABEL = LABEL_PREFIX + "envs.corecount"
ACCELERATORS_LABEL = LABEL_PREFIX + "accelerators"
SHMEM_LABEL = LABEL_PREFIX + "resource.preferred.shmem"
CUSTOMIZED_OWNER_LABEL = LABEL_PREFIX + "customized-image.owner"
RESOURCE_MIN_PREFIX = LABEL_PREFIX + "resource.min"
RESOURCE_MAX_PREFIX = LABEL_PREFIX + "resource.max"
#: labels a container gets from the agent (not from the image)
KERNEL_ID_LABEL = LABEL_PREFIX + "kernel-id"
#: this toolkit's own labels (never reported as unknown)
IMAGEKIT_LABEL_PREFIX = LABEL_PREFIX + "imagekit."

#: base-distro families the agent has artifacts for
DISTRO_FAMILIES = ("ubuntu", "centos", "alpine")
