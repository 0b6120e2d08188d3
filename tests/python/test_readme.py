"""The README runs as written: every ```sh and ```python block of README.md, in order, as a
newcomer pastes them, in a fresh virtualenv made and filled by exactly the README's own lines,
against a fresh server started as the README says. Any block that fails, or prints something
other than what its `# →` comments say, fails the test with the block and its output.

How the README is read (the rules are few so that README.md stays plain Markdown):

- ```sh blocks run with `bash -e` in a scratch directory that stands for the root of the
  reader's checkout; ```python blocks run with `python -` (the script on stdin, as when pasted
  into `python`), in the same directory.
- `pip install …` written inline in prose (`` `pip install boto3` ``) runs where it stands.
- The examples run in "the second terminal": once a shell block has run `. DIR/bin/activate`,
  every later block and pip line runs with that virtualenv active. A pip line or Python block
  before that fails the test (it would install into the machine's Python).
- A shell block whose last command is `cargo run --release -- up …` starts the server, in "the
  first terminal": a fresh shell that runs the block's lines, so a server block that needs the
  virtualenv must activate it itself. The server already running is stopped first with SIGINT,
  as the reader's Ctrl-C, and must exit cleanly; the last one is stopped with SIGTERM at the end.
- `cargo run --release --` and `target/release/sluice` are mapped to the binary under test
  (`SLUICE_BIN`, the debug build by default), so the suite needs no second, release build; the
  README's release commands run the same code.
- The block right after a paragraph saying "Save … as `NAME`" is written to NAME instead of run.
- A block right after `<!-- readme-test: skip: REASON -->` is not run; REASON is required.
- A `# → TEXT` comment states output, `…` standing for any text. In a Python block the output
  must have a line that is TEXT; in a shell block the output must contain TEXT (curl ends its
  answers without a newline, so several share one line).

The server binds the README's own ports, 127.0.0.1:9200 and 4566, as the reader's does; when
they are taken the test fails saying so rather than running the examples somewhere else.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BINARY = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))

# The ports the README's examples use; the test fails if something else listens there.
README_PORTS = (9200, 4566)
# One block's limit: the Firehose example waits 65 s for its buffer; a block still running after
# this is killed and the test fails.
BLOCK_TIMEOUT_S = 300
# A `pip install` line downloads from PyPI; past this it is killed and the test fails.
PIP_TIMEOUT_S = 600
# How long a started server may take to print its endpoints before the test fails.
SERVER_START_TIMEOUT_S = 60
# How long a server may take to stop on SIGINT or SIGTERM before it is killed and the test fails.
SERVER_STOP_TIMEOUT_S = 30
# Output shown for a failed block: its last characters (pip is verbose).
OUTPUT_SHOWN_CHARS_MAX = 12_000

MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->\s*$")  # see the module's docstring
FENCE = re.compile(r"^```\s*([\w+-]*)")
INLINE_CODE = re.compile(r"`([^`]+)`")
SAVE_AS = re.compile(r"\bsave\b[^`]*?\bas `([^`]+)`", re.IGNORECASE)
ACTIVATE = re.compile(r"^\s*(?:\.|source)\s+(\S+)/bin/activate\s*(?:#.*)?$", re.MULTILINE)
SERVER_COMMAND = re.compile(r"^\s*(?:cargo run --release --|(?:\./)?target/release/sluice)\s+up\b")
BINARY_IN_README = re.compile(r"(?<![\w/.-])(?:cargo run --release --|(?:\./)?target/release/sluice(?![\w-]))")
EXPECTED_OUTPUT = re.compile(r"#\s*→\s*(.*?)\s*$")
# Colours of the server's log lines, dropped from what a failure shows.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Step:
    """One thing the reader does, in README order."""

    kind: str  # "pip", "sh", "python", "server", "save" or "skip"
    text: str
    line: int  # 1-based line of README.md where it starts
    heading: str
    name: str = ""  # the file name of a "save" step
    reason: str = ""  # why a "skip" step is not run

    def describe(self):
        what = {"pip": "the pip line", "save": f"the file {self.name}"}
        what = what.get(self.kind, f"the {self.kind} block")
        return f"README.md line {self.line} (under '{self.heading}'), {what}"


class ReadmeError(Exception):
    """README.md has something the rules above do not cover."""


def parse_readme(text):
    """The steps of a README, in order; raises ReadmeError for a block the rules do not cover."""
    steps = []
    heading = "(top)"
    paragraph = []  # (line, text) of the prose paragraph being read
    previous_paragraph = ""  # the paragraph just before, joined: it may say "Save … as `NAME`"
    marker = None  # (line, text) of a readme-test comment waiting for its block
    lines = text.splitlines()
    index = 0

    def end_paragraph():
        nonlocal previous_paragraph
        if paragraph:
            previous_paragraph = " ".join(text for _, text in paragraph)
            for match in INLINE_CODE.finditer(previous_paragraph):
                if match.group(1).startswith("pip install "):
                    steps.append(Step("pip", match.group(1), paragraph[0][0], heading))
            paragraph.clear()

    while index < len(lines):
        line_no, line = index + 1, lines[index]
        fence = FENCE.match(line)
        if fence:
            end_paragraph()
            save = SAVE_AS.search(previous_paragraph)
            previous_paragraph = ""
            language = fence.group(1)
            body = []
            index += 1
            while index < len(lines) and not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            if index == len(lines):
                raise ReadmeError(f"README.md line {line_no}: the block never closes")
            block = "\n".join(body) + "\n"
            if marker:
                match = re.fullmatch(r"skip:\s*(\S.*)", marker[1])
                if not match:
                    raise ReadmeError(
                        f"README.md line {marker[0]}: unknown marker '{marker[1]}'; "
                        "the only one is '<!-- readme-test: skip: REASON -->'"
                    )
                steps.append(Step("skip", block, line_no, heading, reason=match.group(1)))
                marker = None
            elif save:
                steps.append(Step("save", block, line_no, heading, name=save.group(1)))
            elif language == "python":
                steps.append(Step("python", block, line_no, heading))
            elif language == "sh":
                commands = [l for l in body if l.strip() and not l.strip().startswith("#")]
                servers = [l for l in commands if SERVER_COMMAND.match(l)]
                if servers and (len(servers) > 1 or commands[-1] is not servers[0]):
                    raise ReadmeError(f"README.md line {line_no}: a block that starts the server must end with it")
                steps.append(Step("server" if servers else "sh", block, line_no, heading))
            else:
                raise ReadmeError(
                    f"README.md line {line_no}: a ```{language} block is neither sh nor python nor "
                    "a file to save ('Save … as `NAME`'); mark it '<!-- readme-test: skip: REASON -->'"
                )
        elif MARKER.match(line):
            end_paragraph()
            marker = (line_no, MARKER.match(line).group(1))
        elif not line.strip() or line.startswith("#"):
            end_paragraph()
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
                previous_paragraph = ""
        else:
            if marker:
                raise ReadmeError(f"README.md line {marker[0]}: the marker is not followed by a block")
            paragraph.append((line_no, line))
        index += 1
    end_paragraph()
    if marker:
        raise ReadmeError(f"README.md line {marker[0]}: the marker is not followed by a block")
    return steps


def map_binary(script):
    """The script with the README's release binary replaced by the binary under test."""
    return BINARY_IN_README.sub(lambda _: shlex.quote(str(BINARY)), script)


