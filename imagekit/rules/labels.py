"""BAI0xx: the ``ai.backend.*`` labels other than service-ports (spec §1).

Each label with a value grammar has one small check function in
:data:`_VALUE_CHECKS`; presence rules (required, recommended, inference) and
key rules (legacy, misspelt, unknown, upstream-owned) run over the whole label
set.  The constants at the top (slot names, feature tokens, distro families)
are the catalogue of spec §1; docs/labels.md describes the same table.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

from krunner.contract import ACCELERATORS_LABEL as ACCELERATORS
from krunner.contract import BASE_DISTRO_LABEL as BASE_DISTRO
from krunner.contract import CORECOUNT_LABEL as CORECOUNT
from krunner.contract import CUSTOMIZED_OWNER_LABEL as CUSTOMIZED_OWNER
from krunner.contract import DISTRO_FAMILIES
from krunner.contract import ENDPOINT_PORTS_LABEL as ENDPOINT_PORTS
from krunner.contract import FEATURES_LABEL as FEATURES
from krunner.contract import IMAGEKIT_LABEL_PREFIX as IMAGEKIT_PREFIX
from krunner.contract import KERNELSPEC_LABEL as KERNELSPEC
from krunner.contract import LABEL_PREFIX as P
from krunner.contract import MODEL_FORMAT_LABEL as MODEL_FORMAT
from krunner.contract import MODEL_PATH_LABEL as MODEL_PATH
from krunner.contract import RESOURCE_MAX_PREFIX as RES_MAX
from krunner.contract import RESOURCE_MIN_PREFIX as RES_MIN
from krunner.contract import ROLE_LABEL as ROLE
from krunner.contract import RUNTIME_PATH_LABEL as RUNTIME_PATH
from krunner.contract import RUNTIME_TYPE_LABEL as RUNTIME_TYPE
from krunner.contract import SERVICE_PORTS_LABEL as SERVICE_PORTS
from krunner.contract import SHMEM_LABEL as SHMEM
from krunner.runtimes.languages import BY_NAME, lookup

from ..findings import Finding
from ..kernel_inputs import KernelInputs
from ..runner_target import STOCK_VENDOR_PREFIX, RunnerTarget, stock_runs
from .catalogue import Rule, rule
from .image_contents import MATCHES_DISTRO_PROBE

KNOWN_KEYS = (
    KERNELSPEC, FEATURES, BASE_DISTRO, RUNTIME_TYPE, RUNTIME_PATH, ROLE, SERVICE_PORTS, ENDPOINT_PORTS,
    MODEL_PATH, MODEL_FORMAT, CORECOUNT, ACCELERATORS, SHMEM,
)
REQUIRED = (KERNELSPEC, RUNTIME_TYPE)
RECOMMENDED = (FEATURES, RES_MIN + ".cpu", RES_MIN + ".mem")  # base-distro: the agent detects it (BAI031)
INFERENCE_REQUIRED = (ENDPOINT_PORTS, MODEL_PATH, MODEL_FORMAT)
LEGACY_KEYS = tuple(P + k for k in ("timeout", "maxmem", "maxcores", "version", "nvidia.enabled", "port"))
UPSTREAM_OWNED = tuple(
    P + k
    for k in (
        "customized-image.owner", "customized-image.name", "customized-image.id", "customized-image.user.email",
        "agent-id", "kernel-id", "session-id", "owner", "owner-user-id", "owner-project-id",
        "internal.block-service-ports", "cluster-network", "system", "krunner.version",
    )
)

BYTE_SLOTS = ("mem",)
COUNT_SLOTS = (
    "cpu", "cuda.device", "cuda.shares", "rocm.device", "tpu.device", "ipu.device", "atom.device",
    "atom-plus.device", "atom-max.device", "gaudi.device", "gaudi2.device", "gaudi3.device", "warboy.device",
    "rngd.device", "tt-n300.device", "hyperaccel-lpu.device", "npu-plus.device",
)
SLOTS = BYTE_SLOTS + COUNT_SLOTS
FEATURE_TOKENS = ("uid-match", "user-input", "batch", "query", "tty", "operation", "private")
INTRINSIC_SLOTS = ("cpu", "mem")  # not accelerator families
#: accelerator families of the known slots (the fifth dot-component of a resource key)
ACCEL_FAMILIES = tuple(dict.fromkeys(s.split(".")[0] for s in COUNT_SLOTS if s not in INTRINSIC_SLOTS))
ACCEL_ANY_ITEM = "*"
OWNER_SCOPES = ("user", "project")
_FAMILY = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
ROLES = ("COMPUTE", "INFERENCE", "SYSTEM")
MIB = 1 << 20

SUBJECT = "labels"


def _rule(id: str, severity: str, title: str, hint: str, description: str, *, matches: str = "") -> Rule:
    return rule(id, severity, title, hint, description=description, subject=SUBJECT, matches=matches)


REQUIRED_MISSING = _rule(
    "BAI001", "error", "required label is missing",
    "Add the label, e.g. `LABEL ai.backend.kernelspec=\"1\" ai.backend.runtime-type=\"python\"`.",
    "Without `ai.backend.kernelspec` the manager treats the image as a plain (vanilla) image rather than a "
    "kernel image; without `ai.backend.runtime-type` the runner falls back to `app`, which has no query mode.",
)
RECOMMENDED_MISSING = _rule(
    "BAI002", "warning", "recommended label is missing",
    "Set the label explicitly instead of relying on upstream's default.",
    "The documentation lists `features`, `resource.min.cpu` and `resource.min.mem` as required. Upstream "
    "supplies defaults, but they are easy to get wrong (1 CPU, 1 GiB, `uid-match`). (`base-distro` is not "
    "among them: the agent detects it, see BAI031.)",
)
KERNELSPEC_BAD = _rule(
    "BAI003", "error", "kernelspec is not 1",
    "Set `ai.backend.kernelspec=\"1\"`.",
    "The manager accepts only kernelspec 1 and skips other images at rescan; a non-integer value also "
    "makes the agent's `int()` fail while creating kernels and while scanning local images.",
)
KERNELSPEC_FORM = _rule(
    "BAI004", "warning", "kernelspec is not written as plain `1`",
    "Write exactly `1`, without blanks or leading zeros.",
    "Upstream tolerates blanks and leading zeros after converting to int, but other tools compare the "
    "string; write the canonical form.",
)
MEM_BAD = _rule(
    "BAI005", "error", "memory size cannot be parsed",
    "Write a whole number of bytes or a number with a binary unit, such as `256m`, `1g` or `1.5g`.",
    "`resource.min.mem` is parsed with upstream's BinarySize grammar (spec §1.4). A value it rejects "
    "raises whenever the manager merges image resources, which can abort a whole registry rescan; an "
    "infinite minimum can never be satisfied.",
)
SIZE_STYLE = _rule(
    "BAI006", "warning", "memory size is valid but misleading",
    "Use an explicit binary unit such as `64m` or `1g`; a bare number counts bytes.",
    "Upstream reads a bare number as **bytes** (`\"64\"` is 64 B, not 64 MiB) and accepts odd spellings "
    "(`1_024`, `512 b`, `1e3g`). A size below 1 MiB is almost certainly a unit mistake.",
)
COUNT_BAD = _rule(
    "BAI007", "error", "resource count is not a decimal number",
    "Write a plain non-negative decimal, e.g. `1`, `0` or `0.5`.",
    "Count slots (`cpu`, `cuda.device`, `cuda.shares`, …) are compared as decimals at session creation; "
    "a malformed value fails every session request that reaches the comparison.",
)
SLOT_UNKNOWN = _rule(
    "BAI008", "warning", "unknown resource slot",
    "Use a slot name from the spec (cpu, mem, cuda.device, cuda.shares, rocm.device, …).",
    "Slots the cluster does not know are silently ignored at session creation, so a misspelt slot "
    "(`cuda.devices`) imposes no minimum at all.",
)
SLOT_MISSING = _rule(
    "BAI009", "error", "resource label without a slot name",
    "Append the slot, e.g. `ai.backend.resource.min.cpu`.",
    "The manager takes the accelerator family from the key's fifth dot-component; a key such as "
    "`ai.backend.resource.min` has none and raises IndexError in the tag scan.",
)
MAX_UNUSED = _rule(
    "BAI010", "info", "resource.max.* is not a limit",
    "Remove the label, or ask the administrator to set limits with `mgr image set-resource-limit`.",
    "Upstream never applies `ai.backend.resource.max.*` as a limit; it only adds the slot's family to the "
    "image's accelerator list.",
)
FEATURES_GRAMMAR = _rule(
    "BAI011", "error", "features are not separated by single spaces",
    "Separate tokens with exactly one ASCII space, with none at the start or end, e.g. `batch query uid-match`.",
    "The manager splits `ai.backend.features` on single spaces and rejects any blank token (\"blank value "
    "is not allowed\"), so double, leading or trailing spaces, tabs or an empty value get the image skipped at rescan.",
)
FEATURE_UNKNOWN = _rule(
    "BAI012", "error", "unknown features token",
    "Use only uid-match, user-input, batch, query, tty, operation and private.",
    "Upstream accepts unknown tokens silently, so a misspelt `uid-match` simply does not take effect.",
)
UID_MATCH = _rule(
    "BAI013", "warning", "features lack uid-match",
    "Add `uid-match` to `ai.backend.features`.",
    "Without `uid-match` the agent does not pass the user's uid/gid, and the entrypoint falls back to "
    "uid/gid 9001, so files in mounted folders get the wrong owner. The upstream docs say it must always be set.",
)
DISTRO_BAD = _rule(
    "BAI014", "error", "base-distro is not a supported FAMILYVERSION",
    "Write the family and a dotted version glued together in lowercase: `ubuntu22.04`, `centos8.0` or `alpine3.8`.",
    "The agent picks libbaihook, the jail and the krunner volume by the distro's family prefix and version. "
    "Only `ubuntu`, `centos` and `alpine` have artifacts; anything else (`debian12`, `Ubuntu22.04`) passes "
    "the rescan and then fails every session with UnsupportedBaseDistroError.",
)
DISTRO_MUSL = _rule(
    "BAI015", "warning", "musl (alpine) base-distro",
    "Prefer a glibc base (ubuntu or centos) unless you have checked that your agents provide a musl krunner.",
    "Current upstream agents ship no krunner volume that matches alpine images, so musl images fail at "
    "kernel creation with UnsupportedBaseDistroError (spec KI-13).",
)
RUNTIME_UNKNOWN = _rule(
    "BAI016", "error", "runtime-type is not supported by krunner",
    "Use a runtime-type from krunner's language table, e.g. `python`, `app`, `shell`, `c`, `nodejs`.",
    "The runner is started as `… ai.backend.kernel <runtime-type>` and exits at once on an unknown type, so "
    "no session of the image can start. The rescan does not check the value.",
)
RUNTIME_SPELLING = _rule(
    "BAI017", "info", "runtime-type is an alias or not in canonical spelling",
    "Write the canonical name from krunner's language table (e.g. `go` rather than `golang`).",
    "krunner matches aliases and ignores case and surrounding blanks, but other consumers compare the "
    "stored string verbatim.",
)
RUNTIME_PATH_BAD = _rule(
    "BAI018", "error", "runtime-path is not an absolute path",
    "Give the absolute path of the interpreter or compiler inside the image, e.g. `/usr/bin/python3`.",
    "The runner executes `ai.backend.runtime-path` for query mode and substitutes it for `{runtime_path}` in "
    "service definitions; a relative, empty or blank-padded value cannot be resolved reliably.",
)
RUNTIME_PATH_MISSING = _rule(
    "BAI019", "warning", "runtime-path is missing for a python image",
    "Set `ai.backend.runtime-path` to the image's Python, e.g. `/usr/bin/python3`.",
    "Without the label upstream falls back to the krunner's own Python, which has none of the image's "
    "packages, and `{runtime_path}` in service definitions points there too.",
)
ROLE_BAD = _rule(
    "BAI020", "error", "role is not COMPUTE, INFERENCE or SYSTEM",
    "Use one of COMPUTE, INFERENCE, SYSTEM (uppercase), or drop the label for COMPUTE.",
    "The manager compares the role case-sensitively and skips the image at rescan on any other value.",
)
INFERENCE_MISSING = _rule(
    "BAI021", "error", "inference image lacks a required label",
    "Add `ai.backend.endpoint-ports`, `ai.backend.model-path` and `ai.backend.model-format`.",
    "An image with `ai.backend.role=INFERENCE` is skipped at rescan unless all three labels are present.",
)
ENDPOINTS_GRAMMAR = _rule(
    "BAI022", "error", "endpoint-ports has an empty name",
    "List service-port names separated by single commas, e.g. `api` or `api,metrics`.",
    "The manager requires at least one endpoint name and rejects empty items.",
)
INFERENCE_ONLY = _rule(
    "BAI023", "warning", "inference label on a non-inference image",
    "Set `ai.backend.role=INFERENCE`, or remove the label.",
    "`endpoint-ports`, `model-path` and `model-format` only mean something when the role is INFERENCE; "
    "otherwise they are ignored.",
)
CORECOUNT_BAD = _rule(
    "BAI024", "warning", "envs.corecount has a bad variable name",
    "List environment variable names separated by commas, e.g. `OMP_NUM_THREADS,OPENBLAS_NUM_THREADS,NPROC`.",
    "The agent sets each listed variable to the number of allocated CPU cores. Blank items create a variable "
    "with an empty name, and names that are not identifiers cannot be read by programs.",
)
LEGACY = _rule(
    "BAI025", "info", "legacy label has no effect",
    "Remove the label; current Backend.AI ignores it.",
    "Labels from before kernelspec 1 (`timeout`, `maxmem`, `maxcores`, `version`, `nvidia.enabled`, `port`) "
    "are stored but never read.",
)
MISSPELT = _rule(
    "BAI026", "warning", "misspelt label key",
    "Rename the key to the spelling the message gives.",
    "Unknown `ai.backend.*` keys are stored and silently ignored, so a key spelt with `_` instead of `-`, "
    "without a hyphen or with a doubled dot (`ai.backend.service_ports`, `ai.backend.runtimetype`) "
    "simply does not take effect.",
)
OWNED = _rule(
    "BAI027", "warning", "label is owned by upstream",
    "Remove the label from the image; the manager or agent sets it itself.",
    "Some `ai.backend.*` labels are written by the manager (on commit) or the agent (on containers). "
    "Set on an image they change its meaning: `customized-image.owner` turns it into a user's private "
    "committed image, and a value without `:` breaks ownership checks.",
)
RUNTIME_NEEDS_KRUNNER = rule(
    "BAI030", "error", "runtime-type runs with krunner only",
    "Use `python` or `app` (or a `vendor.*` type) for images that must run on a stock installation, or deploy "
    "krunner to the agents (`bai-imagekit krunner package`) and validate with `--runner krunner`.",
    description="The stock runner accepts only `app`, `python` and `vendor.*` since Backend.AI 25.19.0 (upstream "
    "#7358 removed the c, cpp, golang, haskell, julia, lua, nodejs, octave, php, r, rust and scheme REPLs) and "
    "exits at once on any other runtime-type, so no session of the image starts. krunner still has them.",
    subject=SUBJECT, runner_dependent=True, matches="Backend.AI 25.19.0 and later (26.x)",
)
UNKNOWN = _rule(
    "BAI028", "warning", "unknown ai.backend label",
    "Fix the key (see the suggestion) or remove it; see docs/labels.md for the catalogue.",
    "Any `ai.backend.*` key outside the catalogue is stored and ignored, so a typo goes unnoticed "
    "(`ai.backend.envs.corecounest` leaves the core-count variables unset).",
)
SHMEM_BAD = _rule(
    "BAI029", "warning", "preferred shmem is not a finite memory size",
    "Write a finite size with a unit, e.g. `ai.backend.resource.preferred.shmem=\"1g\"`.",
    "An invalid or infinite `resource.preferred.shmem` is silently replaced by the manager's default of 64m.",
)

#: the manager's reading of ``ai.backend.accelerators`` (26.x)
MATCHES_ACCELERATORS = (
    "Backend.AI 26.x managers (`*` = any accelerator, upstream #13317; merged with the slot families of "
    "`resource.min.*` and `resource.max.*`; an empty list means `*`)."
)
DISTRO_PROBED = _rule(
    "BAI031", "info", "base-distro is left to the agent's probe",
    "Nothing to do if the agent can detect the C library; validate the built image (`bai-imagekit validate "
    "IMAGE`) to see what it concludes (BAI314), or set `ai.backend.base-distro` to skip the probe.",
    "`ai.backend.base-distro` is optional: when it is missing or empty, the agent probes the image once (cached "
    "per image) by running `ldd --version`, then `libc.so.6` itself, then the musl loader, in throw-away "
    "containers, and maps the glibc version to one of its artifact distros (musl: `alpine3.8`). Only the image's "
    "files tell whether that succeeds, so a Dockerfile or a label dump gets this note and an image gets BAI314 or "
    "BAI306 instead.",
    matches=MATCHES_DISTRO_PROBE,
)
ACCEL_SYNTAX = _rule(
    "BAI032", "warning", "accelerators item is not a plain family name",
    "List lowercase families separated by single commas with no blanks, e.g. `cuda` or `cuda,rocm`, or write `*`.",
    "`ai.backend.accelerators` is split on commas and nothing else: blanks stay part of an item, and an empty "
    "item or a slot name such as `cuda.device` names no family, so the accelerator the author meant is not "
    "listed (`CUDA`, ` rocm` and `cuda.device` never match the `cuda`/`rocm` slot families).",
    matches=MATCHES_ACCELERATORS,
)
ACCEL_UNKNOWN = _rule(
    "BAI033", "warning", "unknown accelerator family",
    "Use a family of a known resource slot (cuda, rocm, tpu, ipu, atom, gaudi, warboy, rngd, …), or `*`.",
    "The manager compares the families with the slot families of a session's request; a family no accelerator "
    "plugin provides (`nvidia`, `gpu`) matches nothing, so the image is not offered for the accelerator meant. "
    "Families of third-party plugins are fine when the image also sets one of their `resource.min.*` slots.",
    matches=MATCHES_ACCELERATORS,
)
ACCEL_ANY = _rule(
    "BAI034", "info", "accelerators value is empty or redundant",
    "Write `*` alone to allow every accelerator, or list the families the image supports.",
    "`*` means any accelerator (upstream #13317), and an empty list means `*`: `ai.backend.accelerators=\"\"` "
    "allows every accelerator rather than none, and other items next to `*` change nothing.",
    matches=MATCHES_ACCELERATORS,
)
ACCEL_MERGED = _rule(
    "BAI035", "warning", "resource slot family is missing from accelerators",
    "Add the family to `ai.backend.accelerators` (or drop the resource label if the image does not use it).",
    "The manager merges the families of every `resource.min.*` and `resource.max.*` slot into the accelerator "
    "list, so `accelerators=\"rocm\"` with `resource.min.cuda.device` supports cuda as well, and a "
    "`resource.max.*` label (no limit otherwise, BAI010) still adds its family. The label then does not say "
    "what the image supports.",
    matches=MATCHES_ACCELERATORS,
)
OWNER_BAD = _rule(
    "BAI036", "error", "customized-image.owner is not user:UUID or project:UUID",
    "Remove the label (the manager sets it when a session is committed), or write `user:<uuid>` / "
    "`project:<uuid>`.",
    "The manager writes `ai.backend.customized-image.owner` as `user:<user uuid>` or `project:<project uuid>` "
    "and reads it back as one of those two scopes to decide who may see and use a customized image; any other "
    "value names no owner, so the image's ownership checks fail.",
    matches="Backend.AI 26.x managers (customized images: `user:` and `project:` owner scopes).",
)

EXAMPLES: dict[str, str] = {
    "BAI001": "(no kernelspec) → `ai.backend.kernelspec=\"1\"`",
    "BAI002": "(no resource.min.mem) → `ai.backend.resource.min.mem=\"1g\"`",
    "BAI003": "`ai.backend.kernelspec=\"2\"` → `\"1\"`",
    "BAI004": "`ai.backend.kernelspec=\"01\"` → `\"1\"`",
    "BAI005": "`ai.backend.resource.min.mem=\"512b\"` → `\"512m\"`",
    "BAI006": "`ai.backend.resource.min.mem=\"64\"` → `\"64m\"`",
    "BAI007": "`ai.backend.resource.min.cpu=\"one\"` → `\"1\"`",
    "BAI008": "`ai.backend.resource.min.cuda.devices` → `ai.backend.resource.min.cuda.device`",
    "BAI009": "`ai.backend.resource.min=\"1\"` → `ai.backend.resource.min.cpu=\"1\"`",
    "BAI010": "`ai.backend.resource.max.mem=\"16g\"` → (remove)",
    "BAI011": "`\"batch  uid-match \"` → `\"batch uid-match\"`",
    "BAI012": "`\"batch uid_match\"` → `\"batch uid-match\"`",
    "BAI013": "`\"batch query\"` → `\"batch query uid-match\"`",
    "BAI014": "`\"Ubuntu 22.04\"` → `\"ubuntu22.04\"`",
    "BAI015": "`\"alpine3.18\"` → `\"ubuntu22.04\"` (rebuild on a glibc base)",
    "BAI016": "`ai.backend.runtime-type=\"pyhton\"` → `\"python\"`",
    "BAI017": "`\"golang\"` → `\"go\"`",
    "BAI030": "`ai.backend.runtime-type=\"nodejs\"` (stock target) → run the REPL from `app` + a service, or target krunner",
    "BAI018": "`ai.backend.runtime-path=\"python3\"` → `\"/usr/bin/python3\"`",
    "BAI019": "(runtime-type python, no runtime-path) → `ai.backend.runtime-path=\"/usr/bin/python3\"`",
    "BAI020": "`ai.backend.role=\"inference\"` → `\"INFERENCE\"`",
    "BAI021": "(INFERENCE without model-format) → `ai.backend.model-format=\"onnx\"`",
    "BAI022": "`ai.backend.endpoint-ports=\"api,\"` → `\"api\"`",
    "BAI023": "(role COMPUTE) `ai.backend.model-path=\"/models\"` → (remove)",
    "BAI024": "`\"OMP_NUM_THREADS,,NPROC\"` → `\"OMP_NUM_THREADS,NPROC\"`",
    "BAI025": "`ai.backend.maxmem=\"8g\"` → (remove)",
    "BAI026": "`ai.backend.service_ports` → `ai.backend.service-ports`",
    "BAI027": "`ai.backend.customized-image.owner=\"user:…\"` → (remove)",
    "BAI028": "`ai.backend.envs.corecounest` → `ai.backend.envs.corecount`",
    "BAI029": "`ai.backend.resource.preferred.shmem=\"inf\"` → `\"1g\"`",
    "BAI031": "(no base-distro) → validate the image: the agent detects `ubuntu22.04` from glibc 2.35",
    "BAI032": "`ai.backend.accelerators=\"cuda, rocm\"` → `\"cuda,rocm\"`",
    "BAI033": "`ai.backend.accelerators=\"nvidia\"` → `\"cuda\"`",
    "BAI034": "`ai.backend.accelerators=\"\"` → `\"*\"`",
    "BAI035": "`accelerators=\"rocm\"` + `resource.min.cuda.device=\"1\"` → `accelerators=\"rocm,cuda\"`",
    "BAI036": "`ai.backend.customized-image.owner=\"alice\"` → (remove)",
}


# ------------------------------------------------------------------------------ size grammar

_SIZE_ENDINGS = ("ibytes", "ibyte", "ib", "bytes", "byte", "b")
_SCALES = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60, "z": 70, "y": 80, " ": 0}
_SIZE_RECOMMENDED = re.compile(r"\s*(\d+|\d+(\.\d+)?\s?[kmgtpezyKMGTPEZY](i?b(ytes?)?|B|iB)?)\s*")


def parse_binary_size(raw: str) -> int | float:
    """Bytes for *raw* exactly as upstream's BinarySize reads it (spec §1.4); raises ValueError."""
    if raw.lower() in ("inf", "infinite", "infinity"):
        return math.inf
    text = raw.strip().replace("_", "")
    if "." in text:
        try:
            number = Decimal(text)
            if number.is_finite() and number == number.to_integral_value():
                text = str(int(number))
        except InvalidOperation:
            pass
    try:
        return int(text)
    except ValueError:
        pass
    lowered = text.lower()
    ending = next((e for e in _SIZE_ENDINGS if lowered.endswith(e)), "")
    lowered = lowered[: len(lowered) - len(ending)]
    if not lowered:
        raise ValueError("no number")
    scale = lowered[-1]
    if scale.isdigit():
        if ending:
            raise ValueError(f"{ending!r} right after a digit is not a unit (the digit is read as the unit letter)")
        raise ValueError("fractional bytes")
    if scale not in _SCALES:
        raise ValueError(f"unknown unit letter {scale!r}")
    try:
        mantissa = Decimal(lowered[:-1])
    except InvalidOperation:
        raise ValueError(f"{lowered[:-1]!r} is not a number") from None
    if not mantissa.is_finite():
        raise ValueError("not a finite number")
    return int(mantissa * (1 << _SCALES[scale]))


