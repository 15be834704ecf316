"""``bai-imagekit build``: the author's Dockerfile, then the kernel layer, validated before tagging.

Steps (:func:`run_build`):

1. :func:`make_plan` reads the kernel directory (``kernel.toml``, ``service-defs/``,
   ``policy.yml``) and the flags into a :class:`BuildPlan`: final labels, the def files and
   the policy to copy, and the generated kernel-layer Dockerfile (jinja2 template
   ``templates/kernel-layer.Dockerfile.j2``). :func:`plan_inputs` turns it into
   :class:`~imagekit.kernel_inputs.KernelInputs` for a first validation.
2. The author's Dockerfile is built untagged: through the Docker SDK, or, with a CA bundle,
   through a BuildKit-capable docker CLI with the CA as a build secret (:func:`rewrite_for_ca`).
3. The kernel layer is built ``FROM`` that image id (the last build step, so the author's
   layers stay cached), the result is validated as an image, and only a clean image is tagged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from krunner.contract import JAIL_POLICY_PATH as POLICY_PATH
from krunner.contract import SERVICE_DEFS_DIR, SERVICE_PORTS_LABEL

from . import dockerfile
from .console import progress
from .errors import EnvironmentProblem, UsageError
from .findings import Finding, Location, Severity
from .kernel_inputs import KernelInputs, ServiceDefSource
from .kernelspec import (
    LIBRARY_PORTS,
    SPEC_FILENAME,
    LoadedSpec,
    library_dir,
    library_names,
    load_spec,
)
from .runner_target import RunnerTarget

CA_SECRET_ID = "bai-ca"
CA_TARGET = "/run/secrets/bai-ca.pem"
CA_MOUNT = f"--mount=type=secret,id={CA_SECRET_ID},target={CA_TARGET},mode=0444"
#: build args (never persisted in the image's Env) that point download tools at the CA during RUN
CA_ARGS = ("PIP_CERT", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "GIT_SSL_CAINFO")
CA_ENV = "BAI_IMAGEKIT_CA_BUNDLE"
CLI_ENV = "BAI_IMAGEKIT_DOCKER_CLI"
COMMAND_LINE = Location(file="<command line>")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

Log = Callable[[str], None]


# --------------------------------------------------------------------------- options and plan


@dataclass
class BuildOptions:
    path: Path = Path(".")  # kernel dir or Dockerfile
    dockerfile: Path | None = None  # -f, relative to the kernel dir
    spec: Path | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # --label and the shortcut flags
    services: dict[str, int | None] = field(default_factory=dict)  # --service NAME[=PORT] (library)
    policy: Path | None = None
    no_policy: bool = False
    platform: str | None = None
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    ca_bundle: Path | None = None
    allow_errors: bool = False
    runner: RunnerTarget | None = None  # --runner; None: kernel.toml's `runner`, else stock


@dataclass
class BuildPlan:
    options: BuildOptions
    kernel_dir: Path
    dockerfile: Path
    spec: LoadedSpec | None
    labels: dict[str, str]  # set by the kernel layer
    label_locations: dict[str, Location]
    merge_service_ports: bool  # --service entries are added to the Dockerfile's own label
    service_defs: dict[str, Path]  # name -> host file, sorted by name
    policy_text: str | None
    policy_source: str  # "default", a path, or "none"
    kernel_layer: str  # the generated Dockerfile

    def describe(self) -> list[str]:
        o = self.options
        out = [
            f"dockerfile: {self.dockerfile}",
            f"context: {self.kernel_dir}",
            f"spec: {self.spec.path if self.spec else 'none'}",
            "service-defs: " + (", ".join(f"{n} ({p})" for n, p in self.service_defs.items()) or "none"),
            f"jail policy: {self.policy_source}",
            f"tags: {', '.join(o.tags) or 'none (image id only)'}",
        ]
        if o.ca_bundle:
            out.append(f"ca-bundle: {o.ca_bundle} (BuildKit secret {CA_SECRET_ID}, not kept in the image)")
        return out


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from exc


def _locate(options: BuildOptions) -> tuple[Path, Path]:
    path = options.path
    if path.is_dir():
        kernel_dir = path
        dockerfile = path / (options.dockerfile or "Dockerfile")
    elif path.is_file():
        kernel_dir, dockerfile = path.parent, path
    else:
        raise UsageError(f"{path} is neither a kernel directory nor a Dockerfile")
    if not dockerfile.is_file():
        raise UsageError(f"no Dockerfile at {dockerfile}")
    return kernel_dir, dockerfile


def _collect_defs(kernel_dir: Path, spec: LoadedSpec | None, flagged: Iterable[str]) -> dict[str, Path]:
    defs: dict[str, Path] = {}

    def add(name: str, path: Path) -> None:
        old = defs.get(name)
        if old is not None and old.resolve() != path.resolve() and old.read_bytes() != path.read_bytes():
            raise UsageError(f"two different service-def files for {name!r}: {old} and {path}")
        defs[name] = path

    defs_dir = kernel_dir / "service-defs"
    if defs_dir.is_dir():
        for p in sorted(defs_dir.glob("*.json")):
            add(p.stem, p)
    for sel in spec.services if spec else ():
        if sel.def_path is not None:
            add(sel.name, sel.def_path)
    for name in flagged:
        lib = library_dir() / f"{name}.json"
        if not lib.is_file():
            raise UsageError(f"--service {name}: no such library service-def (known: {', '.join(library_names()) or 'none'})")
        add(name, lib)
    return dict(sorted(defs.items()))


def _default_policy_text() -> str:
    try:
        from .policy import default_policy, dump_policy
    except ImportError as exc:  # pragma: no cover - imagekit.policy ships with imagekit
        raise EnvironmentProblem(f"the default jail policy is unavailable ({exc}); pass --policy FILE") from exc
    return dump_policy(default_policy())


def _policy(options: BuildOptions, kernel_dir: Path, spec: LoadedSpec | None) -> tuple[str | None, str, Location | None]:
    if options.no_policy:
        return None, "none", None
    if options.policy is not None:
        return _read(options.policy, "policy file"), str(options.policy), Location(file=_display(options.policy))
    if spec is not None and spec.spec.policy is not None:
        choice = spec.policy
        if choice.kind == "none":
            return None, "none", None
        if choice.kind == "file" and choice.path is not None:
            return _read(choice.path, "policy file"), str(choice.path), Location(file=_display(choice.path))
        return _default_policy_text(), "default", None
    if (kernel_dir / "policy.yml").is_file():
        p = kernel_dir / "policy.yml"
        return _read(p, "policy file"), str(p), Location(file=_display(p))
    return _default_policy_text(), "default", None


def _service_entries(options: BuildOptions) -> list[str]:
    entries = []
    for name, port in options.services.items():
        port = port or LIBRARY_PORTS.get(name)
        if port is None:
            raise UsageError(f"--service {name}: give a port as {name}=PORT")
        entries.append(f"{name}:http:{port}")
    return entries


def merge_service_ports(existing: str | None, entries: list[str]) -> str:
    """*existing* label entries whose names are not in *entries*, then *entries*."""
    names = {e.split(":", 1)[0] for e in entries}
    kept = [e for e in (existing or "").split(",") if e and e.split(":", 1)[0] not in names]
    return ",".join(kept + entries)


def make_plan(options: BuildOptions) -> BuildPlan:
    """Everything the build will add, computed without Docker (``--dry-run`` prints it)."""
    kernel_dir, dockerfile = _locate(options)
    spec_path = options.spec or (kernel_dir / SPEC_FILENAME)
    if options.spec is not None and not spec_path.is_file():
        raise UsageError(f"kernel spec {spec_path} does not exist")
    spec = load_spec(spec_path, _display(spec_path)) if spec_path.is_file() else None
    labels = dict(spec.labels) if spec else {}
    locations = dict(spec.label_locations) if spec else {}
    for key, value in options.labels.items():
        labels[key] = value
        locations[key] = COMMAND_LINE
    entries = _service_entries(options)
    merge = False
    if entries:
        key = SERVICE_PORTS_LABEL
        if key in labels:
            labels[key] = merge_service_ports(labels[key], entries)
        else:
            labels[key], merge = ",".join(entries), True
            locations[key] = COMMAND_LINE
    for key in labels:
        if not _LABEL_KEY.match(key):
            raise UsageError(f"label key {key!r} may only contain letters, digits, '.', '-', '_' and '/'")
    defs = _collect_defs(kernel_dir, spec, options.services)
    policy_text, policy_source, _ = _policy(options, kernel_dir, spec)
    plan = BuildPlan(options, kernel_dir, dockerfile, spec, labels, locations, merge, defs, policy_text, policy_source, "")
    plan.kernel_layer = render_kernel_layer(plan.labels, list(defs), policy_text is not None)
    return plan


# --------------------------------------------------------------------------- kernel layer


def _label_value(value: str) -> str:
    # a JSON string is a valid Dockerfile double-quoted word; '$' would start a variable
    return json.dumps(value, ensure_ascii=False).replace("$", "\\$")


def render_kernel_layer(labels: dict[str, str], service_defs: list[str], policy: bool) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("imagekit", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template("kernel-layer.Dockerfile.j2").render(
        service_defs=sorted(service_defs),
        service_defs_dir=SERVICE_DEFS_DIR + "/",
        policy=policy,
        policy_path=POLICY_PATH,
        labels=[(k, _label_value(v)) for k, v in sorted(labels.items())],
    )


def write_kernel_context(plan: BuildPlan, dest: Path, labels: dict[str, str] | None = None) -> None:
    """The kernel layer's build context: Dockerfile, ``service-defs/NAME.json``, ``policy.yml``."""
    labels = plan.labels if labels is None else labels
    (dest / "service-defs").mkdir(parents=True, exist_ok=True)
    for name, src in plan.service_defs.items():
        target = dest / "service-defs" / f"{name}.json"
        shutil.copyfile(src, target)
        target.chmod(0o644)
    if plan.policy_text is not None:
        (dest / "policy.yml").write_text(plan.policy_text, encoding="utf-8")
        (dest / "policy.yml").chmod(0o644)
    text = render_kernel_layer(labels, list(plan.service_defs), plan.policy_text is not None)
    (dest / "Dockerfile").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- validation inputs


