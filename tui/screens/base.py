"""The base of every data screen: polls its data in a Textual worker, never on the UI's own path."""

from __future__ import annotations

from typing import ClassVar

from textual.screen import Screen

from tui.context import ScreenContext
from tui.data_source import QueryFailed, Unavailable
from tui.messages import HistorianAnswered, HistorianDown, HistorianRefused


class EdgeScreen(Screen[None]):
    """Calls :meth:`load` every ``poll_s`` while it is the current screen; tells the app how it went.

    ``LABEL``, ``HELP`` (one line: what the screen is for) and ``BINDINGS`` make its part of the help screen.
    """

    LABEL: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    def __init__(self, ctx: ScreenContext, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.ctx = ctx
        self._loading = False
        self._again = False
        self.loads = 0  # completed polls, good or bad (tests wait on it)

    def on_mount(self) -> None:
        self.set_interval(self.ctx.poll_s, self.poll)

    def on_screen_resume(self) -> None:
        self.poll()

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
            self.post_message(HistorianAnswered())
        except QueryFailed as exc:
            self.post_message(HistorianRefused(str(exc)))
        except Unavailable as exc:
            self.post_message(HistorianDown(str(exc)))
        finally:
            self._loading = False
            self.loads += 1
            if self._again:
                self._again = False
                self.call_later(self.poll)

    async def load(self) -> None:
        """Fetch and render. Raise :class:`Unavailable` when the historian cannot answer."""
