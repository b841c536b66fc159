"""The filesystem endpoints: write, read, list, delete.

A mixin of `EmulatorState` (state.py). Files and directories live in the sprite's
`files`/`dirs` (models.py); paths resolve against `workingDir`, else `/`.
"""

from __future__ import annotations

import itertools
import posixpath
import re

from .errors import ApiError
from .formats import one, rfc3339
from .models import FileEntry


class FilesMixin:
    def fs_write(self, name: str, query: dict, data: bytes) -> dict:
        path = _resolve(query)
        mode = one(query, "mode") or "0644"
        if not re.fullmatch(r"0?[0-7]{3,4}", mode):
            raise ApiError(400, {"error": "invalid mode", "code": "EINVAL", "path": path})
        make_parents = (one(query, "mkdirParents") or "true").lower() not in ("false", "0", "no")
        with self.lock:
            sprite = self._get(name)
            parent = posixpath.dirname(path)
            if path in sprite.dirs:
                raise ApiError(400, {"error": "is a directory", "code": "EISDIR", "path": path})
            if parent not in sprite.dirs:
                if not make_parents:
                    raise ApiError(404, {"error": "parent directory does not exist", "code": "ENOENT",
                                         "path": path})
                while parent not in sprite.dirs:
                    sprite.dirs.add(parent)
                    parent = posixpath.dirname(parent)
            sprite.files[path] = FileEntry(bytes(data), mode.zfill(4), self.wall(self.now()))
            return {"path": path, "size": len(data)}

    def fs_read(self, name: str, query: dict) -> bytes:
        path = _resolve(query)
        with self.lock:
            entry = self._get(name).files.get(path)
            if entry is None:
                raise ApiError(404, {"error": "file not found", "code": "ENOENT", "path": path})
            return entry.data

    def fs_list(self, name: str, query: dict) -> dict:
        path = _resolve(query)
        with self.lock:
            sprite = self._get(name)
            if path in sprite.files:
                entries = [self._fs_entry(path, sprite.files[path])]
            elif path in sprite.dirs:
                prefix = path.rstrip("/") + "/"
                children = {p for p in itertools.chain(sprite.files, sprite.dirs)
                            if p != path and p.startswith(prefix) and "/" not in p[len(prefix):]}
                entries = [self._fs_entry(p, sprite.files.get(p)) for p in sorted(children)]
            else:
                raise ApiError(404, {"error": "no such file or directory", "code": "ENOENT", "path": path})
            return {"path": path, "entries": entries, "count": len(entries)}

    def _fs_entry(self, path: str, entry: FileEntry | None) -> dict:
        is_dir = entry is None
        return {
            "name": posixpath.basename(path) or "/",
            "path": path,
            "type": "directory" if is_dir else "file",
            "size": 0 if is_dir else len(entry.data),
            "mode": "0755" if is_dir else entry.mode,
            "modTime": rfc3339(entry.mtime if entry else self.wall(self.now())),
            "isDir": is_dir,
        }

    def fs_delete(self, name: str, query: dict) -> dict:
        path = _resolve(query)
        recursive = (one(query, "recursive") or "").lower() in ("true", "1", "yes")
        with self.lock:
            sprite = self._get(name)
            if sprite.files.pop(path, None) is not None:
                return {"path": path, "deleted": True}
            if path not in sprite.dirs or path == "/":
                raise ApiError(404, {"error": "no such file or directory", "code": "ENOENT", "path": path})
            prefix = path.rstrip("/") + "/"
            inside = [p for p in itertools.chain(sprite.files, sprite.dirs) if p.startswith(prefix)]
            if inside and not recursive:
                raise ApiError(400, {"error": "directory not empty", "code": "ENOTEMPTY", "path": path})
            for p in inside:
                sprite.files.pop(p, None)
                sprite.dirs.discard(p)
            sprite.dirs.discard(path)
            return {"path": path, "deleted": True}


def _resolve(query: dict) -> str:
    path = one(query, "path")
    if not path:
        raise ApiError(400, {"error": "path is required", "code": "EINVAL"})
    working_dir = one(query, "workingDir") or "/"
    joined = posixpath.normpath(posixpath.join("/", working_dir, path))
    return "/" + joined.lstrip("/")
