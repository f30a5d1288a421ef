#!/usr/bin/env python3
"""Summarize Autobahn/kosoku conformance reports.

Usage: summarize.py [--expected N] [--markdown PATH] DIR...

Each DIR is a report directory named `<runtime>-<role>` holding the
`index.json` kosoku writes ({agent: {case_id: {"behavior": ..., ...}}}),
and possibly subdirectories with the `index.json` of further phases of the
same run (conformance/run puts the compression cases in `compression/`);
they are merged into one row.
Prints a table (and writes it as Markdown), lists every case that is not
clean, and exits non-zero unless every case of every run is OK or
INFORMATIONAL, each run has at least the expected number of cases, and no
run is missing its index.json.

Standard library only, so it runs under any python3.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Verdicts that count as a pass. NON-STRICT is deliberately not one: kosoku
# (like Autobahn) accepts it, but we hold ourselves to the strict behaviour.
GOOD = {"OK", "INFORMATIONAL"}
MAX_LISTED = 40

COLUMNS = [
    "runtime",
    "role",
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNIMPLEMENTED",
    "FAILED",
    "BAD CLOSE",
    "total",
    "9.* wall (s)",
]


@dataclass
class Run:
    runtime: str
    role: str
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    bad_close: int = 0
    wall_9: float = 0.0
    # (case id, agent, behavior, behaviorClose) of every case that is not clean.
    bad_cases: list[tuple[str, str, str, str]] = field(default_factory=list)
    # Problems with the run as a whole (missing report, too few cases, ...).
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad_cases and not self.problems


def case_key(case_id: str) -> list[int]:
    """Numeric sort key: 6.10.1 sorts after 6.9.1."""
    try:
        return [int(p) for p in case_id.split(".")]
    except ValueError:
        return [sys.maxsize]


def load_run(directory: Path, expected: int | None) -> Run:
    runtime, _, role = directory.name.rpartition("-")
    if not runtime:  # not named <runtime>-<role>; show the name as-is
        runtime, role = directory.name, "?"
    run = Run(runtime, role)

    # The run's own report, then those of its phases, in name order. Each
    # phase has its own agent name (a server testee is named after its
    # address), so cases are merged by id.
    paths = [directory / "index.json"]
    if directory.is_dir():
        paths += sorted(p / "index.json" for p in directory.iterdir() if p.is_dir())
    merged: dict[str, tuple[str, dict]] = {}
    found = 0
    for index_path in paths:
        try:
            index = json.loads(index_path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            run.problems.append(f"unreadable {index_path}: {exc}")
            continue
        found += 1
        if not isinstance(index, dict):
            run.problems.append(f"{index_path}: expected a JSON object")
            continue
        if len(index) > 1:
            # Client testees name themselves per case; several names usually
            # means the agent was not passed consistently.
            run.problems.append(
                f"several agents in {index_path}: {', '.join(sorted(index))}"
            )
        for agent, cases in sorted(index.items()):
            if not isinstance(cases, dict) or not all(
                isinstance(c, dict) for c in cases.values()
            ):
                run.problems.append(
                    f"{index_path}: malformed entry for agent {agent!r}"
                )
                continue
            for case_id, case in cases.items():
                if case_id in merged:
                    run.problems.append(f"case {case_id} reported twice")
                merged[case_id] = (agent, case)
    if not found:
        run.problems.append(f"missing {directory / 'index.json'}")
        return run

    for case_id in sorted(merged, key=case_key):
        agent, case = merged[case_id]
        run.total += 1
        behavior = str(case.get("behavior"))
        close = str(case.get("behaviorClose"))
        # ERROR means the case could not run at all; it is a failure too.
        column = "FAILED" if behavior in ("FAILED", "ERROR") else behavior
        run.counts[column] = run.counts.get(column, 0) + 1
        if close not in GOOD:
            run.bad_close += 1
        if behavior not in GOOD or close not in GOOD:
            run.bad_cases.append((case_id, agent, behavior, close))
        if case_id.startswith("9."):
            run.wall_9 += (case.get("duration") or 0) / 1000

    other = sorted(set(run.counts) - set(COLUMNS))
    if other:  # a verdict we have no column for; make it visible
        run.problems.append(f"unknown behaviors: {', '.join(other)}")
    if not merged:
        run.problems.append("no cases in report")
    elif expected is not None and len(merged) < expected:
        run.problems.append(f"only {len(merged)} of {expected} expected cases ran")
    return run


def table_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        if run.total == 0 and run.problems:
            numbers = ["-"] * (len(COLUMNS) - 2)
        else:
            numbers = [str(run.counts.get(c, 0)) for c in COLUMNS[2:7]]
            numbers += [str(run.bad_close), str(run.total), f"{run.wall_9:.2f}"]
        rows.append([run.runtime, run.role, *numbers])
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        # Names left-aligned, numbers right-aligned.
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(COLUMNS), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def render_markdown(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |"]
    out.append("|" + "|".join([":---"] * 2 + ["---:"] * (len(COLUMNS) - 2)) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def details(run: Run) -> list[str]:
    """Human-readable problem lines for one run (empty if it is clean)."""
    lines = [f"  {p}" for p in run.problems]
    for case_id, agent, behavior, close in run.bad_cases[:MAX_LISTED]:
        lines.append(
            f"  {case_id:<10} behavior={behavior:<13} behaviorClose={close}  [{agent}]"
        )
    if len(run.bad_cases) > MAX_LISTED:
        lines.append(
            f"  ... and {len(run.bad_cases) - MAX_LISTED} more (see index.html)"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR[::N]",
        help="a run's report directory, optionally with its own expected count",
    )
    parser.add_argument(
        "--expected",
        type=int,
        help="number of cases each run must have (default: just require > 0)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=Path(__file__).resolve().parent.parent
        / "target/conformance/summary.md",
        help="where to write the Markdown summary (default: %(default)s)",
    )
    args = parser.parse_args()

    dirs, expectations = [], []
    for arg in args.dirs:
        path, sep, count = arg.rpartition("::")
        if sep:
            dirs.append(Path(path))
            expectations.append(int(count))
        else:
            dirs.append(Path(arg))
            expectations.append(args.expected)
    args.dirs = dirs
    runs = [load_run(d, n) for d, n in zip(dirs, expectations)]
    rows = table_rows(runs)

    print(render_text(rows))
    markdown = ["# Autobahn conformance summary", "", render_markdown(rows), ""]
    for run, directory in zip(runs, args.dirs):
        lines = details(run)
        if not lines:
            continue
        print(f"\n{run.runtime} {run.role} ({directory}):")
        print("\n".join(lines))
        markdown += [f"## {run.runtime} {run.role}", "", "```", *lines, "```", ""]

    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text("\n".join(markdown))

    failed = [f"{r.runtime}-{r.role}" for r in runs if not r.ok]
    if failed:
        print(f"\nconformance: not clean: {', '.join(failed)}")
        return 1
    print(f"\nconformance: all {len(runs)} runs clean (every case OK or INFORMATIONAL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