# ------------------------------------------------------------------------------ helpers


def _suggest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    best = _suggest(word, choices)
    return f"; did you mean {best!r}?" if best else ""


class _Ctx:
    def __init__(self, inputs: KernelInputs) -> None:
        self.inputs = inputs
        self.labels = inputs.labels
        self.out: list[Finding] = []

    def add(self, r: Rule, message: str, label: str, *, at: str | None = None) -> None:
        self.out.append(r.finding(message, location=self.inputs.location_of(at or label), label=label))


# ------------------------------------------------------------------------------ value checks


def _kernelspec(c: _Ctx, key: str, value: str) -> None:
    try:
        number = int(value)
    except ValueError:
        c.add(KERNELSPEC_BAD, f"kernelspec {value!r} is not an integer; expected 1", key)
        return
    if number != 1:
        c.add(KERNELSPEC_BAD, f"kernelspec {value!r} is not supported; the only version is 1", key)
    elif value != "1":
        c.add(KERNELSPEC_FORM, f"kernelspec {value!r} should be written as '1'", key)


def _features(c: _Ctx, key: str, value: str) -> None:
    tokens = value.split(" ")
    if any(t == "" for t in tokens) or re.search(r"[^\S ]", value):
        c.add(FEATURES_GRAMMAR, f"features {value!r} must be tokens separated by exactly one space", key)
    for token in dict.fromkeys(t for t in value.split() if t):
        if token not in FEATURE_TOKENS:
            c.add(FEATURE_UNKNOWN, f"unknown features token {token!r}{_did_you_mean(token, FEATURE_TOKENS)}", key)
    if "uid-match" not in value.split():
        c.add(UID_MATCH, f"features {value!r} do not include uid-match; files will be owned by uid 9001", key)


