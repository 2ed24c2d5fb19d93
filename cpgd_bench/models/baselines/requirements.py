"""What an authors' checkout needs before its network can be imported, found by reading its source (no import).

:func:`scan` follows the imports of the wrapper's entry modules through the checkout (package ``__init__``
files included, every sibling module where an ``__init__`` imports them dynamically) and reports:

* compiled ops: ``torch.utils.cpp_extension.load`` of ``.cu`` sources (compiled at import: GPU + nvcc), and
  extensions a ``setup.py`` builds with ``CUDAExtension`` that are imported but not built;
* modules the checkout expects to be generated (``basicsr/version.py`` written by ``setup.py``);
* third-party modules (``mmcv``/``mmcv.ops`` = mmcv-full, ``cupy`` = CUDA only, ``mmflow``, ...) not installed.

Imports inside ``try ... except ImportError`` (or under an ``if``) are optional: reported, never a failure.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

#: Third-party modules that need a GPU, and the pip fix for modules whose import name is not the package name.
GPU_ONLY_MODULES = {"cupy": "cupy is CUDA only (pip install cupy-cuda12x on a CUDA machine)"}
PIP_NAMES = {"cv2": "opencv-python", "skimage": "scikit-image", "yaml": "PyYAML", "PIL": "Pillow",
             "mmcv": "mmcv-full (openmmlab wheel index for your torch/CUDA)", "mmflow": "mmflow (needs mmcv-full)",
             "spatial_correlation_sampler": "spatial-correlation-sampler"}

#: ``import_module('pkg.' + x)``, ``import_module('pkg.{}'.format(x))``, ``import_module(f'pkg.{x}')``: captures pkg.
DYNAMIC_IMPORT = re.compile(r"import_module\(\s*f?['\"]([\w.]+?)\.(?:\{|['\"])")


@dataclass(frozen=True)
class Requirement:
    """One thing the checkout needs: what, where it is needed, whether this machine has it, how to get it."""

    what: str
    where: str  # checkout file (relative) that needs it
    met: bool
    fix: str = ""
    gpu_only: bool = False
    optional: bool = False  # an optional import: reported, not a failure


def gpu_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def nvcc_available() -> bool:
    """Whether torch can find a CUDA toolkit to compile extensions with (``CUDA_HOME``)."""
    from torch.utils import cpp_extension

    return cpp_extension.CUDA_HOME is not None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (``find_spec``; parents of dotted names are imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def module_file(root: Path, name: str) -> Path | None:
    """The file of module ``name`` inside the checkout folder ``root`` (module or package), None if absent."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def in_checkout(root: Path, name: str) -> bool:
    """Whether ``name`` is a module or (namespace) package of the checkout."""
    return module_file(root, name) is not None or root.joinpath(*name.split(".")).is_dir()


def built_extension(root: Path, name: str) -> bool:
    """Whether a compiled extension module ``name`` (dotted) has been built into the checkout."""
    *package, last = name.split(".")
    folder = root.joinpath(*package)
    return any(folder.glob(f"{last}*.so")) or any(folder.glob(f"{last}*.pyd"))


def setup_extensions(root: Path) -> tuple[set[str], str]:
    """Names of the CUDA extensions the checkout's setup.py files build, and their joined text (for generated files)."""
    names: set[str] = set()
    texts = []
    for setup in sorted(root.rglob("setup.py")):
        text = setup.read_text(errors="replace")
        texts.append(text)
        if "CUDAExtension" in text:
            names |= set(re.findall(r"\bname\s*=\s*['\"]([\w.]+)['\"]", text))
    return {n.rsplit(".", 1)[-1] for n in names}, "\n".join(texts)


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST], under_if: bool) -> bool:
    """Whether ``node`` runs only sometimes: in a function or an except block, in a ``try`` catching
    ImportError, or (``under_if``) in an ``if`` (variant imports under if/else count as needed)."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ExceptHandler)):
            return True
        if under_if and isinstance(parent, ast.If):
            return True
        if isinstance(parent, ast.Try) and node in parent.body:
            caught = [ast.unparse(h.type) if h.type else "" for h in parent.handlers]
            if any(c == "" or "ImportError" in c or "Exception" in c for c in caught):
                return True
        node = parent
    return False


def _imports(tree: ast.Module, name: str, is_package: bool) -> list[tuple[str, str | None, ast.AST]]:
    """(module, imported member or None, node) for every import in a module's syntax tree, made absolute."""
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, str | None, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found += [(module, alias.name, node) for alias in node.names if alias.name != "*"]
            found += [(module, None, node)] if any(a.name == "*" for a in node.names) else []
    return found


