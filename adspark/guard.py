"""Path rules in one place: what a command may read, write or replace, and what a dead run left behind.

Before any work (before a row is read or a model trained) a command asks here:

- `check_paths`: the input, the output and the model directory must be neither
  equal nor nested in either direction, compared as qualified URIs (Hadoop's
  `makeQualified`; local paths with their symlinks resolved, and no symlink
  inside a local input, or matched by a local input pattern, may lead to one
  of the others); a filesystem or
  bucket root is never a target. Only the input may be a glob pattern, and it
  must not match the others, what lies above or below them, or the hidden
  names written beside them.
- `check_replaceable`: an existing target is only replaced when it is what
  adspark writes there: an output holds `_adspark_run.json`, a model directory
  `manifest.json`, a Spark ML stage saved with `overwrite()` its `metadata`
  (adspark.ml also reads that metadata back). Anything else that is not empty
  is refused, by name.
- `Lease`: one run per target at a time. A lease file next to the target names
  the run id, host, process and an expiry, renewed while the run lives; a
  second run refuses, naming the first. An expired lease, or one held by a
  process of this host that no longer exists, does not block.
- `recover`: with the lease held, what dead runs left next to the target is
  put right: a previous output moved aside is moved back when the target is
  missing, a half-published partitioned output is rolled back from its journal,
  and stale staging directories are deleted. The staging directory of a live
  run is never touched (a live run holds the lease, so no other run recovers).

Sibling names, all hidden next to the target `T`: `.T.adspark-staging-RUN`,
`.T.adspark-old-RUN` (previous output or partitions moved aside),
`.T.adspark-journal-RUN.json` (partitions about to move), `.T.adspark-commit-RUN`
(every partition moved) and `.T.adspark-lease`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from adspark.errors import LeaseError, OutputError, PathError
from adspark.io import GLOB_CHARS, HadoopPath, is_glob

log = logging.getLogger("adspark.guard")

RUN_MANIFEST = "_adspark_run.json"
ARTIFACT_MANIFEST = "manifest.json"
LEASE_TTL_S = 600.0  # a lease lives this long without renewal; renewed every third of it
ML_METADATA = "metadata"  # what Spark ML's DefaultParamsWriter writes into every saved stage
# key -> (the file or directory that marks what adspark writes there, what that is called in a refusal)
MARKERS = {"output.path": (RUN_MANIFEST, "an adspark output"),
           "model_dir": (ARTIFACT_MANIFEST, "an adspark model directory"),
           "stage path": (ML_METADATA, "a saved Spark ML stage")}
_IGNORED = ("_SUCCESS", ".DS_Store")  # files that do not make a directory "non-empty"
_TAG = ".adspark-"


def _sib(target: HadoopPath, kind: str, run_id: str = "", ext: str = "") -> HadoopPath:
    suffix = f"{_TAG}{kind}" + (f"-{run_id}" if run_id else "") + ext
    return target._derive(target._jvm.org.apache.hadoop.fs.Path(target.sibling(suffix)))


def staging_of(target: HadoopPath, run_id: str) -> HadoopPath:
    return _sib(target, "staging", run_id)


def old_of(target: HadoopPath, run_id: str) -> HadoopPath:
    return _sib(target, "old", run_id)


def journal_of(target: HadoopPath, run_id: str) -> HadoopPath:
    return _sib(target, "journal", run_id, ".json")


def commit_of(target: HadoopPath, run_id: str) -> HadoopPath:
    return _sib(target, "commit", run_id)


def lease_of(target: HadoopPath) -> HadoopPath:
    return _sib(target, "lease")


# --- where a path really is ------------------------------------------------------------------------------------


def qualified(spark: SparkSession, path: str) -> HadoopPath:
    """The path as its filesystem names it (scheme, authority, absolute); local paths with symlinks resolved."""
    hp = HadoopPath(spark, path)
    if hp.path.startswith("file:"):
        local = str(hp.jpath.toUri().getPath())
        hp = HadoopPath(spark, "file://" + os.path.realpath(local))
    return hp


_URI_ROOT = re.compile(r"^[A-Za-z][\w+.-]*:(//[^/]*)?")


def _components(path: str) -> tuple[str, list[str]]:
    """A qualified path's `scheme://authority` and its names; a `/` inside a glob's braces does not split."""
    root = m.group(0) if (m := _URI_ROOT.match(path)) else ""
    names, depth, name = [], 0, ""
    for ch in path[len(root):]:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "/" and depth <= 0:
            names.append(name)
            name = ""
        else:
            name += ch
    return root, [n for n in [*names, name] if n]


def _nesting(spark: SparkSession, a: str, b: str, a_is_pattern: bool) -> str | None:
    """How `b` lies against `a`: "same", "a inside b", "b inside a", or None when apart.

    A pattern `a` (the input, a Hadoop glob) is compared name by name with Hadoop's own glob matcher, so it is
    found to overlap a directory it would match tomorrow (an output it would read back on the next run), not
    only what it matches today.
    """
    (root_a, names_a), (root_b, names_b) = _components(a), _components(b)
    if root_a != root_b:
        return None
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    for x, y in zip(names_a, names_b, strict=False):
        if x == y:
            continue
        if not (a_is_pattern and is_glob(x)):
            return None
        # A brace spanning names ({a/b,c}) is not matched name by name: count it as overlapping.
        if "/" not in x and not jvm.org.apache.hadoop.fs.GlobPattern.compile(x).matcher(y).matches():
            return None
    if len(names_a) == len(names_b):
        return "same"
    return "b inside a" if len(names_a) < len(names_b) else "a inside b"


def check_paths(spark: SparkSession, paths: dict[str, str]) -> dict[str, HadoopPath]:
    """Refuse roots, patterns where adspark writes, and any two of the given paths (by config key) that are equal,
    nested, or (for an input pattern) would be matched by the input."""
    resolved: dict[str, HadoopPath] = {}
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    for key, raw in paths.items():
        if key != "input.path" and is_glob(raw):
            raise PathError(f"{key} {raw!r} is a pattern (it has one of {GLOB_CHARS}); only input.path may be "
                            "one: name a single directory")
        # Roots first, from the URI alone: no filesystem client is needed to refuse s3a://bucket/.
        root = jvm.org.apache.hadoop.fs.Path(raw).getParent() is None
        hp = None if root else qualified(spark, raw)
        if (hp is None or hp.is_root()) and key != "input.path":
            raise PathError(f"{key} {raw!r} is the root of its filesystem or bucket; adspark replaces the directory "
                            "it writes, so give it a directory of its own")
        resolved[key] = hp or qualified(spark, raw)
    keys = sorted(resolved, key=lambda k: k != "input.path")  # the input first: only it may be a pattern
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            pa_, pb = resolved[a].path, resolved[b].path
            pattern = a == "input.path" and is_glob(paths[a])
            # adspark also writes beside a target (staging, lease): a pattern must not match those names either.
            nesting = _nesting(spark, pa_, pb, pattern) or (
                _nesting(spark, pa_, resolved[b].sibling(f"{_TAG}staging"), pattern) if pattern else None)
            if nesting is None:
                continue
            if pattern:
                how = {"same": f"overlap: the pattern {a} matches {b}",
                       "b inside a": f"overlap: {b} is inside a directory the pattern {a} matches",
                       "a inside b": f"overlap: {a} matches paths inside {b}"}[nesting]
            else:
                how = {"same": "are the same directory", "b inside a": f"overlap: {b} is inside {a}",
                       "a inside b": f"overlap: {a} is inside {b}"}[nesting]
            raise PathError(f"{a} ({paths[a]!r}) and {b} ({paths[b]!r}) {how} ({pa_} vs {pb}); writing one would "
                            "destroy the other: give each its own directory")
    if "input.path" in resolved:
        _check_links_below_input(spark, paths, resolved)
    return resolved


def _local_matches(spark: SparkSession, pattern: str) -> list[str]:
    """The local paths a qualified `file:` glob matches today, links (even dangling ones) included.

    Hadoop's own globStatus follows links and drops a dangling one, so names are matched here, directory by
    directory, with Hadoop's glob matcher. A brace spanning names ({a/b,c}) is refused as a whole by
    check_paths' pairwise rule and matches nothing here.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    found = ["/"]
    for name in _components(pattern)[1]:
        if "/" in name:
            return []
        if not is_glob(name):
            found = [p for base in found if os.path.lexists(p := os.path.join(base, name))]
            continue
        matcher = jvm.org.apache.hadoop.fs.GlobPattern.compile(name)
        found = [os.path.join(base, entry) for base in found if os.path.isdir(base)
                 for entry in sorted(os.listdir(base)) if matcher.matcher(entry).matches()]
    return found


