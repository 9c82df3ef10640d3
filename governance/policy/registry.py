"""The active policy set: loaded from ``policies/``, recorded in the ledger.

- Files are re-read when they change (a stat of the directory and of each
  file per check), in every worker process, so all workers converge on the
  same set.
- A set that fails to load is rejected with its problems; the last good set
  stays active and ``/readyz`` reports the problem.
- The first time a process uses a set whose digest the ledger has not seen
  last, it appends ``policy.set.loaded`` (who, digest, the files themselves
  and a diff summary against the previous set) under the append lock, so
  concurrent workers record it once.
- Any recorded set can be rebuilt from its entry by digest, which is what
  decision replay uses. If the files are bad at start-up, the last set
  recorded in the ledger is used.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
from pathlib import Path

import orjson
import sqlalchemy as sa

from ..errors import NotFoundError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects
from .files import PolicyFile, PolicyLoadError, PolicySet, compile_policy_set, read_policy_dir


_SETTLED_NS = 1_000_000_000


def system_actor() -> str:
    """The actor of automatic policy loads: the service's OS user and host."""
    return f"system:{getpass.getuser()}@{socket.gethostname()}"


class PolicyRegistry:
    """Holds the active policy set of one process."""

    def __init__(self, directory: str | os.PathLike, ledger):
        self.directory = Path(directory)
        self.ledger = ledger
        self.active: PolicySet | None = None
        self.error: PolicyLoadError | None = None
        self._stamp = None
        # (directory mtime, or None while too recent to trust, ((name, path), ...))
        self._listing: tuple[int | None, tuple] | None = None
        self._recorded: str | None = None
        self._by_digest: dict[str, PolicySet] = {}
        self._lock = threading.Lock()

    def _directory_stamp(self):
        """(name, mtime, size) of each policy file, or None if the directory is unreadable.

        The directory's mtime moves whenever a file is added, removed or
        renamed into place (how editors, ``git checkout`` and Kubernetes
        ConfigMap volumes replace files), so the directory is listed again
        only then; in between a stat per known file catches edits in place.
        Half the cost of listing it on every check (24 against 44 µs).

        A listing is kept only once the directory's mtime is a second older
        than the listing: mtimes come from a coarse clock (ticks of up to
        ~4 ms), so a file added in the same tick as the change before it
        would not move the mtime again (git's "racy" index entries, the same
        rule).
        """
        try:
            directory_mtime = os.stat(self.directory).st_mtime_ns
            if self._listing is None or self._listing[0] != directory_mtime:
                listed_at = time.time_ns()
                with os.scandir(self.directory) as entries:
                    names = sorted(entry.name for entry in entries
                                   if entry.name.endswith((".yaml", ".yml")) and entry.is_file())
                paths = tuple((name, str(self.directory / name)) for name in names)
                settled = listed_at - directory_mtime > _SETTLED_NS
                self._listing = (directory_mtime if settled else None, paths)
            files = []
            for name, path in self._listing[1]:
                info = os.stat(path)
                files.append((name, info.st_mtime_ns, info.st_size))
            return tuple(files)
        except OSError:
            self._listing = None
            return None

    def refresh(self) -> None:
        """Reload the files if they changed; keep the last good set on error."""
        stamp = self._directory_stamp()
        if stamp == self._stamp and (self.active or self.error):
            return
        with self._lock:
            if stamp == self._stamp and (self.active or self.error):
                return
            try:
                loaded = compile_policy_set(read_policy_dir(self.directory))
                self.active, self.error = loaded, None
                self._by_digest[loaded.digest] = loaded
            except PolicyLoadError as e:
                self.error = e
            self._stamp = stamp

    def current(self, actor: str | None = None) -> PolicySet:
        """Return the active set, recorded in the ledger.

        Raises:
            PolicyLoadError: no good set at all (files bad, nothing recorded).
        """
        self.refresh()
        if self.active is None:
            recorded = self.last_recorded()
            if recorded is None:
                raise self.error
            self.active = recorded
        if self.active.digest != self._recorded:
            self.record(self.active, actor or system_actor())
        return self.active

    def record(self, policy_set: PolicySet, actor: str) -> int | None:
        """Append ``policy.set.loaded`` unless the ledger's latest set is this one."""
        p = tables.policy_set
        with self.ledger.transaction() as writer:
            latest = writer.connection.execute(sa.select(p.c.digest, p.c.seq).order_by(
                p.c.seq.desc()).limit(1)).first()
            if latest is not None and latest.digest == policy_set.digest:
                self._recorded = policy_set.digest
                return None
            previous = self._set_from_entry(latest.seq) if latest is not None else None
            entry = writer.append("policy.set.loaded", actor, "policies", {
                "digest": policy_set.digest,
                "previous_digest": previous.digest if previous else None,
                "files": [{"name": f.name, "sha256": f.sha256, "content": f.content.decode("utf-8")}
                          for f in policy_set.files],
                "rules": [r.id for r in policy_set.rules],
                "diff": diff_summary(previous, policy_set),
                "loaded_by_process": {"host": socket.gethostname(), "pid": os.getpid()},
            })
        self._recorded = policy_set.digest
        return entry.seq

    def last_recorded(self) -> PolicySet | None:
        """Return the set the ledger recorded last, or None."""
        p = tables.policy_set
        with self.ledger.store.engine.connect() as conn:
            latest = conn.execute(sa.select(p.c.seq).order_by(p.c.seq.desc()).limit(1)).first()
        return self._set_from_entry(latest.seq) if latest is not None else None

    def by_digest(self, digest: str) -> PolicySet:
        """Return a recorded set by digest (from the ledger entry that recorded it)."""
        if digest in self._by_digest:
            return self._by_digest[digest]
        p = tables.policy_set
        with self.ledger.store.engine.connect() as conn:
            row = conn.execute(sa.select(p.c.seq).where(p.c.digest == digest)
                               .order_by(p.c.seq.desc()).limit(1)).first()
        if row is None:
            raise NotFoundError(f"no recorded policy set {digest}")
        return self._set_from_entry(row.seq)

    def _set_from_entry(self, seq: int) -> PolicySet:
        payload = orjson.loads(self.ledger.entry(seq).canonical)["payload"]
        if payload["digest"] in self._by_digest:
            return self._by_digest[payload["digest"]]
        loaded = compile_policy_set([PolicyFile(f["name"], f["content"].encode("utf-8"))
                                     for f in payload["files"]])
        self._by_digest[loaded.digest] = loaded
        return loaded

    def status(self) -> str:
        """'ok', or why the files on disk are not the active set."""
        self.refresh()
        if self.error is None:
            return "ok"
        if self.active is not None:
            return f"warn: policy files rejected, serving last good set {self.active.digest[:12]}: {self.error}"
        return f"no usable policy set: {self.error}"


