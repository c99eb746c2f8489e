#!/usr/bin/env python3
"""Keeps the docs true to the code.

  check_docs.py code-blocks ROOT DOC...   Every fenced code block of each DOC, except shell commands
                                          and program output (sh, bash, console, text), must sit
                                          right under a marker naming its source, and match it
                                          byte for byte:
                                            <!-- file: examples/custom_layer/mish.h -->      whole file
                                            <!-- excerpt: examples/first_program/main.cpp -->  consecutive lines
                                            <!-- illustration -->     a sketch that is no file (use sparingly)
  check_docs.py identifiers ROOT DOC...   Every `name` or `ns::name` in backticks must occur as a
                                          word in kiln's sources, scripts or tests, so that a
                                          renamed function cannot leave a doc pointing at nothing.

  check_docs.py math ROOT DOC...          Formulas must survive GitHub's Markdown, which eats a backslash
                                          before punctuation inside $...$ before the math renders:
                                          write \lbrace, not \{, and leave out \, and \;.
  check_docs.py update ROOT DOC...        Rewrites each block under a `file:` marker from its source
                                          (after editing an example; review the diff).

Exits 1 with one line per problem.
"""
import difflib
import pathlib
import re
import sys

UNCHECKED_LANGUAGES = {"sh", "bash", "console", "text"}
MARKER = re.compile(r"^<!--\s*(?:(file|excerpt):\s*(\S+)|(illustration))\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
SOURCE_DIRS = ["core", "autograd", "layers", "optim", "datasets", "apps", "examples", "tests",
               "scripts", "cmake", "bench"]
SOURCE_SUFFIXES = {".h", ".cpp", ".sh", ".py", ".cmake", ".txt", ".in"}
# Names a doc may cite that belong to the tools around kiln, not to its sources.
EXTERNAL_NAMES = {"CMAKE_PREFIX_PATH", "CMAKE_BUILD_TYPE", "doxygen"}
IDENTIFIER = re.compile(r"`((?:[A-Za-z_]\w*::)*[A-Za-z_]\w*)`")


def code_blocks(path):
    """Yields (first line, end line, language, marker or None, text) for each fenced block: the
    block's text is lines [first, end), 0-based."""
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, language = m.group(1), m.group(2)
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous.strip())
        start = i + 1
        i = start
        while i < len(lines) and lines[i].strip() != fence:
            i += 1
        yield start, i, language, marker, "\n".join(lines[start:i]) + "\n"
        i += 1


def check_code_blocks(root, docs):
    problems = []
    for doc in docs:
        for line, _, language, marker, text in code_blocks(root / doc):
            where = f"{doc}:{line}"
            if language in UNCHECKED_LANGUAGES:
                if marker and not marker.group(3):
                    problems.append(f"{where}: a {language} block cannot be checked against a file")
                continue
            if not marker:
                problems.append(f"{where}: a {language or 'plain'} block without a '<!-- file: PATH -->',"
                                " '<!-- excerpt: PATH -->' or '<!-- illustration -->' line above it")
                continue
            if marker.group(3):
                continue
            kind, source = marker.group(1), marker.group(2)
            source_path = root / source
            if not source_path.is_file():
                problems.append(f"{where}: {source} does not exist")
                continue
            actual = source_path.read_text(encoding="utf-8")
            if kind == "file" and text != actual:
                diff = difflib.unified_diff(actual.splitlines(), text.splitlines(), source, doc,
                                            lineterm="", n=1)
                problems.append(f"{where}: differs from {source}:\n  " + "\n  ".join(diff))
            if kind == "excerpt" and ("\n" + text) not in ("\n" + actual):
                problems.append(f"{where}: is not a run of consecutive lines of {source}")
    return problems


def check_identifiers(root, docs):
    words = set(EXTERNAL_NAMES) | set(re.findall(r"\w+", (root / "CMakeLists.txt").read_text(encoding="utf-8")))
    for folder in SOURCE_DIRS:
        for source in (root / folder).rglob("*"):
            if source.suffix in SOURCE_SUFFIXES and source.is_file():
                words.update(re.findall(r"\w+", source.read_text(encoding="utf-8")))
    problems = []
    for doc in docs:
        for number, line in enumerate((root / doc).read_text(encoding="utf-8").split("\n"), 1):
            for name in IDENTIFIER.findall(line):
                if name.split("::")[-1] not in words:
                    problems.append(f"{doc}:{number}: `{name}` occurs nowhere in the sources")
    return problems


def check_math(root, docs):
    problems = []
    for doc in docs:
        in_fence = in_display = False
        for number, line in enumerate((root / doc).read_text(encoding="utf-8").split("\n"), 1):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            if line.strip() == "$$":
                in_display = not in_display
            text = re.sub(r"`[^`]*`", "", line)
            if "$" not in text and not in_display:
                continue
            for escape in re.findall(r"\\[!-/:-@\[-`{-~]", text):
                problems.append(f"{doc}:{number}: {escape} in a formula: GitHub's Markdown drops the "
                                "backslash (use \\lbrace / \\rbrace, or no spacing command)")
    return problems


def update_code_blocks(root, docs):
    for doc in docs:
        lines = (root / doc).read_text(encoding="utf-8").split("\n")
        blocks = [b for b in code_blocks(root / doc) if b[3] and b[3].group(1) == "file"]
        for start, end, _, marker, _ in reversed(blocks):
            source = (root / marker.group(2)).read_text(encoding="utf-8")
            lines[start:end] = source.rstrip("\n").split("\n")
        (root / doc).write_text("\n".join(lines), encoding="utf-8")
    return []


def main(argv):
    checks = {"code-blocks": check_code_blocks, "identifiers": check_identifiers,
              "math": check_math, "update": update_code_blocks}
    if len(argv) < 4 or argv[1] not in checks:
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(argv[2])
    problems = checks[argv[1]](root, argv[3:])
    for p in problems:
        print(p)
    print(f"{argv[1]}: {len(argv) - 3} docs, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
