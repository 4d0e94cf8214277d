"""Stage `stage_code`: stage_code/<script>.txt for every stage script, the digest of the code
it runs (pipeline/code_closure.py). Every other stage depends on its digest instead of on
the files, so that a code change reruns exactly the stages that import it."""

from __future__ import annotations

from pathlib import Path

from pipeline.code_closure import PackageImports
from pipeline.errors import run_cli
from pipeline.io import atomic_dir
from pipeline.paths import STAGE_CODE_DIR


def main() -> None:
    package = PackageImports(Path(__file__).resolve().parents[1])
    with atomic_dir(STAGE_CODE_DIR) as scratch:
        for script in package.stage_scripts():
            digest = package.digest(script)
            name = f"{script.rsplit('.', 1)[1]}.txt"
            (scratch / name).write_text(digest, encoding="utf-8")
            print(f"{STAGE_CODE_DIR / name}: {len(digest.splitlines())} files")


if __name__ == "__main__":
    run_cli(main)
