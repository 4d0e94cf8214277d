"""The code each stage runs: the `pipeline` modules its script imports, directly or through
other modules, and the digest of those files that the stage depends on in dvc.yaml.

A stage must rerun when a module it imports changes, and only then. Listing those modules
in dvc.yaml (about 25 per stage, 600 entries for the default experiment) made DVC check each
of them for every stage on every `dvc repro`; instead, the `stage_code` stage writes one
digest per stage script, `stage_code/<script>.txt`, and each stage depends on its digest.
A code change reruns `stage_code` (no torch, well under a second), which rewrites the
digests; only those whose files changed differ, so DVC reruns exactly the stages that import
the changed file.

An import counts where it runs: at module level and inside functions (a function-level
import runs when the stage calls the function), but not under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from pipeline.errors import PipelineError

#: Modules of `pipeline.stages` that get no digest: the package, the cell stages' shared
#: helpers, and the stage that writes the digests (it depends on the whole package).
NOT_STAGES = ("pipeline.stages", "pipeline.stages.common", "pipeline.stages.stage_code")


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def with_packages(name: str) -> set[str]:
    """A module and the packages whose `__init__` runs when it is imported."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


class PackageImports:
    """The modules of one package (the `pipeline` folder) and the imports between them."""

    def __init__(self, package: Path) -> None:
        self.root = package.parent
        self.package = package.name
        self.modules = {self.module_name(path): path for path in sorted(package.rglob("*.py"))}
        self._direct: dict[str, frozenset[str]] = {}

    def module_name(self, path: Path) -> str:
        parts = path.relative_to(self.root).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def imported_names(self, tree: ast.AST) -> list[str]:
        """Every module of the package named by an import that runs (see the module's
        docstring); `from pipeline import x` names `pipeline.x` where that is a module."""
        found = []
        for node in ast.iter_child_nodes(tree):
            if isinstance(node, ast.If) and is_type_checking(node):
                found.extend(name for child in node.orelse for name in self.imported_names(child))
                continue
            if isinstance(node, ast.Import):
                found.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.extend(f"{node.module}.{alias.name}"
                             if f"{node.module}.{alias.name}" in self.modules else node.module
                             for alias in node.names)
            found.extend(self.imported_names(node))
        return [name for name in found if name.split(".")[0] == self.package]

    def direct_imports(self, name: str) -> frozenset[str]:
        if name not in self._direct:
            path = self.modules[name]
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError as error:
                raise PipelineError(f"{path}, line {error.lineno}: {error.msg}; fix the file "
                                    "and run again") from error
            self._direct[name] = frozenset(
                module for imported in self.imported_names(tree)
                for module in with_packages(imported) if module in self.modules) - {name}
        return self._direct[name]

    def closure(self, name: str) -> set[str]:
        """`name`, its packages and every module they import, transitively."""
        seen, todo = set(), [*with_packages(name)]
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(self.direct_imports(module))
        return seen

    def stage_scripts(self) -> list[str]:
        return [name for name in self.modules
                if name.startswith(f"{self.package}.stages.") and name not in NOT_STAGES]

    def digest(self, name: str) -> str:
        """One `md5  path` line per file of `name`'s closure, sorted by path (`md5sum -c`
        reads it): it changes exactly when one of those files does."""
        paths = sorted(self.modules[module].relative_to(self.root).as_posix()
                       for module in self.closure(name))
        return "".join(f"{hashlib.md5((self.root / path).read_bytes()).hexdigest()}  {path}\n"
                       for path in paths)
