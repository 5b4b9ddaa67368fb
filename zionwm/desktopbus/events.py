"""What a desktop's bus asks of the compositor: the events its connection (service.py) and
its portal (portal.py) hand over, in a module of their own so that both can make them
without importing each other.

Every field a program could shape is as the desktop sent it, unchecked unless said so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy import Notice


@dataclass(frozen=True)
class OpenRequest:
    """A program asked to open a link (already checked by policy.check_url)."""

    desktop: str
    url: str


@dataclass(frozen=True)
class Refused:
    """A link was refused; `reason` is for the user."""

    desktop: str
    what: str
    reason: str


# ---------------------------------------------------------------- from the portal


@dataclass(frozen=True)
class ChooseRequest:
    """FileChooser.OpenFile / SaveFile: show a chooser of the desktop's own files."""

    desktop: str
    sender: str
    handle: str
    save: bool
    title: str
    multiple: bool = False
    directory: bool = False
    accept_label: str = ""
    current_name: str = ""  # SaveFile: the name suggested
    current_folder: str | None = None  # as the sandbox names it, unchecked
    current_file: str | None = None  # as the sandbox names it, unchecked


@dataclass(frozen=True)
class ScreenshotRequest:
    desktop: str
    sender: str
    handle: str


@dataclass(frozen=True)
class OpenFileRequest:
    """OpenURI.OpenFile (or OpenURI with a file: URI): a file of the desktop to open.
    `path` is as the sandbox names it (unchecked); `fd` (owned by the receiver, -1 if none)
    is what the program passed, for checking it is that file."""

    desktop: str
    sender: str
    handle: str
    path: str
    fd: int = -1


@dataclass(frozen=True)
class CloseRequest:
    """Request.Close, or the caller left: stop what the request started, answer nothing."""

    desktop: str
    handle: str


Event = (
    Notice
    | OpenRequest
    | Refused
    | ChooseRequest
    | ScreenshotRequest
    | OpenFileRequest
    | CloseRequest
)
