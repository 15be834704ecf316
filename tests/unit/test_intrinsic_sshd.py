"""The intrinsic sshd's preparation and argv, on the host with fake dropbear tools (no dropbear needed)."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from krunner.container_env import ContainerPaths
from krunner.services.intrinsic_sshd import (
    DropbearTools,
    SshdSetupError,
    find_dropbear,
    merge_ssh_config,
    parse_cluster_replicas,
    prepare_sshd,
    sshd_launch,
)

# A fake multi-call dropbear: logs each call, writes fake keys, converts by copying.
FAKE_MULTI = r"""#!/bin/sh
prog="$1"; shift
echo "$prog $*" >> "$(dirname "$0")/calls.log"
case "$prog" in
  dropbearkey)
    out=""
    while [ $# -gt 0 ]; do
      case "$1" in -f) out="$2"; shift 2;; *) shift;; esac
    done
    [ -e "$out" ] && { echo "$out exists" >&2; exit 1; }
    echo "FAKE-PRIVATE $(basename "$out")" > "$out"
    echo "Public key portion is:"
    echo "ssh-rsa AAAAFAKE$(basename "$out") fake@host"
    echo "Fingerprint: sha1!! 00:11"
    ;;
  dropbearconvert)
    [ "$1 $2" = "dropbear openssh" ] || { echo "bad formats $1 $2" >&2; exit 1; }
    { echo "-----BEGIN OPENSSH PRIVATE KEY-----"; cat "$3"; } > "$4"
    ;;
  *) echo "unknown program $prog" >&2; exit 1;;
