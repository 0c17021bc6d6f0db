"""The delivery engine's seams hold: the product uses only what `webhooks/delivery/__init__.py` names as
public, and the engine imports no feature."""

import ast
import importlib
import pathlib
import re

import webhooks.delivery as engine

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENGINE = ROOT / "webhooks" / "delivery"
PRODUCT_APPS = {"integration_tools", "portal", "environments", "credentials", "webhooks", "dataapi", "overview"}
PRODUCT_APPS |= {"notifications"}
# What the engine may take from the webhooks app besides itself: data, not features. `configure` gives
# `disable_webhook` until the webhook's lifecycle has a module of its own (`lifecycle`).
ENGINE_MAY_IMPORT = {"webhooks.models", "webhooks.options", "webhooks.examples", "webhooks.configure"}
ENGINE_MAY_IMPORT |= {"webhooks.lifecycle"}


def public_names() -> set[tuple[str, str]]:
    """(module, name) for every `module.name` the docstring's seams section lists."""
    seams = engine.__doc__.split("Seams: what the rest of the product may call")[1].split("What only the engine")[0]
    return set(re.findall(r"`(\w+)\.(\w+)`", seams))


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """Each `from X import names` of a file, X made absolute."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((module, [alias.asname or alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def engine_names_used(path: pathlib.Path) -> set[tuple[str, str]]:
    """(module, name) of every engine name a file imports, or reads off an engine module it imports."""
    used, aliases = set(), {}
    for module, names in _imported_modules(path):
        if module == "webhooks.delivery":
            aliases.update({name: name for name in names})
        elif module.startswith("webhooks.delivery."):
            used |= {(module.rpartition(".")[2], name) for name in names}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            used.add((aliases[node.value.id], node.attr))
    return used


def product_files() -> list[pathlib.Path]:
    return [
        path
        for path in ROOT.glob("*/**/*.py")
        if path.relative_to(ROOT).parts[0] in PRODUCT_APPS
        and not {"tests", "migrations"} & set(path.relative_to(ROOT).parts)
        and ENGINE not in path.parents
    ]


def test_every_public_name_of_the_engine_exists():
    assert public_names()
    for module, name in public_names():
        assert hasattr(importlib.import_module(f"webhooks.delivery.{module}"), name), f"{module}.{name}"


def test_the_product_uses_only_the_engines_public_names():
    public = public_names()
    reaching_in = {
        f"{path.relative_to(ROOT)}: {module}.{name}"
        for path in product_files()
        for module, name in engine_names_used(path)
        if (module, name) not in public
    }
    assert not reaching_in, "name these in webhooks/delivery/__init__.py, or give the engine a public function"


def test_the_engine_imports_no_feature():
    features = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in ENGINE.glob("*.py")
        for module, names in _imported_modules(path)
        for imported in ([f"{module}.{name}" for name in names] if module == "webhooks" else [module])
        if imported.startswith("webhooks.")
        and not imported.startswith("webhooks.delivery")
        and imported not in ENGINE_MAY_IMPORT
    }
    assert not features