def _links_below(top: str) -> Iterator[tuple[str, str]]:
    """Each symlink at or inside a local path, with where it really leads."""
    if os.path.islink(top):  # a pattern's match may itself be a link
        yield top, os.path.realpath(top)
    # followlinks=False: a linked directory is reported once and not entered, so a cycle cannot loop.
    for here, dirs, files in os.walk(top):
        for name in dirs + files:
            link = os.path.join(here, name)
            if os.path.islink(link):
                yield link, os.path.realpath(link)


def _check_links_below_input(spark: SparkSession, paths: dict[str, str], resolved: dict[str, HadoopPath]) -> None:
    """Spark reads through a symlink inside a local input directory, so one that leads to (or above, or into)
    the output or the model directory makes the job read what it is about to replace. Refused, naming the link.
    A pattern input is checked at each path it matches today."""
    others = [k for k in resolved if k != "input.path"]
    top = resolved["input.path"]
    if not top.path.startswith("file:"):
        return
    tops = _local_matches(spark, top.path) if is_glob(paths["input.path"]) else [str(top.jpath.toUri().getPath())]
    for link, target in (pair for local in tops for pair in _links_below(local)):
        where = qualified(spark, "file://" + target).path
        for key in others:
            if _nesting(spark, where, resolved[key].path, False) is not None:
                raise PathError(f"input.path ({paths['input.path']!r}) reaches {key} ({paths[key]!r}) through the "
                                f"symlink {link} -> {target}; writing {key} would destroy what the input reads: "
                                f"remove the link or give {key} a directory of its own")