def _authored(plan: BuildPlan):
    """The author's Dockerfile as a validation target: its own labels (with lines), COPYs, suppressions."""
    from .targets import load_dockerfile

    return load_dockerfile(plan.dockerfile, _display(plan.dockerfile))


def _defs(plan: BuildPlan) -> dict[str, ServiceDefSource]:
    defs = {}
    for name, path in plan.service_defs.items():
        loc = Location(file=_display(path))
        try:
            defs[name] = ServiceDefSource(name, loc, path.read_text(encoding="utf-8"), host_path=path)
        except (OSError, UnicodeDecodeError) as exc:
            defs[name] = ServiceDefSource(name, loc, None, error=str(exc), host_path=path)
    return defs


def plan_target(plan: BuildPlan):
    """What the image will declare, as far as it is known before building (a ``LoadedTarget``)."""
    from .targets import LoadedTarget

    authored = _authored(plan)
    inputs = authored.inputs
    if plan.merge_service_ports and SERVICE_PORTS_LABEL in inputs.labels:
        entries = plan.labels[SERVICE_PORTS_LABEL].split(",")
        labels = {**plan.labels, SERVICE_PORTS_LABEL: merge_service_ports(inputs.labels[SERVICE_PORTS_LABEL], entries)}
    else:
        labels = plan.labels
    inputs.labels.update(labels)
    inputs.label_locations.update(plan.label_locations)
    inputs.runner = plan.options.runner
    inputs.target = str(plan.options.path)
    if plan.spec is not None:
        inputs.default_location = Location(file=_display(plan.spec.path))
    inputs.service_defs = {**(inputs.service_defs or {}), **_defs(plan)}
    if plan.policy_text is not None:
        inputs.policy_text = plan.policy_text
        inputs.policy_location = _policy(plan.options, plan.kernel_dir, plan.spec)[2] or Location(file=POLICY_PATH)
    return LoadedTarget("kernel-dir", inputs, authored.frontend)


