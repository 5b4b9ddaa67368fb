"""Pure parts of the network hardening: instance names and the pasta-side guard rules."""

from __future__ import annotations

from zionwm.isolation import instance
from zionwm.isolation.network import policy as netpolicy


def test_instance_ids_differ_per_user_runtime_socket_and_explicit_name() -> None:
    base = instance.instance_id(1000, "/run/user/1000", "wayland-0")
    assert base == instance.instance_id(1000, "/run/user/1000/", "wayland-0")  # restart: same
    others = {
        instance.instance_id(1001, "/run/user/1000", "wayland-0"),
        instance.instance_id(1000, "/run/user/1001", "wayland-0"),
        instance.instance_id(1000, "/run/user/1000", "wayland-1"),  # a nested instance
        instance.instance_id(1000, "/run/user/1000", "wayland-0", "ci"),
    }
    assert base not in others and len(others) == 4
    prefix = instance.network_prefix(base)
    assert netpolicy.check_prefix(prefix) == prefix
    # another instance's namespace names never start with ours
    other = instance.network_prefix(instance.instance_id(0, "/run", "wayland-0"))
    assert not netpolicy.netns_name(other, "web").startswith(prefix + "-")
    assert instance.cgroup_root_name(base) == f"zionwm-{base}"


def test_guard_rules_block_the_lan_but_its_resolver_and_cut_everything_when_off() -> None:
    on = netpolicy.guard_ruleset(block_lan=True, enabled=True, lan_dns=["10.0.0.53"])
    assert "delete table inet zionwm_guard" in on  # replaces the previous rules atomically
    assert 'oifname "lo" accept' in on
    assert "ip daddr { 10.0.0.53 } meta l4proto { tcp, udp } th dport 53 accept" in on
    assert "192.168.0.0/16" in on and "reject with tcp reset" in on
    assert on.index("th dport 53 accept") < on.index("192.168.0.0/16")
    plain = netpolicy.guard_ruleset(block_lan=False, enabled=True)
    assert "192.168.0.0/16" not in plain and "reject" not in plain
    off = netpolicy.guard_ruleset(block_lan=False, enabled=False)
    lines = off.splitlines()
    assert lines[-2].endswith("output meta l4proto tcp reject with tcp reset")
    assert lines[-1].endswith("output reject with icmpx admin-prohibited")


def test_lan_resolvers_are_the_private_ones_only() -> None:
    assert netpolicy.lan_resolvers(["192.168.1.1", "9.9.9.9", "::1", "x", "10.1.2.3"]) == [
        "192.168.1.1",
        "10.1.2.3",
    ]