def _base_distro(c: _Ctx, key: str, value: str) -> None:
    if value == "":
        return  # the agent treats an empty value as unset and probes (_presence reports it)
    m = re.fullmatch(r"([a-z-]+)(\d+(?:\.\d+)*)", value)
    if m is None:
        fixed = re.sub(r"\s+", "", value.lower())
        better = f"; did you mean {fixed!r}?" if re.fullmatch(r"(ubuntu|centos|alpine)\d+(\.\d+)*", fixed) else ""
        c.add(DISTRO_BAD, f"base-distro {value!r} is not FAMILYVERSION such as 'ubuntu22.04'{better}", key)
        return
    family = m.group(1)
    if family not in DISTRO_FAMILIES:
        c.add(DISTRO_BAD, f"base-distro family {family!r} is not one of {', '.join(DISTRO_FAMILIES)}", key)
    elif family == "alpine":
        c.add(DISTRO_MUSL, f"base-distro {value!r} is musl-based; upstream agents have no matching krunner", key)


def _runtime_type(c: _Ctx, key: str, value: str) -> None:
    language = lookup(value)
    stock = c.inputs.target_runner is RunnerTarget.STOCK
    if language is None:
        if value.startswith(STOCK_VENDOR_PREFIX):
            if not stock:
                c.add(RUNTIME_UNKNOWN, f"runtime-type {value!r} is not supported by krunner (an upstream vendor "
                      "runner; the stock runner provides it)", key)
            return
        c.add(
            RUNTIME_UNKNOWN,
            f"runtime-type {value!r} is not supported by krunner nor the stock runner"
            f"{_did_you_mean(value, BY_NAME)}",
            key,
        )
        return
    if not stock_runs(language.name):
        c.out.append(RUNTIME_NEEDS_KRUNNER.for_runner(
            c.inputs.target_runner,
            f"runtime-type {value!r} has a REPL in krunner only; the stock runner (Backend.AI ≥ 25.19) exits at "
            "once on it",
            location=c.inputs.location_of(key), label=key,
        ))
    if value != language.name:
        c.add(RUNTIME_SPELLING, f"runtime-type {value!r} is read as {language.name!r}; write {language.name!r}", key)