def plan_inputs(plan: BuildPlan) -> KernelInputs:
    return plan_target(plan).inputs


def prebuild_findings(plan: BuildPlan) -> list[Finding]:
    """Findings before building, minus "label missing" ones: the base image may still provide those."""
    target = plan_target(plan)
    return [f for f in target.findings() if not (f.label and f.label not in target.inputs.labels)]


def _relocate(inputs: KernelInputs, plan: BuildPlan) -> None:
    """Point findings on the built image back at the files that produced it (spec, Dockerfile, defs)."""
    authored = _authored(plan).inputs
    inputs.default_location = Location(file=_display(plan.spec.path if plan.spec else plan.dockerfile))
    for labels, locations in ((authored.labels, authored.label_locations), (plan.labels, plan.label_locations)):
        for key, loc in locations.items():  # the kernel layer's labels win over the Dockerfile's
            if inputs.labels.get(key) == labels.get(key) and loc != COMMAND_LINE:
                inputs.label_locations[key] = loc
    for name, source in _defs(plan).items():
        if inputs.service_defs and name in inputs.service_defs and inputs.service_defs[name].text == source.text:
            inputs.service_defs[name] = dataclasses.replace(inputs.service_defs[name], location=source.location)
    policy_loc = _policy(plan.options, plan.kernel_dir, plan.spec)[2]
    if policy_loc is not None and inputs.policy_text == plan.policy_text:
        inputs.policy_location = policy_loc