def expected_outputs(block):
    """The `# → TEXT` comments of a block."""
    return [match.group(1) for match in map(EXPECTED_OUTPUT.search, block.splitlines()) if match]


def pattern(expected):
    return ".*?".join(re.escape(part) for part in expected.split("…"))


def missing_outputs(kind, block, output):
    """The expected outputs of a block that its output lacks."""
    missing = []
    for expected in expected_outputs(block):
        if kind == "python":
            found = any(re.fullmatch(pattern(expected), line) for line in output.splitlines())
        else:
            found = re.search(pattern(expected), output, re.DOTALL) is not None
        if not found:
            missing.append(expected)
    return missing


def fresh_terminal_environment():
    """The environment of a new terminal: this one's, less any active virtualenv (pytest runs
    in .venv-test, which the README's reader does not have)."""
    environment = dict(os.environ)
    for name in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"):
        environment.pop(name, None)
    path = environment.get("PATH", "").split(os.pathsep)
    environment["PATH"] = os.pathsep.join(
        entry for entry in path if entry and not (Path(entry).parent / "pyvenv.cfg").exists()
    )
    return environment


def activated(environment, venv):
    """What `. VENV/bin/activate` does to an environment."""
    environment = dict(environment)
    environment.pop("PYTHONHOME", None)
    environment["VIRTUAL_ENV"] = str(venv)
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment['PATH']}"
    return environment


