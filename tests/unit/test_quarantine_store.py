"""Unit tests of the quarantine's pure cores: store transitions and recovery, verdict policy,
release naming, intake name rules, the policy file. Real SQLite in tmp dirs; no service."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from zionwm.isolation.spec import DesktopSpec, DownloadsPolicy, VerdictAction
from zionwm.quarantine.inbox import is_candidate_name
from zionwm.quarantine.machine import decide, release_refusal
from zionwm.quarantine.policy import policy_from_json, policy_to_json
from zionwm.quarantine.release import clash_name, safe_name
from zionwm.quarantine.report import AuditReport, Finding, Verdict
from zionwm.quarantine.store import (
    ALLOWED,
    PENDING_STATES,
    Kind,
    RecoveryAction,
    State,
    Store,
    StoreError,
    recovery_action,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "q")
    yield s
    s.close()


def _take(store: Store, name: str = "a.pdf") -> int:
    return store.begin_take(
        kind=Kind.DOWNLOAD,
        source="web",
        dest="personal",
        subdir=("home", "Downloads"),
        name=name,
        size=3,
        dev=1,
        ino=2,
        inbox_name=name,
        origin_url="https://example.org/a",
    )


def _clean() -> AuditReport:
    return AuditReport(scanners=("magic", "yara"))


def test_full_life_and_fields_survive_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "q")
    item_id = _take(s)
    assert s.get(item_id).state is State.TAKING
    s.transition(item_id, State.RECEIVED, content=True)
    s.transition(item_id, State.AUDITING)
    s.transition(
        item_id,
        State.HELD,
        verdict=Verdict.CLEAN,
        report=_clean(),
        hold_until=5.0,
        sha256="ab" * 32,
    )
    s.transition(item_id, State.RELEASING)
    s.set_release_name(item_id, "a (1).pdf")
    s.transition(item_id, State.RELEASED, content=False, released_at=6.0)
    s.close()

    again = Store(tmp_path / "q")
    item = again.get(item_id)
    assert item.state is State.RELEASED
    assert item.release_name == "a (1).pdf"
    assert item.verdict is Verdict.CLEAN
    assert item.report == _clean()
    assert item.origin_url == "https://example.org/a"
    assert item.subdir == ("home", "Downloads")
    assert not item.content
    assert again.counts() == {"pending": 0, "kept": 0}
    again.close()


def test_every_disallowed_transition_is_refused(store: Store) -> None:
    for src, dst in itertools.product(State, State):
        if dst in ALLOWED[src]:
            continue
        item_id = _take(store)
        # Drive a fresh item to `src` through allowed steps, then try the forbidden one.
        path = {
            State.TAKING: [],
            State.RECEIVED: [State.RECEIVED],
            State.AUDITING: [State.RECEIVED, State.AUDITING],
            State.HELD: [State.RECEIVED, State.AUDITING, State.HELD],
            State.RELEASING: [State.RECEIVED, State.AUDITING, State.HELD, State.RELEASING],
            State.RELEASED: [
                State.RECEIVED,
                State.AUDITING,
                State.HELD,
                State.RELEASING,
                State.RELEASED,
            ],
            State.REJECTED: [State.RECEIVED, State.AUDITING, State.REJECTED],
            State.DELETING: [State.RECEIVED, State.DELETING],
            State.DELETED: [State.RECEIVED, State.DELETING, State.DELETED],
        }[src]
        for step in path:
            store.transition(item_id, step)
        with pytest.raises(StoreError):
            store.transition(item_id, dst)
        assert store.get(item_id).state is src


def test_no_path_reaches_release_without_an_audit() -> None:
    # Every way into RELEASING comes from HELD (audited) or REJECTED (audited, forced).
    sources = {s for s, targets in ALLOWED.items() if State.RELEASING in targets}
    assert sources == {State.HELD, State.REJECTED}
    assert State.HELD not in ALLOWED[State.RECEIVED]
    assert State.HELD not in ALLOWED[State.TAKING]


def test_refused_entries_are_recorded_without_content(store: Store) -> None:
    item_id = store.record_refused(
        kind=Kind.DOWNLOAD,
        source="web",
        dest="personal",
        subdir=("home", "Downloads"),
        name="id_rsa",
        reason="symbolic link",
    )
    item = store.get(item_id)
    assert item.state is State.REJECTED and not item.content
    assert store.counts() == {"pending": 0, "kept": 0}


def test_counts(store: Store) -> None:
    a, b, c = _take(store), _take(store), _take(store)
    store.transition(a, State.RECEIVED, content=True)
    store.transition(b, State.RECEIVED, content=True)
    store.transition(b, State.AUDITING)
    store.transition(b, State.REJECTED, content=True)
    store.drop_taking(c)
    assert store.counts() == {"pending": 1, "kept": 1}
    with pytest.raises(StoreError):
        store.get(c)


def test_ids_are_never_reused(tmp_path: Path) -> None:
    s = Store(tmp_path / "q")
    first = _take(s)
    s.drop_taking(first)
    s.close()
    s = Store(tmp_path / "q")
    assert _take(s) > first
    s.close()


@pytest.mark.parametrize(
    ("state", "in_store", "at_dest", "expected"),
    [
        (State.TAKING, True, False, RecoveryAction.TO_RECEIVED),
        (State.TAKING, False, False, RecoveryAction.DROP),
        (State.RECEIVED, True, False, RecoveryAction.KEEP),
        (State.RECEIVED, False, False, RecoveryAction.TO_LOST),
        (State.AUDITING, True, False, RecoveryAction.TO_RECEIVED),
        (State.AUDITING, False, False, RecoveryAction.TO_LOST),
        (State.HELD, True, False, RecoveryAction.KEEP),
        (State.RELEASING, True, False, RecoveryAction.TO_HELD),
        (State.RELEASING, False, True, RecoveryAction.TO_RELEASED),
        (State.RELEASING, True, True, RecoveryAction.TO_RELEASED),
        (State.RELEASING, False, False, RecoveryAction.TO_LOST),
        (State.DELETING, True, False, RecoveryAction.TO_DELETED),
        (State.RELEASED, False, True, RecoveryAction.KEEP),
        (State.REJECTED, True, False, RecoveryAction.KEEP),
    ],
)
def test_recovery_action(
    state: State, in_store: bool, at_dest: bool, expected: RecoveryAction
) -> None:
    assert recovery_action(state, in_store, at_dest) is expected


def test_recovery_never_releases_what_is_still_only_in_the_store() -> None:
    for state in State:
        if state is State.RELEASED:
            continue
        assert recovery_action(state, True, False) is not RecoveryAction.TO_RELEASED


def test_recovery_only_proposes_allowed_transitions() -> None:
    # Whatever the rule says must be a transition the store accepts (a self-transition is
    # refused: the service crashed on start before RECEIVED mapped to KEEP).
    target = {
        RecoveryAction.TO_RECEIVED: State.RECEIVED,
        RecoveryAction.TO_HELD: State.HELD,
        RecoveryAction.TO_RELEASED: State.RELEASED,
        RecoveryAction.TO_DELETED: State.DELETED,
        RecoveryAction.TO_LOST: State.REJECTED,
    }
    for state in PENDING_STATES | {State.DELETING}:
        for in_store, at_dest in itertools.product((True, False), repeat=2):
            action = recovery_action(state, in_store, at_dest)
            if action in target:
                assert target[action] in ALLOWED[state], (state, in_store, at_dest, action)


POLICY = DownloadsPolicy(
    release_to="personal",
    hold=30.0,
    on_suspicious=VerdictAction.RELEASE,
    on_malicious=VerdictAction.DELETE,
    on_cannot_inspect=VerdictAction.KEEP,
)


def test_decide() -> None:
    clean = decide(Verdict.CLEAN, POLICY, 100.0)
    assert (clean.state, clean.hold_until, clean.delete_content) == (State.HELD, 130.0, False)
    sus = decide(Verdict.SUSPICIOUS, POLICY, 100.0)
    assert sus.state is State.HELD and sus.hold_until == 130.0 and sus.reason
    mal = decide(Verdict.MALICIOUS, POLICY, 100.0)
    assert mal.state is State.REJECTED and mal.delete_content
    ci = decide(Verdict.CANNOT_INSPECT, POLICY, 100.0)
    assert ci.state is State.REJECTED and not ci.delete_content
    zero = decide(Verdict.CLEAN, DownloadsPolicy(release_to="x", hold=0.0), 7.0)
    assert zero.hold_until == 7.0


def test_release_refusal(store: Store) -> None:
    item_id = _take(store)
    store.transition(item_id, State.RECEIVED, content=True)
    assert release_refusal(store.get(item_id), True) == "not audited yet"
    store.transition(item_id, State.AUDITING)
    bad = AuditReport(findings=(Finding("yara", "r", "d", Verdict.MALICIOUS),))
    store.transition(item_id, State.REJECTED, verdict=Verdict.MALICIOUS, report=bad, content=True)
    refusal = release_refusal(store.get(item_id), False)
    assert refusal is not None and "--i-understand" in refusal
    assert release_refusal(store.get(item_id), True) is None
    refused = store.record_refused(
        kind=Kind.DOWNLOAD,
        source="web",
        dest="personal",
        subdir=("home", "Downloads"),
        name="x",
        reason="symlink",
    )
    assert release_refusal(store.get(refused), True) is not None


def test_clash_names() -> None:
    assert clash_name("a.pdf", 0) == "a.pdf"
    assert clash_name("a.pdf", 1) == "a (1).pdf"
    assert clash_name("x.tar.gz", 2) == "x (2).tar.gz"
    assert clash_name("README", 1) == "README (1)"
    assert clash_name(".hidden", 1) == ".hidden (1)"
    long = "é" * 127 + ".pdf"  # 258 bytes: must still fit 255 with the suffix
    out = clash_name(long, 12)
    assert len(os.fsencode(out)) <= 255 and out.endswith(" (12).pdf")


def test_safe_name() -> None:
    assert safe_name("a\nb.pdf") == "a_b.pdf"
    assert safe_name("..") == "download"
    assert safe_name(".bashrc") == "_bashrc"
    assert len(os.fsencode(safe_name("x" * 300))) == 255


def test_candidate_names() -> None:
    assert is_candidate_name("report.pdf")
    for partial in (
        "a.pdf.part",
        "Unconfirmed 1.crdownload",
        "x.download",
        "y.tmp",
        ".com.google.Chrome.abc",
        ".hidden",
        "",
        "notes~",
    ):
        assert not is_candidate_name(partial), partial


def test_policy_file_round_trip() -> None:
    specs = [
        DesktopSpec(name="web", colour=(1, 0, 0, 1), downloads=POLICY),
        DesktopSpec(name="personal", colour=(0, 1, 0, 1)),
    ]
    cfg = policy_from_json(policy_to_json(specs, audit={"timeout": 5}))
    assert cfg.downloads == {"web": POLICY}
    assert cfg.desktops == ("web", "personal")
    assert cfg.outbox.hold == 0.0
    assert cfg.audit == {"timeout": 5}


def test_policy_file_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        policy_from_json(
            {"desktops": [{"desktop": "web", "downloads": {"hold": -1, "release_to": "p"}}]}
        )
    with pytest.raises(ValueError):
        policy_from_json({"desktops": [{"desktop": "web", "downloads": {"hold": 1}}]})
    with pytest.raises(ValueError):
        policy_from_json(
            {
                "desktops": [
                    {"desktop": "web", "downloads": {"release_to": "p", "on_malicious": "shrug"}}
                ]
            }
        )


def test_policy_file_rejects_desktop_names_that_are_not_path_safe() -> None:
    for bad in ("../x", "a/b", "", "UPPER", "x" * 33):
        with pytest.raises(ValueError):
            policy_from_json({"desktops": [{"desktop": bad}]})
    with pytest.raises(ValueError):
        policy_from_json({"desktops": [{"desktop": "web", "downloads": {"release_to": "../home"}}]})


def test_policy_file_flat_entries() -> None:
    cfg = policy_from_json(
        {
            "desktops": [
                {"desktop": "web", "release_to": "personal", "hold": 5, "on_malicious": "delete"},
                {"desktop": "personal"},
            ]
        }
    )
    assert cfg.downloads == {
        "web": DownloadsPolicy(release_to="personal", hold=5.0, on_malicious=VerdictAction.DELETE)
    }


def test_what_the_store_remembers_is_what_the_database_holds(store: Store) -> None:
    """The items kept in memory (so that a transition reads and decodes nothing) equal the
    rows as a fresh reader of the database decodes them, at every step of a life."""
    report = AuditReport(
        (Finding("magic", "mismatch", "a PDF that is not one", Verdict.SUSPICIOUS),),
        ("magic", "yara"),
        {"magic": 0.001},
    )
    a = _take(store, "a.pdf")

    def same() -> None:
        assert store.get(a).to_json() == store.read(a).to_json()
        assert store.get(a) == store.read(a)

    same()
    steps: list[tuple[State, dict[str, object]]] = [
        (State.RECEIVED, {"content": True}),
        (State.AUDITING, {}),
        (
            State.HELD,
            {"verdict": Verdict.CLEAN, "report": report, "hold_until": 5.0, "sha256": "ab"},
        ),
        (State.RELEASING, {"release_name": "a.pdf", "forced": False}),
    ]
    for to, fields in steps:
        store.transition(a, to, **fields)
        same()
    store.set_release_name(a, "a (1).pdf")
    same()
    store.transition(a, State.RELEASED, content=False, released_at=6.0)
    same()


def test_a_batch_is_one_transaction_and_a_failed_one_leaves_nothing(
    store: Store, tmp_path: Path
) -> None:
    a, b = _take(store, "a"), _take(store, "b")
    with store.batch():
        store.transition(a, State.RECEIVED, content=True)
        store.transition(b, State.RECEIVED, content=True)
        other = Store(tmp_path / "q")  # another connection sees nothing before the commit
        try:
            assert other.read(a).state is State.TAKING
        finally:
            other.close()
    assert store.read(a).state is State.RECEIVED and store.read(b).state is State.RECEIVED
    with pytest.raises(StoreError), store.batch():
        store.transition(a, State.AUDITING)
        store.transition(b, State.HELD)  # not allowed from received: the batch fails
    # neither the database nor what the store remembers kept the first transition
    assert store.read(a).state is State.RECEIVED
    assert store.get(a).state is State.RECEIVED
    with store.batch(), store.batch():  # nested batches join the outer one
        store.transition(a, State.AUDITING)
    assert store.read(a).state is State.AUDITING


def test_the_windows_can_be_shortened_through_the_environment_within_bounds() -> None:
    from zionwm.quarantine.policy import WINDOW_ENV, window

    assert window(60.0, {}) == 60.0
    assert window(60.0, {WINDOW_ENV: "5"}) == 5.0
    assert window(30.0, {WINDOW_ENV: "0.5"}) == 30.0  # under a second: ignored
    assert window(30.0, {WINDOW_ENV: "9999"}) == 30.0
    assert window(30.0, {WINDOW_ENV: "soon"}) == 30.0
    assert window(30.0, {WINDOW_ENV: "nan"}) == 30.0