def verify_image(client, image_id: str, plan: BuildPlan) -> tuple[dict[str, str], list[Finding]]:
    """Validate the built image (labels and contents); returns its labels and the findings."""
    from .imagefs import open_image_fs
    from .targets import LoadedTarget, inputs_from_image

    with open_image_fs(client, image_id) as fs:
        inputs = inputs_from_image(client, image_id, fs)
        inputs.runner = plan.options.runner
        _relocate(inputs, plan)
        return dict(inputs.labels), LoadedTarget("image", inputs).findings()


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


# --------------------------------------------------------------------------- CA bundle


def resolve_ca_bundle(value: str | None, environ: dict[str, str] | None = None) -> Path | None:
    """``--ca-bundle`` value (or ``$BAI_IMAGEKIT_CA_BUNDLE``) to a readable file; ``auto`` = the host's."""
    env = os.environ if environ is None else environ
    value = value if value is not None else env.get(CA_ENV) or None
    if value is None or value == "none":
        return None
    if value == "auto":
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            if env.get(name):
                value = env[name]
                break
        else:
            raise UsageError("--ca-bundle auto: neither $SSL_CERT_FILE nor $REQUESTS_CA_BUNDLE is set")
    path = Path(value)
    if not path.is_file() or path.stat().st_size == 0:
        raise UsageError(f"CA bundle {path} is not a readable, non-empty file")
    return path.resolve()


def rewrite_for_ca(text: str) -> str:
    """The Dockerfile with the CA secret mounted in every ``RUN`` and the CA build args in every stage.

    The instructions are those :func:`imagekit.dockerfile.parse` reads (the one Dockerfile reader:
    directives, continuations, comments and heredocs as BuildKit takes them); the text is edited
    in place at their spans, so everything else is kept byte for byte. ``ONBUILD`` triggers are
    left as they are (they run in other builds); a ``RUN`` that already mounts ``id=bai-ca`` is
    not touched.
    """
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text[len(bom) :]
    lines = dockerfile.source_lines(text)
    usual = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    for ins in reversed(dockerfile.parse(text).instructions):  # from the end: earlier spans stay put
        if ins.keyword == "FROM":
            last = lines[ins.end_line - 1]
            ending = "\r\n" if last.endswith("\r\n") else "\n" if last.endswith("\n") else usual
            if not last.endswith("\n"):
                lines[ins.end_line - 1] = last + ending
            lines[ins.end_line : ins.end_line] = [f"ARG {name}={CA_TARGET}{ending}" for name in CA_ARGS]
        elif ins.keyword == "RUN" and f"id={CA_SECRET_ID}" not in ins.args:
            line, column = ins.keyword_end
            raw = lines[line - 1]
            lines[line - 1] = f"{raw[:column]} {CA_MOUNT}{raw[column:]}"
    return bom + "".join(lines)


