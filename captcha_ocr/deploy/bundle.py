"""Build the SCF deployment bundle: function files at the zip root plus Linux wheels for the target
runtime Python, checked against the target's glibc before anything is zipped.

    python scripts/build_bundle.py                      # Python 3.10, glibc 2.17 (SCF's CentOS 7)
    python scripts/build_bundle.py --interpreter tflite-runtime --glibc 2.31 --glibcxx 3.4.28

The wheels are the versions pinned in runtime-pins.txt, the constraints `make` installs with, so
the bundle runs what the tests and the local server run. The function files are what index.py
imports (`serving_files`), and the build fails if serving imports a package the bundle lacks.
"""

from __future__ import annotations

import argparse
import ast
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from captcha_ocr.config import CONFIG_FILE, parse_config
from captcha_ocr.deploy import REPO
from captcha_ocr.errors import UserError
from captcha_ocr.registry import (
    MODELS_FOLDER,
    SHIPPED_MODEL_DIR,
    SHIPPED_MODEL_SUBDIR,
    check_name,
    copy_model,
    other_model_folders,
    shipped_named_folders,
)

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")
# Never imported by the handler: test suites, headers, scripts, typing stubs, and bytecode of another
# Python (compile_bytecode writes the target's own after pruning).
PRUNE_DIRS = ("tests", "__pycache__", "include", "_pyinstaller", "bin")
PRUNE_SUFFIXES = (".pyc", ".pyi", ".h", ".c", ".pxd")
# Codecs and tools the handler never loads: Pillow's AVIF (3.4 MB zipped), colour management and Tk
# modules, numpy's build tools, LiteRT's unused flatbuffer schema. (ImageMath stays: the GIF reader
# imports it.) The build checks that no library left in the bundle needs a removed one
# (`check_needed_libraries`), and the bundle tests run the handler on every hostile class.
PRUNE_GLOBS = ("PIL/_avif.*", "pillow.libs/libavif-*", "PIL/_imagingcms.*", "pillow.libs/liblcms2-*",
               "PIL/_imagingtk.*", "numpy/distutils", "numpy/f2py", "ai_edge_litert/schema_py_generated.py")


def find_python(version: str) -> str | None:
    """A real interpreter of the target version, to run the bundle with (pyenv shims refuse to run
    versions that are not selected, so pyenv's own folders are tried first)."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
    candidates += [shutil.which(f"python{version}") or ""]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _imports(path: Path) -> set[str]:
    """Dotted names a Python file imports (absolute imports; serving code uses no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def serving_files(root: Path = REPO) -> tuple[list[Path], set[str]]:
    """What the handler reaches from index.py: the captcha_ocr files (relative to root, with the
    data files of each package it reaches, e.g. the demo page) and the third-party top-level
    packages they import. The one list of serving modules: the bundle copies
    these, and the tests check these never import training code, TensorFlow, pickle or a shell."""
    files, packages, todo = {Path("index.py")}, set(), [Path("index.py")]
    while todo:
        for name in _imports(root / todo.pop()):
            top = name.split(".")[0]
            if top != "captcha_ocr":
                if top not in sys.stdlib_module_names and top != "__future__":
                    packages.add(top)
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # every package on the way, and the module itself
                for candidate in (Path(*parts[:depth], "__init__.py"), Path(*parts[:depth]).with_suffix(".py")):
                    if (root / candidate).is_file() and candidate not in files:
                        files.add(candidate)
                        todo.append(candidate)
    data = {path.relative_to(root) for init in files if init.name == "__init__.py"
            for path in (root / init.parent).iterdir() if path.is_file() and path.suffix not in (".py", ".pyc")}
    return sorted(files | data), packages


PINS_FILE = REPO / "runtime-pins.txt"


class BundleError(UserError):
    """The bundle cannot be built as asked (a library too new for the target, a missing module)."""
INTERPRETERS = ("ai-edge-litert", "tflite-runtime")


def runtime_pins(interpreter: str = "ai-edge-litert") -> list[str]:
    """The serving runtime pinned in runtime-pins.txt, the constraints `make` installs with; with
    tflite-runtime (glibc >= 2.29 only), the interpreter swapped for pyproject's [tflite] extra."""
    pins = [line.split("#")[0].strip() for line in PINS_FILE.read_text().splitlines()]
    pins = [pin for pin in pins if pin]
    if interpreter == "tflite-runtime":
        import tomllib

        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        pins = [pin for pin in pins if not pin.startswith("ai-edge-litert")]
        pins += [requirement.split(";")[0].strip() for requirement in extras["tflite"]]
    return pins


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
               *platforms, *requirements]
    subprocess.run(command, check=True)


