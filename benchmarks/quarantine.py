"""Quarantine throughput, end to end: files dropped into a desktop's inbox until released.

Starts the real `zionwm-quarantined` (hold 0) in a private XDG tree with every scanner,
including a test clamd built with the tests' fixture when ClamAV is installed, drops N files
of each size into the web desktop's inbox at once, and waits until all are released.
Reports files/s and MB/s, the mean time each scanner took per file (from the audit reports),
the CPU each part spent per file (the service's own process, the audit sandboxes, clamd:
user + system time, less noisy than files/s on a shared machine), and the resident memory
of each part (the service's peak too: the files in flight it remembers are bounded).

    .venv/bin/python -m benchmarks.quarantine [--count-small 200] [--count-large 30]
        [--workers 2] [--no-clamd] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.stats import parse_kib, rss_kib_of
from zionwm import paths
from zionwm.quarantine.client import QuarantineClient
from zionwm.quarantine.service import default_workers


@contextlib.contextmanager
def _clamd(workdir: Path, enabled: bool) -> Iterator[Any]:
    if not enabled or shutil.which("clamd") is None or shutil.which("sigtool") is None:
        yield None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.system.clamd_fixture import running_clamd  # noqa: PLC0415 - optional

    with running_clamd(workdir / "clamd") as c:
        yield c


def _start_service(
    policy_file: Path, workers: int, log: Path, profile: str | None = None
) -> subprocess.Popen[bytes]:
    r, w = os.pipe()
    # the service's main thread under cProfile (audit threads are not profiled)
    prof = ["-m", "cProfile", "-o", profile] if profile else []
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [
                sys.executable,
                *prof,
                "-m",
                "zionwm.quarantine.service",
                "--policy-file",
                str(policy_file),
                "--ready-fd",
                str(w),
                "--workers",
                str(workers),
                "--log-level",
                "WARNING",
            ],
            pass_fds=(w,),
            stdout=logf,
            stderr=logf,
        )
    os.close(w)
    ready, _, _ = select.select([r], [], [], 30)
    ok = ready and os.read(r, 16) == b"READY\n"
    os.close(r)
    if not ok:
        proc.kill()
        raise RuntimeError(f"service did not start; see {log}")
    return proc


def _peak_kib(pid: int) -> int | None:
    """A process's peak resident memory (VmHWM) in KiB, or None if it is gone."""
    try:
        return parse_kib(Path(f"/proc/{pid}/status").read_text(), "VmHWM")
    except OSError:
        return None


