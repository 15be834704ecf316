"""``build --push`` pieces that need no engine: tag parsing and the push stream → progress lines."""

from __future__ import annotations

import pytest

from imagekit.errors import UsageError
from imagekit.image_push import _LayerProgress, split_tag

#: the stream the engine sends for a two-layer push (shape as docker 20.10 sends it)
STREAM = [
    {"status": "The push refers to repository [127.0.0.1:5000/x/y]"},
    {"status": "Preparing", "progressDetail": {}, "id": "aaa"},
    {"status": "Preparing", "progressDetail": {}, "id": "bbb"},
    {"status": "Waiting", "progressDetail": {}, "id": "bbb"},
    *[{"status": "Pushing", "progressDetail": {"current": n, "total": 2_000_000}, "progress": f"[=>] {n}/2MB",
       "id": "aaa"} for n in (1, 500_000, 1_000_000, 2_000_000)],
    {"status": "Pushed", "progressDetail": {}, "id": "aaa"},
    {"status": "Layer already exists", "progressDetail": {}, "id": "bbb"},
    {"status": "1: digest: sha256:0123 size: 528"},
]


def _lines(tty: bool, ticks=(0.0, 0.5, 2.6, 3.0), live: list[str] | None = None) -> list[str]:
    """The kept lines for :data:`STREAM` (running figures into *live* if given); *ticks* is what
    the clock says at each "Pushing" line."""
    out: list[str] = []
    clock = iter(ticks)
    progress = _LayerProgress("127.0.0.1:5000/x/y:1", out.append, tty, clock=lambda: next(clock),
                              update=None if live is None else live.append)
    for line in STREAM:
        progress.feed(line)
    return out


def test_plain_lines_when_not_a_tty():
    assert _lines(tty=False) == [
        "push 127.0.0.1:5000/x/y:1: layer aaa pushing (2.0 MB)",
        "push 127.0.0.1:5000/x/y:1: layer aaa pushed (2.0 MB)",
        "push 127.0.0.1:5000/x/y:1: layer bbb already exists",
    ]


def test_a_tty_also_gets_the_running_figure_but_throttled():
    assert _lines(tty=True) == [
        "push 127.0.0.1:5000/x/y:1: layer aaa pushing (2.0 MB)",
        "push 127.0.0.1:5000/x/y:1: layer aaa [=>] 1000000/2MB",  # 2.6 s after the first
        "push 127.0.0.1:5000/x/y:1: layer aaa pushed (2.0 MB)",
        "push 127.0.0.1:5000/x/y:1: layer bbb already exists",
    ]


def test_with_a_live_line_the_running_figure_goes_there():
    live: list[str] = []
    kept = _lines(tty=True, ticks=(0.0, 0.1, 0.4, 0.5), live=live)
    assert kept == [
        "push 127.0.0.1:5000/x/y:1: layer aaa pushing (2.0 MB)",
        "push 127.0.0.1:5000/x/y:1: layer aaa pushed (2.0 MB)",
        "push 127.0.0.1:5000/x/y:1: layer bbb already exists",
    ]
    assert live == ["push 127.0.0.1:5000/x/y:1: layer aaa [=>] 1000000/2MB"]  # 0.1 s is too soon, 0.5 s follows 0.4 s


@pytest.mark.parametrize(("ref", "expected"), [
    ("127.0.0.1:5000/x/y:1", ("127.0.0.1:5000/x/y", "1")),
    ("127.0.0.1:5000/x/y", ("127.0.0.1:5000/x/y", "latest")),
    ("registry.example.com/p/kernel:1.0-py312", ("registry.example.com/p/kernel", "1.0-py312")),
    ("my/kernel", ("my/kernel", "latest")),
])
def test_split_tag(ref, expected):
    assert split_tag(ref) == expected


def test_a_digest_is_not_a_tag_to_push():
    with pytest.raises(UsageError, match="push needs a tag"):
        split_tag("127.0.0.1:5000/x/y@sha256:" + "0" * 64)
