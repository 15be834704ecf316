"""Errors every imagekit command maps to exit code 2 (usage or environment problem)."""


class UsageError(Exception):
    """The command line or an input file cannot be used at all (exit 2)."""


class EnvironmentProblem(Exception):
    """The environment cannot run the command: engine unreachable, image missing… (exit 2)."""
