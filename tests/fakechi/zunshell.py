"""What an in-memory fake container does with a Zun ``execute``: a very small shell.

Enough of ``sh`` for the CHI@Edge tutorial's commands and chi-up's detached bootstrap: ``sh -c
'...'`` with ``;``, ``&&``, ``||``; a background job ``( ... ) > LOG 2>&1 < /dev/null &``; ``sh
FILE`` (a script, ``set -e`` honoured); ``echo [...] [> FILE]`` (``$?`` is the last status),
``cat``, ``tail -n``, ``ls``, ``rm -f``, and the package managers and sshd (see ``state``).
Files live in ``Container.files``; anything else succeeds silently, as before.

CHI@Edge's Zun stops waiting after ``execute_timeout`` (5 s) and answers ``exit_code: null``
while the command goes on. Here a *slow* command (a package manager: minutes on a Pi) is one
that takes longer than that: run in the foreground, the exec answers ``None`` (its effects still
happen, as the command goes on in the pod); run as a background job, it finishes
``Timing.slow_exec_polls`` execs later, so a poller sees it running first.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

SLOW_RE = re.compile(r"^(apt|apt-get|apk|dnf|yum)$")
JOB_RE = re.compile(r"^\((?P<body>.*)\)\s*>\s*(?P<log>\S+)\s+2>&1(\s*<\s*/dev/null)?\s*&$", re.S)
REDIRECT_RE = re.compile(r"^(?P<cmd>.*?)\s*(?P<op>>>?)\s*(?P<file>[^\s>&]+)$", re.S)


@dataclass
class Job:
    """A background job: its commands run when it finishes, ``finish_at`` execs later."""

    body: str
    log: str
    finish_at: int


@dataclass
class Outcome:
    output: str = ""
    code: int = 0
    slow: bool = False  # ran past Zun's execute timeout


@dataclass
class Shell:
    """Per container: the effects ``state`` provides (install, start sshd, authorize)."""

    effects: object  # state.Container effects: .install(pkgs), .start_sshd() -> (out, code), .files
    jobs: list[Job] = field(default_factory=list)
    execs: int = 0

    def execute(self, command: str, slow_polls: int) -> Outcome:
        """A Zun ``execute`` of ``command`` (argv, no shell unless it runs ``sh -c``)."""
        self.execs += 1
        self._finish_jobs()
        words = _split(command)
        if words[:2] == ["sh", "-c"] and len(words) >= 3:
            body = words[2].strip()
            job = JOB_RE.match(body)
            if job:
                self.jobs.append(Job(job.group("body"), job.group("log"), self.execs + slow_polls))
                return Outcome()
            return self._run_list(body, 0)
        return self._simple(words, 0)

    def _finish_jobs(self) -> None:
        for job in [j for j in self.jobs if j.finish_at <= self.execs]:
            self.jobs.remove(job)
            result = self._run_list(job.body, 0)
            self._write(job.log, result.output, append=True)

    def _run_list(self, body: str, last: int) -> Outcome:
        """``a; b && c || d`` left to right, as sh does for these operators."""
        out, code, slow = [], last, False
        skip_next = False
        for part, op in _tokens(body):
            if not skip_next and part.strip():
                result = self._command(part.strip(), code)
                out.append(result.output)
                code, slow = result.code, slow or result.slow
            skip_next = (op == "&&" and code != 0) or (op == "||" and code == 0)
        return Outcome("".join(out), code, slow)

    def _command(self, text: str, last: int) -> Outcome:
        redirect = REDIRECT_RE.match(text) if ">" in text and "2>&1" not in text else None
        if redirect:
            result = self._simple(_split(redirect.group("cmd")), last)
            self._write(redirect.group("file"), result.output, append=redirect.group("op") == ">>")
            return Outcome("", result.code, result.slow)
        return self._simple(_split(text), last)

    def _simple(self, words: list[str], last: int) -> Outcome:
        files: dict[str, bytes] = self.effects.files
        if not words:
            return Outcome()
        name, args = words[0], words[1:]
        if name == "sh" and args and not args[0].startswith("-"):
            return self._script(args[0])
        if name == "echo":
            return Outcome(" ".join(str(last) if a == "$?" else a for a in args) + "\n")
        if name == "cat":
            missing = [a for a in args if a not in files]
            if missing:
                return Outcome(f"cat: {missing[0]}: No such file or directory\n", 1)
            return Outcome("".join(files[a].decode(errors="replace") for a in args))
        if name == "tail":
            path = args[-1] if args else ""
            count = int(args[args.index("-n") + 1]) if "-n" in args else 10
            if path not in files:
                return Outcome(f"tail: cannot open '{path}' for reading: No such file or directory\n", 1)
            lines = files[path].decode(errors="replace").splitlines(keepends=True)
            return Outcome("".join(lines[-count:]))
        if name == "ls":
            where = (args[-1] if args and not args[-1].startswith("-") else "/").rstrip("/")
            names = sorted({p[len(where) + 1:].split("/")[0] for p in files if p.startswith(where + "/")})
            if not names:
                return Outcome(f"ls: cannot access '{where}': No such file or directory\n", 2)
            return Outcome("".join(n + "\n" for n in names))
        if name == "rm":
            for path in args:
                files.pop(path, None)
            return Outcome()
        if SLOW_RE.match(name):
            output, code = self.effects.package_command(" ".join(words))
            return Outcome("Reading package lists...\n" + output, code, slow=True)
        if self.effects.starts_sshd(" ".join(words)):
            output, code = self.effects.start_sshd()
            return Outcome(output, code)
        self.effects.other_command(" ".join(words))
        return Outcome()

    def _script(self, path: str) -> Outcome:
        files: dict[str, bytes] = self.effects.files
        if path not in files:
            return Outcome(f"sh: 0: cannot open {path}: No such file\n", 2)
        errexit, out, code, slow = False, [], 0, False
        for line in files[path].decode(errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line == "set -e":
                errexit = True
                continue
            result = self._run_list(line, code)
            out.append(result.output)
            code, slow = result.code, slow or result.slow
            if errexit and code != 0:
                break
        return Outcome("".join(out), code, slow)

    def _write(self, path: str, text: str, append: bool) -> None:
        files: dict[str, bytes] = self.effects.files
        before = files.get(path, b"") if append else b""
        files[path] = before + text.encode()
        self.effects.wrote(path)

    def reset(self) -> None:
        self.jobs.clear()


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _tokens(body: str) -> list[tuple[str, str]]:
    """Split on ``;``, ``&&`` and ``||`` outside quotes: [(command, operator after it)]."""
    parts, current, quote, i = [], "", None, 0
    while i < len(body):
        ch = body[i]
        if quote:
            quote = None if ch == quote else quote
            current += ch
        elif ch in "'\"":
            quote = ch
            current += ch
        elif body.startswith("&&", i) or body.startswith("||", i):
            parts.append((current, body[i:i + 2]))
            current, i = "", i + 2
            continue
        elif ch in ";\n":
            parts.append((current, ";"))
            current = ""
        else:
            current += ch
        i += 1
    parts.append((current, ";"))
    return parts
