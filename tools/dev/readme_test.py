#!/usr/bin/env python3
"""The README test (run by `make test`): the worked example, pasted as a newcomer would.

Starts `make run` (tools/dev/run.sh) from a checkout reached through a folder only root can
enter (as `mktemp -d` makes one, or a clone in root's home), on free ports with its own
state folder, then runs the commands of README.md's worked example, read from the README
itself, and compares what each prints with the output the README shows.

What the README promises, and how this test reads it:
- Every ```console block from "## Worked example" up to "## Ports and settings" is run,
  unless the line before it is `<!-- not run by the README test: … -->`. A block after
  `<!-- the README test retries this block … -->` shows something the saga writes a moment
  after the command before it returns (a notification): its commands are run again, for
  up to 10 s, until their output is the one shown.
- `$ ` starts a command (a trailing `\\` continues it on the next line); the lines up to
  the next command are what it prints (stdout and stderr together).
- In that output, `…` stands for any text (a line of just `…`, for any lines), a number
  before ` ms` or ` s` for any number, and a run of spaces for any run of spaces.
- `make run` is the stack under test, not run again: its output is the stack's banner.
- The stack's ports and state folder stand in for `make run`'s defaults (127.0.0.1:55432,
  :19092, :50051 …, `.run/`) in commands and output alike.
Exit status 0 when every command succeeds and prints what the README says.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FIRST_SECTION, END_SECTION = "## Worked example", "## Ports and settings"
SKIP_MARK = "<!-- not run by the README test"
RETRY_MARK = "<!-- the README test retries this block"  # output that arrives a moment later
RETRY_SECONDS = 10
# make run's default ports, by the setting that moves each (tools/dev/run.sh).
DEFAULT_PORTS = {
    "OCOP_PG_PORT": 55432,
    "OCOP_KAFKA_PORT": 19092,
    "OCOP_CATALOG_GRPC_PORT": 50051,
    "OCOP_CATALOG_HTTP_PORT": 9101,
    "OCOP_ORDER_GRPC_PORT": 50052,
    "OCOP_ORDER_HTTP_PORT": 9102,
    "OCOP_PAYMENT_GRPC_PORT": 50053,
    "OCOP_PAYMENT_HTTP_PORT": 9103,
    "OCOP_NOTIFICATION_GRPC_PORT": 50054,
    "OCOP_NOTIFICATION_HTTP_PORT": 9104,
}
STACK_READY = "Try, in another terminal:"
STACK_START_SECONDS = 600  # a first `cargo build` may run inside make run
COMMAND_SECONDS = 180  # `order place --follow` waits up to two minutes


def log(message):
    print(f"[readme-test] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Step:
    """One `$ command` of the README and the output shown under it."""

    def __init__(self, line_number, command, retried):
        self.line_number = line_number
        self.command = command
        self.retried = retried
        self.expected = []


def readme_steps(text):
    """The console steps of the worked example, in order."""
    lines = text.splitlines()
    start = lines.index(FIRST_SECTION)
    end = lines.index(END_SECTION)
    steps, in_block, skip, retried, step = [], False, False, False, None
    for number, line in enumerate(lines[start:end], start + 1):
        if not in_block:
            if line.startswith("```console"):
                in_block, step = True, None
                skip = lines[number - 2].startswith(SKIP_MARK)
                retried = lines[number - 2].startswith(RETRY_MARK)
            continue
        if line.startswith("```"):
            in_block = False
            continue
        if skip:
            continue
        if step is not None and step.command.endswith("\\"):
            step.command += "\n" + line
        elif line.startswith("$ "):
            step = Step(number, line[2:], retried)
            steps.append(step)
        elif step is not None:
            step.expected.append(line)
    return steps


def line_pattern(expected):
    """The regular expression one expected line stands for."""
    pattern = ""
    for token in re.split(r"(…|\d+(?:\.\d+)? (?:ms|s)\b| +)", expected.strip()):
        if token == "…":
            pattern += ".*"
        elif re.fullmatch(r"\d+(?:\.\d+)? (?:ms|s)", token):
            pattern += r"\d+(?:\.\d+)? " + re.escape(token.split(" ")[1])
        elif token and token.strip() == "":
            pattern += r"\s+"
        else:
            pattern += re.escape(token)
    return re.compile(pattern + r"\Z")


def output_matches(expected, actual):
    """Whether the actual lines are the expected ones (`…` lines absorb any lines)."""
    expected = [line for line in expected if line.strip()]
    actual = [line for line in actual if line.strip()]
    patterns = [None if line.strip() == "…" else line_pattern(line) for line in expected]
    seen = {}

    def match(i, j):
        if (i, j) in seen:
            return seen[(i, j)]
        if i == len(patterns):
            result = j == len(actual)
        elif patterns[i] is None:
            result = any(match(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            result = j < len(actual) and bool(patterns[i].match(actual[j].strip())) and match(i + 1, j + 1)
        seen[(i, j)] = result
        return result

    return match(0, 0)


class Stack:
    """`make run` from a checkout behind a closed folder, on free ports."""

    def __init__(self):
        self.closed = Path(tempfile.mkdtemp(prefix="ocop-readme."))  # mode 700
        (self.closed / "checkout").symlink_to(ROOT)
        self.state = self.closed / "run"
        self.ports = {setting: free_port() for setting in DEFAULT_PORTS}
        self.output_path = self.closed / "make-run.out"
        self.process = None

    def localise(self, text):
        """README text with this stack's ports and state folder for make run's defaults."""
        # One pass, so that a free port that happens to equal a default stays as it is.
        ports = {str(default): str(self.ports[setting]) for setting, default in DEFAULT_PORTS.items()}
        text = re.sub(
            r"127\.0\.0\.1:(\d+)\b",
            lambda found: f"127.0.0.1:{ports.get(found[1], found[1])}",
            text,
        )
        return re.sub(r"(?<![\w/])\.run/", f"{self.state}/", text)

    def start(self):
        env = dict(os.environ, OCOP_STATE_DIR=str(self.state))
        env.update({setting: str(port) for setting, port in self.ports.items()})
        log(f"make run from {self.closed}/checkout (state in {self.state})")
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                ["bash", "tools/dev/run.sh"],
                cwd=self.closed / "checkout",
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own, stopped as one
            )
        deadline = time.monotonic() + STACK_START_SECONDS
        while STACK_READY not in self.output():
            if self.process.poll() is not None:
                raise SystemExit(f"make run exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"make run was not up within {STACK_START_SECONDS} s:\n{self.output()}")
            time.sleep(0.5)
        time.sleep(0.5)  # the rest of the banner

    def output(self):
        return self.output_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM to the whole stack, as a process manager stops it (not Ctrl-C's SIGINT,
        which a job started in the background ignores for good); then the folders it
        made. What make run leaves running after a minute is killed, PostgreSQL too."""
        data = self.state / "pg"
        relocated = data.resolve().parent if data.is_symlink() else None
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log("make run did not stop within 60 s of SIGTERM; killing it")
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if (data / "postmaster.pid").exists():
            owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            subprocess.run(owner + ["pg_ctl", "-D", str(data.resolve()), "-m", "immediate", "stop"],
                           env=dict(os.environ, PATH=f"{pg_bin_dir()}:{os.environ['PATH']}"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if relocated and relocated.parent == Path("/var/lib/ocop-market"):
            shutil.rmtree(relocated, ignore_errors=True)
        shutil.rmtree(self.closed, ignore_errors=True)


def pg_bin_dir():
    """Where Debian keeps the PostgreSQL server programs (pg_ctl is not on PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return str(found[-1].parent) if found else "/usr/bin"


def run_step(stack, step, env):
    """Runs one command as a shell would, in the checkout; returns (status, output lines)."""
    env_file = stack.closed / "env"
    script = f"{stack.localise(step.command)}\n__status=$?\nenv -0 > {env_file}\nexit $__status\n"
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=stack.closed / "checkout",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=COMMAND_SECONDS,
    )
    if env_file.exists():  # `export …` carries over to the next command, as in a terminal
        pairs = env_file.read_bytes().split(b"\0")
        env.clear()
        env.update(p.decode().split("=", 1) for p in pairs if b"=" in p)
    return done.returncode, done.stdout.decode(errors="replace").splitlines()


def check_the_matcher():
    """The comparison can fail: a changed amount or a missing line is a mismatch."""
    shown = ["order … (OCOP…)  PENDING  total 170.000 ₫", "  +   110 ms  PENDING → CONFIRMED"]
    assert output_matches(shown, ["order 01a2-x (OCOPX1)  PENDING  total 170.000 ₫", "  + 7 ms PENDING → CONFIRMED"])
    assert not output_matches(shown, ["order 01a2-x (OCOPX1)  PENDING  total 171.000 ₫", "  + 7 ms PENDING → CONFIRMED"])
    assert not output_matches(shown, ["order 01a2-x (OCOPX1)  PENDING  total 170.000 ₫"])
    assert output_matches(["…", "b"], ["a", "a", "b"]) and not output_matches(["…", "b"], ["b", "c"])


def main():
    check_the_matcher()
    steps = readme_steps(README.read_text())
    if not any(step.command == "make run" for step in steps):
        raise SystemExit("README.md's worked example has no `$ make run` step")
    stack = Stack()
    failures = []
    try:
        stack.start()
        if os.geteuid() == 0 and not (stack.state / "pg").is_symlink():
            raise SystemExit("run as root behind a closed folder, make run did not move its cluster out")
        # A newcomer's shell: no backtraces, ocopctl pointed at this stack's ports.
        env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
        env.update(
            OCOP_CATALOG_ADDR=f"http://127.0.0.1:{stack.ports['OCOP_CATALOG_GRPC_PORT']}",
            OCOP_ORDER_ADDR=f"http://127.0.0.1:{stack.ports['OCOP_ORDER_GRPC_PORT']}",
            OCOP_PAYMENT_ADDR=f"http://127.0.0.1:{stack.ports['OCOP_PAYMENT_GRPC_PORT']}",
            OCOP_PAYMENT_HTTP=f"http://127.0.0.1:{stack.ports['OCOP_PAYMENT_HTTP_PORT']}",
        )
        for step in steps:
            shown = step.command.replace("\n", " ")
            expected = [stack.localise(line) for line in step.expected]
            deadline = time.monotonic() + (RETRY_SECONDS if step.retried else 0)
            while True:
                if step.command == "make run":
                    status, actual = 0, stack.output().splitlines()
                else:
                    status, actual = run_step(stack, step, env)
                documented = status == 0 and output_matches(expected, actual)
                if documented or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            if not documented:
                failures.append(
                    f"README.md:{step.line_number}: $ {shown}\n  exit status {status}\n"
                    + "  expected:\n" + "".join(f"    {line}\n" for line in expected)
                    + "  got:\n" + "".join(f"    {line}\n" for line in actual)
                )
                log(f"FAILED  $ {shown}")
            else:
                log(f"ok      $ {shown}")
    finally:
        stack.stop()
    for failure in failures:
        print(failure, file=sys.stderr)
    log(f"{len(steps) - len(failures)} of {len(steps)} README steps as documented")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
