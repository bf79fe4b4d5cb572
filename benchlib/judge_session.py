"""Judging in a terminal: one blind item at a time, keyboard entry, skip/back, resumable.

Each completed item is recorded at once, so quitting (or a crash) loses nothing; the next
session for the same judge starts at the first item that judge has not judged.
"""

from collections.abc import Callable

from rich.console import Console
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table

from benchlib import judging
from benchlib.records import Run

Ask = Callable[..., str]


def _show(console: Console, item: judging.Item, position: int, total: int, done: int) -> None:
    console.rule(f"item {position + 1}/{total} · {done} judged by you · {item.item_id}")
    context = Table(show_header=False, box=None)
    for key, value in item.context.items():
        context.add_row(f"[bold]{key}[/]", str(value))
    console.print(context)
    console.print(Panel(item.output or "(empty output)", title="output", title_align="left"))


def judge_in_terminal(run: Run, judge: str, console: Console, ask: Ask = Prompt.ask) -> int:
    """Returns how many items this judge has judged when the session ends."""
    rubric = judging.rubric_of(run)
    items = judging.judge_items(run)
    judged = {j.candidate_id for j in judging.judgements_of(run.id) if j.judge == judge}
    position = next((i for i, it in enumerate(items) if it.candidate_id not in judged), len(items))
    console.print(
        f"Judging run {run.id} as [bold]{judge}[/] with rubric {rubric.version}: "
        f"{len(judged)}/{len(items)} done. Keys: a level to score, s skip, b back, q quit."
    )
    while position < len(items):
        item = items[position]
        _show(console, item, position, len(items), len(judged))
        scores: dict[str, int] = {}
        move = 1
        for criterion in rubric.criteria:
            console.print(f"[bold]{criterion.name}[/]: {criterion.question}")
            for level in criterion.levels:
                console.print(f"  {level.score} {level.description}  [dim]e.g. {level.example}[/]")
            choices = [str(s) for s in criterion.scores] + ["s", "b", "q"]
            answer = ask(f"{criterion.name}", choices=choices, show_choices=True)
            if answer == "q":
                console.print(f"Stopped; {len(judged)}/{len(items)} judged. Run again to resume.")
                return len(judged)
            if answer in ("s", "b"):
                move = 1 if answer == "s" else -1
                break
            scores[criterion.name] = int(answer)
        if len(scores) == len(rubric.criteria):
            entry = judging.Scored(item_id=item.item_id, scores=scores)
            judging.apply_judgements(run.id, judge, [entry], source="terminal")
            judged.add(item.candidate_id)
        position = max(0, position + move)
    console.print(f"Done: {len(judged)}/{len(items)} judged by {judge}.")
    return len(judged)