def check_not_inside(spark: SparkSession, key: str, directory: str, paths: dict[str, str]) -> None:
    """A directory adspark adds files to (evaluate's --report) must not be, or be inside, a table or model it
    reads: a page in a Parquet directory makes the table unreadable, one in a model directory breaks its
    checksums. Being above them is fine; nothing there is replaced."""
    target = qualified(spark, directory)
    for other, raw in paths.items():
        if _nesting(spark, qualified(spark, raw).path, target.path,
                    other == "input.path" and is_glob(raw)) in ("same", "b inside a"):
            raise PathError(f"{key} ({directory!r}) is inside {other} ({raw!r}) or the same directory; adspark "
                            f"would add its files to what it reads there: choose a directory of its own")


def check_replaceable(key: str, target: HadoopPath) -> bool:
    """An existing target may be replaced only when adspark wrote it (its marker file is there) or it is empty.

    Returns whether the marker is there (False for a missing or empty target).
    """
    if not target.exists():
        return False
    marker, written = MARKERS[key]
    if not target.is_dir():
        raise PathError(f"{key} {target.path} is an existing file, not a directory adspark wrote; refusing to "
                        "replace it (move it away or choose another path)")
    names = [n for n in target.list_names() if n not in _IGNORED]
    if not names or marker in names:
        return bool(names)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise PathError(f"{key} {target.path} is a non-empty directory that is not {written} (no {marker}; it holds "
                    f"{shown}); refusing to replace it (move it away or choose another path)")


