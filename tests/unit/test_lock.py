"""The lock screen's pure parts: what a key does to the typed password, what a check's
end does, and how the PAM helper's answers are read."""

from __future__ import annotations

from xkbcommon import xkb

from zionwm import lockauth
from zionwm.compositor.lock import MAX_TYPED, LockState, outcome, render_panel

RETURN = xkb.keysym_from_name("Return")
BACKSPACE = xkb.keysym_from_name("BackSpace")
ESCAPE = xkb.keysym_from_name("Escape")
A = xkb.keysym_from_name("a")
U = xkb.keysym_from_name("u")


def typed(state: LockState, text: str) -> None:
    for ch in text:
        assert state.key(A, ch, ctrl=False) is False


def password(state: LockState) -> str:
    return bytes(state.secret()).decode()


def test_typing_editing_and_enter_hand_over_the_password_once() -> None:
    s = LockState()
    assert s.key(A, "a", False) is False and s.chars == 0  # not locked: nothing is kept
    assert s.lock() and not s.lock()
    typed(s, "hunter2 é€")
    assert s.chars == 10 and password(s) == "hunter2 é€"
    s.key(BACKSPACE, "", False)  # a 3-byte character goes whole
    s.key(BACKSPACE, "", False)
    assert s.chars == 8 and password(s) == "hunter2 "
    assert s.key(RETURN, "\r", False) is True
    assert password(s) == "hunter2 " and s.checking and s.message == "Checking…"
    # keys while the check runs are dropped, Enter too
    assert s.key(A, "x", False) is False and s.key(RETURN, "\r", False) is False
    assert password(s) == "hunter2 "


def test_the_buffer_is_zeroed_where_it_held_the_password() -> None:
    s = LockState()
    s.lock()
    typed(s, "secret")
    s.key(BACKSPACE, "", False)
    assert bytes(s._buf[:6]) == b"secre\0"
    s.wipe()
    assert not any(s._buf) and s.chars == 0 and password(s) == ""
    typed(s, "pw")
    s.key(RETURN, "\r", False)
    s.checked(False, "Wrong password")
    assert not any(s._buf)


def test_escape_and_ctrl_u_clear_control_characters_are_not_typed() -> None:
    s = LockState()
    s.lock()
    typed(s, "abc")
    s.key(ESCAPE, "\x1b", False)
    assert s.chars == 0
    typed(s, "abc")
    s.key(U, "\x15", ctrl=True)
    assert s.chars == 0
    s.key(A, "\t", False)
    s.key(A, "a", ctrl=True)
    assert s.chars == 0
    assert s.key(RETURN, "\r", False) is False and "Type your password" in s.message


def test_the_typed_password_is_bounded() -> None:
    s = LockState()
    s.lock()
    typed(s, "x" * (MAX_TYPED + 10))
    assert s.chars == MAX_TYPED
    s.wipe()
    typed(s, "\U0001f512" * (MAX_TYPED + 10))  # 4 bytes each: the buffer holds them all
    assert s.chars == MAX_TYPED


def test_a_wrong_answer_keeps_it_locked_a_right_one_lifts_it() -> None:
    s = LockState()
    s.lock()
    typed(s, "pw")
    s.key(RETURN, "\r", False)
    s.checked(False, "Wrong password")
    assert s.locked and s.failures == 1 and s.bad and s.message == "Wrong password"
    typed(s, "pw")
    s.key(RETURN, "\r", False)
    s.checked(True, "")
    assert not s.locked and s.failures == 0 and s.message == "" and s.chars == 0


def test_only_a_clean_exit_unlocks() -> None:
    assert outcome(0, "") == (True, "")
    assert outcome(1, "Authentication failure\n") == (False, "Wrong password")
    ok, why = outcome(2, "Module is unknown\n")
    assert not ok and why == "The password could not be checked (Module is unknown)"
    ok, why = outcome(3, "Authentication token is no longer valid; new one required\n")
    assert not ok and why.startswith("This account may not log in now")
    assert outcome(None, "")[0] is False  # stopped: too long
    assert outcome(-9, "")[0] is False  # killed
    assert outcome(137, "")[0] is False


def test_pam_answers_map_to_exit_statuses() -> None:
    assert lockauth.verdict(lockauth.PAM_SUCCESS) == lockauth.OK
    assert lockauth.verdict(lockauth.PAM_AUTH_ERR) == lockauth.WRONG
    assert lockauth.verdict(lockauth.PAM_MAXTRIES) == lockauth.WRONG
    assert lockauth.verdict(lockauth.PAM_ACCT_EXPIRED) == lockauth.REFUSED
    assert lockauth.verdict(lockauth.PAM_NEW_AUTHTOK_REQD) == lockauth.REFUSED
    for other in (4, 9, 10, 19, 28):  # system error, unavailable, unknown user, conv, ...
        assert lockauth.verdict(other) == lockauth.FAILED


def test_a_nul_in_the_password_is_refused_before_pam(capsys: object) -> None:
    import io
    import sys

    class In:
        buffer = io.BytesIO(b"a\0b")

    old = sys.stdin
    sys.stdin = In()  # type: ignore[assignment]
    try:
        assert lockauth.main(["zionwm"]) == lockauth.WRONG
    finally:
        sys.stdin = old


def test_the_pam_service_is_zionwm_where_the_system_has_one_else_login(tmp_path: object) -> None:
    from pathlib import Path

    d = Path(str(tmp_path))
    assert lockauth.default_service((str(d),)) == "login"
    (d / "zionwm").write_text("auth include login\n")
    assert lockauth.default_service((str(d / "none"), str(d))) == "zionwm"


def test_the_panel_says_caps_lock_and_the_refusal_on_one_line() -> None:
    plain = LockState()
    plain.lock()
    caps = LockState(caps=True)
    caps.lock()
    w, h, a = render_panel(plain, "user", "12:00")
    _, _, b = render_panel(caps, "user", "12:00")
    assert len(a) == w * h * 4 and a != b  # the caps line is drawn
    caps.checked(False, "Wrong password")
    _, _, c = render_panel(caps, "user", "12:00")
    assert c != b
