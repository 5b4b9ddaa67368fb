"""Check the password typed at the lock screen, through PAM, in a process of its own.

    python -m zionwm.lockauth [SERVICE]   (the password on standard input)

The compositor starts this program for each attempt and writes the password to its standard
input; it answers with its exit status: 0 the password is right and the account may log in,
1 the password is wrong, 2 PAM could not check it (a module is missing or failed), 3 the
account may not log in now (expired, locked); what PAM said is on standard error. The user
is always the one this process runs as (the compositor's user): nothing the caller passes
can name another account.

Why a process and not a call in the compositor: PAM loads whatever modules the system's
configuration names, into the caller; a module that blocks (pam_unix makes a wrong
password wait about 2 s, a network module may wait longer) or crashes would do so in the
compositor, and the password would stay in the compositor's heap. Here it lives in a process
that exits at once.

SERVICE is what the compositor names (`ZIONWM_LOCK_PAM_SERVICE`), else `zionwm` where the
system has a PAM file of that name (a distribution may ship one), else `login`: the checks
of a console login, on every system that has one. Not PAM's `other` service: on several
distributions it refuses everything, and a lock that can never be lifted is no lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import sys

SERVICE = "zionwm"
FALLBACK_SERVICE = "login"
PAM_DIRS = ("/etc/pam.d", "/usr/lib/pam.d", "/usr/share/pam.d")

PAM_SUCCESS = 0
PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2
PAM_ERROR_MSG = 3
PAM_TEXT_INFO = 4
PAM_BUF_ERR = 5
PAM_CONV_ERR = 19
PAM_SILENT = 0x8000
PAM_PERM_DENIED = 6
PAM_AUTH_ERR = 7
PAM_CRED_INSUFFICIENT = 8
PAM_MAXTRIES = 11
PAM_NEW_AUTHTOK_REQD = 12
PAM_ACCT_EXPIRED = 13

OK, WRONG, FAILED, REFUSED = 0, 1, 2, 3
_WRONG = {PAM_AUTH_ERR, PAM_CRED_INSUFFICIENT, PAM_MAXTRIES}
_REFUSED = {PAM_PERM_DENIED, PAM_NEW_AUTHTOK_REQD, PAM_ACCT_EXPIRED}


def verdict(rc: int) -> int:
    """The exit status for PAM's answer `rc`."""
    if rc == PAM_SUCCESS:
        return OK
    if rc in _WRONG:
        return WRONG
    return REFUSED if rc in _REFUSED else FAILED


class PamMessage(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class PamResponse(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


CONV_FUNC = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(PamMessage)),
    ctypes.POINTER(ctypes.POINTER(PamResponse)),
    ctypes.c_void_p,
)


class PamConv(ctypes.Structure):
    _fields_ = [("conv", CONV_FUNC), ("appdata_ptr", ctypes.c_void_p)]


class PamError(RuntimeError):
    """PAM could not be asked at all."""


def check(password: bytes, service: str = SERVICE, user: str | None = None) -> tuple[int, str]:
    """(PAM's answer, what PAM said) for `password` of `user` (this process's own account
    by default). Raises PamError when libpam cannot be loaded or started."""
    if user is None:
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError as exc:
            raise PamError(f"uid {os.getuid()} has no account to check a password of") from exc
    name = ctypes.util.find_library("pam") or "libpam.so.0"
    try:
        pam = ctypes.CDLL(name)
        libc = ctypes.CDLL(None)
    except OSError as exc:
        raise PamError(f"cannot load libpam: {exc}") from exc
    libc.calloc.restype = ctypes.c_void_p
    libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    libc.strdup.restype = ctypes.c_void_p
    libc.strdup.argtypes = [ctypes.c_char_p]
    pam.pam_start.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(PamConv),
        ctypes.POINTER(ctypes.c_void_p),
    ]
    pam.pam_authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_acct_mgmt.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_strerror.restype = ctypes.c_char_p
    said: list[str] = []

    def converse(n: int, msgs: object, resp: object, _data: object) -> int:
        # PAM frees the answers and each answer's text: both come from the C heap
        out = libc.calloc(max(n, 1), ctypes.sizeof(PamResponse))
        if not out:
            return PAM_BUF_ERR
        answers = ctypes.cast(out, ctypes.POINTER(PamResponse))
        for i in range(n):
            m = msgs[i].contents  # type: ignore[index]
            if m.msg_style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
                answers[i].resp = libc.strdup(password)
            elif m.msg_style in (PAM_ERROR_MSG, PAM_TEXT_INFO) and m.msg:
                said.append(m.msg.decode(errors="replace"))
        resp[0] = answers  # type: ignore[index]
        return PAM_SUCCESS

    conv = PamConv(CONV_FUNC(converse), None)
    handle = ctypes.c_void_p()
    rc = pam.pam_start(service.encode(), user.encode(), ctypes.byref(conv), ctypes.byref(handle))
    if rc != PAM_SUCCESS:
        raise PamError(f"pam_start({service}) failed: error {rc}")
    try:
        rc = pam.pam_authenticate(handle, PAM_SILENT)
        if rc == PAM_SUCCESS:
            rc = pam.pam_acct_mgmt(handle, PAM_SILENT)
        if rc != PAM_SUCCESS:
            said.append(pam.pam_strerror(handle, rc).decode(errors="replace"))
        return rc, "; ".join(said)
    finally:
        pam.pam_end(handle, rc)


def default_service(dirs: tuple[str, ...] = PAM_DIRS) -> str:
    """`zionwm` where a PAM file of that name exists, else `login` (see the module)."""
    if any(os.path.exists(os.path.join(d, SERVICE)) for d in dirs):
        return SERVICE
    return FALLBACK_SERVICE


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    service = args[0] if args else default_service()
    password = sys.stdin.buffer.read()
    if b"\0" in password:
        sys.stderr.write("a password cannot hold a NUL byte\n")
        return WRONG
    try:
        rc, said = check(password, service)
    except PamError as exc:
        sys.stderr.write(f"{exc}\n")
        return FAILED
    if said and rc != PAM_SUCCESS:
        sys.stderr.write(f"{said}\n")
    return verdict(rc)


if __name__ == "__main__":
    sys.exit(main())
