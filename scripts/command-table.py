#!/usr/bin/env python3
"""Prints the README's command table from the ccrun binary's own help.

    scripts/command-table.py [PATH_TO_CCRUN]   (default: target/debug/ccrun)

One row per top-level command (group commands list their subcommands), with every
long flag the command takes. The README's "Commands" section holds its output; a
unit test (cli::tests::readme_lists_every_command) fails when a command is missing.
"""
import re
import subprocess
import sys

CCRUN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/ccrun"
GLOBAL = {"--root", "--state", "--log-level", "--help", "--version"}


def help_of(*words):
    out = subprocess.run([CCRUN, *words, "--help"], capture_output=True, text=True, check=True)
    return out.stdout


def commands(text):
    """(name, summary) of the 'Commands:' section of a help text."""
    found, inside = [], False
    for line in text.splitlines():
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            m = re.match(r"^  (\S+)\s+(.*)$", line)
            if not m:
                break
            if m.group(1) != "help":
                found.append((m.group(1), m.group(2).strip()))
    return found


def flags(text):
    """The long flags of a help text's 'Options:' section, without the global ones."""
    names = []
    for m in re.finditer(r"^\s+(?:-\w, )?(--[\w-]+)", text, re.M):
        if m.group(1) not in GLOBAL and m.group(1) not in names:
            names.append(m.group(1))
    return names


def cell(items):
    return " ".join(f"`{i}`" for i in items) or "—"


print("| command | what it does | flags |")
print("|---|---|---|")
for name, summary in commands(help_of()):
    text = help_of(name)
    subs = commands(text)
    if subs:
        listed = ", ".join(f"`{s}`" for s, _ in subs)
        print(f"| `{name}` | {summary}: {listed} | see `ccrun {name} SUBCOMMAND --help` |")
    else:
        print(f"| `{name}` | {summary} | {cell(flags(text))} |")