def _runtime_path(c: _Ctx, key: str, value: str) -> None:
    if not value.strip():
        c.add(RUNTIME_PATH_BAD, "runtime-path is empty; expected an absolute path", key)
    elif value != value.strip():
        c.add(RUNTIME_PATH_BAD, f"runtime-path {value!r} has leading or trailing blanks", key)
    elif not value.startswith("/"):
        c.add(RUNTIME_PATH_BAD, f"runtime-path {value!r} is not absolute; expected e.g. /usr/bin/{value.rsplit('/', 1)[-1]}", key)


def _role(c: _Ctx, key: str, value: str) -> None:
    if value in ROLES:
        return
    better = f"; did you mean {value.strip().upper()!r}?" if value.strip().upper() in ROLES else ""
    c.add(ROLE_BAD, f"role {value!r} is not one of {', '.join(ROLES)}{better}", key)


def _endpoint_ports(c: _Ctx, key: str, value: str) -> None:
    if value == "" or any(n.strip() == "" for n in value.split(",")):
        c.add(ENDPOINTS_GRAMMAR, f"endpoint-ports {value!r} has an empty name; expected names separated by commas", key)


def _corecount(c: _Ctx, key: str, value: str) -> None:
    names = value.split(",")
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
    if bad:
        shown = ", ".join(repr(n) for n in bad)
        c.add(CORECOUNT_BAD, f"envs.corecount {value!r} has items that are not variable names: {shown}", key)
    dups = sorted({n for n in names if names.count(n) > 1 and n})
    if dups:
        c.add(CORECOUNT_BAD, f"envs.corecount lists {', '.join(dups)} more than once", key)


