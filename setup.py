"""The build step that ships README.md and docs/*.md inside the wheel, for /docs/ to serve.

The repository keeps one copy of the docs, where readers look for them; a wheel carries them
as analytics/docs/. An editable install (`pip install -e .`) reads them from the checkout.
Everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithDocs(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        docs = sorted((ROOT / "docs").glob("*.md"))
        if not (ROOT / "README.md").is_file() or not docs:
            raise SystemExit("README.md and docs/*.md are needed to build: /docs/ serves them")
        target = Path(self.build_lib) / "analytics" / "docs"
        self.mkpath(str(target))
        for source in [ROOT / "README.md", *docs]:
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithDocs})
