"""What a desktop's network namespace costs: launch time and throughput.

Usage (root; bwrap and iperf3 installed):

    python -m benchmarks.network [--reps 30] [--seconds 3] [--out FILE]

1. Set-up: time of `NetworkManager.ensure()` per mode (namespace, veth, nft, forwarder).
2. Launch: wall time from `Launcher.launch()` to the exit of a sandbox running /bin/true,
   (a) with no desktop namespace (bwrap unshares its own) and (b) joining the desktop's
   existing namespace (setns before bwrap). The difference is the added launch time.
3. Throughput: iperf3 (TCP, one stream) from the host, and from a `full` and a `filtered`
   desktop, to a server in a namespace this benchmark creates on a documentation-range
   address. The host's path is one veth hop; a desktop's adds a veth hop, forwarding,
   conntrack, the nft chains and masquerade. No packet leaves the namespaces created here.

Results are JSON (stdout by default).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute, netns

from benchmarks.stats import emit_json
from zionwm.isolation.launcher import Launcher
from zionwm.isolation.network.manager import NetworkManager
from zionwm.isolation.spec import AllowRule, DesktopSpec, NetMode, NetworkPolicy

SERVER_ADDR = "198.51.100.80"
CLONE_NEWNET = 0x40000000
IPERF_PORT = 5201


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 3),
        "min_ms": round(ordered[0] * 1000, 3),
    }


@contextmanager
def _internet(prefix: str) -> Iterator[tuple[str, str, str]]:
    """A namespace with SERVER_ADDR behind a veth: (namespace, uplink, uplink gateway)."""
    ns, uplink = prefix + "inet", prefix + "up"
    k = 32 + secrets.randbelow(32)
    host_addr, peer_addr = f"203.0.113.{4 * k + 1}", f"203.0.113.{4 * k + 2}"
    netns.create(ns)
    try:
        with IPRoute() as ip:
            ip.link("add", ifname=uplink, kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
            idx = ip.link_lookup(ifname=uplink)[0]
            ip.addr("add", index=idx, address=host_addr, prefixlen=30)
            ip.link("set", index=idx, state="up")
        with IPRoute(netns=ns) as ip:
            lo = ip.link_lookup(ifname="lo")[0]
            ip.link("set", index=lo, state="up")
            ip.addr("add", index=lo, address=SERVER_ADDR, prefixlen=32)
            eth = ip.link_lookup(ifname="eth0")[0]
            ip.addr("add", index=eth, address=peer_addr, prefixlen=30)
            ip.link("set", index=eth, state="up")
            # The host's baseline reaches the server through the link's own subnet.
        yield ns, uplink, peer_addr
    finally:
        with IPRoute() as ip:
            found = ip.link_lookup(ifname=uplink)
            if found:
                ip.link("del", index=found[0])
        netns.remove(ns)


def _iperf(prefix_argv: list[str], addr: str, seconds: int) -> float:
    res = subprocess.run(
        [*prefix_argv, "iperf3", "-J", "-c", addr, "-p", str(IPERF_PORT), "-t", str(seconds)],
        capture_output=True,
        check=True,
        timeout=seconds + 30,
    )
    doc = json.loads(res.stdout)
    return round(doc["end"]["sum_received"]["bits_per_second"] / 1e9, 3)


def _time_launch(launch: Callable[[], object], reps: int) -> list[float]:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sandbox = launch()
        sandbox.wait(timeout=30)  # type: ignore[attr-defined]
        samples.append(time.perf_counter() - t0)
    return samples


def _time_setns(path: Path, reps: int) -> list[float]:
    libc = ctypes.CDLL(None, use_errno=True)
    samples: list[float] = []

    def once() -> None:
        t0 = time.perf_counter()
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        samples.append(time.perf_counter() - t0)

    for _ in range(reps):
        t = threading.Thread(target=once)  # a thread of its own: only it moves
        t.start()
        t.join()
    return samples


def _time_popen(preexec: Callable[[], None] | None, reps: int) -> list[float]:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(["/bin/true"], preexec_fn=preexec, check=True)
        samples.append(time.perf_counter() - t0)
    return samples


def run(reps: int, seconds: int) -> dict[str, object]:
    prefix = "zwb" + secrets.token_hex(3)
    report: dict[str, object] = {
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "prefix": prefix,
    }
    tmp = Path(tempfile.mkdtemp(prefix="zionwm-netbench-"))
    for var in ("XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        d = tmp / var.lower()
        d.mkdir(mode=0o700)
        os.environ[var] = str(d)
    try:
        with _internet(prefix) as (inet_ns, uplink, gw):
            server = subprocess.Popen(
                ["ip", "netns", "exec", inet_ns, "iperf3", "-s", "-p", str(IPERF_PORT)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            mgr = NetworkManager(prefix, uplink=uplink, uplink_gateway=gw, upstream_dns=[gw])
            try:
                mgr.cleanup_stale()
                setup: dict[str, dict[str, float]] = {}
                policies = {
                    "none": NetworkPolicy(NetMode.NONE),
                    "full": NetworkPolicy(NetMode.FULL),
                    "filtered": NetworkPolicy(
                        NetMode.FILTERED,
                        allow=(AllowRule(f"{SERVER_ADDR}/32", ports=(IPERF_PORT,)),),
                    ),
                }
                for name, policy in policies.items():
                    samples = []
                    for i in range(max(3, reps // 5)):
                        t0 = time.perf_counter()
                        mgr.ensure(f"s{name}{i}", policy)
                        samples.append(time.perf_counter() - t0)
                        mgr.teardown(f"s{name}{i}")
                    setup[name] = _stats(samples)
                report["ensure"] = setup

                launcher = Launcher(netns_path=mgr.netns_path)
                for name, policy in policies.items():
                    mgr.ensure(name, policy)
                alone = DesktopSpec(name="alone", colour=(1.0, 1.0, 1.0, 1.0))
                joined = DesktopSpec(name="full", colour=(1.0, 1.0, 1.0, 1.0))
                _time_launch(lambda: launcher.launch(alone, ["/bin/true"]), 3)  # warm caches
                own: list[float] = []
                join: list[float] = []
                for _ in range(reps):  # interleaved, so load drift hits both alike
                    own += _time_launch(lambda: launcher.launch(alone, ["/bin/true"]), 1)
                    join += _time_launch(lambda: launcher.launch(joined, ["/bin/true"]), 1)
                ns_path = mgr.netns_path("full")
                assert ns_path is not None
                report["launch"] = {
                    "own_empty_netns": _stats(own),
                    "join_desktop_netns": _stats(join),
                    "added_median_ms": round(
                        (statistics.median(join) - statistics.median(own)) * 1000, 3
                    ),
                    # Where the difference comes from: setns(2) itself, and the fork that a
                    # preexec_fn forces on subprocess (no vfork) in a process this size.
                    "setns_alone": _stats(_time_setns(ns_path, reps)),
                    "popen_true_vfork": _stats(_time_popen(None, reps)),
                    "popen_true_with_preexec_fork": _stats(_time_popen(lambda: None, reps)),
                }

                _wait_port(inet_ns)
                full, filtered = mgr.get("full"), mgr.get("filtered")
                assert full is not None and filtered is not None
                report["throughput_gbit_s"] = {
                    # The host reaches the server's link address directly.
                    "host": _iperf([], gw, seconds),
                    "full_desktop": _iperf(full.nsenter_prefix(), SERVER_ADDR, seconds),
                    "filtered_desktop": _iperf(filtered.nsenter_prefix(), SERVER_ADDR, seconds),
                }
            finally:
                mgr.close()
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _wait_port(ns: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        res = subprocess.run(
            ["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{IPERF_PORT}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError("iperf3 server did not start")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.network needs root (namespaces, veths, nftables)", file=sys.stderr)
        return 2
    for tool in ("iperf3", "bwrap", "nft"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            print(f"benchmarks.network needs {tool}", file=sys.stderr)
            return 2
    emit_json(run(args.reps, args.seconds), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
