"""The `desktop SUB ...` command (create, set, unset, delete, show, deleted, restore): its
words parsed and checked, then handed to the operations of the run-time desktops (live.py)."""

from __future__ import annotations

from typing import Any, Protocol

from zionwm import desktops_model as model
from zionwm.desktops_store import Settings

from .deleted_desktops import list_deleted


class DesktopOperations(Protocol):
    """What the command asks for, once its words are understood."""

    def create(
        self, name: str, settings: Settings, clone: str | None = None, with_home: bool = False
    ) -> dict[str, Any]: ...

    def change(self, name: str, settings: Settings, unset: list[str]) -> dict[str, Any]: ...

    def delete(self, name: str, stop: bool, erase: bool) -> dict[str, Any]: ...

    def show(self, name: str) -> dict[str, Any]: ...

    def restore(self, ident: str, new_name: str | None) -> dict[str, Any]: ...


class DesktopCommand:
    def __init__(self, ops: DesktopOperations) -> None:
        self.ops = ops

    def run(self, words: list[str]) -> Any:
        sub, rest = words[0], words[1:]
        handler = getattr(self, "_sub_" + sub.replace("-", "_"), None)
        if handler is None:
            raise ValueError(
                f"desktop: unknown sub-command {sub!r} "
                "(create, set, unset, delete, show, deleted, restore, hibernate, refusals)"
            )
        return handler(rest)

    @staticmethod
    def _split(words: list[str], flags: dict[str, bool]) -> tuple[list[str], dict[str, Any]]:
        """Positional words and --options; flags maps an option to whether it takes a value."""
        plain: list[str] = []
        opts: dict[str, Any] = {}
        it = iter(words)
        for w in it:
            if w.startswith("--"):
                if w not in flags:
                    raise ValueError(f"unknown option {w!r} (options: {', '.join(flags)})")
                if flags[w]:
                    value = next(it, None)
                    if value is None:
                        raise ValueError(f"{w} needs a value")
                    opts[w] = value
                else:
                    opts[w] = True
            else:
                plain.append(w)
        return plain, opts

    def _settings(self, words: list[str]) -> Settings:
        out: Settings = {}
        for w in words:
            key, value = model.parse_assignment(w)
            out[key] = value
        return out

    def _sub_create(self, words: list[str]) -> dict[str, Any]:
        pos, opts = self._split(words, {"--from": True, "--with-home": False})
        if not pos:
            raise ValueError("usage: desktop create NAME [KEY=VALUE...] [--from OTHER]")
        name, settings = pos[0], self._settings(pos[1:])
        return self.ops.create(name, settings, opts.get("--from"), bool(opts.get("--with-home")))

    def _sub_set(self, words: list[str]) -> dict[str, Any]:
        if len(words) < 2:
            raise ValueError("usage: desktop set NAME KEY=VALUE...")
        return self.ops.change(words[0], self._settings(words[1:]), [])

    def _sub_unset(self, words: list[str]) -> dict[str, Any]:
        if len(words) < 2:
            raise ValueError("usage: desktop unset NAME KEY...")
        return self.ops.change(words[0], {}, [model.setting_key(w) for w in words[1:]])

    def _sub_delete(self, words: list[str]) -> dict[str, Any]:
        pos, opts = self._split(words, {"--stop": False, "--erase": False})
        if len(pos) != 1:
            raise ValueError("usage: desktop delete NAME [--stop] [--erase]")
        return self.ops.delete(
            pos[0], stop=bool(opts.get("--stop")), erase=bool(opts.get("--erase"))
        )

    def _sub_show(self, words: list[str]) -> dict[str, Any]:
        if len(words) != 1:
            raise ValueError("usage: desktop show NAME")
        return self.ops.show(words[0])

    def _sub_deleted(self, words: list[str]) -> dict[str, Any]:
        if words:
            raise ValueError("usage: desktop deleted")
        items = list_deleted()
        return {"message": f"{len(items)} deleted desktop(s)", "deleted": items}

    def _sub_restore(self, words: list[str]) -> dict[str, Any]:
        pos, opts = self._split(words, {"--as": True})
        if len(pos) != 1:
            raise ValueError("usage: desktop restore ID|NAME [--as NEWNAME]")
        return self.ops.restore(pos[0], opts.get("--as"))