def _shmem(c: _Ctx, key: str, value: str) -> None:
    try:
        size = parse_binary_size(value)
    except ValueError as exc:
        c.add(SHMEM_BAD, f"preferred shmem {value!r} is not a memory size ({exc}); upstream uses 64m instead", key)
        return
    if math.isinf(size):
        c.add(SHMEM_BAD, f"preferred shmem {value!r} is infinite; upstream uses 64m instead", key)
        return
    _size_style(c, key, value, size)


def _size_style(c: _Ctx, key: str, value: str, size: int) -> None:
    if 0 < size < MIB:
        better = f" (did you mean '{value.strip()}m'?)" if value.strip().isdigit() else ""
        c.add(SIZE_STYLE, f"{key.removeprefix(P)} {value!r} is only {size} bytes{better}", key)
    elif not _SIZE_RECOMMENDED.fullmatch(value):
        c.add(SIZE_STYLE, f"{key.removeprefix(P)} {value!r} is read as {size} bytes; write it like '256m' or '1g'", key)


def _resource(c: _Ctx, key: str, value: str) -> None:
    kind, _, slot = key.removeprefix(P + "resource.").partition(".")
    if not slot:
        c.add(SLOT_MISSING, f"{key!r} names no slot; expected e.g. {key.rstrip('.')}.cpu", key)
        return
    if kind == "max":
        c.add(MAX_UNUSED, f"{key!r} is never applied as a limit by upstream", key)
        return
    if slot not in SLOTS:
        c.add(SLOT_UNKNOWN, f"resource slot {slot!r} is not a known slot{_did_you_mean(slot, SLOTS)}", key)
        return
    if slot in BYTE_SLOTS:
        try:
            size = parse_binary_size(value)
        except ValueError as exc:
            c.add(MEM_BAD, f"{key.removeprefix(P)} {value!r} is not a memory size ({exc}); expected e.g. '256m' or '1g'", key)
            return
        if math.isinf(size):
            c.add(MEM_BAD, f"{key.removeprefix(P)} {value!r} is infinite; no session could satisfy it", key)
        elif size < 0:
            c.add(MEM_BAD, f"{key.removeprefix(P)} {value!r} is negative", key)
        else:
            _size_style(c, key, value, size)
    elif not re.fullmatch(r"\d+(\.\d+)?", value):
        c.add(COUNT_BAD, f"{key.removeprefix(P)} {value!r} is not a non-negative decimal such as '1' or '0.5'", key)