def scan(root: Path, modules: tuple[str, ...]) -> list[Requirement]:
    """The requirements of ``modules`` (dotted names inside the checkout folder ``root``), in discovery order."""
    root = root.resolve()
    extensions, setup_text = setup_extensions(root)
    nested = {p.stem for p in root.rglob("*.py")}
    found: dict[str, Requirement] = {}
    seen: set[str] = set()
    todo = list(modules)

    def need(req: Requirement) -> None:
        if req.what not in found or (found[req.what].optional and not req.optional):
            found[req.what] = req

    while todo:
        full = todo.pop(0)
        parts = full.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, a/b/c
            name = ".".join(parts[:depth])
            if name in seen:
                continue
            seen.add(name)
            path = module_file(root, name)
            if path is None:
                continue
            rel = str(path.relative_to(root))
            tree = ast.parse(path.read_text(errors="replace"))
            parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
            is_package = path.name == "__init__.py"
            text = path.read_text(errors="replace")
            for package in DYNAMIC_IMPORT.findall(text):  # import_module("pkg." + name): any module of pkg
                folder = root.joinpath(*package.split("."))
                todo += [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                if "cpp_extension" in text and ast.unparse(call.func) in ("load", "cpp_extension.load") and ".cu" in (
                    ast.unparse(call)
                ):
                    need(Requirement(
                        f"CUDA op compiled at import ({rel})", rel, gpu_available() and nvcc_available(),
                        "needs a CUDA GPU, nvcc (CUDA_HOME) and ninja; the first import compiles it",
                        gpu_only=True, optional=_optional(call, parents, under_if=True),
                    ))
            for module, member, node in _imports(tree, name, is_package):
                optional = _optional(node, parents, under_if=False)
                top = module.split(".")[0]
                if not top:
                    continue
                if in_checkout(root, top):  # the checkout's own code
                    candidates = [module] + ([f"{module}.{member}"] if member else [])
                    for candidate in candidates:
                        last = candidate.rsplit(".", 1)[-1]
                        if in_checkout(root, candidate):
                            todo.append(candidate)
                        elif last in extensions:
                            need(Requirement(
                                f"compiled CUDA op {candidate}", rel, built_extension(root, candidate),
                                "build it with the checkout's setup.py (CUDA toolkit; BasicSR: BASICSR_EXT=True "
                                "python setup.py develop)", gpu_only=True, optional=optional,
                            ))
                        elif candidate == module and candidate.replace(".", "/") + ".py" in setup_text:
                            need(Requirement(
                                f"generated file {candidate.replace('.', '/')}.py", rel, False,
                                "written by the checkout's setup.py: run `python setup.py develop` there "
                                "(or create it with __version__ and __gitsha__)", optional=optional,
                            ))
                elif top in sys.stdlib_module_names or top == "__future__" or (optional and top in nested):
                    continue  # the standard library, or a fallback to a checkout file after a sys.path change
                elif top in extensions:  # an extension setup.py installs as a top-level module
                    need(Requirement(f"compiled CUDA op {top}", rel, installed(top),
                                     f"build it: `python setup.py build install` in the folder of the setup.py "
                                     f"naming {top} (CUDA toolkit)", gpu_only=True, optional=optional))
                elif top == "mmcv" and ("mmcv.ops" in module or (module == "mmcv" and member == "ops")):
                    need(Requirement("mmcv-full (compiled mmcv.ops)", rel, installed("mmcv._ext"),
                                     "pip install mmcv-full from the openmmlab index matching torch/CUDA",
                                     optional=optional))
                elif top in GPU_ONLY_MODULES:
                    need(Requirement(f"{top} (GPU only)", rel, installed(top) and gpu_available(),
                                     GPU_ONLY_MODULES[top], gpu_only=True, optional=optional))
                else:
                    need(Requirement(f"python module {top}", rel, installed(top),
                                     f"pip install {PIP_NAMES.get(top, top)}", optional=optional))
    return list(found.values())
