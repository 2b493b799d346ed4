"""A small in-memory fake of the Hugging Face Hub HTTP API, for tests.

It implements only the endpoints that `huggingface_hub` 2.x (`HfApi.create_repo`, `create_branch`,
`create_commit`/`upload_folder`, `repo_info`, `list_repo_tree`, `get_paths_info`, `list_repo_refs`,
`hf_hub_download`, `snapshot_download`, `RepoCard.validate`) and `datasets.Dataset.push_to_hub` (which also reads
the repo through `HfFileSystem`) call, and what `from_pretrained` reads through them. Like the Hub, `/preupload` sends text files as *regular* uploads (inline, base64 in the
ndjson commit) and binary files, files matching the LFS patterns of the branch's `.gitattributes`, or files
over `lfs_threshold` bytes as *LFS* uploads, served by the git-LFS batch API with the "basic" transfer (one PUT
per object, then a verify call).

Downloads work like on the Hub: `GET /api/models/{repo}/revision/{rev}` answers the commit oid and the files
(`siblings`, with sizes and LFS hashes when `?blobs=true`); `HEAD`/`GET /{repo}/resolve/{rev}/{path}` answer a
regular file directly (`ETag` = git blob sha1, `X-Repo-Commit`), and an LFS file with a redirect to its object
(`{storage_endpoint}/_lfs/{sha256}`, a second port standing in for the CDN) carrying `X-Linked-Etag` (the sha256) and `X-Linked-Size`, so the
client caches LFS blobs under their sha256 as it does with the Hub. The Xet protocol is not implemented: clients must run with Xet disabled
(`patch_endpoint` does that), which makes `huggingface_hub` fall back to LFS exactly as for a Hub without Xet.

State lives in memory: repos keyed by `(repo_type, repo_id)`, each with branches pointing at immutable
commits (a full `path -> bytes` snapshot). Every request is recorded; `fail(...)` injects errors ("answer
the next 2 commit calls with HTTP 500"), `slow_down(...)` delays matching requests and `hold(...)` keeps them
waiting until the test releases them (to observe a caller that must not block on them).

Point a client at it by patching the already-imported constants (`patch_endpoint`) or, in a fresh process, by
setting `HF_ENDPOINT=<hub.endpoint>` and `HF_HUB_DISABLE_XET=1` before `huggingface_hub` / `datasets` are
imported (both read them once, at import time).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
LFS_EXTENSIONS = (
    "arrow",
    "bin",
    "ckpt",
    "gz",
    "h5",
    "model",
    "npy",
    "onnx",
    "parquet",
    "pkl",
    "pt",
    "pth",
    "safetensors",
    "zip",
)
INITIAL_GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS
).encode()

_API_REPO_ROUTE = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$"
)
_LFS_BATCH_ROUTE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)\.git/info/lfs/objects/batch$"
)
_LFS_OBJECT_ROUTE = re.compile(r"^/_lfs/(?P<oid>[0-9a-f]{64})(?P<verify>/verify)?$")
_RESOLVE_ROUTE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
)


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, which `huggingface_hub` compares to skip unchanged regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Commit:
    oid: str
    files: dict[str, bytes]
    message: str
    parent: str | None
    lfs_paths: frozenset[str] = frozenset()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, Commit] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        if revision in self.branches:
            return self.branches[revision]
        matches = [
            commit for oid, commit in self.commits.items() if oid.startswith(revision) and len(revision) >= 7
        ]
        return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class FailureRule:
    """Applies to the next `remaining` matching requests: wait `delay` seconds (and for `gate`, if set, at most
    `gate_timeout` seconds), then fail with `status` if set."""

    method: str
    path_pattern: re.Pattern[str]
    remaining: int
    status: int | None
    delay: float = 0.0
    gate: threading.Event | None = None
    gate_timeout: float = 0.0


class HubError(Exception):
    """An error answer: status code, Hub error code header and message."""

    def __init__(self, status: int, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


class FakeHub:
    """In-memory Hub state plus the HTTP server serving it (use as a context manager)."""

    def __init__(self, user: str = "tester", lfs_threshold: int = 10 * 1024 * 1024) -> None:
        self.user = user
        self.lfs_threshold = lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self.held: list[str] = []  # paths of requests that waited on a `hold` gate
        self._failures: list[FailureRule] = []
        self._lock = threading.RLock()
        # the Hub API, and a second origin standing in for the storage (CDN) that LFS downloads redirect to:
        # `huggingface_hub` follows redirects within the Hub's origin but reads file metadata off a redirect
        # that leaves it, so the storage must be another origin (here: another port)
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self)) for _ in range(2)]
        for server in self._servers:
            server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        host, port = self._servers[0].server_address[:2]
        return f"http://{host}:{port}"

    @property
    def storage_endpoint(self) -> str:
        host, port = self._servers[1].server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        for index, server in enumerate(self._servers):
            thread = threading.Thread(target=server.serve_forever, name=f"fake-hub-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- test helpers ----------------------------------------------------------------------------------
    def fail(self, path_pattern: str, *, times: int, status: int = 500, method: str = "POST") -> None:
        """Answer the next `times` requests whose path matches `path_pattern` (regex search) with `status`."""
        with self._lock:
            self._failures.append(FailureRule(method.upper(), re.compile(path_pattern), times, status))

    def slow_down(
        self, path_pattern: str, *, seconds: float, times: int = 1_000_000, method: str = "POST"
    ) -> None:
        """Make matching requests take `seconds` longer (to observe that a caller does not block on them)."""
        with self._lock:
            self._failures.append(FailureRule(method.upper(), re.compile(path_pattern), times, None, seconds))

    def hold(
        self,
        path_pattern: str,
        *,
        until: threading.Event,
        timeout: float = 60.0,
        method: str = "POST",
        then_status: int | None = None,
        times: int = 1_000_000,
    ) -> None:
        """Keep the next `times` matching requests waiting until `until` is set (or `timeout` passed), then serve
        them (or, with `then_status`, fail them: a request whose client died meanwhile changes nothing)."""
        with self._lock:
            self._failures.append(
                FailureRule(method.upper(), re.compile(path_pattern), times, then_status, 0.0, until, timeout)
            )

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """The files committed at `revision` (branch or commit oid) of a repo."""
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                raise KeyError(f"no {repo_type} repo {repo_id!r}; repos: {sorted(self.repos)}")
            commit = repo.resolve(revision)
            if commit is None:
                raise KeyError(
                    f"{repo_type} repo {repo_id!r} has no revision {revision!r}; branches: {sorted(repo.branches)}"
                )
            return dict(commit.files)

    def branches(self, repo_id: str, repo_type: str = "model") -> set[str]:
        with self._lock:
            return set(self.repos[(repo_type, repo_id)].branches)

    def history(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[Commit]:
        """Commits reachable from `revision`, newest first."""
        with self._lock:
            repo = self.repos[(repo_type, repo_id)]
            commit = repo.resolve(revision)
            chain: list[Commit] = []
            while commit is not None:
                chain.append(commit)
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return chain

    def requests_matching(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method.upper() and pattern.search(r.path)]

    # ---- request handling ------------------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            self._maybe_inject_failure(method, path)
            status, out_headers, payload = self._route(method, path, query, headers, body)
        except HubError as error:
            status = error.status
            out_headers = {"X-Error-Message": error.message}
            if error.error_code:
                out_headers["X-Error-Code"] = error.error_code
            payload = json.dumps({"error": error.message}).encode()
            out_headers["Content-Type"] = "application/json"
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, body, status))
        return status, out_headers, payload

    def _maybe_inject_failure(self, method: str, path: str) -> None:
        with self._lock:
            matching = [
                r
                for r in self._failures
                if r.remaining > 0 and r.method == method and r.path_pattern.search(path)
            ]
            for rule in matching:
                rule.remaining -= 1
        for rule in matching:
            time.sleep(rule.delay)
            if rule.gate is not None and not rule.gate.is_set():
                with self._lock:
                    self.held.append(path)
                rule.gate.wait(rule.gate_timeout)
            if rule.status is not None:
                raise HubError(rule.status, f"injected failure ({rule.status})")

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"))
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body or b"{}"))
        if method == "GET" and path == "/api/whoami-v2":
            return _json(
                {"type": "user", "name": self.user, "orgs": [], "auth": {"accessToken": {"role": "write"}}}
            )
        if match := _LFS_BATCH_ROUTE.match(path):
            self._repo((match["type"] or "models")[:-1], f"{match['ns']}/{match['name']}")  # 404 if unknown
            return self._lfs_batch(json.loads(body or b"{}"))
        if match := _LFS_OBJECT_ROUTE.match(path):
            return self._lfs_object(method, match["oid"], bool(match["verify"]), body, headers)
        if match := _RESOLVE_ROUTE.match(path):
            repo_type = (match["type"] or "models")[:-1]
            repo = self._repo(repo_type, f"{match['ns']}/{match['name']}")
            return self._resolve(repo, unquote(match["rev"]), unquote(match["path"]), method, headers)
        if match := _API_REPO_ROUTE.match(path):
            repo_type = match["type"][:-1]
            repo = self._repo(repo_type, f"{match['ns']}/{match['name']}")
            return self._repo_api(repo, method, match["rest"] or "", query, headers, body)
        raise HubError(404, f"fake hub does not implement {method} {path}")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _repo_api(
        self,
        repo: Repo,
        method: str,
        rest: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        parts = [unquote(p) for p in rest.strip("/").split("/")] if rest.strip("/") else []
        action = parts[0] if parts else ""
        if method == "GET" and action in ("", "revision"):
            revision = parts[1] if action == "revision" and len(parts) > 1 else "main"
            blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
            return _json(self._repo_info(repo, self._commit_at(repo, revision), blobs))
        if method == "POST" and action == "branch" and len(parts) == 2:
            return self._create_branch(repo, parts[1], json.loads(body or b"{}"))
        if method == "GET" and action == "refs":
            return _json(
                {
                    "branches": [
                        {"name": name, "ref": f"refs/heads/{name}", "targetCommit": commit.oid}
                        for name, commit in sorted(repo.branches.items())
                    ],
                    "converts": [],
                    "tags": [],
                    "pullRequests": [],
                }
            )
        if method == "POST" and action == "preupload" and len(parts) == 2:
            return self._preupload(repo, parts[1], json.loads(body or b"{}"))
        if method == "POST" and action == "commit" and len(parts) == 2:
            return self._commit(repo, parts[1], body)
        if method == "GET" and action == "tree" and len(parts) >= 2:
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return _json(self._tree(self._commit_at(repo, parts[1]), "/".join(parts[2:]), recursive))
        if method == "POST" and action == "paths-info" and len(parts) == 2:
            if headers.get("content-type", "").startswith("application/json"):
                requested = json.loads(body).get("paths", [])
            else:
                requested = parse_qs(body.decode()).get("paths", [])
            return _json(self._paths_info(self._commit_at(repo, parts[1]), requested))
        raise HubError(404, f"fake hub does not implement {method} {rest} on {repo.repo_type} repos")

    # ---- endpoint implementations ---------------------------------------------------------------------
    def _create_repo(self, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        url = self._repo_url(repo_type, repo_id)
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                return (
                    409,
                    {"Content-Type": "application/json"},
                    json.dumps({"error": "You already created this repo", "url": url}).encode(),
                )
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(repo_type, repo_id, private)
            initial = Commit(_new_oid(), {".gitattributes": INITIAL_GITATTRIBUTES}, "initial commit", None)
            repo.commits[initial.oid] = initial
            repo.branches["main"] = initial
            self.repos[(repo_type, repo_id)] = repo
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.endpoint}/{prefix}{repo_id}"

    def _repo_info(self, repo: Repo, commit: Commit, blobs: bool = False) -> dict[str, Any]:
        siblings = []
        for path in sorted(commit.files):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry = _file_entry(path, commit.files[path], path in commit.lfs_paths)
                sibling.update({"size": entry["size"], "blobId": entry["oid"]})
                if "lfs" in entry:
                    sibling["lfs"] = {
                        "sha256": entry["lfs"]["oid"],
                        "size": entry["lfs"]["size"],
                        "pointerSize": entry["lfs"]["pointerSize"],
                    }
            siblings.append(sibling)
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "lastModified": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "siblings": siblings,
            "tags": [],
        }

    def _create_branch(
        self, repo: Repo, branch: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._commit_at(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start
        return _json({})

    def _preupload(
        self, repo: Repo, revision: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        commit = self._commit_at(repo, revision)
        answers = []
        lfs_patterns = _lfs_patterns(commit.files.get(".gitattributes", b""))
        for entry in payload.get("files", []):
            path = entry["path"]
            existing = commit.files.get(path)
            sample = base64.b64decode(entry.get("sample", ""))
            is_lfs = (
                entry.get("size", 0) > self.lfs_threshold
                or _looks_binary(sample)
                or any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in lfs_patterns)
            )
            if existing is None:
                remote_oid = None
            else:
                remote_oid = hashlib.sha256(existing).hexdigest() if is_lfs else git_blob_sha1(existing)
            answers.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if is_lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        return _json({"files": answers, "commitOid": commit.oid})

    def _lfs_batch(self, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "fake hub only supports LFS uploads with the basic transfer")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], obj["size"]
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            with self._lock:
                known = oid in self.lfs_objects
            if not known:
                answer["actions"] = {
                    "upload": {"href": f"{self.endpoint}/_lfs/{oid}", "header": {}},
                    "verify": {"href": f"{self.endpoint}/_lfs/{oid}/verify", "header": {}},
                }
            objects.append(answer)
        return _json({"transfer": "basic", "objects": objects})

    def _lfs_object(
        self, method: str, oid: str, verify: bool, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if method in ("GET", "HEAD") and not verify:
            with self._lock:
                stored = self.lfs_objects.get(oid)
            if stored is None:
                raise HubError(404, f"LFS object {oid} not found")
            return _serve_bytes(stored, method, headers, {"ETag": f'"{oid}"'})
        if method == "PUT" and not verify:
            if hashlib.sha256(body).hexdigest() != oid:
                raise HubError(400, f"uploaded content does not hash to {oid}")
            with self._lock:
                self.lfs_objects[oid] = body
            return 200, {}, b""
        if method == "POST" and verify:
            request = json.loads(body or b"{}")
            with self._lock:
                stored = self.lfs_objects.get(oid)
            if stored is None or len(stored) != request.get("size"):
                raise HubError(404, f"LFS object {oid} was not uploaded")
            return _json({"success": True})
        raise HubError(405, f"{method} not allowed on LFS objects")

    def _commit(self, repo: Repo, revision: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self._lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.branches[revision]
            parent_commit = header.get("parentCommit")
            if parent_commit and not head.oid.startswith(parent_commit):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            lfs_paths = set(head.lfs_paths)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                    files[value["path"]] = base64.b64decode(value["content"])
                    lfs_paths.discard(value["path"])
                elif key == "lfsFile":
                    content = self.lfs_objects.get(value["oid"])
                    if content is None:
                        raise HubError(
                            422, f"LFS object {value['oid']} for {value['path']} was never uploaded"
                        )
                    files[value["path"]] = content
                    lfs_paths.add(value["path"])
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                    lfs_paths.discard(value["path"])
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(prefix)}
                    lfs_paths = {p for p in lfs_paths if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"fake hub does not support {key!r} commit operations")
            commit = Commit(_new_oid(), files, header.get("summary", ""), head.oid, frozenset(lfs_paths))
            repo.commits[commit.oid] = commit
            repo.branches[revision] = commit
        return _json(
            {
                "commitUrl": f"{self._repo_url(repo.repo_type, repo.repo_id)}/commit/{commit.oid}",
                "commitOid": commit.oid,
                "success": True,
            }
        )

    def _tree(self, commit: Commit, folder: str, recursive: bool) -> list[dict[str, Any]]:
        folder = folder.strip("/")
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, content in commit.files.items():
            if not path.startswith(prefix):
                continue
            relative_parts = path[len(prefix) :].split("/")
            depth = len(relative_parts) if recursive else 1
            for level in range(1, min(depth, len(relative_parts)) + 1):
                entry_path = prefix + "/".join(relative_parts[:level])
                if level == len(relative_parts):
                    entries[entry_path] = _file_entry(entry_path, content, entry_path in commit.lfs_paths)
                else:
                    entries.setdefault(entry_path, _folder_entry(entry_path))
        if folder and not entries and folder not in commit.files:
            raise HubError(404, f"{folder} does not exist", "EntryNotFound")
        return [entries[path] for path in sorted(entries)]

    def _paths_info(self, commit: Commit, paths: list[str]) -> list[dict[str, Any]]:
        found = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                found.append(_file_entry(path, commit.files[path], path in commit.lfs_paths))
            elif any(p.startswith(path + "/") for p in commit.files):
                found.append(_folder_entry(path))
        return found

    def _resolve(
        self, repo: Repo, revision: str, path: str, method: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        commit = self._commit_at(repo, revision)
        if path not in commit.files:
            raise HubError(404, "Entry not found", "EntryNotFound")
        content = commit.files[path]
        if path in commit.lfs_paths:
            # the Hub answers LFS files with a redirect to the storage (CDN) naming the object's sha256 and size
            oid = hashlib.sha256(content).hexdigest()
            with self._lock:
                self.lfs_objects.setdefault(oid, content)
            return 302, {
                "Location": f"{self.storage_endpoint}/_lfs/{oid}",
                "ETag": f'"{git_blob_sha1(content)}"',
                "X-Linked-Etag": f'"{oid}"',
                "X-Linked-Size": str(len(content)),
                "X-Repo-Commit": commit.oid,
                "Content-Length": "0",
            }, b""
        return _serve_bytes(
            content, method, headers, {"ETag": f'"{git_blob_sha1(content)}"', "X-Repo-Commit": commit.oid}
        )

    def _validate_yaml(self, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        errors = validate_card_metadata(payload.get("content", ""), payload.get("repoType") or "model")
        if errors:
            body = json.dumps({"errors": [{"message": e} for e in errors], "warnings": []}).encode()
            return 400, {"Content-Type": "application/json"}, body
        return _json({"errors": [], "warnings": []})


def validate_card_metadata(content: str, repo_type: str) -> list[str]:
    """A subset of the Hub's README metadata checks: YAML front matter that is a mapping with well-typed keys."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.DOTALL)
    if match is None:
        return []  # a card without metadata is allowed (the Hub only warns)
    try:
        metadata = yaml.safe_load(match[1])
    except yaml.YAMLError as error:
        return [f"YAML parse error: {error}"]
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    for key in ("tags", "datasets", "language"):
        value = metadata.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            errors.append(f"'{key}' must be a list of strings")
    for key in ("license", "library_name", "pipeline_tag", "pretty_name"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            errors.append(f"'{key}' must be a string")
    base_model = metadata.get("base_model")
    if base_model is not None:
        candidates = base_model if isinstance(base_model, list) else [base_model]
        for candidate in candidates:
            if not (isinstance(candidate, str) and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", candidate)):
                errors.append(f"'base_model' must be Hub repo ids, got {candidate!r}")
    if repo_type == "model" and "model-index" in metadata:
        errors.extend(_validate_model_index(metadata["model-index"]))
    if repo_type == "dataset" and "configs" in metadata:
        configs = metadata["configs"]
        if not isinstance(configs, list) or not all(
            isinstance(c, dict) and "config_name" in c for c in configs
        ):
            errors.append("'configs' must be a list of mappings with a config_name")
    return errors


def _validate_model_index(model_index: Any) -> list[str]:
    if not isinstance(model_index, list) or not model_index:
        return ["'model-index' must be a non-empty list"]
    errors = []
    for model in model_index:
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append("each model-index entry needs a 'name'")
            continue
        for result in model.get("results", []):
            if not isinstance(result.get("task"), dict) or "type" not in result["task"]:
                errors.append("model-index result needs task.type")
            if not isinstance(result.get("dataset"), dict) or not {"name", "type"} <= set(result["dataset"]):
                errors.append("model-index result needs dataset.name and dataset.type")
            for metric in result.get("metrics", []):
                if not isinstance(metric, dict) or "type" not in metric or "value" not in metric:
                    errors.append("model-index metric needs type and value")
    return errors


def _file_entry(path: str, content: bytes, is_lfs: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "file",
        "path": path,
        "oid": git_blob_sha1(content),
        "size": len(content),
    }
    if is_lfs:
        entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
    return entry


def _lfs_patterns(gitattributes: bytes) -> list[str]:
    patterns = []
    for line in gitattributes.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def _looks_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            error.start < len(sample) - 4
        )  # a multi-byte character cut by the 512-byte sample is still text
    return False


def _folder_entry(path: str) -> dict[str, Any]:
    return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}