def copy_function(target: Path, model_dir: Path, models_dir: Path | None, packages_root: Path | None = None) -> None:
    """The serving modules, the default model where the package keeps its shipped one
    (captcha_ocr/models/default), and each model of models_dir in models/NAME: where the handler
    looks for them (registry)."""
    files, packages = serving_files()
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target / relative)
    missing = sorted(name for name in packages if not ((packages_root or target) / name).exists())
    if missing:
        raise BundleError(f"serving imports {', '.join(missing)}, which the bundle does not hold")
    copy_model(model_dir, target.joinpath("captcha_ocr", *SHIPPED_MODEL_SUBDIR))
    for folder in shipped_named_folders(model_dir):  # the general model: where the package keeps it
        copy_model(folder, target.joinpath("captcha_ocr", SHIPPED_MODEL_SUBDIR[0], folder.name))
    for folder in other_model_folders(model_dir, models_dir):
        check_name(copy_model(folder, target / MODELS_FOLDER / folder.name).name)


def prune(target: Path) -> None:
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS and path.parent != target / "captcha_ocr":
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in PRUNE_SUFFIXES:
            path.unlink()
    for pattern in PRUNE_GLOBS:
        for path in target.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


_VENDORED_NAME = re.compile(r"-[0-9a-f]{8}\.so")  # auditwheel renames what it vendors: libjpeg-02b4d8cf.so.62


def needed_libraries(path: Path) -> list[str]:
    """The DT_NEEDED entries of an ELF file (the shared libraries it cannot load without)."""
    with path.open("rb") as stream:
        for section in ELFFile(stream).iter_sections():
            if isinstance(section, DynamicSection):
                return [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    return []


def check_needed_libraries(root: Path) -> list[str]:
    """Every vendored library (auditwheel's `.libs` folders) that some ELF file needs but is missing."""
    vendored = {path.name for path in root.glob("*.libs/*")}
    problems = []
    for path in sorted(root.rglob("*.so*")):
        if path.is_file() and path.read_bytes()[:4] == b"\x7fELF":
            for name in needed_libraries(path):
                if _VENDORED_NAME.search(name) and name not in vendored:
                    problems.append(f"{path.relative_to(root)} needs {name}, which was pruned or never bundled")
    return problems


def bundled_models(archive: bytes) -> list[str]:
    """The names of the models a bundle serves, in the registry's order: the default, the package's
    named models, the models folder's (from their config.json files)."""
    default = "/".join(("captcha_ocr", *SHIPPED_MODEL_SUBDIR, CONFIG_FILE))
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        names = bundle.namelist()
        configs = [default] if default in names else []
        configs += sorted(name for name in names if name != default
                          and re.fullmatch(rf"captcha_ocr/{SHIPPED_MODEL_SUBDIR[0]}/[^/]+/{CONFIG_FILE}", name))
        configs += sorted(name for name in names if re.fullmatch(rf"{MODELS_FOLDER}/[^/]+/{CONFIG_FILE}", name))
        return [parse_config(json.loads(bundle.read(name))).name for name in configs]


def write_zip(source: Path, archive: Path) -> None:
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo.from_file(path, path.relative_to(source).as_posix())
                info.date_time = (2020, 1, 1, 0, 0, 0)  # reproducible archives
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, path.read_bytes())


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _stage_runtime(staging: Path, python: str, glibc: str, glibcxx: str, interpreter: str) -> None:
    """The pinned wheels for the target, pruned, every native library checked against its glibc."""
    requirements = runtime_pins(interpreter)
    print(f"installing Linux x86-64 wheels for Python {python}: {' '.join(requirements)}")
    install_wheels(staging, python, requirements)
    prune(staging)
    problems = check_native_libraries(staging, glibc, glibcxx)
    if problems:
        raise BundleError(f"native libraries too new for glibc {glibc} / GLIBCXX {glibcxx}:\n  "
                          + "\n  ".join(problems))
    problems = check_needed_libraries(staging)
    if problems:
        raise BundleError("the bundle lacks libraries its modules load:\n  " + "\n  ".join(problems))
    print(f"glibc check passed (target glibc {glibc}, GLIBCXX {glibcxx})")


