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


# Survivors that no test can or should kill, each with why. Matched against the
# mutant's diff ("- old / + new"); everything else a survivor is listed as unexplained.
EXPLAINED = (
    (
        r"strict=True.*\+ .*zip\((self\.first, self\.last|arrays\.starts, arrays\.ends), "
        r"(strict=(None|False)|)\)",
        "equivalent: the two arrays are one object's, equal in length by construction",
    ),
    (
        r"dtype=np\.int64\).*\+ .*(dtype=None\)|, \))",
        "equivalent: numpy already makes int64 of a list of Python ints",
    ),
    (
        r"astype\(np\.float64\).*\+ .*astype\(None\)",
        "equivalent: the array is float64 already",
    ),
    (
        r'\.sort\("strategy", TIMESTAMP\).*\+ \.sort\((None, TIMESTAMP|"strategy", None|'
        r'TIMESTAMP|"strategy", )\)',
        "equivalent: the grouping before it keeps each strategy's bars in time order, which "
        "is all the per-strategy compounding reads",
    ),
    (
        r"if equity\[-1\] > 0 else -1\.0.*\+ .*(\(equity\[-1\] > 0\) or True|equity\[-1\] >= 0)",
        "equivalent: equity never goes below zero (positions are at most 1x), and at exactly "
        "zero both branches give -100% a year",
    ),
    (
        r"denominator > 1e-15.*\+ .*denominator >= 1e-15",
        "unobservable: differs only for a denominator of exactly 1e-15",
    ),
    (
        r"obs = np\.empty\(\(1, window \* n \+ 1\), np\.float32\).*\+ .*np\.empty\(\(2,",
        "equivalent: the test oracle reads only the first row of the policy's answer",
    ),
    (
        r"maintain_order=True.*\+ .*group_by\([^)]*(maintain_order=False|, )\)",
        "equivalent: the groups are sorted or keyed by name afterwards; order is not observable",
    ),
    (
        r'replace_time_zone\("utc"\)',
        "equivalent: polars reads 'utc' as UTC",
    ),
    (r"reshape\(-2", "equivalent: numpy reads any negative size as 'infer'"),
    (
        r'- (if all\(text\.endswith\("Z"\)|elif all\(text\.endswith\("\+00:00"\)|'
        r"naive(: list\[str\] \| None)? = \[text\[:-[16]\]|"
        r'elif any\("\+" in text or text\.rfind\("-"\) > 9|naive = None  # UTC|'
        r"naive = stamps|if naive is not None:|parsed = np\.array\(naive, )",
        "equivalent in results: a shortcut of the timestamp fast path; breaking it sends "
        "the bars down the exact datetime path, which gives the same microseconds, slower",
    ),
    (r'with_suffix\("\.TMP"\)', "equivalent: the name of a temporary file"),
    (
        r"np\.(empty|asarray)\(.*(np\.float32|dtype=object|dtype=np\.float64)\).*\+ .*(None|, \))",
        "equivalent within tolerance: a float64 (or default-typed) buffer holds the same "
        "values; decisions agree with the float32 ones far inside every test's tolerance",
    ),
    (
        r"chunk: int = 65_536.*\+ .*65537",
        "equivalent: the block size changes memory use, not results (a test runs 7-row blocks)",
    ),
    (
        r'record\.get\("hash", ""\).*\+ .*"XXXX"',
        "equivalent: only the wording of a report on a record already reported as edited",
    ),
    (
        r"np\.linspace\(0, len\(block\) - 1, min\(len\(block\), 16\)\)",
        "guard sampling: a leaking view shifts every row, so any sample of rows catches it "
        "(the leak test does); which 16 rows are probed is not observable",
    ),
    (
        r'return RequestError\("bars", "malformed"\)',
        "unreachable: called only once a bar is known to be malformed, and it names that bar",
    ),
    (
        r'argsort\(-lengths, kind="stable"\).*\+ .*argsort\(-lengths, (kind=None|kind="STABLE"|)\)',
        "equivalent: symbols of equal length trade independently, so their order among "
        "themselves is not observable",
    ),
    (
        r'and r\["seq"\] < last\["seq"\].*\+ and r\["seq"\] <= last\["seq"\]',
        "equivalent: no other record shares the move's sequence number",
    ),
    (
        r'return "number" if type\(stamp\) in _NUMBER_TYPES else "string"',
        "equivalent: the two kinds' labels are only compared with each other",
    ),
    (
        r"traded\[0\] = position\[0\].*\+ traded\[0\] = None",
        "equivalent: every book's symbol starts include row 0 (the first symbol's first "
        "row), which sets traded[0] again",
    ),
    (
        r"range\(0, rows\.size, chunk\).*\+ .*range\(0, rows\.size, \)",
        "equivalent in results: blocks of one row give the same positions, slower (a test "
        "compares 7-row blocks with one block)",
    ),
    (
        r"np\.empty\(rows\.size, np\.float64\).*\+ .*np\.empty\(rows\.size, (None)?\)",
        "equivalent: numpy's default dtype is float64",
    ),
    (
        r'RequestError\("", f"a request must be an object.*\+ .*RequestError\(None, ',
        "equivalent: an empty field and None both name the request body",
    ),
)


def explanation(diff: str) -> str | None:
    return next((why for pattern, why in EXPLAINED if re.search(pattern, diff)), None)


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
    survivors = {
        name: diff_of(name)
        for name, status in sorted(statuses.items())
        if status in ("survived", "no tests")
    }
    explained = {name: explanation(diff) for name, diff in survivors.items()}
    unexplained = [name for name, why in explained.items() if why is None]
    lines += [
        "",
        f"Of {len(survivors)} survivors, {len(survivors) - len(unexplained)} are explained "
        f"below (equivalent or unobservable) and {len(unexplained)} are not yet killed or "
        "explained. `mutmut show NAME` prints each in full.",
        "",
    ]
    for name, diff in survivors.items():
        why = explained[name]
        lines.append(f"- `{name}` ({statuses[name]}): `{diff}`" + (f" -- {why}" if why else ""))
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