def _new_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _serve_bytes(
    content: bytes, method: str, headers: dict[str, str], extra_headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """A file download answer, honouring a `Range` request (used to resume downloads)."""
    out_headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **extra_headers}
    status = 200
    if range_header := headers.get("range"):
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
        if match is None:
            raise HubError(416, f"bad range {range_header!r}")
        start = int(match[1]) if match[1] else max(len(content) - int(match[2] or 0), 0)
        end = int(match[2]) if match[1] and match[2] else len(content) - 1
        end = min(end, len(content) - 1)
        out_headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        content = content[start : end + 1]
        status = 206
    out_headers["Content-Length"] = str(len(content))
    return status, out_headers, (b"" if method == "HEAD" else content)


def _json(payload: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self._read_body()
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, out_headers, payload = hub.handle(self.command, self.path, headers, body)
            self.send_response(status)
            for key, value in out_headers.items():
                self.send_header(key, value)
            if "Content-Length" not in out_headers:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
            pass

    return Handler


@contextmanager
def patch_endpoint(endpoint: str) -> Iterator[None]:
    """Point `huggingface_hub` and `datasets` (already imported) at `endpoint` for the duration of the block.

    Both libraries read `HF_ENDPOINT` once at import time: `huggingface_hub.constants.ENDPOINT` (used by every
    `HfApi()` created later), the module-level `huggingface_hub.hf_api.api` instance behind the root helpers
    (`upload_file`, used by `RepoCard.push_to_hub`), the download URL template, and `datasets.config`.
    Xet uploads are switched off (`HF_HUB_DISABLE_XET`), so LFS files go through the LFS batch API.
    """
    import datasets.config
    import huggingface_hub.constants as hub_constants
    import huggingface_hub.hf_api as hf_api

    saved = (
        hub_constants.ENDPOINT,
        hub_constants.HUGGINGFACE_CO_URL_TEMPLATE,
        hf_api.api.endpoint,
        datasets.config.HF_ENDPOINT,
        datasets.config.HUB_DATASETS_URL,
        hub_constants.HF_HUB_DISABLE_XET,
    )
    hub_constants.HF_HUB_DISABLE_XET = True
    hub_constants.ENDPOINT = endpoint
    hub_constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = endpoint
    datasets.config.HF_ENDPOINT = endpoint
    datasets.config.HUB_DATASETS_URL = endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
    try:
        yield
    finally:
        (
            hub_constants.ENDPOINT,
            hub_constants.HUGGINGFACE_CO_URL_TEMPLATE,
            hf_api.api.endpoint,
            datasets.config.HF_ENDPOINT,
            datasets.config.HUB_DATASETS_URL,
            hub_constants.HF_HUB_DISABLE_XET,
        ) = saved