def shown(output):
    output = ANSI_ESCAPE.sub("", output)
    if len(output) <= OUTPUT_SHOWN_CHARS_MAX:
        return output
    return "[…]\n" + output[-OUTPUT_SHOWN_CHARS_MAX:]


def port_in_use(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Server:
    """A `sluice up` started by a README block, in its own fresh shell."""

    def __init__(self, step, cwd, environment):
        lines = map_binary(step.text).splitlines()
        last = max(i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("#"))
        lines[last] = "exec " + lines[last].lstrip()  # so signals reach sluice itself
        self.step = step
        self.output = []
        self.announced = False  # it printed its endpoints
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            ["bash", "-e", "-c", "\n".join(lines)],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("AWS APIs: "):
                self.announced = True
                self.ready.set()
        self.ready.set()  # the process ended: start() tells which

    def start(self):
        self.ready.wait(SERVER_START_TIMEOUT_S)
        if not self.announced or self.process.poll() is not None:
            self.kill()
            pytest.fail(
                f"{self.step.describe()} did not start the server within {SERVER_START_TIMEOUT_S} s.\n"
                f"--- block ---\n{self.step.text}--- server output ---\n{shown(self.text())}",
                pytrace=False,
            )

    def stop(self, signal_number):
        """Sends the signal and waits; the exit code, or None if it had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
            try:
                self.process.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def text(self):
        return "".join(self.output)


class Reader:
    """Runs the steps as the README's reader does, and fails on the first that goes wrong."""

    def __init__(self, checkout):
        self.checkout = checkout
        self.terminal = fresh_terminal_environment()  # the second terminal, where examples run
        self.venv = None
        self.server = None
        self.servers_started = 0

    def fail(self, step, message, output=""):
        server = ""
        if self.server:
            server = f"\n--- server output (last lines) ---\n{shown(self.server.text())}"
        pytest.fail(
            f"{step.describe()} {message}\n--- block ---\n{step.text.rstrip()}\n"
            f"--- its output ---\n{shown(output)}{server}",
            pytrace=False,
        )

    def run(self, step):
        if step.kind == "skip":
            return
        if step.kind == "save":
            target = (self.checkout / step.name).resolve()
            if self.checkout.resolve() not in target.parents:
                self.fail(step, "names a file outside the checkout")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text)
            return
        if step.kind == "server":
            self.start_server(step)
            return
        if self.venv is None and (step.kind in ("pip", "python") or "pip install" in step.text):
            self.fail(step, "comes before the README activates a virtualenv ('. DIR/bin/activate')")
        if step.kind == "python":
            command, stdin, timeout_s = ["python", "-"], step.text, BLOCK_TIMEOUT_S
        else:
            command = ["bash", "-e", "-c", map_binary(step.text)]
            stdin, timeout_s = None, PIP_TIMEOUT_S if step.kind == "pip" else BLOCK_TIMEOUT_S
        try:
            result = subprocess.run(
                command,
                check=False,  # the exit code is checked below, with the block and its output
                cwd=self.checkout,
                env=self.terminal,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as timeout:
            output = timeout.output or ""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            self.fail(step, f"did not finish within {timeout_s} s", output)
        if result.returncode != 0:
            self.fail(step, f"failed with exit code {result.returncode}", result.stdout)
        missing = missing_outputs(step.kind, step.text, result.stdout)
        if missing:
            said = "; ".join(f"'{expected}'" for expected in missing)
            self.fail(step, f"did not print what its comments say: {said}", result.stdout)
        if step.kind == "sh":
            for match in ACTIVATE.finditer(step.text):
                venv = self.checkout / match.group(1)
                if not (venv / "bin" / "python").exists():
                    self.fail(step, f"activates {match.group(1)}, which is not a virtualenv", result.stdout)
                self.venv = venv
                self.terminal = activated(self.terminal, venv)

    def start_server(self, step):
        if self.server:
            code = self.server.stop(signal.SIGINT)
            if code != 0:
                self.fail(step, f"comes after a server that did not stop cleanly on Ctrl-C (exit {code})")
            self.server = None
        elif self.servers_started == 0:
            taken = [port for port in README_PORTS if port_in_use(port)]
            if taken:
                pytest.fail(
                    f"127.0.0.1 port(s) {taken} are in use: the README test runs the README's examples "
                    f"as written, on ports {README_PORTS}; stop what listens there (`ss -ltnp`)",
                    pytrace=False,
                )
        self.server = Server(step, self.checkout, fresh_terminal_environment())
        self.servers_started += 1
        self.server.start()

    def finish(self):
        if self.server:
            code = self.server.stop(signal.SIGTERM)
            if code != 0:
                pytest.fail(
                    f"the server did not stop cleanly on SIGTERM (exit {code})\n{shown(self.server.text())}",
                    pytrace=False,
                )

    def abandon(self):
        if self.server:
            self.server.kill()


def test_readme_runs_as_written():
    if not BINARY.exists():
        pytest.fail(f"{BINARY} does not exist: build it with `cargo build -p sluice`", pytrace=False)
    try:
        steps = parse_readme(README.read_text())
    except ReadmeError as error:
        pytest.fail(str(error), pytrace=False)
    assert any(step.kind == "server" for step in steps), "the README never starts the server"
    with tempfile.TemporaryDirectory(prefix="sluice-readme-") as scratch:
        reader = Reader(Path(scratch) / "checkout")
        reader.checkout.mkdir()
        try:
            for step in steps:
                reader.run(step)
            reader.finish()
        finally:
            reader.abandon()


SAMPLE = """# Title

Start it:

```sh
cargo run --release -- up
```

<!-- readme-test: skip: the suite itself -->
```sh
./scripts/test.sh
```

With a venv and `pip install boto3
awslambdaric` done:

```sh
python3 -m venv .venv
. .venv/bin/activate
target/release/sluice sql --ledger x "SELECT 1"  # → 1 row…
```

Save this as `handler.py` at the root:

```python
print("hi")  # → hi
```
"""


def test_parser_reads_each_kind_of_step():
    steps = parse_readme(SAMPLE)
    assert [(step.kind, step.line) for step in steps] == [
        ("server", 5),
        ("skip", 10),
        ("pip", 14),
        ("sh", 17),
        ("save", 25),
    ]
    assert steps[1].reason == "the suite itself"
    assert steps[2].text == "pip install boto3 awslambdaric"
    assert steps[4].name == "handler.py"
    assert shlex.quote(str(BINARY)) + " sql --ledger" in map_binary(steps[3].text)
    assert map_binary("target/release/sluice-bench bulk") == "target/release/sluice-bench bulk"
    assert ACTIVATE.search(steps[3].text).group(1) == ".venv"


def test_parser_refuses_what_the_rules_do_not_cover():
    for text in (
        "```json\n{}\n```\n",  # neither run nor saved
        "<!-- readme-test: skip -->\n```sh\nls\n```\n",  # no reason
        "<!-- readme-test: skip: why -->\ntext\n",  # no block after the marker
        "```sh\ncargo run --release -- up\nls\n```\n",  # a command after the server
    ):
        with pytest.raises(ReadmeError):
            parse_readme(text)


def test_expected_outputs_are_checked():
    assert missing_outputs("python", "print(99)  # → 99\n", "99\n") == []
    assert missing_outputs("python", "print(99)  # → 99\n", "199\n") == ["99"]
    block = 'curl x\n# → {"error":{…"status":409}\n'
    assert missing_outputs("sh", block, '{"ok":1}{"error":{"type":"x"},"status":409}') == []
    assert missing_outputs("sh", block, '{"error":{"type":"x"},"status":404}') == ['{"error":{…"status":409}']