def _cli_ok(cli: str) -> bool:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    try:
        help_out = subprocess.run([cli, "build", "--help"], env=env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if help_out.returncode != 0 or "--secret" not in help_out.stdout:
        return False
    try:
        version = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"], env=env, capture_output=True, text=True, timeout=30
        ).stdout.strip()
        major = int(version.split(".")[0])
    except (OSError, subprocess.TimeoutExpired, ValueError):
        major = 99
    if major < 23:  # BuildKit is built into the 20.10/22.x CLI
        return True
    buildx = subprocess.run([cli, "buildx", "version"], env=env, capture_output=True, text=True, timeout=30)
    return buildx.returncode == 0


def find_buildkit_cli() -> str:
    """A docker CLI that can run ``build --secret`` (``$BAI_IMAGEKIT_DOCKER_CLI``, /usr/bin/docker, PATH)."""
    candidates = [os.environ.get(CLI_ENV), "/usr/bin/docker", shutil.which("docker")]
    tried = []
    for cli in dict.fromkeys(c for c in candidates if c):
        if Path(cli).is_file() and os.access(cli, os.X_OK):
            tried.append(cli)
            if _cli_ok(cli):
                return cli
    raise EnvironmentProblem(
        "--ca-bundle needs a docker CLI with BuildKit build secrets (`docker build --secret`); "
        + (f"none of {', '.join(tried)} has one" if tried else "no docker CLI was found")
        + f". Install docker-buildx (or a 20.10 CLI) or point ${CLI_ENV} at one."
    )


# --------------------------------------------------------------------------- building


class BuildFailed(Exception):
    """A build step failed; the message has the tail of its output."""


def _tail(lines: list[str], n: int = 30) -> str:
    return "\n".join(f"    {line}" for line in lines[-n:])


