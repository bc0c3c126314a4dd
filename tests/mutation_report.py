"""``make mutate``: runs mutmut on the modules that decide money and promotion and writes the
score, the time taken and every surviving mutant into docs/quality.md.

A timeout counts as killed (the tests noticed: they hung); a mutant no test reaches
counts as survived. The section between the markers is rewritten on every run.
"""

import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUALITY = REPO / "docs" / "quality.md"
START, END = "<!-- mutate:start -->", "<!-- mutate:end -->"
MUTMUT = [sys.executable, "-m", "mutmut"]
DETECTED = {"killed", "timeout"}
STATUS = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+)$")


def module_of(mutant: str) -> str:
    return mutant.split(".x")[0]


def results() -> dict[str, str]:
    done = subprocess.run(
        [*MUTMUT, "results", "--all", "true"], cwd=REPO, capture_output=True, text=True, check=False
    )
    out = {}
    for line in done.stdout.splitlines():
        match = STATUS.match(line)
        if match:
            out[match["name"]] = match["status"].strip()
    return out


def diff_of(mutant: str) -> str:
    shown = subprocess.run(
        [*MUTMUT, "show", mutant], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout
    changed = [
        line
        for line in shown.splitlines()
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    ]
    return " / ".join(line[:1] + " " + line[1:].strip() for line in changed)[:240]


def section(statuses: dict[str, str], seconds: float) -> str:
    counts = Counter(statuses.values())
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, status in statuses.items():
        by_module[module_of(name)][status] += 1
    detected = sum(counts[s] for s in DETECTED)
    judged = len(statuses) - counts["not checked"]
    score = detected / judged if judged else 0.0
    pending = counts["not checked"]
    scope = (
        f"**Partial run: {judged} of {len(statuses)} mutants evaluated, {pending} not yet "
        "run** (a rerun of `python -m tests.mutation_report` resumes where this stopped). "
        if pending
        else ""
    )
    lines = [
        START,
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make mutate`, "
        f"{seconds / 60:.0f} min on this machine's 2 cores.",
        "",
        f"{scope}**Score: {score:.1%}** of {judged} mutants detected "
        f"({counts['killed']} killed, {counts['timeout']} timed out, "
        f"{counts['survived']} survived, {counts['no tests']} reached by no test).",
        "",
        "| module | mutants | killed | timeout | survived | no tests | score |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for module, c in sorted(by_module.items()):
        total = sum(c.values()) - c["not checked"]
        found = c["killed"] + c["timeout"]
        lines.append(
            f"| `{module}` | {total} | {c['killed']} | {c['timeout']} | {c['survived']} "
            f"| {c['no tests']} | {found / total if total else 0:.0%} |"
        )
    lines += ["", "Surviving mutants (`mutmut show NAME` prints each in full):", ""]
    for name, status in sorted(statuses.items()):
        if status in ("survived", "no tests"):
            lines.append(f"- `{name}` ({status}): `{diff_of(name)}`")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    started = time.monotonic()
    subprocess.run([*MUTMUT, "run"], cwd=REPO, check=False)
    report = section(results(), time.monotonic() - started)
    text = QUALITY.read_text() if QUALITY.exists() else f"# Quality\n\n{START}\n{END}\n"
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    QUALITY.write_text(before + report + after)
    print(report.splitlines()[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
