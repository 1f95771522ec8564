"""The documents a user reads: short, self-contained, every link resolving."""

import re

from tests.helpers import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCES = [*sorted((REPO / "hdr_gan_tf").rglob("*.py")), *sorted((REPO / "tests").glob("*.py")),
           *sorted((REPO / "tests" / "data").glob("*/README.md")),
           *sorted((REPO / "experiments").iterdir())]


def test_every_relative_link_of_the_documents_resolves():
    checked = 0
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (document.parent / target.split("#")[0]).resolve()
            assert path.exists(), (document.name, target)
            checked += 1
    assert checked >= 10


def test_nothing_cites_a_file_outside_the_repository():
    """Code and documents cite docs/design.md or the paper, never the specification or the
    references that live beside the repository."""
    for path in DOCUMENTS + [p for p in SOURCES if p.is_file()]:
        if path.name == "test_docs.py":
            continue
        text = path.read_text(errors="replace")
        assert not re.search(r"\bSPEC\b|\.\./shared|shared/reference", text), path


def test_the_readme_serves_a_user_in_one_screenful_of_sections():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    commands = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.S).group(1)
    assert commands.strip().splitlines() == [
        "python -m pip install -r requirements.txt -e . && "
        "hdr-gan-train --flagfile=experiments/demo.flags",
        'python -m pip install -r requirements.txt -e ".[app]" && python -m pytest -q']


def test_the_readme_and_the_safety_page_state_one_overwrite_rule():
    rule = ("an existing output is replaced only with `--overwrite`, and only when a record of "
            "ours vouches for it: a folder by its marker file, a file by the sidecar or marker "
            "that lists it with the size and SHA-256 it has now")
    for name in ("README.md", "docs/safety.md"):
        text = " ".join((REPO / name).read_text().split())
        assert rule in text, name