def sdk_build(client, *, context: Path, dockerfile: Path | str, buildargs: dict[str, str], log: Log,
              platform: str | None = None, nocache: bool = False, pull: bool = False, target: str | None = None) -> str:
    """Build with the Docker SDK (classic builder), streaming progress; returns the image id."""
    from docker.errors import APIError, DockerException

    seen: list[str] = []
    image_id = None
    pending = ""
    try:
        stream = client.api.build(
            path=str(context), dockerfile=str(dockerfile), buildargs=buildargs, platform=platform, nocache=nocache,
            pull=pull, target=target, rm=True, forcerm=True, decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                pending += str(chunk["stream"])
                *done, pending = pending.split("\n")
                for line in filter(str.strip, done):
                    seen.append(line.rstrip())
                    log(line.rstrip())
            elif chunk.get("status"):
                log(str(chunk["status"]))
            if isinstance(chunk.get("aux"), dict) and "ID" in chunk["aux"]:
                image_id = str(chunk["aux"]["ID"])
            if "error" in chunk or "errorDetail" in chunk:
                msg = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
                raise BuildFailed(f"{str(msg).strip()}\n{_tail(seen)}")
    except (APIError, DockerException) as exc:
        raise BuildFailed(f"{exc}\n{_tail(seen)}") from exc
    if image_id is None:
        m = next((re.search(r"Successfully built ([0-9a-f]+)", s) for s in reversed(seen) if "Successfully built" in s), None)
        if not m:
            raise BuildFailed(f"the build did not report an image id\n{_tail(seen)}")
        image_id = client.images.get(m.group(1)).id
    return image_id


def cli_build(cli: str, *, context: Path, dockerfile: Path, buildargs: dict[str, str], ca_bundle: Path, log: Log,
              platform: str | None = None, nocache: bool = False, pull: bool = False, target: str | None = None) -> str:
    """Build with ``DOCKER_BUILDKIT=1 docker build --secret``, streaming ``--progress=plain``; returns the id."""
    with tempfile.TemporaryDirectory(prefix="bai-imagekit-cli.") as tmp:
        iidfile = Path(tmp) / "iid"
        cmd = [cli, "build", "--progress=plain", "--secret", f"id={CA_SECRET_ID},src={ca_bundle}",
               "-f", str(dockerfile), "--iidfile", str(iidfile)]
        for key, value in buildargs.items():
            cmd += ["--build-arg", f"{key}={value}"]
        cmd += (["--platform", platform] if platform else []) + (["--target", target] if target else [])
        cmd += (["--no-cache"] if nocache else []) + (["--pull"] if pull else []) + [str(context)]
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        seen: list[str] = []
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        except OSError as exc:
            raise EnvironmentProblem(f"cannot run {cli}: {exc}") from exc
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = _ANSI.sub("", raw.rstrip())
            if line:
                seen.append(line)
                log(line)
        if proc.wait() != 0 or not iidfile.is_file():
            raise BuildFailed(f"docker build exited with {proc.returncode}\n{_tail(seen)}")
        return iidfile.read_text().strip()


def build_author_image(client, plan: BuildPlan, log: Log) -> str:
    o = plan.options
    common = dict(context=plan.kernel_dir, buildargs=dict(o.build_args), log=log, platform=o.platform,
                  nocache=o.no_cache, pull=o.pull, target=o.target)
    if o.ca_bundle is None:
        return sdk_build(client, dockerfile=plan.dockerfile.resolve(), **common)
    cli = find_buildkit_cli()
    log(f"building with {cli} (BuildKit), CA bundle as secret {CA_SECRET_ID}")
    with tempfile.TemporaryDirectory(prefix="bai-imagekit-ca.") as tmp:
        rewritten = Path(tmp) / "Dockerfile"
        rewritten.write_text(rewrite_for_ca(_read(plan.dockerfile, "Dockerfile")), encoding="utf-8")
        return cli_build(cli, dockerfile=rewritten, ca_bundle=o.ca_bundle, **common)


def build_kernel_layer(client, plan: BuildPlan, base_id: str, log: Log) -> str:
    labels = dict(plan.labels)
    if plan.merge_service_ports:
        existing = (client.images.get(base_id).labels or {}).get(SERVICE_PORTS_LABEL)
        labels[SERVICE_PORTS_LABEL] = merge_service_ports(existing, labels[SERVICE_PORTS_LABEL].split(","))
    with tempfile.TemporaryDirectory(prefix="bai-imagekit-layer.") as tmp:
        write_kernel_context(plan, Path(tmp), labels)
        return sdk_build(client, context=Path(tmp), dockerfile="Dockerfile", buildargs={"BAI_AUTHOR_IMAGE": base_id},
                         log=log, platform=plan.options.platform)


@dataclass
class BuildResult:
    image_id: str | None
    tags: list[str]
    labels: dict[str, str]
    findings: list[Finding]
    tagged: bool
    stage: str  # "validate" (stopped before building), "build", "verify", "done"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.tagged or not self.tags) and self.stage == "done"

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "stage": self.stage,
            "image_id": self.image_id,
            "tags": self.tags if self.tagged else [],
            "requested_tags": self.tags,
            "labels": self.labels,
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "error": self.error,
        }


def connect():
    from .engine import connect as connect_engine

    return connect_engine()


def tag_image(client, image_id: str, tags: list[str]) -> None:
    from docker.utils import parse_repository_tag

    for ref in tags:
        repo, tag = parse_repository_tag(ref)
        client.api.tag(image_id, repo, tag or "latest")


def run_build(plan: BuildPlan, client, log: Log = progress) -> BuildResult:
    """Validate the plan, build both parts, validate the image, tag it if clean (or ``allow_errors``)."""
    o = plan.options
    findings = prebuild_findings(plan)
    if has_errors(findings) and not o.allow_errors:
        return BuildResult(None, o.tags, plan.labels, findings, False, "validate", "the inputs have errors; nothing was built")
    try:
        log(f"building {plan.dockerfile}")
        author_id = build_author_image(client, plan, log)
        log(f"author image {author_id}; adding the kernel layer")
        image_id = build_kernel_layer(client, plan, author_id, log)
    except BuildFailed as exc:
        return BuildResult(None, o.tags, plan.labels, findings, False, "build", f"build failed: {exc}")
    log(f"validating {image_id}")
    labels, image_findings = verify_image(client, image_id, plan)
    if has_errors(image_findings) and not o.allow_errors:
        return BuildResult(image_id, o.tags, labels, image_findings, False, "verify",
                           f"the built image has errors; left untagged as {image_id}")
    tag_image(client, image_id, o.tags)
    return BuildResult(image_id, o.tags, labels, image_findings, True, "done")