def slot_families(label_map: dict[str, str]) -> dict[str, str]:
    """Accelerator families the manager merges into ``ai.backend.accelerators``: the fifth dot-component of
    every ``resource.min.*`` / ``resource.max.*`` key (cpu and mem aside), each with the key that names it
    (a ``min`` key in preference to a ``max`` key)."""
    out: dict[str, str] = {}
    for key in sorted(label_map, key=lambda k: (not k.startswith(RES_MIN + "."), k)):
        if key.startswith((RES_MIN + ".", RES_MAX + ".")):
            parts = key.split(".")
            if len(parts) > 4 and parts[4] and parts[4] not in INTRINSIC_SLOTS:
                out.setdefault(parts[4], key)
    return out


def _accelerators(c: _Ctx, key: str, value: str) -> None:
    families = slot_families(c.labels)
    if value == "":
        if families:
            c.add(ACCEL_ANY, f"accelerators is empty, so the image's accelerators are just the families of its "
                  f"resource slots ({', '.join(families)}); list them or write '*'", key)
        else:
            c.add(ACCEL_ANY, "accelerators is empty, which upstream reads as '*' (any accelerator), not as none; "
                  "write '*' or list the families", key)
        return
    items = list(dict.fromkeys(value.split(",")))
    if ACCEL_ANY_ITEM in items:
        others = [i for i in items if i != ACCEL_ANY_ITEM]
        if others:
            c.add(ACCEL_ANY, f"accelerators {value!r}: '*' already allows any accelerator, so the other items "
                  f"({', '.join(repr(i) for i in others)}) change nothing; write '*'", key)
        return
    known = set(ACCEL_FAMILIES) | set(families)
    for item in items:
        if item == "":
            c.add(ACCEL_SYNTAX, f"accelerators {value!r} has an empty item; separate families with single commas", key)
        elif not _FAMILY.fullmatch(item):
            guess = item.strip().lower().split(".")[0]
            better = f"; did you mean {guess!r}?" if _FAMILY.fullmatch(guess) else ""
            c.add(ACCEL_SYNTAX, f"accelerators item {item!r} is not a lowercase family name and matches no slot "
                  f"family{better}", key)
        elif item not in known:
            c.add(ACCEL_UNKNOWN, f"accelerator family {item!r} is not provided by any known slot"
                  f"{_did_you_mean(item, known)}", key)
    listed = {i.strip().lower() for i in items}
    for family, rkey in families.items():
        if family in listed:
            continue
        merged = ",".join([*(i for i in items if i), family])
        if rkey.startswith(RES_MAX + "."):
            why = f"{rkey!r} is no limit (BAI010), yet the manager adds its family {family!r} to the accelerators"
        else:
            why = f"{rkey!r} makes the manager add {family!r} to the accelerators"
        c.add(ACCEL_MERGED, f"{why}: the image supports {merged!r}, not {value!r}", rkey)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _owner(c: _Ctx, key: str, value: str) -> None:
    _key(c, key)  # upstream-owned (BAI027), whatever the value
    scope, sep, ident = value.partition(":")
    if not sep:
        problem = "has no scope (expected 'user:' or 'project:')"
    elif scope not in OWNER_SCOPES:
        problem = f"has the scope {scope!r} (expected 'user' or 'project')"
    elif not _UUID.fullmatch(ident):
        problem = f"names {ident!r}, which is not a UUID"
    else:
        return
    c.add(OWNER_BAD, f"customized-image.owner {value!r} {problem}; the manager cannot tell who owns the image", key)