# --- leases ----------------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(lease: HadoopPath) -> dict[str, Any] | None:
    """The live holder of a lease file, or None when it is expired, dead, or gone."""
    try:
        info = json.loads(lease.read_text())
        if not isinstance(info, dict):
            raise ValueError("not an object")
    except Exception:
        if not lease.exists():
            return None
        # A half-written lease (its writer killed mid-write) counts as live until it is old.
        if time.time() - lease.modified_s() > LEASE_TTL_S:
            return None
        return {"run_id": "unknown (unreadable lease file)", "expires": lease.modified_s() + LEASE_TTL_S}
    if float(info.get("expires", 0)) < time.time():
        return None
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return None
    return info


@dataclass
class Lease:
    """One run's claim on a target; renewed by a daemon thread until `release`."""

    path: HadoopPath
    run_id: str
    _stop: threading.Event
    _thread: threading.Thread | None = None

    def _body(self) -> str:
        now = time.time()
        return json.dumps({"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "renewed": now, "expires": now + LEASE_TTL_S})

    def _renew_loop(self) -> None:
        while not self._stop.wait(LEASE_TTL_S / 3):
            try:
                self.path.write_text(self._body())
            except Exception:  # the run goes on; a lost renewal only shortens the lease
                log.warning("could not renew the lease %s", self.path.path, exc_info=True)

    def held(self) -> bool:
        holder = _holder(self.path)
        return holder is not None and holder.get("run_id") == self.run_id

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self.held():
                self.path.delete()
        except Exception:
            log.warning("could not remove the lease %s (it expires by itself)", self.path.path, exc_info=True)


def acquire(key: str, target: HadoopPath, run_id: str) -> Lease:
    """Claim `target` for `run_id`, or refuse naming the run that holds it."""
    lease = Lease(lease_of(target), run_id, threading.Event())
    target.parent().mkdirs()
    for _ in range(3):
        try:
            lease.path.write_text(lease._body(), overwrite=False)  # create-if-absent: one winner
        except Exception:
            holder = _holder(lease.path)
            if holder is not None:
                until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(holder["expires"])))
                raise LeaseError(
                    f"{key} {target.path} is being written by run {holder['run_id']} (host {holder.get('host', '?')}, "
                    f"pid {holder.get('pid', '?')}, lease until {until}); wait for it to finish, or delete "
                    f"{lease.path.path} if that run is dead"
                ) from None
            log.warning("%s: taking over the expired lease %s", key, lease.path.path)
            lease.path.delete()
            continue
        lease._thread = threading.Thread(target=lease._renew_loop, name=f"adspark-lease-{run_id}", daemon=True)
        lease._thread.start()
        return lease
    raise LeaseError(f"{key} {target.path}: could not take the lease {lease.path.path}")


# --- recovery --------------------------------------------------------------------------------------------------


def _dead_runs(target: HadoopPath, live_run: str) -> dict[str, set[str]]:
    """Run id -> kinds of sibling entries (staging, old, journal, commit) left by runs other than `live_run`."""
    prefix = f".{target.name}{_TAG}"
    runs: dict[str, set[str]] = {}
    for name in target.parent().list_names():
        if not name.startswith(prefix):
            continue
        kind, _, rid = name[len(prefix):].partition("-")
        rid = rid.removesuffix(".json")
        if kind in ("staging", "old", "journal", "commit") and rid and rid != live_run:
            runs.setdefault(rid, set()).add(kind)
    return runs


def write_journal(target: HadoopPath, run_id: str, entries: dict[str, Any]) -> HadoopPath:
    """Record the partitions about to move before the first one moves (written aside, then renamed in)."""
    journal = journal_of(target, run_id)
    tmp = _sib(target, "journal", run_id, ".tmp")
    tmp.write_text(json.dumps(entries))
    tmp.rename_to(journal)
    return journal


def roll_back_partitions(target: HadoopPath, run_id: str) -> None:
    """Undo a partitioned publish that did not commit: every partition and top file back as it was."""
    journal = journal_of(target, run_id)
    entries = json.loads(journal.read_text())
    backup = old_of(target, run_id)
    for rel, had_old in reversed(entries["partitions"]):
        _restore(target.child(rel), backup.child(rel), had_old)
    for name, had_old in entries.get("files", []):
        _restore(target.child(name), backup.child(name), had_old)


