"""Judging in a terminal: one blind item at a time, keyboard entry, skip/back, resumable.

Each completed item is recorded at once, so quitting (or a crash) loses nothing; the next
session for the same judge starts at the first item that judge has not judged.
"""

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table

from benchlib.evaluation import judging, pairwise
from benchlib.store.records import Run

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


def judge_pairs_in_terminal(run: Run, judge: str, console: Console, ask: Ask = Prompt.ask) -> int:
    """Pairwise runs: two blind outputs side by side, a / b / t(ie), then an optional comment.
    Returns how many pairs this judge has judged when the session ends."""
    pairs = pairwise.pairs_of(run)
    judged = {j.pair_id for j in pairwise.pair_judgements_of(run.id) if j.judge == judge}
    position = next((i for i, p in enumerate(pairs) if p.pair_id not in judged), len(pairs))
    console.print(
        f"Judging run {run.id} in pairs as [bold]{judge}[/]: {len(judged)}/{len(pairs)} done. "
        "Which output is better for this scenario? a, b, t (tie), s skip, k back, q quit."
    )
    while position < len(pairs):
        pair = pairs[position]
        console.rule(
            f"pair {position + 1}/{len(pairs)} · {len(judged)} judged by you · {pair.pair_id}"
        )
        context = Table(show_header=False, box=None)
        for key, value in pair.context.items():
            context.add_row(f"[bold]{key}[/]", escape(str(value)))
        console.print(context)
        sides = Table.grid(expand=True, padding=(0, 1))
        sides.add_row(
            Panel(escape(pair.a.output or "(empty output)"), title="A", title_align="left"),
            Panel(escape(pair.b.output or "(empty output)"), title="B", title_align="left"),
        )
        console.print(sides)
        answer = ask("better", choices=["a", "b", "t", "s", "k", "q"], show_choices=True)
        if answer == "q":
            console.print(f"Stopped; {len(judged)}/{len(pairs)} judged. Run again to resume.")
            return len(judged)
        if answer in ("s", "k"):
            position = max(0, position + (1 if answer == "s" else -1))
            continue
        comment = ask("comment (Enter for none)", default="", show_default=False)
        choice = "tie" if answer == "t" else answer
        chosen = pairwise.Chosen(pair_id=pair.pair_id, choice=choice, comment=comment)
        pairwise.apply_choices(run.id, judge, [chosen], source="terminal")
        judged.add(pair.pair_id)
        position += 1
    console.print(f"Done: {len(judged)}/{len(pairs)} pairs judged by {judge}.")
    return len(judged)