_VALUE_CHECKS: dict[str, Callable[[_Ctx, str, str], None]] = {
    KERNELSPEC: _kernelspec,
    FEATURES: _features,
    BASE_DISTRO: _base_distro,
    RUNTIME_TYPE: _runtime_type,
    RUNTIME_PATH: _runtime_path,
    ROLE: _role,
    ENDPOINT_PORTS: _endpoint_ports,
    CORECOUNT: _corecount,
    SHMEM: _shmem,
    ACCELERATORS: _accelerators,
    CUSTOMIZED_OWNER: _owner,
}


# ------------------------------------------------------------------------------ key checks


def _is_resource_key(key: str) -> bool:
    return key in (RES_MIN, RES_MAX) or key.startswith((RES_MIN + ".", RES_MAX + "."))


def _squash(key: str) -> str:
    return re.sub(r"[-_.]+", "", key.lower())


_KNOWN_FOR_SPELLING = KNOWN_KEYS + LEGACY_KEYS + tuple(RES_MIN + "." + s for s in SLOTS)
_SQUASHED = {_squash(k): k for k in _KNOWN_FOR_SPELLING}


def _key(c: _Ctx, key: str) -> None:
    if key in KNOWN_KEYS or _is_resource_key(key):
        return
    if key in LEGACY_KEYS:
        c.add(LEGACY, f"{key!r} is a legacy label with no effect", key)
    elif key in UPSTREAM_OWNED:
        c.add(OWNED, f"{key!r} is set by upstream, not by image authors", key)
    elif _squash(key) in _SQUASHED:
        intended = _SQUASHED[_squash(key)]
        what = " (itself a legacy label with no effect)" if intended in LEGACY_KEYS else ""
        c.add(MISSPELT, f"{key!r} is ignored; it looks like a misspelling of {intended!r}{what}", key)
    else:
        # compare without the common prefix, which would make every key look "close"
        best = _suggest(key[len(P):], [k[len(P):] for k in _KNOWN_FOR_SPELLING])
        better = f"; did you mean {P + best!r}?" if best else ""
        c.add(UNKNOWN, f"unknown label {key!r}{better}", key)


