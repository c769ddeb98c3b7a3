"""The web app's files ship inside the package and name nothing outside it: no CDN, no font or
script from the network (the browser tests also fail on any request that leaves the gateway)."""

from __future__ import annotations

import re
from importlib.resources import files

WEB = files("multiturn") / "web"
ASSETS = ("index.html", "app.js", "api.js", "dom.js", "tree.js", "inspector.js", "style.css")
REMOTE = re.compile(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}|@import|url\(\s*['"]?(?!data:)""", re.IGNORECASE)


def test_the_app_ships_in_the_package_and_fetches_nothing_remote() -> None:
    shipped = {entry.name for entry in WEB.iterdir() if entry.is_file()}
    assert set(ASSETS) <= shipped
    for name in sorted(shipped):
        text = (WEB / name).read_text(encoding="utf-8")
        assert not REMOTE.search(text), f"{name} names a remote resource: {REMOTE.search(text)}"
    modules = {m for name in ASSETS for m in re.findall(r'from "\./([\w.]+)"', (WEB / name).read_text())}
    assert modules <= shipped, modules - shipped  # every module an import names is there
