"""The help screen (``?``): every key, on one page, built from the app's and each screen's ``BINDINGS``.

Nothing here lists keys by hand: a screen's section is its ``LABEL``, its one-line ``HELP`` and its bindings,
so a new screen or key shows up in help by being declared where it is handled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.screens.base import EdgeScreen

NOTES = (
    "tab / shift+tab: next / previous pane; the mouse works too.",
    "Times are UTC. Colour comes with a symbol: ✓ ok, i info, ! warn, ▲ high/crit.",
)


@dataclass(frozen=True)
class HelpSection:
    title: str
    purpose: str
    bindings: tuple[Binding, ...]


def as_bindings(items: Iterable[BindingType]) -> tuple[Binding, ...]:
    """``BINDINGS`` entries (Binding objects or tuples) as Binding objects."""
    out: list[Binding] = []
    for item in items:
        out.append(item if isinstance(item, Binding) else Binding(*item))
    return tuple(out)


def screen_section(screen: type[EdgeScreen], how: str) -> HelpSection:
    """The help section of one screen class; ``how`` says how to get there ("1", "enter on overview").

    Only the bindings the class declares itself: those Textual's ``Screen`` brings (tab, copy) are in NOTES.
    """
    return HelpSection(f"{screen.LABEL} ({how})", screen.HELP, as_bindings(vars(screen).get("BINDINGS", ())))


class HelpScreen(ModalScreen[None]):
    LABEL = "Help"
    HELP = "this page"
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, sections: Sequence[HelpSection]) -> None:
        super().__init__()
        self.sections = tuple(sections)

    def key_lines(self, bindings: Sequence[Binding]) -> list[tuple[str, str]]:
        """(keys, what) per action: keys of one action and description share a line ("esc / backspace")."""
        merged: dict[tuple[str, str], list[str]] = {}
        for b in bindings:
            what = b.tooltip or b.description or b.action
            merged.setdefault((b.action, what), []).append(self.app.get_key_display(b))
        return [(" / ".join(keys), what) for (_, what), keys in merged.items()]

    def compose(self) -> ComposeResult:
        lines: list[str] = ["[b]Factory Edge — keys[/b]", ""]
        for section in self.sections:
            head = f"[b]{section.title}[/b]"
            lines.append(f"{head}: {escape(section.purpose)}" if section.purpose else head)
            # keys and tooltips are plain text ("[" is a key, "[comment]" is not markup)
            lines.extend(f"  [b]{escape(k)}[/b]{' ' * max(1, 17 - len(k))}{escape(what)}"
                         for k, what in self.key_lines(section.bindings))
            lines.append("")
        lines.extend(NOTES)
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(lines), id="help-text")
