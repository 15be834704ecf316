"""Runs a composite action's steps the way the GitHub Actions runner does, without GitHub.

Each ``run:`` step is written to a file and run with ``bash --noprofile --norc -eo pipefail FILE``
(the runner's ``shell: bash``) in its ``working-directory``; its ``env:`` and the action's
``outputs:`` are evaluated with the expressions composite actions use here (``inputs.X``,
``steps.ID.outputs.X``, ``github.action_path``, ``github.workspace``); ``GITHUB_OUTPUT``,
``GITHUB_STEP_SUMMARY``, ``GITHUB_PATH`` and ``GITHUB_ENV`` are files, read back after each step
as the runner does. The first failing step ends the run (no step here has an ``if:``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class ActionRun:
    exit_code: int
    stdout: str
    outputs: dict[str, str]
    step_outputs: dict[str, dict[str, str]]
    summary: str
    failed_step: str | None = None
    steps_run: list[str] = field(default_factory=list)


def _read_kv_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines and ``NAME<<DELIM`` … ``DELIM`` blocks (the runner's file-command format)."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


class CompositeAction:
    def __init__(self, action_dir: Path) -> None:
        self.dir = action_dir
        self.doc = yaml.safe_load((action_dir / "action.yml").read_text())
        assert self.doc["runs"]["using"] == "composite"

    def defaults(self) -> dict[str, str]:
        return {name: str(spec.get("default", "")) for name, spec in self.doc.get("inputs", {}).items()}

    def _evaluate(self, text: str, inputs: dict[str, str], steps: dict[str, dict[str, str]], workspace: Path) -> str:
        def one(m: re.Match) -> str:
            expr = m.group(1)
            if expr.startswith("inputs."):
                return inputs[expr.removeprefix("inputs.")]
            if expr.startswith("steps."):
                step_id, kind, name = expr.removeprefix("steps.").split(".", 2)
                assert kind == "outputs", expr
                return steps.get(step_id, {}).get(name, "")
            if expr == "github.action_path":
                return str(self.dir)
            if expr == "github.workspace":
                return str(workspace)
            raise AssertionError(f"expression not supported by this runner: {expr}")

        return EXPR.sub(one, str(text))

    def run(self, workspace: Path, runner_temp: Path, inputs: dict[str, str] | None = None,
            env: dict[str, str] | None = None, skip: dict[str, dict[str, str]] | None = None,
            timeout: float = 900) -> ActionRun:
        """Run every step in *workspace*; *skip*: steps not run, with the outputs they would have set."""
        unknown = set(inputs or {}) - set(self.defaults())
        assert not unknown, f"not inputs of the action: {unknown}"
        values = {**self.defaults(), **(inputs or {})}
        steps: dict[str, dict[str, str]] = dict(skip or {})
        files = runner_temp / "_runner_file_commands"
        files.mkdir(parents=True, exist_ok=True)
        summary_file = files / "step_summary"
        summary_file.write_text("")
        base_env = {**os.environ, **(env or {}), "CI": "true", "GITHUB_ACTIONS": "true",
                    "GITHUB_ACTION_PATH": str(self.dir), "GITHUB_WORKSPACE": str(workspace),
                    "RUNNER_TEMP": str(runner_temp), "GITHUB_STEP_SUMMARY": str(summary_file)}
        extra_path: list[str] = []
        stdout: list[str] = []
        result = ActionRun(0, "", {}, steps, "")
        for index, step in enumerate(self.doc["runs"]["steps"]):
            step_id = step.get("id", f"__{index}")
            assert "if" not in step, "conditions live inside the scripts (this runner does not evaluate if:)"
            if step_id in (skip or {}):
                continue
            assert step["shell"] == "bash" and "run" in step
            assert "${{" not in step["run"], f"step {step_id}: expressions belong in env:, not in the script"
            output_file, path_file, env_file = (files / f"{step_id}.{k}" for k in ("output", "path", "env"))
            for f in (output_file, path_file, env_file):
                f.write_text("")
            step_env = {**base_env, "GITHUB_OUTPUT": str(output_file), "GITHUB_PATH": str(path_file),
                        "GITHUB_ENV": str(env_file)}
            if extra_path:
                step_env["PATH"] = os.pathsep.join([*reversed(extra_path), base_env.get("PATH", "")])
            for name, value in (step.get("env") or {}).items():
                step_env[name] = self._evaluate(value, values, steps, workspace)
            cwd = workspace / self._evaluate(step.get("working-directory", "."), values, steps, workspace)
            script = files / f"{step_id}.sh"
            script.write_text(step["run"])
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd,
                                  env=step_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout)
            stdout.append(proc.stdout)
            result.steps_run.append(step_id)
            steps[step_id] = _read_kv_file(output_file)
            extra_path += [p for p in path_file.read_text().splitlines() if p]
            base_env.update(_read_kv_file(env_file))
            if proc.returncode != 0:
                result.exit_code, result.failed_step = proc.returncode, step_id
                break
        result.stdout = "".join(stdout)
        result.summary = summary_file.read_text()
        result.outputs = {name: self._evaluate(spec["value"], values, steps, workspace)
                          for name, spec in self.doc.get("outputs", {}).items()}
        return result
