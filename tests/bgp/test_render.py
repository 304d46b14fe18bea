"""exabgp.conf and the lab router's bird.conf: content, determinism, and that the real
ExaBGP and BIRD parsers accept what we render (and reject a broken variant)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glb_agent.bgp.prefixes import announced_prefixes, session_prefixes
from glb_agent.bgp.render import render_exabgp_conf
from glb_agent.bgp.router import render_bird_conf, render_frr_conf
from glb_agent.cli import main
from glb_agent.config import load_config
from glb_agent.errors import InputError
from tests.bgp.bgplab import CONFIG

EXABGP = Path(sys.executable).parent / "exabgp"
FEED = [sys.executable, "-m", "glb_agent.cli", "bgp-feed", "--config", "/etc/glb/glb.yml", "--director", "d1"]

TWO_PEERS = CONFIG.format(hold=6, bfd="true", security="").replace(
    "      asn: 65000\n",
    "      asn: 65000\n    - name: r2\n      address: 198.18.1.1\n      asn: 65001\n      port: 1179\n", 1,
).replace("    address: 198.18.0.12\n", "    address: 198.18.0.12\n    router_id: 192.0.2.12\n    bgp_peers: [r2]\n")


def loaded(tmp_path: Path, text: str = TWO_PEERS):
    path = tmp_path / "glb.yml"
    path.write_text(text)
    return load_config(path)


def exabgp_validate(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "exabgp.conf"
    conf.write_text(text)
    return subprocess.run([str(EXABGP), "validate", "-n", str(conf)], capture_output=True, text=True,
                          timeout=60)


def test_prefixes_are_host_routes_and_cidrs_ipv4_first(tmp_path: Path) -> None:
    cfg = loaded(tmp_path).config
    assert [str(p) for p in announced_prefixes(cfg)] == [
        "198.51.100.0/28", "203.0.113.10/32", "2001:db8:100::10/128"]
    # d1 peers with everyone, including the IPv6 entry r1v6, from its address6.
    d1, d2 = cfg.directors
    ok, skipped = session_prefixes(cfg, d1)
    assert [str(p) for p in ok] == ["198.51.100.0/28", "203.0.113.10/32", "2001:db8:100::10/128"]
    assert skipped == []
    # d2 peers only with r2 (IPv4): its IPv6 VIP has no session to ride.
    ok, skipped = session_prefixes(cfg, d2)
    assert [str(p) for p in ok] == ["198.51.100.0/28", "203.0.113.10/32"]
    assert [str(p) for p in skipped] == ["2001:db8:100::10/128"]


def test_neighbors_follow_each_directors_peers(tmp_path: Path) -> None:
    cfg = loaded(tmp_path)
    d1 = render_exabgp_conf(cfg, "d1", FEED)
    assert d1.count("neighbor ") == 3  # bgp_peers unset: every peer
    assert "neighbor 198.18.0.1 {" in d1 and "neighbor 198.18.1.1 {" in d1
    assert "    local-address 198.18.0.11;\n" in d1 and "    router-id 198.18.0.11;\n" in d1
    assert "    local-as 65100;\n" in d1 and "    peer-as 65001;\n" in d1
    assert "    hold-time 6;\n" in d1
    assert d1.count("connect 1179;") == 1  # only the peer on a non-default port
    # One family per session, matching the session's address family; no RFC 8950 nexthop.
    v6 = d1[d1.index("neighbor 2001:db8:18::1 {"):]
    v6 = v6[: v6.index("\n}\n")]
    assert "    local-address 2001:db8:18::11;\n" in v6 and "    router-id 198.18.0.11;\n" in v6
    assert "ipv6 unicast;" in v6 and "ipv4" not in v6
    assert d1.count("ipv4 unicast;") == 2 and d1.count("ipv6 unicast;") == 1 and "nexthop {" not in d1
    assert f"run {' '.join(FEED)};" in d1
    d2 = render_exabgp_conf(cfg, "d2", FEED)
    assert d2.count("neighbor ") == 1 and "neighbor 198.18.1.1 {" in d2
    assert "    router-id 192.0.2.12;\n" in d2 and "    local-address 198.18.0.12;\n" in d2
    assert "ipv6" not in d2


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    cfg = loaded(tmp_path)
    assert render_exabgp_conf(cfg, "d1", FEED) == render_exabgp_conf(loaded(tmp_path), "d1", FEED)


def test_ipv6_only_fleet_still_opens_an_ipv4_session(tmp_path: Path) -> None:
    text = TWO_PEERS.replace('vips: [203.0.113.10, "2001:db8:100::10"]', 'vips: ["2001:db8:100::10"]')
    text = text.replace("    cidrs: [198.51.100.0/28]\n", "")
    conf = render_exabgp_conf(loaded(tmp_path, text), "d2", FEED)
    assert "ipv6" not in conf and "ipv4 unicast;" in conf


@pytest.mark.skipif(not EXABGP.exists(), reason="exabgp not installed in the venv")
def test_exabgp_accepts_rendered_config_and_rejects_a_broken_one(tmp_path: Path) -> None:
    text = render_exabgp_conf(loaded(tmp_path), "d1", FEED)
    ok = exabgp_validate(text, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = exabgp_validate(text.replace("hold-time 6;", "hold-time 1;"), tmp_path)
    assert broken.returncode != 0 and "holdtime" in broken.stdout + broken.stderr


@pytest.mark.parametrize("command", [
    [], ["python3", "-m", "glb_agent.cli"], [sys.executable, "--config", "/a b/glb.yml"],
    [sys.executable, "x;y"]])
def test_feed_command_exabgp_cannot_run_is_refused(command: list[str], tmp_path: Path) -> None:
    with pytest.raises(InputError):
        render_exabgp_conf(loaded(tmp_path), "d1", command)


def test_cli_render_and_unknown_director(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "glb.yml"
    cfg.write_text(TWO_PEERS)
    assert main(["bgp", "render", "--config", str(cfg), "--director", "d2", "--readiness", "xdp"]) == 0
    out = capsys.readouterr().out
    assert f"bgp-feed {cfg.resolve()} --name d2 --readiness xdp;" in out
    assert main(["bgp", "render", "--config", str(cfg), "--director", "d9"]) == 2
    assert "no director named 'd9'" in capsys.readouterr().err


def test_bird_config_peers_with_the_directors_that_name_the_router(tmp_path: Path) -> None:
    cfg = loaded(tmp_path)
    r1 = render_bird_conf(cfg, "r1")
    assert "neighbor 198.18.0.11 as 65100;" in r1 and "198.18.0.12" not in r1  # d2 peers with r2 only
    assert "local 198.18.0.1 as 65000;" in r1 and "hold time 6;" in r1 and "keepalive time 2;" in r1
    assert "merge paths on" in r1 and "ipv6" not in r1  # the IPv4 entry alone: IPv4 only
    assert "if net ~ [ 198.51.100.0/28, 203.0.113.10/32 ] then accept;" in r1
    r2 = render_bird_conf(cfg, "r2", accept={4: ["203.0.113.0/24{32,32}"]})
    assert "neighbor 198.18.0.11 as 65100;" in r2 and "neighbor 198.18.0.12 as 65100;" in r2
    assert "[ 203.0.113.0/24{32,32} ]" in r2 and "ipv6" not in r2
    with pytest.raises(InputError):
        render_bird_conf(cfg, "r9")


def test_bird_config_for_a_dual_stack_router(tmp_path: Path) -> None:
    """The router's IPv4 and IPv6 entries become one BIRD: a session per director and family,
    multipath kernel routes for both."""
    r1 = render_bird_conf(loaded(tmp_path), ["r1", "r1v6"])
    assert "router id 198.18.0.1;" in r1
    assert "protocol kernel kernel_v6 {" in r1 and r1.count("merge paths on") == 2
    assert "local 2001:db8:18::1 as 65000;" in r1 and "local 198.18.0.1 as 65000;" in r1
    assert "protocol bgp d_d1_v6 from glb_director_v6 {" in r1 and "neighbor 2001:db8:18::11 as 65100;" in r1
    assert "2001:db8:18::12" not in r1  # d2 peers with r2 only
    assert "if net ~ [ 2001:db8:100::10/128 ] then accept;" in r1
    with pytest.raises(InputError, match="both IPv4"):
        render_bird_conf(loaded(tmp_path), ["r1", "r2"])
    with pytest.raises(InputError, match="router id"):
        render_bird_conf(loaded(tmp_path), "r1v6")
    assert "router id 192.0.2.1;" in render_bird_conf(loaded(tmp_path), "r1v6", router_id="192.0.2.1")


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 not installed (scripts/setup.sh)")
def test_bird_parses_rendered_config_and_rejects_a_broken_one(tmp_path: Path) -> None:
    text = render_bird_conf(loaded(tmp_path), ["r1", "r1v6"])
    conf = tmp_path / "bird.conf"
    conf.write_text(text)
    ok = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    conf.write_text(text.replace("merge paths on", "merge pathz on"))
    bad = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0


def test_frr_config_has_multipath_filters_and_timers(tmp_path: Path) -> None:
    text = render_frr_conf(loaded(tmp_path), "r1")
    assert "router bgp 65000\n" in text and " neighbor GLB remote-as 65100\n" in text
    assert " neighbor 198.18.0.11 peer-group GLB\n" in text and "198.18.0.12" not in text
    assert " neighbor GLB timers 2 6\n" in text and "  maximum-paths 16\n" in text
    assert "ip prefix-list GLB-VIPS-V4 seq 5 permit 198.51.100.0/28\n" in text
    assert "ip prefix-list GLB-VIPS-V4 seq 10 permit 203.0.113.10/32\n" in text
    assert "bgp bestpath as-path multipath-relax" in text and "ipv6" not in text
    both = render_frr_conf(loaded(tmp_path), ["r1", "r1v6"])
    assert " neighbor GLB6 update-source 2001:db8:18::1\n" in both
    assert " neighbor 2001:db8:18::11 peer-group GLB6\n" in both
    assert "ipv6 prefix-list GLB-VIPS-V6 seq 5 permit 2001:db8:100::10/128\n" in both
    v6 = both[both.index(" address-family ipv6 unicast"):]
    assert "  neighbor GLB6 activate\n" in v6 and "  maximum-paths 16\n" in v6


@pytest.mark.skipif(not Path("/usr/lib/frr/bgpd").exists(), reason="frr not installed (scripts/setup.sh)")
def test_frr_parses_rendered_config_and_rejects_a_broken_one(tmp_path: Path) -> None:
    def dry_run(text: str) -> str:
        conf = tmp_path / "frr.conf"
        conf.write_text(text)
        # bgpd's dry run exits 0 even on bad lines: the verdict is what it prints.
        run = subprocess.run(["/usr/lib/frr/bgpd", "-S", "-C", "-f", str(conf), "-z", str(tmp_path / "zs"),
                              "-i", str(tmp_path / "bgpd.pid"), "--vty_socket", str(tmp_path)],
                             capture_output=True, text=True, timeout=30)
        return run.stdout + run.stderr

    text = render_frr_conf(loaded(tmp_path), ["r1", "r1v6"])
    assert dry_run(text).strip() == ""
    assert "No such command" in dry_run(text.replace("maximum-paths 16", "maximum-pathz 16"))


SECURE = CONFIG.format(hold=9, bfd="true", security="\n      password_env: GLB_TEST_MD5\n      ttl_security: true")


def test_password_gtsm_and_bfd_reach_every_config_and_each_parser_accepts_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glb_agent.bgp.bfd import render_bfd_conf
    from glb_agent.config.hosts import this_director

    monkeypatch.setenv("GLB_TEST_MD5", "s3cret/md5.key")
    cfg = loaded(tmp_path, SECURE)
    exa = render_exabgp_conf(cfg, "d1", FEED)
    assert exa.count('md5-password "s3cret/md5.key";') == 2 and exa.count("incoming-ttl 255;") == 2
    assert "neighbor-changes;" in exa
    checked = exabgp_validate(exa, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bird = render_bird_conf(cfg, ["r1", "r1v6"])
    assert bird.count('password "s3cret/md5.key";') == 2 and bird.count("ttl security on;") == 2
    assert "protocol bfd glb_bfd" in bird and bird.count("multiplier 3; };") == 2
    frr = render_frr_conf(cfg, ["r1", "r1v6"])
    assert " neighbor GLB password s3cret/md5.key\n" in frr and " neighbor GLB6 ttl-security hops 1\n" in frr
    assert " neighbor GLB bfd 3 100 100\n" in frr
    director = render_bfd_conf(cfg, this_director(cfg, "d1", strict=True))
    assert director is not None
    assert "neighbor 198.18.0.1 local 198.18.0.11;" in director
    assert "neighbor 2001:db8:18::1 local 2001:db8:18::11;" in director
    for name, text in (("bird.conf", bird), ("bfd.conf", director)):
        (tmp_path / name).write_text(text)
        if shutil.which("bird"):
            parsed = subprocess.run(["bird", "-p", "-c", str(tmp_path / name)], capture_output=True, text=True,
                                    timeout=30)
            assert parsed.returncode == 0, parsed.stderr + text
    # Without the variable: a clear error naming the peer, nothing rendered.
    monkeypatch.delenv("GLB_TEST_MD5")
    with pytest.raises(InputError, match=r"bgp.peers\[0\]: password of peer r1: environment variable GLB_TEST_MD5"):
        render_exabgp_conf(cfg, "d1", FEED)