def diff_summary(old: PolicySet | None, new: PolicySet) -> dict:
    """Files and rules added, removed and changed between two sets."""
    before = old.summary() if old else {"files": {}, "rules": {}}
    after = new.summary()

    def compare(kind):
        a, b = before[kind], after[kind]
        return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)),
                "changed": sorted(k for k in set(a) & set(b) if a[k] != b[k])}

    return {"files": compare("files"), "rules": compare("rules")}


@projects("policy.set.loaded")
def _policy_set_loaded(conn, entry):
    p = entry.payload
    conn.execute(tables.policy_set.insert(), dict(
        digest=p["digest"], seq=entry.seq, loaded_at=entry.ts, loaded_by=entry.actor,
        files=canonical_text([[f["name"], f["sha256"]] for f in p["files"]]),
        rule_count=len(p["rules"])))
    rules = p["diff"]["rules"]
    return AuditFacts(f"policy set {p['digest'][:12]} loaded: +{len(rules['added'])} "
                      f"-{len(rules['removed'])} ~{len(rules['changed'])} rules", flagged=False)


def policy_set_json(policy_set: PolicySet, registry: PolicyRegistry) -> dict:
    """The API form of a policy set."""
    p = tables.policy_set
    with registry.ledger.store.engine.connect() as conn:
        row = conn.execute(sa.select(p).where(p.c.digest == policy_set.digest)
                           .order_by(p.c.seq.desc()).limit(1)).first()
    return {
        "policy_digest": policy_set.digest,
        "loaded_at": row.loaded_at if row else None,
        "loaded_by": row.loaded_by if row else None,
        "seq": row.seq if row else None,
        "status": registry.status(),
        "files": [{"name": f.name, "sha256": f.sha256} for f in policy_set.files],
        "params": policy_set.params,
        "environments": {env: policy_set.params_for(env) for env in sorted(policy_set.environments)},
        "rules": [{"id": r.id, "policy": r.policy, "description": r.description,
                   "severity": r.severity, "environments": list(r.environments or []),
                   "match": [{"name": n, "expression": e} for n, e, _ in r.match],
                   "validations": [{"expression": c.expression, "message": c.message,
                                    "messageExpression": c.message_expression,
                                    "remediation": c.remediation} for c in r.validations]}
                  for r in policy_set.rules],
    }
