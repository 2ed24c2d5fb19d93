"""The README and docs/*.md: every relative link and image path resolves, anchors exist, the README stays short."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 160

# [text](target) and ![alt](target); targets without spaces, optionally followed by a "title"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"""<(?:img|a)\s[^>]*(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are examples, not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", path.read_text(encoding="utf-8")), re.MULTILINE)
    seen: dict[str, int] = {}
    out = set()
    for heading in headings:
        slug = _slug(heading)
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


def _targets(text: str) -> list[str]:
    prose = _prose(text)
    return LINK.findall(prose) + HTML_SRC.findall(prose)


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("//")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_images_resolve(doc: Path) -> None:
    broken = []
    for target in _targets(doc.read_text(encoding="utf-8")):
        if not _is_relative(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / unquote(file_part)).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest} missing")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


def test_readme_is_short_and_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = {Path(t.partition("#")[0]).name for t in _targets(readme) if t.startswith("docs/")}
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"docs pages not linked from the README: {sorted(pages - linked)}"


def test_link_parser_sees_links_images_and_skips_code() -> None:
    text = 'a [x](docs/a.md#b) ![i](img/p.png) `[no](c.md)`\n```\n[no](d.md)\n```\n<img src="e.png">'
    assert _targets(text) == ["docs/a.md#b", "img/p.png", "e.png"]
    assert _slug("Real footage: `realclips` and `dataset quality`") == "real-footage-realclips-and-dataset-quality"
    assert _slug("CPGD-Net (`bench_cpfp`, `bench_cpc`)") == "cpgd-net-bench_cpfp-bench_cpc"
