#!/usr/bin/env python3
"""Build the SCF deployment bundle: function files at the zip root plus Linux wheels for the target
runtime Python, checked against the target's glibc before anything is zipped.

    python scripts/build_bundle.py                      # Python 3.10, glibc 2.17 (SCF's CentOS 7)
    python scripts/build_bundle.py --python 3.9 --glibc 2.28

The interpreter package is chosen per target: tflite-runtime 2.14 needs GLIBC_2.29, so older
targets get ai-edge-litert 1.2.0 (manylinux_2_17, and the smallest LiteRT wheel).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

REPO = Path(__file__).resolve().parent.parent
SERVING_MODULES = ("__init__", "app", "config", "errors", "events", "imaging", "payload", "runtime")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")
# Never imported by the handler: test suites, headers, scripts, typing stubs, bytecode.
PRUNE_DIRS = ("tests", "__pycache__", "include", "_pyinstaller", "bin")
PRUNE_SUFFIXES = (".pyc", ".pyi", ".h", ".c", ".pxd")


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


INTERPRETERS = {
    "tflite-runtime": ["tflite-runtime==2.14.0", "numpy<2"],
    "ai-edge-litert": ["ai-edge-litert==1.2.0", "numpy"],
}


def choose_interpreter(python: str, glibc: str) -> str:
    if version_tuple(glibc) >= (2, 29) and version_tuple(python) <= (3, 11):
        return "tflite-runtime"
    return "ai-edge-litert"


def required_versions(path: Path) -> set[str]:
    """GLIBC_x.y / GLIBCXX_x.y.z versions an ELF file needs (its .gnu.version_r entries)."""
    try:
        with path.open("rb") as stream:
            elf = ELFFile(stream)
            needed = set()
            for section in elf.iter_sections():
                if isinstance(section, GNUVerNeedSection):
                    for _, auxiliaries in section.iter_versions():
                        needed.update(aux.name for aux in auxiliaries)
            return needed
    except ELFError:
        return set()


def too_new(needed: set[str], glibc: str, glibcxx: str) -> list[str]:
    limits = {"GLIBC_": version_tuple(glibc), "GLIBCXX_": version_tuple(glibcxx)}
    offending = []
    for name in sorted(needed):
        for prefix, limit in limits.items():
            rest = name[len(prefix):]
            if name.startswith(prefix) and rest[:1].isdigit() and version_tuple(rest) > limit:
                offending.append(name)
    return offending


def check_native_libraries(root: Path, glibc: str, glibcxx: str) -> list[str]:
    """Every ELF file under root that needs a newer glibc/libstdc++ than the target has."""
    problems = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.read_bytes()[:4] == b"\x7fELF":
            offending = too_new(required_versions(path), glibc, glibcxx)
            if offending:
                problems.append(f"{path.relative_to(root)} needs {', '.join(offending)}")
    return problems


def install_wheels(target: Path, python: str, requirements: list[str]) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "--no-compile",
               "--no-warn-conflicts", "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
               *platforms, "pillow", *requirements]
    subprocess.run(command, check=True)


def copy_function(target: Path, model_dir: Path) -> None:
    shutil.copy2(REPO / "index.py", target / "index.py")
    package = target / "captcha_ocr"
    package.mkdir()
    for module in SERVING_MODULES:
        shutil.copy2(REPO / "captcha_ocr" / f"{module}.py", package / f"{module}.py")
    config = json.loads((model_dir / "config.json").read_text())
    shutil.copy2(model_dir / "config.json", target / "config.json")
    shutil.copy2(model_dir / config["model_file"], target / config["model_file"])


def prune(target: Path) -> None:
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS and path.parent != target / "captcha_ocr":
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in PRUNE_SUFFIXES:
            path.unlink()


def write_zip(source: Path, archive: Path) -> None:
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo.from_file(path, path.relative_to(source).as_posix())
                info.date_time = (2020, 1, 1, 0, 0, 0)  # reproducible archives
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, path.read_bytes())


def build(out: Path, python: str, glibc: str, glibcxx: str, model_dir: Path, interpreter: str | None = None) -> Path:
    staging = out / f"scf-python{python}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    requirements = INTERPRETERS[interpreter or choose_interpreter(python, glibc)]
    print(f"installing Linux x86-64 wheels for Python {python}: pillow {' '.join(requirements)}")
    install_wheels(staging, python, requirements)
    prune(staging)
    copy_function(staging, model_dir)
    problems = check_native_libraries(staging, glibc, glibcxx)
    if problems:
        raise SystemExit(f"native libraries too new for glibc {glibc} / GLIBCXX {glibcxx}:\n  "
                         + "\n  ".join(problems))
    archive = out / f"captcha-ocr-scf-python{python}.zip"
    write_zip(staging, archive)
    unzipped = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    print(f"glibc check passed (target glibc {glibc}, GLIBCXX {glibcxx})")
    print(f"{archive}: {archive.stat().st_size / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB unzipped")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.10", help="SCF runtime Python version (default 3.10)")
    parser.add_argument("--glibc", default="2.17", help="newest GLIBC_ version the runtime has (default 2.17)")
    parser.add_argument("--glibcxx", default="3.4.19", help="newest GLIBCXX_ version (default 3.4.19)")
    parser.add_argument("--model-dir", type=Path, default=REPO, help="folder with config.json + model")
    parser.add_argument("--out", type=Path, default=REPO / "build", help="output folder (default build/)")
    parser.add_argument("--interpreter", choices=sorted(INTERPRETERS),
                        help="force the TFLite package (default: the one the target glibc can load)")
    args = parser.parse_args(argv)
    build(args.out, args.python, args.glibc, args.glibcxx, args.model_dir, args.interpreter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
