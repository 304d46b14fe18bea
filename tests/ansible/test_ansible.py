"""CI checks of the Ansible side (roles/, playbooks/, inventories/, ansible.cfg).

- ansible-lint ``--profile production`` on the roles and playbooks;
- ``ansible-playbook --syntax-check`` of every playbook with both inventories;
- the roles' own contract: every ``<role>_`` variable has a default and an argument spec;
- site.yml's gate: a typo in glb.yml stops the run on the controller before any host is
  contacted, while a valid file gets through to the hosts;
- check mode (``--check --diff``) of glb_common, glb_lab_router and glb_director against this
  machine over the local connection: real facts, real apt cache, a real wheel, the real
  ``glb-agent render`` and unit templates, BIRD parsing the rendered bird.conf - and nothing
  written.

The tools come from the ``ops`` extra (scripts/setup.sh installs it); without them the
module is skipped with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ansible.birdcheck import assert_bird_parses
from tests.support.fleet import SECRET, live_state, proxy_address, write_fleet

pytest.importorskip("ansible", reason="Ansible is not installed: pip install -e '.[ops]' (scripts/setup.sh does)")
yaml = pytest.importorskip("yaml", reason="PyYAML (an Ansible dependency) is not installed")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
INVENTORIES = {name: ROOT / "inventories" / name / "hosts.yml" for name in ("lab", "example")}
LAB_GLB = ROOT / "inventories" / "lab" / "group_vars" / "all" / "glb.yml"
ROLE_VAR = r"\b{role}_[a-z0-9_]+"


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    other = shutil.which(name)
    if other is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[ops]' (scripts/setup.sh does)")
    return other


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


def _run(argv: list[str], tmp_path: Path, timeout: float = 240, cwd: str | None = None,
         **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd or ROOT, env=_env(tmp_path, **env), capture_output=True, text=True,
                          timeout=timeout)


def test_playbooks_and_roles_exist() -> None:
    assert {p.name for p in PLAYBOOKS} >= {"site.yml", "drain.yml", "apply-config.yml"}
    assert set(ROLES) >= {"glb_common", "glb_director", "glb_proxy", "glb_lab_router"}


@pytest.mark.slow
def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    result = _run([_tool("ansible-lint"), "--offline", "--nocolor", "--profile", "production",
                   "roles", "playbooks", "inventories/example/hosts.yml", "inventories/lab/hosts.yml"],
                  tmp_path, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.mark.slow
def test_bare_ansible_lint_skips_build_caches(tmp_path: Path) -> None:
    """The repository's .ansible-lint keeps bare ``ansible-lint`` off generated trees.

    A tree laid out like the repository (its .ansible-lint, a clean playbook) plus a broken
    task file in each excluded directory: with our config it passes; with the same config
    minus exclude_paths it finds the broken files, so the exclusion is what passes it.
    """
    tree = tmp_path / "repo"
    (tree / "playbooks").mkdir(parents=True)
    shutil.copy(ROOT / ".ansible-lint", tree / ".ansible-lint")
    (tree / "playbooks" / "ok.yml").write_text(
        "---\n- name: Clean play\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Say hello\n      ansible.builtin.debug:\n        msg: hello\n")
    config = yaml.safe_load((ROOT / ".ansible-lint").read_text())
    assert {"image/cache/", "image/out/", ".venv/", "build/"} <= set(config["exclude_paths"])
    for excluded in ("image/cache/collections/roles/junk", "image/out/roles/junk", ".venv/roles/junk",
                     "build/roles/junk"):
        tasks = tree / excluded / "tasks"
        tasks.mkdir(parents=True)
        (tasks / "main.yml").write_text("---\n- shell: echo {{foo}}\n  become: yes\n")
    ok = _run([_tool("ansible-lint"), "--nocolor"], tmp_path, timeout=280, cwd=str(tree))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    without = tmp_path / "no-excludes.yml"
    without.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "exclude_paths"}))
    bad = _run([_tool("ansible-lint"), "--nocolor", "-c", str(without)], tmp_path, timeout=280,
               cwd=str(tree))
    assert bad.returncode != 0 and "junk" in bad.stdout + bad.stderr


@pytest.mark.parametrize("inventory", sorted(INVENTORIES))
@pytest.mark.parametrize("playbook", [p.name for p in PLAYBOOKS])
def test_syntax_check(playbook: str, inventory: str, tmp_path: Path) -> None:
    result = _run([_tool("ansible-playbook"), "--syntax-check", "-i", str(INVENTORIES[inventory]),
                   f"playbooks/{playbook}"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("inventory", sorted(INVENTORIES))
def test_inventory_hosts_match_glb_yml(inventory: str, tmp_path: Path) -> None:
    """Every director/proxy/router host's glb_name names an entry of that inventory's glb.yml."""
    result = _run([_tool("ansible-inventory"), "-i", str(INVENTORIES[inventory]), "--list"], tmp_path)
    assert result.returncode == 0, result.stderr
    inv = json.loads(result.stdout)
    fleet = yaml.safe_load((INVENTORIES[inventory].parent / "group_vars/all/glb.yml").read_text())
    sections = {"directors": fleet["directors"], "proxies": fleet["proxies"], "routers": fleet["bgp"]["peers"]}
    for group, entries in sections.items():
        hosts = inv[group]["hosts"]
        hostvars = [inv["_meta"]["hostvars"][h] for h in hosts]
        # A router host is one peer entry per address family (glb_name6: its IPv6 end).
        names = sorted([v["glb_name"] for v in hostvars] + [v["glb_name6"] for v in hostvars if "glb_name6" in v])
        assert names == sorted(e["name"] for e in entries), (inventory, group)


@pytest.mark.parametrize("inventory", sorted(INVENTORIES))
def test_inventory_glb_yml_is_valid(inventory: str) -> None:
    glb = INVENTORIES[inventory].parent / "group_vars/all/glb.yml"
    result = subprocess.run([str(BIN / "glb-agent"), "validate", str(glb)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_have_defaults_and_specs(role: str) -> None:
    """Every variable the role reads has a default and an argument spec, and nothing extra."""
    base = ROOT / "roles" / role
    defaults = set(yaml.safe_load((base / "defaults/main.yml").read_text()))
    specs = yaml.safe_load((base / "meta/argument_specs.yml").read_text())["argument_specs"]
    assert set(specs["main"]["options"]) == defaults
    for entry, spec in specs.items():
        assert entry == "main" or (base / "tasks" / f"{entry}.yml").is_file(), f"no tasks/{entry}.yml"
        assert set(spec.get("options", {})) <= defaults, entry
    for key in defaults:
        assert key.startswith(f"{role}_"), key
    used: set[str] = set()
    # vars/main.yml: fixed values the tasks share, not settings (no default, no spec)
    fixed_file = base / "vars/main.yml"
    produced: set[str] = set(yaml.safe_load(fixed_file.read_text())) if fixed_file.is_file() else set()
    assert not produced & defaults, f"{role}: both a setting and fixed: {sorted(produced & defaults)}"
    for path in [*base.glob("tasks/*.yml"), *base.glob("handlers/*.yml"), *base.glob("templates/*.j2")]:
        text = path.read_text()
        used |= set(re.findall(ROLE_VAR.format(role=role), text))
        produced |= set(re.findall(rf"register: ({role}_[a-z0-9_]+)", text))
        produced |= set(re.findall(rf"^ {{4,}}({role}_[a-z0-9_]+):", text, re.M))  # set_fact / vars keys
    missing = used - defaults - produced
    assert not missing, f"{role} reads variables without a default: {sorted(missing)}"
    assert (base / "README.md").is_file()


def _unreachable_inventory(tmp_path: Path, glb_text: str) -> Path:
    """The lab inventory, every host pointed at 127.0.0.1 port 1: any contact fails at once."""
    inv = yaml.safe_load(INVENTORIES["lab"].read_text())
    for group in inv["all"]["children"].values():
        for hostvars in group["hosts"].values():
            hostvars.update(ansible_host="127.0.0.1", ansible_port=1)
    (tmp_path / "inv/group_vars/all").mkdir(parents=True)
    (tmp_path / "inv/hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "inv/group_vars/all/glb.yml").write_text(glb_text)
    # The lab's TCP-MD5 password file lives next to its glb.yml (password_file: bgp-r1.md5).
    shutil.copy2(LAB_GLB.parent / "bgp-r1.md5", tmp_path / "inv/group_vars/all/bgp-r1.md5")
    return tmp_path / "inv"


@pytest.mark.slow
def test_site_stops_on_a_typo_before_touching_hosts(tmp_path: Path) -> None:
    lab = LAB_GLB.read_text()
    typo = re.sub(r"^(\s+)ports:", r"\1portz:", lab, count=1, flags=re.M)
    assert typo != lab
    line = typo.splitlines().index(next(ln for ln in typo.splitlines() if "portz:" in ln)) + 1
    inv = _unreachable_inventory(tmp_path, typo)
    result = _run([_tool("ansible-playbook"), "-i", str(inv / "hosts.yml"), "playbooks/site.yml",
                   "--skip-tags", "wheels"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"{inv}/group_vars/all/glb.yml:{line}: services[0].portz: unknown key 'portz'" in out, out
    assert "UNREACHABLE" not in out, out
    assert "Configure the lab routers" not in out, out


@pytest.mark.slow
def test_site_passes_a_valid_file_on_to_the_hosts(tmp_path: Path) -> None:
    """The counterpart of the typo test: the same run with the lab's file reaches the hosts
    (first the directors, for the rows-at-risk check of check-config.yml)."""
    inv = _unreachable_inventory(tmp_path, LAB_GLB.read_text())
    result = _run([_tool("ansible-playbook"), "-i", str(inv / "hosts.yml"), "playbooks/site.yml",
                   "--skip-tags", "wheels"], tmp_path)
    out = result.stdout + result.stderr
    assert "Validate the fleet YAML on the controller" in out
    assert "TASK [glb_director : Check for the installed agent]" in out, out
    assert re.search(r"^d1 +: ok=1 +changed=0 +unreachable=1 +failed=0", out, re.M), out
    assert re.search(r"^d2 +: ok=0 +changed=0 +unreachable=1 +failed=0", out, re.M), out
    assert result.returncode != 0, out


@pytest.fixture(scope="module")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real agent wheel, as the roles install it (dependencies are not needed for --check)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--disable-pip-version-check", "--wheel-dir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/etc/debian_version").exists() or os.geteuid() != 0,
                    reason="check mode of the roles needs a Debian host and root (apt, systemd)")
def test_roles_in_check_mode_on_this_machine(tmp_path: Path, agent_wheel: Path) -> None:
    scratch = tmp_path / "target"
    report_file = tmp_path / "report.json"
    director_file = tmp_path / "director.json"
    render_dir = tmp_path / "director"
    render_dir.mkdir()
    extra = {
        "glb_common_config_file": str(LAB_GLB),
        "glb_common_config_dir": str(scratch / "etc/glb"),
        "glb_common_venv": str(scratch / "opt/glb/venv"),
        "glb_common_host_wheel_dir": str(scratch / "opt/glb/wheels"),
        "glb_common_wheel_dir": str(agent_wheel),
        "glb_image_build": True,
        "glb_name": "r1",
        "glb_lab_router_config_file": str(LAB_GLB),
        "glb_test_report": str(report_file),
        # The director role renders with the real agent: this venv stands in for /opt/glb/venv.
        "glb_director_name": "d1",
        "glb_director_venv": str(BIN.parent),
        "glb_director_config": str(LAB_GLB),
        "glb_director_render_dir": str(render_dir),
        "glb_test_director_report": str(director_file),
    }
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    result = _run([_tool("ansible-playbook"), "-i", "localhost,", "-c", "local", "--check", "--diff",
                   "-e", f"@{tmp_path / 'extra.json'}", "tests/ansible/check_local.yml"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert re.search(r"^localhost +: ok=\d+ +changed=\d+ +unreachable=0 +failed=0", out, re.M), out[-3000:]
    report = json.loads(report_file.read_text())

    # The fleet YAML would be copied verbatim, the real wheel would be copied, and nothing was
    # written to the target paths.
    assert report["config_copy"]["changed"]
    assert report["config_copy"]["diff"][0]["after"] == LAB_GLB.read_text()
    assert report["wheels_copy"]["changed"]
    assert [Path(w).name for w in report["agent_wheels"]] == [w.name for w in agent_wheel.glob("*.whl")]
    assert not scratch.exists(), sorted(str(p) for p in scratch.rglob("*"))

    # The director role rendered with the agent and the agent's unit templates; check mode
    # left the render directory empty.
    director = json.loads(director_file.read_text())
    assert director["rendered"] == ["director.conf", "forwarding_table.bin", "forwarding_table.json"]
    units = director["units"]
    assert "--name d1" in units["glb-director.service"]
    assert f"exabgp {render_dir}/exabgp.conf" in units["exabgp.service"]
    assert "After=network-online.target glb-director.service" in units["exabgp.service"]
    assert list(render_dir.iterdir()) == []

    # bird.conf as the role renders it: peers with both lab directors, valid for BIRD itself.
    bird_conf = report["bird_conf"]
    assert "merge paths on" in bird_conf
    assert re.findall(r"neighbor (\S+) as 65100;", bird_conf) == ["198.18.0.11", "198.18.0.12"]
    assert "local 198.18.0.1 as 65000;" in bird_conf
    assert_bird_parses(bird_conf, tmp_path)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the roles install files owned by root")
def test_apply_config_refuses_rows_at_risk_unless_forced(tmp_path: Path) -> None:
    """playbooks/apply-config.yml for real on this machine (director d1 over the local
    connection, this venv as its agent, the agent's live tables in a scratch state dir):
    an edit that puts rows at risk stops the run with the agent's diff and message before
    any host changes; a safe one is installed and reloads; a second run changes nothing;
    the force variable rolls a risky edit out."""
    inv = tmp_path / "inv"
    controller = inv / "group_vars" / "all"
    controller.mkdir(parents=True)
    # The relative secret and password files are staged with glb.yml on the host (the
    # secret one directory up, as glb_common installs it: /etc/secrets/glb.secret).
    (inv / "group_vars" / "secrets").mkdir()
    (inv / "group_vars" / "secrets" / "glb.secret").write_text(SECRET + "\n")
    (controller / "bgp-r1.md5").write_text("s3cret-md5\n")
    for path in (inv / "group_vars" / "secrets" / "glb.secret", controller / "bgp-r1.md5"):
        path.chmod(0o600)
    glb = controller / "glb.yml"
    host = tmp_path / "host"
    state, render, tmp = host / "run/glb/director", host / "etc/glb/director", host / "tmp"
    tmp.mkdir(parents=True)
    (host / "etc/secrets").mkdir(parents=True)  # glb_common copies into it, as to /etc/secrets
    paths = {"glb_common_config_dir": str(host / "etc/glb"), "glb_common_venv": str(BIN.parent),
             "glb_director_venv": str(BIN.parent), "glb_director_config": str(host / "etc/glb/glb.yml"),
             "glb_director_render_dir": str(render),
             # No systemd unit runs here: the reload handler is notified, then skipped.
             "glb_director_was_active": False}
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": paths, "children": {
        "directors": {"hosts": {"d1": {"ansible_connection": "local", "glb_name": "d1"}}},
        # Never contacted: the run either stops before the proxies' play or is --limit d1.
        "proxies": {"hosts": {"p1": {"ansible_host": "127.0.0.1", "ansible_port": 1, "glb_name": "p1"}}},
    }}}))
    p1, p2, p3 = (proxy_address(i) for i in (1, 2, 3))
    every = {p1: "active", p2: "active", p3: "active"}

    def edit(backends: dict[str, str]) -> str:
        return write_fleet(glb, backends, proxies=3, fleet={"secret": None, "secret_file": "../secrets/glb.secret"},
                           peer={"password_file": "bgp-r1.md5"}).read_text()

    def play(*extra: str) -> tuple[int, str]:
        result = _run([_tool("ansible-playbook"), "-i", str(inv / "hosts.yml"), "playbooks/apply-config.yml",
                       *extra], tmp_path, GLB_STATE_DIR=str(state), TMPDIR=str(tmp))
        out = result.stdout + result.stderr
        assert not list(tmp.glob("glb-check.*")), "the scratch directory was left behind"
        return result.returncode, out

    # The fleet as deployed: installed by a first (safe) run, served by the agent.
    deployed = edit(every)
    live_state(state, glb)
    rc, out = play("--limit", "d1")
    assert rc == 0, out[-4000:]
    assert (host / "etc/glb/glb.yml").read_text() == deployed
    before = _snapshot(host / "etc")

    # Risky: p3 leaves the service while active. The run stops at the check, on the
    # controller's side of every change: no host got the file, no handler ran, p1 (an
    # unreachable proxy) was never contacted.
    edit({p1: "active", p2: "active"})
    rc, out = play()
    assert rc != 0, out[-4000:]
    at_risk = re.search(r"refused: the edit puts (\d+) rows at risk", out)
    assert at_risk and int(at_risk.group(1)) > 0, out[-4000:]
    assert f"rows at risk: {at_risk.group(1)} of 65536" in out  # the agent's diff is shown
    assert "-e glb_director_force_rows_at_risk=true" in out
    assert "Install glb.yml" not in out and "RUNNING HANDLER" not in out and "UNREACHABLE" not in out, out[-4000:]
    assert _snapshot(host / "etc") == before

    # Safe: p3 drains instead. Installed, re-rendered, the reload handler notified.
    drained = edit({p1: "active", p2: "active", p3: "draining"})
    rc, out = play("--limit", "d1")
    assert rc == 0, out[-4000:]
    assert (host / "etc/glb/glb.yml").read_text() == drained
    assert "RUNNING HANDLER [glb_director : Apply the changed fleet YAML to the running director]" in out
    live_state(state, glb)  # what the agent's reload (SIGHUP) leaves

    # The same file again: the check passes and nothing changes.
    rc, out = play("--limit", "d1")
    assert rc == 0, out[-4000:]
    assert re.search(r"^d1 +: ok=\d+ +changed=0 +unreachable=0 +failed=0", out, re.M), out[-4000:]

    # Risky again (p1 removed while active), rolled out with the force variable: the diff
    # with its rows at risk is printed and the file goes out.
    forced = edit({p2: "active", p3: "draining"})
    rc, out = play("--limit", "d1", "-e", "glb_director_force_rows_at_risk=true")
    assert rc == 0, out[-4000:]
    assert re.search(r"rows at risk: [1-9]\d* of 65536", out), out[-4000:]
    assert (host / "etc/glb/glb.yml").read_text() == forced
