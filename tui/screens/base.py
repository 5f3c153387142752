"""The base of every data screen: polls its data in a Textual worker, never on the UI's own path."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from tui.data import QueryFailed, Unavailable
from tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from tui.app import EdgeTui


class EdgeScreen(Screen[None]):
    """Calls :meth:`load` every ``poll_s`` while it is the current screen; failures show as disconnected."""

    def __init__(self, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._loading = False
        self._again = False
        self.loads = 0  # completed polls, good or bad (tests wait on it)

    @property
    def edge(self) -> EdgeTui:
        return cast("EdgeTui", self.app)

    def on_mount(self) -> None:
        self.set_interval(self.edge.poll_s, self.poll)

    def on_screen_resume(self) -> None:
        self.poll()
        self.show_status()

    def poll(self) -> None:
        if not self.is_current:
            return
        if self._loading:
            self._again = True  # the answer in flight is for an older question: ask again after it
            return
        self._loading = True
        self.run_worker(self._poll(), group="poll", exit_on_error=False)

    async def _poll(self) -> None:
        try:
            await self.load()
            self.edge.note_ok()
        except QueryFailed as exc:
            self.edge.note_query_error(str(exc))
        except Unavailable as exc:
            self.edge.note_down(str(exc))
        finally:
            self._loading = False
            self.loads += 1
            self.show_status()
            if self._again:
                self._again = False
                self.call_later(self.poll)

    async def load(self) -> None:
        """Fetch and render. Raise :class:`Unavailable` when the historian cannot answer."""

    def show_status(self) -> None:
        for bar in self.query(StatusBar):
            self.edge.render_status(bar)