def _restore(current: HadoopPath, saved: HadoopPath, had_old: bool) -> None:
    """Put `saved` (the previous version moved aside) back at `current`, dropping what was moved in."""
    if had_old:
        if saved.exists():  # moved aside: whatever stands at `current` now is tonight's
            if current.exists():
                current.delete()
            current.parent().mkdirs()
            saved.rename_to(current)
        # else: never moved aside, `current` is still the previous version
    elif current.exists():
        # no previous version: what stands there came from staging (a move that never happened leaves nothing)
        current.delete()


def recover(target: HadoopPath, live_run: str, say: Callable[[str], None] | None = None) -> list[str]:
    """Put right what dead runs left next to `target`; returns (and logs) what was done."""
    done: list[str] = []

    def note(text: str) -> None:
        done.append(text)
        (say or log.warning)(text)

    for rid, kinds in sorted(_dead_runs(target, live_run).items()):
        old = old_of(target, rid)
        if "journal" in kinds and "commit" not in kinds:
            roll_back_partitions(target, rid)
            note(f"recovered {target.path}: rolled back the partitions of killed run {rid}")
        elif "journal" not in kinds and "old" in kinds and not target.exists():
            old.rename_to(target)
            note(f"recovered {target.path}: restored the previous output that killed run {rid} had moved aside")
        for entry in (old, staging_of(target, rid), journal_of(target, rid), commit_of(target, rid)):
            if entry.exists():
                entry.delete()
                note(f"deleted {entry.path}, left by killed run {rid}")
        tmp = _sib(target, "journal", rid, ".tmp")
        if tmp.exists():
            tmp.delete()
    return done


def recover_model_dir(target: HadoopPath) -> list[str]:
    """A model swap killed between its two renames leaves `.NAME.old-*` and no model: move it back."""
    done = []
    prefix = f".{target.name}."
    leftovers = [n for n in target.parent().list_names() if n.startswith(prefix)
                 and n[len(prefix):].startswith(("old-", "tmp-"))]
    olds = sorted((n for n in leftovers if n[len(prefix):].startswith("old-")),
                  key=lambda n: target.parent().child(n).modified_s())
    if olds and not target.exists():
        target.parent().child(olds[-1]).rename_to(target)
        leftovers.remove(olds[-1])
        done.append(f"recovered {target.path}: restored the model a killed run had moved aside")
    for name in leftovers:
        target.parent().child(name).delete()
        done.append(f"deleted {target.parent().child(name).path}, left by a killed run")
    for text in done:
        log.warning(text)
    return done


# --- one entry point for the commands --------------------------------------------------------------------------


@contextmanager
def guarded(spark: SparkSession, paths: dict[str, str], writes: list[str], run_id: str) -> Iterator[dict[str, Lease]]:
    """Check the paths, claim every written target, recover it, and release the claims at the end.

    `paths` maps config keys (input.path, output.path, model_dir) to the paths the command uses;
    `writes` lists the keys it writes.
    """
    resolved = check_paths(spark, paths)
    for key in writes:
        check_replaceable(key, resolved[key])
    leases: dict[str, Lease] = {}
    try:
        for key in writes:
            leases[key] = acquire(key, resolved[key], run_id)
            if key == "model_dir":
                recover_model_dir(resolved[key])
            else:
                recover(resolved[key], run_id)
        yield leases
    finally:
        for lease in leases.values():
            lease.release()


def before_move(key: str, target: HadoopPath, run_id: str) -> None:
    """Asked by publish right before it moves anything: still ours, and still ours to replace."""
    lease = lease_of(target)
    if lease.exists():
        holder = _holder(lease)
        if holder is not None and holder.get("run_id") != run_id:
            raise LeaseError(f"{key} {target.path}: run {holder['run_id']} took the lease; not publishing over it")
    check_replaceable(key, target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{key} {target.path} is a file")