def _cpu_seconds(pid: int, own_only: bool = False) -> float:
    """CPU time of a process and of its children it has reaped (utime+stime+cutime+cstime),
    or (`own_only`) of the process alone (utime+stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11 : 13 if own_only else 15]) / os.sysconf("SC_CLK_TCK")


class CgroupClock:
    """CPU time of everything in a cgroup2 group of our own (its `cpu.stat`, which every
    cgroup2 group has, controllers or not): unlike summing /proc entries it keeps the CPU of
    processes that are gone, such as a retired audit sandbox that was not reaped by its
    parent. None where no cgroup2 hierarchy is writable here."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, name: str) -> CgroupClock | None:
        for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
            if not (root / "cgroup.procs").exists() or not (root / "cpu.stat").exists():
                continue
            try:
                (root / name).mkdir()
            except OSError:
                continue
            return cls(root / name)
        return None

    def join(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def seconds(self) -> float:
        for line in (self.path / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
        return 0.0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _cpu_parts(service: int, clamd: int | None, clock: CgroupClock | None) -> dict[str, float]:
    """Where the CPU went: the service process itself (its loop and audit threads), the
    audit sandboxes (zygotes and every child they forked, living or reaped), clamd."""
    own = _cpu_seconds(service, own_only=True)
    clamd_cpu = _tree_cpu([clamd]) if clamd is not None else 0.0
    whole = clock.seconds() if clock is not None else _tree_cpu([service])
    return {"service": own, "audit_sandboxes": whole - own, "clamd": clamd_cpu}


def _tree_cpu(pids: list[int]) -> float:
    """CPU of these processes and all their descendants, living or reaped."""
    total = 0.0
    todo = list(pids)
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _cpu_seconds(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [
                    int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                ]
    return total


def _run_batch(
    client: QuarantineClient,
    inbox: Path,
    *,
    prefix: str,
    count: int,
    size: int,
    timeout: float,
    cpu_pids: list[int] | None = None,
    clock: CgroupClock | None = None,
) -> dict[str, Any]:
    """Drop `count` files of `size` bytes at once; wait for every one's terminal event."""
    events = QuarantineClient(timeout=timeout)
    events.subscribe()
    payloads = [os.urandom(size) for _ in range(min(count, 8))]
    clamd_pid = cpu_pids[1] if cpu_pids and len(cpu_pids) > 1 else None
    parts0 = _cpu_parts(cpu_pids[0], clamd_pid, clock) if cpu_pids else {}
    t0 = time.monotonic()
    wall0 = time.time()
    for n in range(count):
        part = inbox / f"{prefix}{n:05d}.bin.part"
        part.write_bytes(payloads[n % len(payloads)] + b"%d" % n)
        os.rename(part, inbox / f"{prefix}{n:05d}.bin")
    done: dict[int, dict[str, Any]] = {}
    while len(done) < count:
        left = t0 + timeout - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{prefix}: only {len(done)}/{count} done after {timeout} s")
        ev = events.next_event(left)
        it = ev["item"]
        if it["name"].startswith(prefix) and it["state"] in ("released", "rejected"):
            done[it["id"]] = it
    events.close()
    elapsed = time.monotonic() - t0
    # what the quarantine cost the machine per file (service, audit sandboxes, clamd):
    # unlike files/s, this does not depend on what else the machine was running
    parts1 = _cpu_parts(cpu_pids[0], clamd_pid, clock) if cpu_pids else {}
    cpu_ms = 1000 * sum(parts1[k] - parts0[k] for k in parts1) / count
    per_scanner: dict[str, list[float]] = {}
    stages: dict[str, list[float]] = {"taken": [], "audited": [], "released": []}
    for it in done.values():
        full = client.request("show", id=it["id"])["item"]
        report = full.get("report") or {}
        for scanner, secs in report.get("durations", {}).items():
            per_scanner.setdefault(scanner, []).append(secs)
        # when each stage of each file was done, from the drop of the first file (hold 0:
        # hold_until is the moment its audit was recorded)
        stages["taken"].append(full["received_at"] - wall0)
        if full.get("hold_until") is not None:
            stages["audited"].append(full["hold_until"] - wall0)
        if full.get("released_at") is not None:
            stages["released"].append(full["released_at"] - wall0)
    return {
        "files": count,
        "file_bytes": size,
        "seconds": round(elapsed, 3),
        "files_per_s": round(count / elapsed, 2),
        "mb_per_s": round(count * size / elapsed / 1e6, 3),
        "released": sum(1 for i in done.values() if i["state"] == "released"),
        "cpu_ms_per_file": round(cpu_ms, 2),
        "cpu_bound_files_per_s_on_2_cores": round(2000 / cpu_ms, 1) if cpu_ms > 0 else None,
        "cpu_measured_by": "cgroup2 cpu.stat" if clock is not None else "/proc (live and reaped)",
        "cpu_ms_per_file_by_part": {
            k: round(1000 * (parts1[k] - parts0[k]) / count, 2) for k in parts1
        },
        "all_done_by_s": {k: round(max(v), 2) for k, v in stages.items() if v},
        "scanner_ms_mean": {
            k: round(1000 * sum(v) / len(v), 2) for k, v in sorted(per_scanner.items())
        },
    }


def _bare(tmp: Path, clamd: Any, prefix: str, count: int, size: int) -> dict[str, Any]:
    """The same kind of files through bare `clamdscan` (the same clamd) and bare `yara`
    (the bundled rules), each over the whole directory in one run."""
    d = tmp / f"bare-{prefix}"
    d.mkdir()
    payloads = [os.urandom(size) for _ in range(min(count, 8))]
    for n in range(count):
        (d / f"{prefix}{n:05d}.bin").write_bytes(payloads[n % len(payloads)] + b"%d" % n)
    out: dict[str, Any] = {}
    rules = Path(__file__).resolve().parent.parent / "zionwm" / "quarantine" / "rules"
    if shutil.which("yara"):
        t0 = time.monotonic()
        subprocess.run(
            ["yara", "-r", "-p", "2", *sorted(str(p) for p in rules.glob("*.yar")), str(d)],
            capture_output=True,
            check=False,
        )
        el = time.monotonic() - t0
        out["yara"] = {
            "files_per_s": round(count / el, 1),
            "mb_per_s": round(count * size / el / 1e6, 2),
        }
    if clamd is not None and shutil.which("clamdscan"):
        conf = tmp / f"clamdscan-{prefix}.conf"
        conf.write_text(f"LocalSocket {clamd.socket_path}\n")
        t0 = time.monotonic()
        subprocess.run(
            ["clamdscan", f"--config-file={conf}", "--multiscan", "--fdpass", "--quiet", str(d)],
            capture_output=True,
            check=False,
        )
        el = time.monotonic() - t0
        out["clamdscan"] = {
            "files_per_s": round(count / el, 1),
            "mb_per_s": round(count * size / el / 1e6, 2),
        }
    shutil.rmtree(d)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count-small", type=int, default=200, help="4 KiB files")
    ap.add_argument("--count-large", type=int, default=30, help="1 MiB files")
    ap.add_argument("--workers", type=int, default=default_workers(), help="audits in flight")
    ap.add_argument("--no-clamd", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile-service", metavar="FILE", help="cProfile the service into FILE")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="zionwm-qbench-") as d:
        tmp = Path(d)
        for var in ("XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            (tmp / var).mkdir(mode=0o700)
            os.environ[var] = str(tmp / var)
        with _clamd(tmp, not args.no_clamd) as clamd:
            policy: dict[str, Any] = {
                "desktops": [
                    {"desktop": "web", "downloads": {"release_to": "personal", "hold": 0}},
                    {"desktop": "personal"},
                ],
            }
            policy["audit"] = {"antivirus": "if-available"}
            if clamd is not None:
                policy["audit"]["clamd_socket"] = clamd.socket_path
                # the test database has no version number: without its directory, the
                # signatures could not be compared at the end of a hold, and a file whose
                # audit and release fall in different seconds would be scanned twice
                policy["audit"]["clamd_database_dir"] = str(tmp / "clamd" / "db")
            pf = tmp / "policy.json"
            pf.write_text(json.dumps(policy))
            clock = CgroupClock.make(f"zionwm-qbench-{os.getpid()}")
            proc = _start_service(pf, args.workers, tmp / "service.log", args.profile_service)
            if clock is not None:
                # before any audit sandbox exists: all of them start inside it
                clock.join(proc.pid)
            try:
                client = QuarantineClient(timeout=60)
                inbox = paths.desktop_inbox("web")
                cpu_pids = [proc.pid] + ([clamd.pid] if clamd is not None else [])
                results = {
                    "loadavg_at_start": os.getloadavg(),
                    "workers": args.workers,
                    "cpus": os.cpu_count(),
                    "clamd": clamd is not None,
                    "small_4KiB": _run_batch(
                        client,
                        inbox,
                        prefix="s",
                        count=args.count_small,
                        size=4096,
                        timeout=1800,
                        cpu_pids=cpu_pids,
                        clock=clock,
                    ),
                    "large_1MiB": _run_batch(
                        client,
                        inbox,
                        prefix="l",
                        count=args.count_large,
                        size=1 << 20,
                        timeout=1800,
                        cpu_pids=cpu_pids,
                        clock=clock,
                    ),
                    "loadavg_at_end": os.getloadavg(),
                    "clamd_rss_kib": rss_kib_of(clamd.pid) if clamd is not None else None,
                    "service_rss_kib": rss_kib_of(proc.pid),
                    "service_peak_rss_kib": _peak_kib(proc.pid),
                    "audit_side": client.request("status").get("audit_sandboxes"),
                    "bare_4KiB": _bare(tmp, clamd, "s", args.count_small, 4096),
                    "bare_1MiB": _bare(tmp, clamd, "l", args.count_large, 1 << 20),
                }
                client.close()
            finally:
                proc.terminate()
                proc.wait(10)
                if clock is not None:
                    # its sandboxes may take a moment more to go
                    deadline = time.monotonic() + 15
                    while clock.path.exists() and time.monotonic() < deadline:
                        clock.remove()
                        time.sleep(0.1)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"workers={results['workers']} cpus={results['cpus']} clamd={results['clamd']}"
            f" loadavg={results['loadavg_at_start'][0]:.2f}..{results['loadavg_at_end'][0]:.2f}"
        )
        for key in ("small_4KiB", "large_1MiB"):
            r = results[key]
            print(
                f"{key:>11}: {r['files']} files in {r['seconds']} s = {r['files_per_s']}"
                f" files/s, {r['mb_per_s']} MB/s; released {r['released']}"
            )
            print(f"{'':>13}scanner ms/file: {r['scanner_ms_mean']}")
            print(f"{'':>13}every file taken / audited / released by (s): {r['all_done_by_s']}")
            print(
                f"{'':>13}CPU per file (service + audit sandboxes + clamd): "
                f"{r['cpu_ms_per_file']} ms = {r['cpu_bound_files_per_s_on_2_cores']} files/s"
                f" on 2 otherwise idle cores; by part (ms): {r['cpu_ms_per_file_by_part']}"
            )
        print(
            f"clamd RSS: {results['clamd_rss_kib']} KiB;"
            f" service RSS: {results['service_rss_kib']} KiB"
            f" (peak {results['service_peak_rss_kib']} KiB);"
            f" audit sandboxes RSS: {(results['audit_side'] or {}).get('rss_kib')} KiB"
        )
        print(f"bare, same files: 4 KiB {results['bare_4KiB']}; 1 MiB {results['bare_1MiB']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