esac
"""


def _write_exec(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_tools(tmp_path: Path) -> DropbearTools:
    kdir = tmp_path / "kernel"
    kdir.mkdir()
    _write_exec(kdir / "dropbearmulti", FAKE_MULTI)
    tools = find_dropbear(kdir)
    assert tools is not None
    return tools


@pytest.fixture
def paths(tmp_path: Path) -> ContainerPaths:
    work, config = tmp_path / "work", tmp_path / "config"
    work.mkdir()
    config.mkdir()
    return ContainerPaths(work_dir=work, config_dir=config, service_defs_dir=tmp_path / "defs")


def _calls(tools: DropbearTools) -> list[str]:
    log = Path(tools.keygen[0]).parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _prepare(paths: ContainerPaths, tools: DropbearTools, tmp_path: Path, env: dict[str, str] | None = None, **kw) -> str:
    return asyncio.run(prepare_sshd(paths, env or {}, tools, tmp_dir=tmp_path / "dropbear", **kw))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- argv / discovery


def test_sshd_launch_argv_shape() -> None:
    tools = DropbearTools(server=("/opt/kernel/dropbearmulti", "dropbear"), keygen=("k",), convert=("c",))
    spec = sshd_launch(tools, 2200, "/tmp/dropbear/dropbear_rsa_host_key")
    assert spec.argv == [
        "/opt/kernel/dropbearmulti", "dropbear",
        "-r", "/tmp/dropbear/dropbear_rsa_host_key",
        "-E", "-F", "-g", "-w", "-K", "15", "-I", "0",
        "-p", "0.0.0.0:2200",
    ]
    assert spec.launch_timeout == 10
    assert sshd_launch(DropbearTools(("/opt/kernel/dropbear",), ("k",), ("c",)), 2222, "h").argv[:3] == [
        "/opt/kernel/dropbear", "-r", "h",
    ]


def test_find_dropbear_multi_call(tmp_path: Path) -> None:
    multi = _write_exec(tmp_path / "dropbearmulti", "#!/bin/sh\n")
    tools = find_dropbear(tmp_path)
    assert tools == DropbearTools(
        server=(str(multi), "dropbear"), keygen=(str(multi), "dropbearkey"), convert=(str(multi), "dropbearconvert")
    )


def test_find_dropbear_separate_files_and_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("dropbear", "dropbearkey", "dropbearconvert"):
        _write_exec(tmp_path / name, "#!/bin/sh\n")
    monkeypatch.setenv("KRUNNER_KERNEL_DIR", str(tmp_path))
    assert find_dropbear() == DropbearTools(
        server=(str(tmp_path / "dropbear"),),
        keygen=(str(tmp_path / "dropbearkey"),),
        convert=(str(tmp_path / "dropbearconvert"),),
    )


def test_find_dropbear_absent_incomplete_or_not_executable(tmp_path: Path) -> None:
    assert find_dropbear(tmp_path) is None
    assert find_dropbear(tmp_path / "missing") is None
    _write_exec(tmp_path / "dropbear", "#!/bin/sh\n")
    _write_exec(tmp_path / "dropbearkey", "#!/bin/sh\n")
    assert find_dropbear(tmp_path) is None  # no dropbearconvert
    (tmp_path / "dropbearconvert").write_text("#!/bin/sh\n")  # not executable
    assert find_dropbear(tmp_path) is None
    (tmp_path / "dropbearmulti").mkdir()  # a directory is not a tool
    assert find_dropbear(tmp_path) is None


# --------------------------------------------------------------------------- keys


def test_prepare_fresh_generates_user_and_host_keys(paths: ContainerPaths, fake_tools: DropbearTools, tmp_path: Path) -> None:
    stale = tmp_path / "dropbear" / "stale"
    stale.parent.mkdir()
    stale.write_text("old")
    host_key = _prepare(paths, fake_tools, tmp_path)
    assert not stale.exists()  # the dropbear dir is recreated
    assert host_key == str(tmp_path / "dropbear" / "dropbear_rsa_host_key")
    assert Path(host_key).read_text().startswith("FAKE-PRIVATE")
    ssh_dir = paths.work_dir / ".ssh"
    auth = ssh_dir / "authorized_keys"
    assert _mode(ssh_dir) == 0o700
    assert _mode(auth) == 0o600
    assert auth.read_text() == "ssh-rsa AAAAFAKEid_dropbear fake@host\n"
    id_container = paths.work_dir / "id_container"
    assert id_container.read_text() == "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE-PRIVATE id_dropbear\n"
    assert _mode(id_container) == 0o600
    calls = _calls(fake_tools)
    assert calls[0].startswith("dropbearkey -t rsa -s 2048 -f ") and calls[0].endswith("/id_dropbear")
    assert calls[1] == f"dropbearconvert dropbear openssh {tmp_path}/dropbear/id_dropbear {paths.work_dir}/id_container"
    assert calls[2].endswith("/dropbear_rsa_host_key")
    assert not (ssh_dir / "config").exists()  # no cluster key, no cluster config


def test_prepare_keeps_existing_authorized_keys_and_uses_agent_host_key(
    paths: ContainerPaths, fake_tools: DropbearTools, tmp_path: Path
) -> None:
    ssh_dir = paths.work_dir / ".ssh"
    ssh_dir.mkdir(mode=0o755)
    ssh_dir.chmod(0o755)
    auth = ssh_dir / "authorized_keys"
    auth.write_text("ssh-ed25519 AAAAsession agent\n")
    auth.chmod(0o644)
    agent_key = paths.config_dir / "ssh" / "dropbear_rsa_host_key"
    agent_key.parent.mkdir()
    agent_key.write_text("agent host key")
    assert _prepare(paths, fake_tools, tmp_path) == str(agent_key)
    assert auth.read_text() == "ssh-ed25519 AAAAsession agent\n"
    assert _mode(ssh_dir) == 0o700 and _mode(auth) == 0o600
    assert _calls(fake_tools) == []  # nothing generated
    assert not (paths.work_dir / "id_container").exists()


def test_prepare_twice_regenerates_only_the_host_key(paths: ContainerPaths, fake_tools: DropbearTools, tmp_path: Path) -> None:
    _prepare(paths, fake_tools, tmp_path)
    first_auth = (paths.work_dir / ".ssh" / "authorized_keys").read_text()
    _prepare(paths, fake_tools, tmp_path)
    assert (paths.work_dir / ".ssh" / "authorized_keys").read_text() == first_auth
    keygens = [c for c in _calls(fake_tools) if c.startswith("dropbearkey")]
    assert len(keygens) == 3  # user key once, host key on each start (the tmp dir is recreated)


def test_helper_failure_and_timeout_raise_clear_errors(paths: ContainerPaths, tmp_path: Path) -> None:
    kdir = tmp_path / "k"
    kdir.mkdir()
    _write_exec(kdir / "dropbearmulti", "#!/bin/sh\necho 'no entropy' >&2\nexit 3\n")
    tools = find_dropbear(kdir)
    assert tools is not None
    with pytest.raises(SshdSetupError, match=r"dropbearkey -t rsa .* failed \(exit 3\): no entropy"):
        _prepare(paths, tools, tmp_path)
    _write_exec(kdir / "dropbearmulti", "#!/bin/sh\nexec sleep 30\n")
    with pytest.raises(SshdSetupError, match=r"did not finish within 0.3s"):
        _prepare(paths, tools, tmp_path, timeout=0.3)
    missing = DropbearTools(server=("x",), keygen=(str(tmp_path / "nope"),), convert=("x",))
    (paths.work_dir / ".ssh" / "authorized_keys").unlink(missing_ok=True)
    with pytest.raises(SshdSetupError, match="cannot run"):
        _prepare(paths, missing, tmp_path)


# --------------------------------------------------------------------------- cluster SSH (RE-34)


def _cluster_files(paths: ContainerPaths, mapping: dict | None = None) -> Path:
    ssh_conf = paths.config_dir / "ssh"
    ssh_conf.mkdir(exist_ok=True)
    (ssh_conf / "id_cluster").write_text("PRIVATE")
    (ssh_conf / "id_cluster.pub").write_text("ssh-rsa AAAAcluster cluster@bai\n")
    if mapping is not None:
        (ssh_conf / "port-mapping.json").write_text(json.dumps(mapping))
    return ssh_conf


def test_cluster_config_from_port_mapping_is_idempotent(paths: ContainerPaths, fake_tools: DropbearTools, tmp_path: Path) -> None:
    ssh_conf = _cluster_files(paths, {"main1": ["10.0.0.1", 30001], "sub1": ["10.0.0.2", 30002]})
    _prepare(paths, fake_tools, tmp_path)
    config = paths.work_dir / ".ssh" / "config"
    auth = paths.work_dir / ".ssh" / "authorized_keys"
    first_config, first_auth = config.read_text(), auth.read_text()
    _prepare(paths, fake_tools, tmp_path)
    assert config.read_text() == first_config
    assert auth.read_text() == first_auth
    assert first_config == (
        "Host main1\n  HostName 10.0.0.1\n  Port 30001\n  StrictHostKeyChecking no\n"
        f"  IdentityFile {ssh_conf}/id_cluster\n"
        "\n"
        "Host sub1\n  HostName 10.0.0.2\n  Port 30002\n  StrictHostKeyChecking no\n"
        f"  IdentityFile {ssh_conf}/id_cluster\n"
    )
    assert first_auth.count("ssh-rsa AAAAcluster cluster@bai") == 1
    assert first_auth.splitlines()[0] == "ssh-rsa AAAAFAKEid_dropbear fake@host"
    assert _mode(config) == 0o600 and _mode(auth) == 0o600


def test_cluster_config_from_replicas_keeps_user_blocks(paths: ContainerPaths, fake_tools: DropbearTools, tmp_path: Path) -> None:
    _cluster_files(paths)
    ssh_dir = paths.work_dir / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "config").write_text("Host github.com\n  User git\n")
    (ssh_dir / "authorized_keys").write_text("ssh-rsa AAAAcluster cluster@bai")  # no trailing newline
    env = {"BACKENDAI_CLUSTER_REPLICAS": "main:1,sub:2"}
    for _ in range(3):
        _prepare(paths, fake_tools, tmp_path, env)
    text = (ssh_dir / "config").read_text()
    assert text.startswith("Host github.com\n  User git\n\nHost main*\n  Port 2200\n")
    assert text.count("Host main*") == 1 and text.count("Host sub*") == 1
    assert (ssh_dir / "authorized_keys").read_text() == "ssh-rsa AAAAcluster cluster@bai"


def test_cluster_block_we_wrote_is_updated_in_place() -> None:
    ident = "IdentityFile /home/config/ssh/id_cluster"
    old_block = ["Host sub1", "  HostName a", "  Port 1", "  StrictHostKeyChecking no", f"  {ident}"]
    new_block = ["Host sub1", "  HostName b", "  Port 2", "  StrictHostKeyChecking no", f"  {ident}"]
    user_block = ["Host sub1", "  User other"]  # the same pattern, but not ours: left alone
    text = "\n".join(old_block + [""] + ["Host x", "  User y"]) + "\n"
    merged = merge_ssh_config(text, [new_block], ident)
    assert merged == "\n".join(new_block + [""] + ["Host x", "  User y"]) + "\n"
    assert merge_ssh_config(merged, [new_block], ident) == merged
    only_user = "\n".join(user_block) + "\n"
    assert merge_ssh_config(only_user, [new_block], ident) == only_user + "\n" + "\n".join(new_block) + "\n"


def test_parse_cluster_replicas() -> None:
    assert parse_cluster_replicas(None) == {"main": 1}
    assert parse_cluster_replicas("main:1,sub:3") == {"main": 1, "sub": 3}
    assert parse_cluster_replicas(" main : 1 , bad:x ,,") == {"main": 1}
    assert parse_cluster_replicas("") == {"main": 1}
