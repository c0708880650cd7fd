"""The results table (stdout) and its copy in docs/benchmarks.md, between two marker comments."""

from __future__ import annotations

import datetime
from pathlib import Path

from measure import Figure

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START = "<!-- bench:results:start (written by bench/run.py; edit outside these markers) -->"
END = "<!-- bench:results:end -->"


def render_table(figures: list[Figure]) -> str:
    """Return the figures as a Markdown table."""
    lines = [
        "| # | figure | ratio | goal | verdict | runs | numbers (medians unless stated) |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        if figure.ratio is None:
            ratio = "—"
        else:
            ratio = f"{figure.ratio:.0f} {figure.unit}" if figure.unit else f"{figure.ratio:.2f}"
        goal = figure.goal.replace("<=", "≤").replace(">=", "≥") + (
            f" {figure.unit}" if figure.goal and figure.unit else ""
        )
        goal = goal or "—"
        detail = figure.detail.replace("|", "/")
        lines.append(
            f"| {figure.number} | {figure.name} | {ratio} | {goal} | {figure.verdict} | {figure.runs} | {detail} |"
        )
    return "\n".join(lines)


def render_notes(figures: list[Figure]) -> str:
    """Return each figure's notes as a Markdown list (empty when there are none)."""
    return "\n".join(f"- ({figure.number}) {note}" for figure in figures for note in figure.notes)


def render_results(figures: list[Figure], machine: dict[str, str], elapsed: float, runs: int) -> str:
    """Return the generated section: when, where, the table and each figure's notes."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [START, "", f"Last run: {when}, {runs} runs per figure, {elapsed / 60:.1f} min in all.", "", "Machine:", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines += ["", render_table(figures), ""]
    notes = render_notes(figures)
    if notes:
        lines += ["Notes from this run:", "", notes, ""]
    lines.append(END)
    return "\n".join(lines)


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace the generated section of docs/benchmarks.md (or append it when the markers are missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
