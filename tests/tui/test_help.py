"""The help screen is made from the app's and each screen's BINDINGS and HELP line: nothing kept by hand."""

from __future__ import annotations

from tui.app import MODE_SCREENS, PUSHED_SCREENS, EdgeTui
from tui.historian_source import HistorianSource
from tui.screens.help import HelpScreen, as_bindings


async def test_help_lists_every_screen_and_every_key() -> None:
    app = EdgeTui(HistorianSource("postgresql://nobody@127.0.0.1:1/none"), operator="alice")
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        screens = [s for _, _, s in MODE_SCREENS] + [s for _, s in PUSHED_SCREENS]
        for screen in screens:
            assert f"{screen.LABEL} (" in text and screen.HELP in text
            for b in as_bindings(vars(screen).get("BINDINGS", ())):
                assert (b.tooltip or b.description) in text, (screen.__name__, b.key)
        for b in as_bindings(EdgeTui.BINDINGS):
            assert app.get_key_display(b) in text and (b.tooltip or b.description) in text
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, HelpScreen)
