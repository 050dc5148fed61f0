"""The window's style deck builds a new style in a thread of its own: the picture goes on in the last style
ready meanwhile, and a style that cannot be built is said and left."""

import time

from streamstyle.apps.style_deck import StyleDeck
from streamstyle.processing.stylizer import Stylizer

from .conftest import PAINTINGS, STARTUP_S


def settled(deck: StyleDeck) -> None:
    deadline = time.monotonic() + STARTUP_S
    while deck.loading and not deck.failure:
        assert time.monotonic() < deadline, "the style was never built"
        time.sleep(0.05)


def test_a_new_style_is_built_aside_while_the_last_one_goes_on(cpu):
    first = Stylizer(7, runtime=cpu)
    deck = StyleDeck(first, [PAINTINGS[0]])
    assert deck.step_painting(1)
    # Asked for, not waited for: the last style comes back at once. (Whether the new one is still loading by the
    # next line depends on the scheduler: a cached painting builds in a moment.)
    assert deck.current() is first
    settled(deck)
    painting = deck.current()
    assert painting is not first and painting.model.name == "magenta" and deck.failure is None
    assert deck.current() is painting  # built once, kept


def test_a_style_that_cannot_be_built_is_said_and_the_deck_goes_back(cpu, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    first = Stylizer(7, runtime=cpu)
    deck = StyleDeck(first, [broken])
    label = deck.label
    deck.step_painting(1)
    assert deck.current() is first
    settled(deck)
    assert deck.failure is not None and "broken.png" in deck.failure
    assert deck.label == label and not deck.loading and deck.current() is first