def compile_bytecode(folder: Path, python: str) -> bool:
    """Every module's bytecode, compiled by the target Python into __pycache__ beside its source.

    SCF's code folder (/var/user) and layers (/opt) are read-only, so a bundle without bytecode is
    compiled again at every cold start, which costs time and memory (measured: BENCHMARKS.md, "Cold
    start and memory"; bench/bundle.py compares the two). `checked-hash` pycs hold no
    timestamps (a zip's are only to 2 s, in local time) and are still checked against their source,
    so a file edited in the console is compiled afresh rather than ignored. False, with a warning,
    when no interpreter of the target version is here: the bundle then works, only slower to start.
    """
    interpreter = find_python(python)
    if interpreter is None:
        print(f"warning: no Python {python} here, so the bundle carries no bytecode: each cold start "
              "compiles every module it imports again (slower to start: docs/deploy.md)", file=sys.stderr)
        return False
    # the same sources must give the same bytes, so the layer's digest (what deploy compares) changes
    # only with its content: a fixed hash seed fixes the order of set constants, and one process
    # compiling in compileall's sorted order fixes which strings marshal writes as references (spread
    # over a pool, that depends on which worker got which file: 5 of numpy's pycs differed between two
    # builds on a busy machine); -s keeps the build's own paths out of the files
    subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "checked-hash",
                    "-s", str(folder), str(folder)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONHASHSEED": "0"})
    return True


def _zip(staging: Path, archive: Path) -> Path:
    write_zip(staging, archive)
    unzipped = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    print(f"{archive}: {archive.stat().st_size / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB unzipped")
    return archive


def build(out: Path, python: str, glibc: str, glibcxx: str, model_dir: Path,
          interpreter: str = INTERPRETERS[0], models_dir: Path | None = None) -> Path:
    """The single zip (code, models and dependencies together: for the console or COS); models_dir
    defaults to the one the local server serves (registry.default_models_dir)."""
    staging = _fresh(out / f"scf-python{python}")
    _stage_runtime(staging, python, glibc, glibcxx, interpreter)
    copy_function(staging, model_dir, models_dir)
    compile_bytecode(staging, python)
    return _zip(staging, out / f"captcha-ocr-scf-python{python}.zip")


class Layered(NamedTuple):
    code: Path  # the function's own zip: index.py, captcha_ocr, the models (about 1 MB)
    layer: Path  # the dependency layer: the pinned wheels at its root, which SCF unpacks into /opt


def build_layered(out: Path, python: str, glibc: str, glibcxx: str, model_dir: Path,
                  interpreter: str = INTERPRETERS[0], models_dir: Path | None = None) -> Layered:
    """The function's code and its dependency layer apart, so a code update uploads about 1 MB and
    the layer is published again only when its content changes. The code zip carries no copy of the
    layer's packages: /var/user comes first on the path and would shadow them."""
    layer = _fresh(out / f"layer-python{python}")
    _stage_runtime(layer, python, glibc, glibcxx, interpreter)
    code = _fresh(out / f"code-python{python}")
    copy_function(code, model_dir, models_dir, packages_root=layer)
    for folder in (layer, code):
        compile_bytecode(folder, python)
    return Layered(_zip(code, out / f"captcha-ocr-code-python{python}.zip"),
                   _zip(layer, out / f"captcha-ocr-layer-python{python}.zip"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.10", help="SCF runtime Python version (default 3.10)")
    parser.add_argument("--glibc", default="2.17", help="newest GLIBC_ version the runtime has (default 2.17)")
    parser.add_argument("--glibcxx", default="3.4.19", help="newest GLIBCXX_ version (default 3.4.19)")
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR,
                        help="folder with config.json + model: the default (default: the shipped model)")
    parser.add_argument("--models-dir", type=Path, help="folder of more models, one subfolder each "
                        "(default: $CAPTCHA_OCR_MODELS_DIR, else models/ when there is one)")
    parser.add_argument("--out", type=Path, default=REPO / "build", help="output folder (default build/)")
    parser.add_argument("--interpreter", choices=INTERPRETERS, default=INTERPRETERS[0],
                        help="the TFLite package (default ai-edge-litert, pinned in runtime-pins.txt; "
                             "tflite-runtime needs glibc >= 2.29)")
    parser.add_argument("--layered", action="store_true",
                        help="the function's code zip and its dependency layer zip apart (what deploy uploads)")
    args = parser.parse_args(argv)
    try:
        (build_layered if args.layered else build)(args.out, args.python, args.glibc, args.glibcxx, args.model_dir,
                                                   args.interpreter, args.models_dir)
    except UserError as error:
        print(f"build_bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
