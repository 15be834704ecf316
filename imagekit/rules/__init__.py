"""The rules imagekit checks, as data (:mod:`.catalogue`) plus one module of checks per subject.

ID ranges: BAI0xx labels, BAI1xx service-ports, BAI2xx service-def files,
BAI3xx image contents, BAI4xx jail policy, BAI5xx Dockerfile/kernel-spec inputs,
BAI6xx model folders (model-definition.yaml, deployment-config.yaml).
"""


def load_all() -> None:
    """Import every check module so that :data:`.catalogue.RULES` is complete."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name not in ("catalogue", "docs"):
            importlib.import_module(f"{__name__}.{info.name}")


def run_all(inputs):  # -> list[Finding]
    """Every check module's ``check(inputs)`` in module-name order, then inline suppressions applied.

    The order of the result carries no meaning: callers sort it (:func:`..findings.sorted_findings`).
    """
    import importlib
    import pkgutil

    from ..findings import Finding

    findings: list[Finding] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in ("catalogue", "docs"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        check = getattr(module, "check", None)
        if check is not None:
            findings.extend(check(inputs))
    return [f for f in findings if not inputs.is_suppressed(f)]

