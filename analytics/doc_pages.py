"""The project's Markdown docs as HTML: found, rendered once, their links and anchors served.

The README is the doc ``readme`` and each ``docs/NAME.md`` the doc ``name``. A wheel carries
them in ``analytics/docs/`` (setup.py copies them there as it builds); a checkout installed
with ``pip install -e .`` reads them where they are. A link from one doc to another becomes
its ``/docs/`` route, fragment kept; a link to another file of the repository, which is not
served, is left as its text. Each heading has the id GitHub gives it, so fragments work.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

SHIPPED = "docs"
"""The folder of the package that a built wheel keeps README.md and docs/*.md in."""
README = "README.md"
ROUTE = "/docs/"
ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:|//")


@dataclass(frozen=True)
class Doc:
    name: str
    """Its route under /docs/: ``readme``, ``api``, ``operations``."""
    path: str
    """Its path in the repository, which its relative links start from: docs/api.md."""
    source: Traversable


@dataclass(frozen=True)
class Rendered:
    title: str
    html: str


def find_docs(package: Traversable, checkout: Path) -> dict[str, Doc]:
    """The docs of ``package`` (the wheel's copy), else those of the ``checkout`` the package
    is imported from; none if neither has them. The README first, then by name."""
    shipped = package.joinpath(SHIPPED)
    if shipped.is_dir():
        files = {entry.name: entry for entry in shipped.iterdir() if entry.name.endswith(".md")}
        readme = files.pop(README, None)
    elif (checkout / README).is_file() and (checkout / "docs").is_dir():
        files = {path.name: path for path in (checkout / "docs").glob("*.md")}
        readme = checkout / README
    else:
        return {}
    found = {} if readme is None else {"readme": Doc("readme", README, readme)}
    for file_name in sorted(files):
        name = file_name.removesuffix(".md").lower()
        found.setdefault(name, Doc(name, f"docs/{file_name}", files[file_name]))
    return found


@cache
def installed_docs() -> Mapping[str, Doc]:
    """The docs of this installation, looked up once."""
    return find_docs(resources.files("analytics"), Path(__file__).resolve().parent.parent)


def anchor(text: str) -> str:
    """GitHub's id of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def route_of(link: str, doc_path: str, routes: Mapping[str, str]) -> str | None:
    """Where a link of the doc at ``doc_path`` leads on the served pages; ``routes`` maps the
    repository path of each doc to its name. None for a file that is not served."""
    if ABSOLUTE.match(link) or link.startswith("#"):
        return link
    target, hashed, fragment = link.partition("#")
    if target.startswith("/"):
        path = posixpath.normpath(target.lstrip("/"))
    else:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(doc_path), target))
    name = routes.get(path)
    if name is None:
        return None
    return ROUTE + name + (f"#{fragment}" if hashed else "")


def _plain_text(inline: Token) -> str:
    return "".join(
        child.content for child in inline.children or () if child.type in ("text", "code_inline")
    )


def _fix_links(inline: Token, doc_path: str, routes: Mapping[str, str]) -> None:
    """Points each link at its route; unwraps a link to an unserved file to its text."""
    kept: list[Token] = []
    unwrapping = False
    for child in inline.children or ():
        if child.type == "link_open":
            href = route_of(str(child.attrGet("href") or ""), doc_path, routes)
            if href is None:
                unwrapping = True
                continue
            child.attrSet("href", href)
        elif child.type == "link_close" and unwrapping:
            unwrapping = False
            continue
        elif child.type == "image" and route_of(str(child.attrGet("src") or ""), "", {}) is None:
            # Images of the repository are not served: their alt text stands for them.
            kept.append(Token("text", "", 0, content=child.content))
            continue
        kept.append(child)
    inline.children = kept


def render(source: str, doc_path: str, routes: Mapping[str, str]) -> Rendered:
    """A doc's HTML: raw HTML in it is shown as text, tables rendered, links and headings
    fixed as the module says. Its title is its first top-level heading."""
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = markdown.parse(source)
    title = ""
    used: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type == "inline":
            _fix_links(token, doc_path, routes)
        elif token.type == "heading_open":
            text = _plain_text(tokens[index + 1])
            slug = anchor(text)
            count = used.get(slug, 0)
            used[slug] = count + 1
            token.attrSet("id", slug if count == 0 else f"{slug}-{count}")
            if token.tag == "h1" and not title:
                title = text.strip()
    return Rendered(title, markdown.renderer.render(tokens, markdown.options, {}))


def render_doc(doc: Doc, docs: Mapping[str, Doc]) -> Rendered:
    routes = {other.path: other.name for other in docs.values()}
    rendered = render(doc.source.read_text(encoding="utf-8"), doc.path, routes)
    return rendered if rendered.title else Rendered(doc.name, rendered.html)