def _presence(c: _Ctx) -> None:
    labels = c.labels
    for key in REQUIRED:
        if key not in labels:
            c.add(REQUIRED_MISSING, f"required label {key!r} is missing", key)
    for key in RECOMMENDED:
        if key not in labels:
            c.add(RECOMMENDED_MISSING, f"recommended label {key!r} is missing", key)
    if labels.get(BASE_DISTRO, "") == "" and c.inputs.image_fs is None:  # with image files: BAI314/BAI306
        what = "is empty, which the agent treats as unset" if BASE_DISTRO in labels else "is not set"
        c.add(DISTRO_PROBED, f"base-distro {what}: the agent probes the image's C library (ldd --version, then "
              "libc.so.6, then the musl loader); validate the built image to see what it concludes", BASE_DISTRO)
    runtime = lookup(labels.get(RUNTIME_TYPE, "app"))
    if runtime is not None and runtime.name == "python" and RUNTIME_PATH not in labels:
        c.add(RUNTIME_PATH_MISSING, "runtime-type is python but runtime-path is not set", RUNTIME_PATH, at=RUNTIME_TYPE)
    if labels.get(ROLE) == "INFERENCE":
        for key in INFERENCE_REQUIRED:
            if key not in labels:
                c.add(INFERENCE_MISSING, f"role is INFERENCE but {key!r} is missing", key, at=ROLE)
    else:
        for key in INFERENCE_REQUIRED:
            if key in labels:
                c.add(INFERENCE_ONLY, f"{key!r} is ignored because role is not INFERENCE", key)


#: labels imagekit itself puts on images and containers (build cache keys, harness marks)


def check(inputs: KernelInputs) -> list[Finding]:
    c = _Ctx(inputs)
    _presence(c)
    for key, value in inputs.labels.items():
        if not key.lower().startswith(P) or key.startswith(IMAGEKIT_PREFIX):
            continue
        if key in _VALUE_CHECKS:
            _VALUE_CHECKS[key](c, key, value)
        elif _is_resource_key(key):
            _resource(c, key, value)
        else:
            _key(c, key)
    return c.out
