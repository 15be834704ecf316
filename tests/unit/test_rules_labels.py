"""Label rules (BAI0xx), and the label corpus run through the whole validator.

Corpus files (``tests/corpus/labels/*.json``)::

    {"description": "...", "extends": "other.json",        # optional: start from another case
     "labels": {"ai.backend.x": "value", "ai.backend.y": null},  # null removes an inherited label
     "service_defs": {"name": {...} | "raw text" | "@repo/relative/path"},  # optional; replaces inherited
     "expect": [["BAI016", "ai.backend.runtime-type"], ["BAI202", null]]}

``expect`` lists exactly the findings of rules BAI000-BAI299 (rule ID, label key);
other subjects' rules are left to their own tests. Every case runs for both runner targets
(``--runner stock``, the default, and ``--runner krunner``); where they differ, ``expect`` is
``{"stock": [...], "krunner": [...]}`` and the runner-dependent findings must be errors for
``stock`` and warnings for ``krunner``. Cases named ``good-*`` must also produce no error or
warning from any rule, for either runner.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from imagekit.findings import Location, Severity
from imagekit.kernel_inputs import KernelInputs, ServiceDefSource
from imagekit.rules import catalogue, labels
from imagekit.rules.labels import parse_binary_size
from imagekit.runner_target import RUNNER_CHOICES, RunnerTarget
from imagekit.validate import check

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus" / "labels"
OUR_RANGE = re.compile(r"^BAI[0-2]\d\d$")


# ----------------------------------------------------------------------------- corpus


def _raw(name: str) -> dict:
    data = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    if "extends" in data:
        base = _raw(data["extends"])
        merged = dict(base["labels"])
        merged.update(data["labels"])
        data = {**data, "labels": merged, "service_defs": data.get("service_defs", base.get("service_defs"))}
    return data


def _def_text(value) -> str:
    if isinstance(value, str) and value.startswith("@"):
        return (REPO / value[1:]).read_text(encoding="utf-8")
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def load_case(name: str, runner: RunnerTarget = RunnerTarget.STOCK) -> tuple[KernelInputs, list[tuple[str, str | None]]]:
    data = _raw(name)
    label_map = {k: v for k, v in data["labels"].items() if v is not None}
    locations = {k: Location(file=f"corpus/{name}", line=i + 1) for i, k in enumerate(label_map)}
    defs = None
    if data.get("service_defs") is not None:
        defs = {
            n: ServiceDefSource(n, Location(file=f"service-defs/{n}.json"), _def_text(v))
            for n, v in data["service_defs"].items()
        }
    inputs = KernelInputs(
        target=name,
        labels=label_map,
        label_locations=locations,
        default_location=Location(file=f"corpus/{name}"),
        service_defs=defs,
        runner=runner,
    )
    raw = data["expect"]
    if isinstance(raw, dict):
        assert set(raw) == set(RUNNER_CHOICES), f"{name}: expect needs an entry per runner"
        raw = raw[runner.value]
    expect = [(rule_id, label) for rule_id, label in raw]
    return inputs, expect


CASES = sorted(p.name for p in CORPUS.glob("*.json"))


def test_corpus_is_not_empty():
    assert len(CASES) > 20


@pytest.mark.parametrize("runner", list(RunnerTarget))
@pytest.mark.parametrize("name", CASES)
def test_corpus_case(name, runner):
    inputs, expect = load_case(name, runner)
    findings = check(inputs)
    ours = [(f.rule, f.label) for f in findings if OUR_RANGE.match(f.rule)]
    assert Counter(ours) == Counter(expect), "\n".join(f"{f.rule} {f.label}: {f.message}" for f in findings)
    for f in findings:
        assert f.location is not None, f
        assert f.message and "\n" not in f.message
        assert f.hint
        if catalogue.RULES[f.rule].runner_dependent:
            want = Severity.ERROR if runner is RunnerTarget.STOCK else Severity.WARNING
            tag = "[stock runner]" if runner is RunnerTarget.STOCK else "[krunner accepts this; a stock runner does not]"
            assert f.severity is want and f.message.endswith(tag), f
    if name.startswith("good-"):
        loud = [f for f in findings if f.severity.at_least(Severity.WARNING)]
        assert not loud, "\n".join(f"{f.rule}: {f.message}" for f in loud)


def test_every_rule_of_ours_is_exercised_by_the_corpus():
    hit = {rule_id for name in CASES for runner in RunnerTarget for rule_id, _ in load_case(name, runner)[1]}
    ours = {r.id for r in catalogue.all_rules() if OUR_RANGE.match(r.id)}
    assert ours - hit == set(), "rules without a corpus case"
    assert hit - ours == set(), "corpus expects rules that do not exist"


# ----------------------------------------------------------------------------- helpers


def run(label_map: dict[str, str], runner: RunnerTarget = RunnerTarget.KRUNNER) -> list:
    """The label rules for krunner (the unit tests of single rules; the corpus covers both targets)."""
    return labels.check(KernelInputs(target="t", labels=label_map, default_location=Location(file="Dockerfile"),
                                     runner=runner))


GOOD = {
    "ai.backend.kernelspec": "1",
    "ai.backend.features": "uid-match",
    "ai.backend.base-distro": "ubuntu22.04",
    "ai.backend.runtime-type": "app",
    "ai.backend.resource.min.cpu": "1",
    "ai.backend.resource.min.mem": "1g",
}


def one(label_map: dict[str, str], rule_id: str):
    found = [f for f in run({**GOOD, **label_map}) if f.rule == rule_id]
    assert len(found) == 1, found
    return found[0]


def test_good_set_is_clean():
    assert run(GOOD) == []


# ----------------------------------------------------------------------------- size grammar


@pytest.mark.parametrize(
    "text, size",
    [
        ("256m", 268435456), ("256M", 268435456), ("256MB", 268435456), ("256MiB", 268435456),
        ("1g", 1 << 30), ("1G", 1 << 30), ("1gb", 1 << 30), ("1GiB", 1 << 30), ("1 g", 1 << 30), (" 1g ", 1 << 30),
        ("1.5g", 1610612736), ("2k", 2048), ("512 b", 512), ("1_024", 1024), ("1.0", 1), ("64", 64),
        ("536870912.000000", 536870912), ("3kbytes", 3072),
    ],
)
def test_binary_size_accepts_what_upstream_accepts(text, size):
    assert parse_binary_size(text) == size


@pytest.mark.parametrize("text", ["inf", "Infinite", "INFINITY"])
def test_binary_size_infinity(text):
    assert parse_binary_size(text) == float("inf")


@pytest.mark.parametrize("text", ["512b", "1.5", "0.5", "1x", "", "m", "abc"])
def test_binary_size_rejects_what_upstream_rejects(text):
    with pytest.raises(ValueError):
        parse_binary_size(text)


def test_512b_explains_the_unit_letter():
    f = one({"ai.backend.resource.min.mem": "512b"}, "BAI005")
    assert "'512b'" in f.message and "unit" in f.message and f.severity is Severity.ERROR


def test_bare_byte_count_suggests_a_unit():
    f = one({"ai.backend.resource.min.mem": "64"}, "BAI006")
    assert "64 bytes" in f.message and "'64m'" in f.message


def test_zero_minimum_is_not_flagged():
    assert run({**GOOD, "ai.backend.resource.min.mem": "0", "ai.backend.resource.min.cuda.device": "0"}) == []


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("value, rule_id", [("2", "BAI003"), ("x", "BAI003"), ("", "BAI003"), (" 1", "BAI004"), ("01", "BAI004")])
def test_kernelspec(value, rule_id):
    assert one({"ai.backend.kernelspec": value}, rule_id).label == "ai.backend.kernelspec"


def test_features_did_you_mean():
    f = one({"ai.backend.features": "batch uid-matc"}, "BAI012")
    assert "'uid-matc'" in f.message and "did you mean 'uid-match'" in f.message


@pytest.mark.parametrize("value", ["", " uid-match", "uid-match ", "batch  uid-match", "batch\tuid-match"])
def test_features_spacing(value):
    assert one({"ai.backend.features": value}, "BAI011").severity is Severity.ERROR


@pytest.mark.parametrize("value", ["ubuntu16.04", "ubuntu24.04", "centos7.6", "centos8.0"])
def test_base_distro_good(value):
    assert run({**GOOD, "ai.backend.base-distro": value}) == []


@pytest.mark.parametrize("value", ["debian12", "rhel9", "Ubuntu22.04", "ubuntu", "ubuntu 22.04", "22.04", " "])
def test_base_distro_bad(value):
    one({"ai.backend.base-distro": value}, "BAI014")


def test_base_distro_suggests_lowercase():
    assert "did you mean 'ubuntu22.04'" in one({"ai.backend.base-distro": "Ubuntu22.04"}, "BAI014").message


def test_runtime_types_follow_krunners_table():
    """krunner runs every language of its table; the stock runner only python and app (BAI030)."""
    from krunner.runtimes.languages import LANGUAGES

    for language in LANGUAGES:
        extra = {"ai.backend.runtime-path": "/usr/bin/x"} if language.name == "python" else {}
        labels_ = {**GOOD, "ai.backend.runtime-type": language.name, **extra}
        for runner, severity in ((RunnerTarget.KRUNNER, Severity.WARNING), (RunnerTarget.STOCK, Severity.ERROR)):
            found = [(f.rule, f.severity) for f in run(labels_, runner)]
            expected = [] if language.name in ("python", "app") else [("BAI030", severity)]
            assert found == expected, (language.name, runner)


@pytest.mark.parametrize("value", ["Python", " python", "bash", "node"])
def test_runtime_type_spelling_is_info(value):
    f = one({"ai.backend.runtime-type": value, "ai.backend.runtime-path": "/bin/x"}, "BAI017")
    assert f.severity is Severity.INFO


def test_runtime_type_unknown_suggests():
    f = one({"ai.backend.runtime-type": "pyhton"}, "BAI016")
    assert "did you mean 'python'" in f.message


@pytest.mark.parametrize("value", ["", "python3", "bin/python", " /usr/bin/python3"])
def test_runtime_path_bad(value):
    one({"ai.backend.runtime-path": value}, "BAI018")


def test_runtime_path_missing_only_matters_for_python():
    assert run(GOOD) == []
    f = one({"ai.backend.runtime-type": "python"}, "BAI019")
    assert f.label == "ai.backend.runtime-path"


def test_role_suggests_uppercase():
    assert "did you mean 'SYSTEM'" in one({"ai.backend.role": "system"}, "BAI020").message


def test_inference_requires_three_labels_and_points_at_the_role():
    locations = {"ai.backend.role": Location(file="Dockerfile", line=7)}
    inputs = KernelInputs("t", {**GOOD, "ai.backend.role": "INFERENCE"}, locations, Location(file="Dockerfile"))
    found = [f for f in labels.check(inputs) if f.rule == "BAI021"]
    assert {f.label for f in found} == {"ai.backend.endpoint-ports", "ai.backend.model-path", "ai.backend.model-format"}
    assert all(f.location == Location(file="Dockerfile", line=7) for f in found)


@pytest.mark.parametrize("value", ["A,,B", ",A", "A B", "1X", "A,A"])
def test_corecount_bad(value):
    one({"ai.backend.envs.corecount": value}, "BAI024")


# ----------------------------------------------------------------------------- keys


def test_resource_slots():
    assert run({**GOOD, "ai.backend.resource.min.cuda.shares": "0.5", "ai.backend.resource.min.rocm.device": "1"}) == []
    f = one({"ai.backend.resource.min.cuda.devices": "1"}, "BAI008")
    assert "did you mean 'cuda.device'" in f.message
    assert "did you mean 'cuda.device'" in one({"ai.backend.resource.min.cuda_device": "1"}, "BAI008").message
    one({"ai.backend.resource.max": "1"}, "BAI009")
    one({"ai.backend.resource.min.": "1"}, "BAI009")


@pytest.mark.parametrize(
    "key, intended",
    [
        ("ai.backend.service_ports", "ai.backend.service-ports"),
        ("ai.backend.runtimetype", "ai.backend.runtime-type"),
        ("ai.backend.Base-Distro", "ai.backend.base-distro"),
    ],
)
def test_misspelt_keys_name_the_intended_key(key, intended):
    f = one({key: "x"}, "BAI026")
    assert f.label == key and repr(intended) in f.message


def test_unknown_key_suggests_the_closest_known_key():
    f = one({"ai.backend.resources.min.cpu": "1"}, "BAI028")
    assert "did you mean 'ai.backend.resource.min.cpu'" in f.message
    f = one({"ai.backend.something-else": "1"}, "BAI028")
    assert "did you mean" not in f.message


def test_non_backend_labels_are_ignored():
    assert run({**GOOD, "org.opencontainers.image.title": "x", "maintainer": "me"}) == []


@pytest.mark.parametrize("key", labels.LEGACY_KEYS)
def test_legacy_keys_are_info(key):
    assert one({key: "1"}, "BAI025").severity is Severity.INFO


@pytest.mark.parametrize("key", labels.UPSTREAM_OWNED)
def test_upstream_owned_keys(key):
    one({key: "1"}, "BAI027")


def test_findings_use_the_labels_location():
    locations = {"ai.backend.kernelspec": Location(file="Dockerfile", line=3)}
    inputs = KernelInputs("t", {**GOOD, "ai.backend.kernelspec": "2"}, locations, Location(file="Dockerfile"))
    (f,) = labels.check(inputs)
    assert f.location == Location(file="Dockerfile", line=3) and f.label == "ai.backend.kernelspec"


def test_missing_required_label_uses_the_default_location():
    inputs = KernelInputs("t", {k: v for k, v in GOOD.items() if k != "ai.backend.kernelspec"}, {}, Location(file="Dockerfile"))
    (f,) = labels.check(inputs)
    assert f.rule == "BAI001" and f.location == Location(file="Dockerfile")


# ----------------------------------------------------------------------------- base-distro left to the agent


def test_base_distro_is_no_longer_a_recommended_label():
    labels_only = {k: v for k, v in GOOD.items() if k != "ai.backend.base-distro"}
    f = run(labels_only)
    assert [x.rule for x in f] == ["BAI031"] and f[0].severity is Severity.INFO
    assert "ldd --version" in f[0].message and "libc.so.6" in f[0].message and "musl" in f[0].message


def test_empty_base_distro_is_unset_for_the_agent():
    f = one({"ai.backend.base-distro": ""}, "BAI031")
    assert "empty" in f.message and f.label == "ai.backend.base-distro"


def test_with_image_files_the_probe_is_left_to_the_image_rules():
    labels_only = {k: v for k, v in GOOD.items() if k != "ai.backend.base-distro"}
    inputs = KernelInputs(target="img", labels=labels_only, default_location=Location(file="img"), image_fs=object())
    assert [f.rule for f in labels.check(inputs)] == []


# ----------------------------------------------------------------------------- accelerators


def test_slot_families_prefer_the_min_key():
    fams = labels.slot_families({"ai.backend.resource.max.cuda.device": "1", "ai.backend.resource.min.cuda.shares": "1",
                                 "ai.backend.resource.min.cpu": "1", "ai.backend.resource.min": "1"})
    assert fams == {"cuda": "ai.backend.resource.min.cuda.shares"}


@pytest.mark.parametrize("value", ["cuda", "*", "cuda,rocm", "tpu,ipu,gaudi2,tt-n300,hyperaccel-lpu"])
def test_accelerators_good(value):
    assert run({**GOOD, "ai.backend.accelerators": value}) == []


@pytest.mark.parametrize("value, bad", [("cuda, rocm", "' rocm'"), ("CUDA", "'CUDA'"), ("cuda.device", "'cuda.device'")])
def test_accelerators_item_syntax(value, bad):
    f = one({"ai.backend.accelerators": value}, "BAI032")
    assert bad in f.message and f.severity is Severity.WARNING


def test_accelerators_unknown_family_suggests():
    f = one({"ai.backend.accelerators": "rocn"}, "BAI033")
    assert "did you mean 'rocm'" in f.message


def test_accelerators_empty_and_star():
    assert "'*'" in one({"ai.backend.accelerators": ""}, "BAI034").message
    f = one({"ai.backend.accelerators": "cuda,*"}, "BAI034")
    assert "'cuda'" in f.message and f.severity is Severity.INFO


def test_slot_family_missing_from_accelerators():
    f = one({"ai.backend.accelerators": "rocm", "ai.backend.resource.min.cuda.device": "1"}, "BAI035")
    assert f.label == "ai.backend.resource.min.cuda.device" and "'rocm,cuda'" in f.message
    f = one({"ai.backend.accelerators": "cuda", "ai.backend.resource.max.rocm.device": "1"}, "BAI035")
    assert "no limit" in f.message and "'cuda,rocm'" in f.message


@pytest.mark.parametrize("runner", list(RunnerTarget))
def test_accelerator_rules_do_not_depend_on_the_runner(runner):
    found = run({**GOOD, "ai.backend.accelerators": "nvidia,", "ai.backend.resource.min.cuda.device": "1"}, runner)
    assert sorted(f.rule for f in found) == ["BAI032", "BAI033", "BAI035"]


# ----------------------------------------------------------------------------- customized-image.owner


@pytest.mark.parametrize("value", ["user:5f0c6a4e-2b1d-4c8e-9a7f-3e2d1c0b9a88", "project:5F0C6A4E-2B1D-4C8E-9A7F-3E2D1C0B9A88"])
def test_owner_well_formed_is_only_owned(value):
    assert [f.rule for f in run({**GOOD, "ai.backend.customized-image.owner": value})] == ["BAI027"]


@pytest.mark.parametrize(
    "value, why",
    [("alice", "no scope"), ("group:5f0c6a4e-2b1d-4c8e-9a7f-3e2d1c0b9a88", "scope 'group'"),
     ("user:alice", "not a UUID"), ("user:", "not a UUID"), ("User:5f0c6a4e-2b1d-4c8e-9a7f-3e2d1c0b9a88", "scope 'User'")],
)
def test_owner_malformed(value, why):
    f = one({"ai.backend.customized-image.owner": value}, "BAI036")
    assert why in f.message and f.severity is Severity.ERROR
