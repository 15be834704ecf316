"""``bai-imagekit build`` without Docker: CA rewrite, kernel layer, plan, dry-run through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagekit import image_build
from imagekit.commands.init import scaffold
from imagekit.errors import EnvironmentProblem, UsageError
from imagekit.findings import Finding, Severity
from imagekit.image_build import (
    CA_ARGS,
    CA_MOUNT,
    BuildOptions,
    make_plan,
    merge_service_ports,
    render_kernel_layer,
    resolve_ca_bundle,
    rewrite_for_ca,
    run_build,
)

CLI = [sys.executable, "-m", "imagekit.cli"]
ARGS = [f"ARG {name}=/run/secrets/bai-ca.pem" for name in CA_ARGS]


def _runs(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.upper().startswith("RUN")]


# --------------------------------------------------------------------------- CA rewrite


def test_rewrite_multi_stage_adds_args_after_every_from_and_mounts_every_run():
    src = (
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE_IMAGE=debian:bookworm-slim\n"
        "FROM ${BASE_IMAGE} AS build\n"
        "RUN pip download six\n"
        "FROM ${BASE_IMAGE}\n"
        "COPY --from=build /x /x\n"
        "run curl -fsSO https://example.com/\n"
    )
    out = rewrite_for_ca(src).splitlines()
    assert out[0] == "# syntax=docker/dockerfile:1"  # parser directive stays first
    assert out[1] == "ARG BASE_IMAGE=debian:bookworm-slim"  # global ARG untouched, no CA args before FROM
    first, second = out.index("FROM ${BASE_IMAGE} AS build"), out.index("FROM ${BASE_IMAGE}")
    assert out[first + 1 : first + 1 + len(ARGS)] == ARGS
    assert out[second + 1 : second + 1 + len(ARGS)] == ARGS
    assert out[first + 1 + len(ARGS)] == f"RUN {CA_MOUNT} pip download six"
    assert out[-1] == f"run {CA_MOUNT} curl -fsSO https://example.com/"
    assert "ENV" not in rewrite_for_ca(src)  # nothing is persisted in the image config


def test_rewrite_exec_form_and_existing_mounts():
    src = (
        "FROM base\n"
        'RUN ["/bin/sh", "-c", "test -s $PIP_CERT"]\n'
        "RUN --mount=type=cache,target=/root/.cache pip install six\n"
        "RUN --mount=type=secret,id=bai-ca,target=/ca.pem true\n"
    )
    runs = _runs(rewrite_for_ca(src))
    assert runs[0] == f'RUN {CA_MOUNT} ["/bin/sh", "-c", "test -s $PIP_CERT"]'
    assert runs[1] == f"RUN {CA_MOUNT} --mount=type=cache,target=/root/.cache pip install six"
    assert runs[2] == "RUN --mount=type=secret,id=bai-ca,target=/ca.pem true"  # the author's own CA mount wins


def test_rewrite_continuations_comments_heredocs_onbuild():
    src = (
        "FROM base\n"
        "RUN apt-get update && \\\n"
        "    # a comment inside the continuation\n"
        "    apt-get install -y curl\n"
        "RUN <<EOF\n"
        "echo in a heredoc\n"
        "FROM not-an-instruction\n"
        "RUN neither\n"
        "EOF\n"
        "ONBUILD RUN echo later\n"
        "RUN echo $((1<<2))\n"
    )
    out = rewrite_for_ca(src)
    lines = out.splitlines()
    assert lines[1 + len(ARGS)] == f"RUN {CA_MOUNT} apt-get update && \\"
    assert "    # a comment inside the continuation" in lines and "    apt-get install -y curl" in lines
    assert f"RUN {CA_MOUNT} <<EOF" in lines
    assert "FROM not-an-instruction" in lines and "RUN neither" in lines  # heredoc body untouched
    assert out.count("ARG PIP_CERT=") == 1
    assert "ONBUILD RUN echo later" in lines
    assert lines[-1] == f"RUN {CA_MOUNT} echo $((1<<2))"


def test_rewrite_honours_the_escape_directive():
    src = "# escape=`\nFROM base\nRUN echo a `\n    b\nRUN echo c\n"
    lines = rewrite_for_ca(src).splitlines()
    assert lines[0] == "# escape=`"
    assert lines.count("    b") == 1
    assert [l for l in lines if l.startswith("RUN")] == [f"RUN {CA_MOUNT} echo a `", f"RUN {CA_MOUNT} echo c"]


# Where the build's old second reader (its own directive/continuation/heredoc scan with another
# heredoc regex) and imagekit.dockerfile disagreed; BuildKit reads it as the expected text says.
DISAGREED = (
    "# escape=`\n"
    "# syntax=docker/dockerfile:1\n"
    "FROM base AS one\n"
    "RUN <<EOF\n"
    "  EOF\n"  # not the terminator: only a line that is exactly the name is
    "RUN inside-the-first-heredoc\n"
    "EOF\n"
    "COPY <<EOF.txt /etc/x\n"  # the name is EOF.txt, not EOF
    "EOF\n"
    "FROM inside-the-second-heredoc\n"
    "EOF.txt\n"
    'RUN <<"END TEXT" cat\n'  # a quoted name with a space
    "END\n"
    "RUN inside-the-third-heredoc\n"
    "END TEXT\n"
    "RUN echo a `\n"
    "  # comment inside the continuation\n"
    "  && echo \\\n"  # with escape=` a backslash continues nothing
    "FROM `\n"
    "  base\n"
    "RUN echo $((1<<2)) && cat<<X\n"  # neither opens a heredoc
    "ONBUILD RUN <<EOF\n"  # an ONBUILD trigger has heredocs too
    "RUN inside-the-onbuild-heredoc\n"
    "EOF\n"
)


def test_rewrite_and_validation_read_heredocs_continuations_and_escape_alike():
    from imagekit.dockerfile import parse

    assert [i.keyword for i in parse(DISAGREED).instructions] == [
        "FROM", "RUN", "COPY", "RUN", "RUN", "FROM", "RUN", "ONBUILD",
    ]
    args = "".join(f"{a}\n" for a in ARGS)
    expected = (
        "# escape=`\n# syntax=docker/dockerfile:1\nFROM base AS one\n" + args
        + f"RUN {CA_MOUNT} <<EOF\n  EOF\nRUN inside-the-first-heredoc\nEOF\n"
        "COPY <<EOF.txt /etc/x\nEOF\nFROM inside-the-second-heredoc\nEOF.txt\n"
        f'RUN {CA_MOUNT} <<"END TEXT" cat\nEND\nRUN inside-the-third-heredoc\nEND TEXT\n'
        f"RUN {CA_MOUNT} echo a `\n  # comment inside the continuation\n  && echo \\\n"
        "FROM `\n  base\n" + args
        + f"RUN {CA_MOUNT} echo $((1<<2)) && cat<<X\n"
        "ONBUILD RUN <<EOF\nRUN inside-the-onbuild-heredoc\nEOF\n"
    )
    assert rewrite_for_ca(DISAGREED) == expected


def test_rewrite_keeps_everything_else_byte_for_byte():
    src = "\ufeffFROM base\r\nRUN   true \\\r\n  && x\r\nRU\\\r\nN y\r\nFROM other"
    out = rewrite_for_ca(src)
    crlf_args = "".join(f"{a}\r\n" for a in ARGS)
    assert out == (
        "\ufeffFROM base\r\n" + crlf_args
        + f"RUN {CA_MOUNT}   true \\\r\n  && x\r\nRU\\\r\nN {CA_MOUNT} y\r\nFROM other\r\n" + crlf_args
    )


def test_resolve_ca_bundle(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resolve_ca_bundle(None, {}) is None
    assert resolve_ca_bundle(None, {"BAI_IMAGEKIT_CA_BUNDLE": str(ca)}) == ca.resolve()
    assert resolve_ca_bundle("auto", {"REQUESTS_CA_BUNDLE": str(ca)}) == ca.resolve()
    assert resolve_ca_bundle("auto", {"SSL_CERT_FILE": str(ca), "REQUESTS_CA_BUNDLE": "/nope"}) == ca.resolve()
    with pytest.raises(UsageError, match="neither"):
        resolve_ca_bundle("auto", {})
    with pytest.raises(UsageError, match="not a readable"):
        resolve_ca_bundle(str(tmp_path / "missing.pem"), {})


def test_no_buildkit_cli_is_an_environment_problem(tmp_path, monkeypatch):
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Usage: docker build [OPTIONS] PATH'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BAI_IMAGEKIT_DOCKER_CLI", str(fake))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(image_build, "_cli_ok", lambda cli: cli == "never")
    with pytest.raises(EnvironmentProblem, match="BuildKit build secrets"):
        image_build.find_buildkit_cli()


# --------------------------------------------------------------------------- kernel layer and plan


def test_kernel_layer_template():
    text = render_kernel_layer(
        {"ai.backend.runtime-type": "python", "ai.backend.kernelspec": "1", "x.note": 'say "hi" to $USER'},
        ["zeta", "alpha"],
        True,
    )
    lines = text.splitlines()
    assert "ARG BAI_AUTHOR_IMAGE" in lines and "FROM ${BAI_AUTHOR_IMAGE}" in lines
    assert "COPY service-defs/alpha.json service-defs/zeta.json /etc/backend.ai/service-defs/" in lines
    assert "COPY policy.yml /etc/backend.ai/jail/policy.yml" in lines
    label_at = next(i for i, l in enumerate(lines) if l.startswith("LABEL "))
    assert label_at == len(lines) - 3  # labels last, sorted, one per line
    assert lines[label_at] == 'LABEL ai.backend.kernelspec="1" \\'
    assert lines[-1].strip() == 'x.note="say \\"hi\\" to \\$USER"'
    assert render_kernel_layer({}, [], False).splitlines()[-1] == "FROM ${BAI_AUTHOR_IMAGE}"


def test_kernel_layer_is_deterministic(tmp_path):
    scaffold(tmp_path, "python", ["jupyterlab"])
    a = make_plan(BuildOptions(path=tmp_path)).kernel_layer
    b = make_plan(BuildOptions(path=tmp_path / "Dockerfile")).kernel_layer
    assert a == b


def test_plan_merges_flags_over_the_spec(tmp_path):
    scaffold(tmp_path, "python", [])
    plan = make_plan(BuildOptions(
        path=tmp_path,
        labels={"ai.backend.runtime-path": "/opt/py/bin/python3", "ai.backend.base-distro": "ubuntu22.04"},
        services={"tensorboard": None},
    ))
    assert plan.labels["ai.backend.runtime-path"] == "/opt/py/bin/python3"
    assert plan.label_locations["ai.backend.runtime-path"].file == "<command line>"
    assert plan.labels["ai.backend.service-ports"] == "hello:http:8080,tensorboard:http:6006"
    assert list(plan.service_defs) == ["hello", "tensorboard"]
    assert plan.policy_source.endswith("policy.yml")


def test_plan_without_spec(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM base\nLABEL ai.backend.kernelspec=1\n")
    plan = make_plan(BuildOptions(path=tmp_path, services={"jupyterlab": 8888}, no_policy=True))
    assert plan.spec is None and plan.merge_service_ports
    assert plan.labels == {"ai.backend.service-ports": "jupyterlab:http:8888"}
    assert plan.policy_text is None and "policy.yml" not in plan.kernel_layer
    default = make_plan(BuildOptions(path=tmp_path))
    assert default.policy_source == "default" and "whitelist_paths" in (default.policy_text or "")


def test_plan_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="neither a kernel directory"):
        make_plan(BuildOptions(path=tmp_path / "nope"))
    with pytest.raises(UsageError, match="no Dockerfile"):
        make_plan(BuildOptions(path=tmp_path))
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    with pytest.raises(UsageError, match="no such library service-def"):
        make_plan(BuildOptions(path=tmp_path, services={"nope": 8000}))
    with pytest.raises(UsageError, match="label key"):
        make_plan(BuildOptions(path=tmp_path, labels={"bad key": "x"}))


def test_merge_service_ports():
    assert merge_service_ports("a:http:8000,b:http:8001", ["b:http:9000", "c:tcp:9001"]) == "a:http:8000,b:http:9000,c:tcp:9001"
    assert merge_service_ports(None, ["c:tcp:9001"]) == "c:tcp:9001"


def test_errors_before_the_build_stop_it(tmp_path, monkeypatch):
    scaffold(tmp_path, "python", [])
    err = Finding(rule="BAI999", severity=Severity.ERROR, message="broken", label="ai.backend.runtime-type")
    monkeypatch.setattr("imagekit.validate.check", lambda inputs: [err])
    plan = make_plan(BuildOptions(path=tmp_path, tags=["x:y"]))
    result = run_build(plan, client=None, log=lambda line: None)  # no engine needed: nothing is built
    assert result.stage == "validate" and not result.ok and result.image_id is None
    assert result.to_json()["findings"][0]["rule"] == "BAI999" and result.to_json()["tags"] == []


def test_missing_label_findings_are_deferred_to_the_image(tmp_path, monkeypatch):
    scaffold(tmp_path, "python", [])
    missing = Finding(rule="BAI001", severity=Severity.ERROR, message="missing", label="ai.backend.not-set")
    monkeypatch.setattr("imagekit.validate.check", lambda inputs: [missing])
    assert image_build.prebuild_findings(make_plan(BuildOptions(path=tmp_path))) == []


# --------------------------------------------------------------------------- the real CLI


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BAI_IMAGEKIT_CA_BUNDLE", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_dry_run_prints_the_kernel_layer(tmp_path):
    kdir = tmp_path / "k"
    out = _cli("init", str(kdir), "--service", "jupyterlab")
    assert out.returncode == 0, out.stderr
    out = _cli("build", str(kdir), "-t", "x/y:1", "--dry-run", "--label", "org.example=1")
    assert out.returncode == 0, out.stderr
    assert "FROM ${BAI_AUTHOR_IMAGE}" in out.stdout
    assert "COPY service-defs/hello.json service-defs/jupyterlab.json /etc/backend.ai/service-defs/" in out.stdout
    assert "COPY policy.yml /etc/backend.ai/jail/policy.yml" in out.stdout
    assert 'ai.backend.service-ports="hello:http:8080,jupyterlab:http:8090"' in out.stdout
    assert 'org.example="1"' in out.stdout
    assert "#   tags: x/y:1" in out.stdout
    assert "Step" not in out.stderr  # nothing was built


def test_dry_run_json_with_ca_bundle(tmp_path):
    scaffold(tmp_path, "shell", [])
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    out = _cli("build", str(tmp_path), "--dry-run", "--format", "json", "--ca-bundle", str(ca))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["dry_run"] is True and data["labels"]["ai.backend.runtime-type"] == "shell"
    assert CA_MOUNT in data["author_dockerfile"] and "ARG PIP_CERT=/run/secrets/bai-ca.pem" in data["author_dockerfile"]
    assert data["kernel_layer"].startswith("# Generated by bai-imagekit build")


def test_broken_spec_is_exit_2_with_line(tmp_path):
    scaffold(tmp_path, "python", [])
    spec = tmp_path / "kernel.toml"
    spec.write_text(spec.read_text().replace("runtime-type", "runtime-tpye"))
    out = _cli("build", str(tmp_path), "--dry-run")
    assert out.returncode == 2
    assert "kernel.toml:3: unknown key 'runtime-tpye' in [kernel]" in out.stderr


def test_init_refuses_to_overwrite(tmp_path):
    assert _cli("init", str(tmp_path)).returncode == 0
    out = _cli("init", str(tmp_path))
    assert out.returncode == 2 and "--force" in out.stderr
    assert _cli("init", str(tmp_path), "--force", "--runtime", "shell").returncode == 0
    assert 'runtime-type = "shell"' in (tmp_path / "kernel.toml").read_text()
